"""Plain-PyTorch reference of every op and module (the executable form of docs/ops.md).

No mmcv, no CUDA extension: runs on any device, and exports to standard ONNX ops
(portable mode) because it is written with them.
"""

from dlu_deploy.reference.carafe import CARAFEPack, carafe
from dlu_deploy.reference.ddf import DDFPack, DDFUpPack, FilterNorm, ddf
from dlu_deploy.reference.dlu import DLUPack, dlu, expand_kernels
from dlu_deploy.reference.dysample import DySample, dysample_sample

__all__ = [
    "CARAFEPack",
    "DDFPack",
    "DDFUpPack",
    "DLUPack",
    "DySample",
    "FilterNorm",
    "carafe",
    "ddf",
    "dlu",
    "dysample_sample",
    "expand_kernels",
]
