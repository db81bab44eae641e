"""dlu-export: checkpoints of DLU / CARAFE / DySample / DDF models to ONNX.

    from dlu_deploy.checkpoints import load_model
    from dlu_export import ExportOptions, export_model

    options = ExportOptions(mode="plugin", dynamic=True)
    result = export_model(load_model("fpn_dlu.pth"), "fpn_dlu.onnx", options)

Plugin mode emits one custom node per DLU / CARAFE / DDF (domain `dlu_deploy`, op_type = the
TensorRT plugin name); portable mode emits standard ONNX ops only. See docs/export.md.
"""

from .errors import ExportError, OptionError
from .exporting import DEFAULT_OPSET, MODES, OPSETS, ExportOptions, ExportResult, export_model

__all__ = [
    "DEFAULT_OPSET",
    "MODES",
    "OPSETS",
    "ExportError",
    "ExportOptions",
    "ExportResult",
    "OptionError",
    "export_model",
]
