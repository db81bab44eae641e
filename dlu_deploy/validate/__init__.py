"""`dlu-deploy validate`: a TensorRT engine or ONNX file against the PyTorch model of its
checkpoint, on identical inputs, with per-output error statistics and tolerances."""

from dlu_deploy.validate.backends import OrtBackend, TorchBackend, TrtBackend, open_candidate
from dlu_deploy.validate.compare import ReferenceModel, load_reference, validate
from dlu_deploy.validate.inputs import generate_inputs, load_inputs, sweep_shapes
from dlu_deploy.validate.metrics import OutputComparison, compare_output
from dlu_deploy.validate.report import RunResult, ValidationReport, render_report
from dlu_deploy.validate.tolerances import (
    DEFAULT_TOLERANCES,
    Tolerance,
    TolerancePolicy,
    make_policy,
)

__all__ = [
    "DEFAULT_TOLERANCES",
    "OrtBackend",
    "OutputComparison",
    "ReferenceModel",
    "RunResult",
    "Tolerance",
    "TolerancePolicy",
    "TorchBackend",
    "TrtBackend",
    "ValidationReport",
    "compare_output",
    "generate_inputs",
    "load_inputs",
    "load_reference",
    "make_policy",
    "open_candidate",
    "render_report",
    "sweep_shapes",
    "validate",
]
