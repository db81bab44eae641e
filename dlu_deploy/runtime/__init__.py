"""Run TensorRT engines on edge devices: numpy in, numpy out, no torch.

Needs numpy, tensorrt and pycuda only; both of the latter are imported when an Engine is first
created, so importing this package is safe anywhere.
"""

from dlu_deploy.runtime.engine import Engine, PendingInference
from dlu_deploy.runtime.io import TensorSpec

__all__ = ["Engine", "PendingInference", "TensorSpec"]
