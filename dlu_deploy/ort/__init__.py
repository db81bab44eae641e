"""ONNX Runtime for dlu-deploy's graphs: `make_session(model)` returns a ready session.

Plugin-mode graphs hold one custom node per DLU / CARAFE / DDF (domain `dlu_deploy`) or mmcv's
`MMCVCARAFE` (domain `mmcv`); the project's native custom-op library, libdlu_ort_ops.so
(`custom_ops_library()`), runs them in onnxruntime on the compiled kernels, on the CPU and the
CUDA execution provider. Portable graphs need nothing extra. Use from C, C++ and Triton:
docs/kernels.md.
"""

from dlu_deploy.ort.session import custom_ops_library, make_session

__all__ = ["custom_ops_library", "make_session"]
