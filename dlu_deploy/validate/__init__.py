"""`dlu-deploy validate`: a TensorRT engine or ONNX file against the PyTorch model of its
checkpoint, on identical inputs, with per-output error statistics and tolerances, the float64
noise floor, and detections compared as detections."""

from dlu_deploy.validate.backends import OrtBackend, TorchBackend, TrtBackend, open_candidate
from dlu_deploy.validate.compare import ReferenceModel, load_reference, validate
from dlu_deploy.validate.detections import (
    DEFAULT_DETECTION_TOLERANCES,
    DETECTION_OUTPUTS,
    DetectionComparison,
    DetectionTolerance,
    is_detector,
    make_detection_tolerance,
    match_image,
    match_outputs,
)
from dlu_deploy.validate.inputs import generate_inputs, load_inputs, sweep_shapes
from dlu_deploy.validate.metrics import OutputComparison, compare_output
from dlu_deploy.validate.noise import DEFAULT_NOISE_FACTOR, NoiseFloor, noise_floor
from dlu_deploy.validate.report import RunResult, ValidationReport, render_report
from dlu_deploy.validate.tolerances import (
    DEFAULT_TOLERANCES,
    Tolerance,
    TolerancePolicy,
    make_policy,
)

__all__ = [
    "DEFAULT_DETECTION_TOLERANCES",
    "DEFAULT_NOISE_FACTOR",
    "DEFAULT_TOLERANCES",
    "DETECTION_OUTPUTS",
    "DetectionComparison",
    "DetectionTolerance",
    "NoiseFloor",
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
    "is_detector",
    "load_inputs",
    "load_reference",
    "make_detection_tolerance",
    "make_policy",
    "match_image",
    "match_outputs",
    "noise_floor",
    "open_candidate",
    "render_report",
    "sweep_shapes",
    "validate",
]
