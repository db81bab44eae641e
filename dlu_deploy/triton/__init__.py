"""Triton Inference Server: model repositories for Triton's TensorRT and onnxruntime backends
(`dlu-deploy triton-repo`) and a real Triton serving a model on this machine through PyTriton
(`dlu-deploy serve`). docs/serving.md describes both.
"""
