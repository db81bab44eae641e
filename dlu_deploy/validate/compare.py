"""Validation: the same inputs through the PyTorch model and the candidate, output by output."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from dlu_deploy.errors import UserError
from dlu_deploy.shapes import Shape, ShapeSet
from dlu_deploy.validate.backends import Backend, TorchBackend
from dlu_deploy.validate.detections import (
    DETECTION_OUTPUTS,
    DetectionComparison,
    DetectionTolerance,
    MatchSummary,
    find_score_threshold,
    format_problems,
    is_detector,
    make_detection_tolerance,
    match_outputs,
)
from dlu_deploy.validate.inputs import complete_shapes, generate_inputs, sweep_shapes
from dlu_deploy.validate.metrics import compare_output
from dlu_deploy.validate.noise import DEFAULT_NOISE_FACTOR, float64_copy, noise_floor
from dlu_deploy.validate.report import RunResult, ValidationReport
from dlu_deploy.validate.tolerances import TolerancePolicy, make_policy

if TYPE_CHECKING:
    import torch

    from dlu_deploy.checkpoints import LoadedModel


class ReferenceModel(Protocol):
    """What validate needs of `dlu_deploy.checkpoints.LoadedModel`."""

    model: torch.nn.Module
    input_names: list[str]
    output_names: list[str]
    example_shapes: list[tuple[int, ...]]


def load_reference(
    checkpoint: str | Path,
    *,
    arch: str | None = None,
    overrides: Mapping[str, object] | None = None,
    trust_pickle: bool = False,
    exported: str | Path | None = None,
) -> LoadedModel:
    """The PyTorch model of a checkpoint (weights_only loading unless `trust_pickle`).

    With `exported` (the ONNX file or engine under test), the architecture and hyper-parameters
    that dlu-export recorded in it are the defaults, so what the weights cannot show (a DDF
    combine mode, a gate variant) is rebuilt as exported; `arch` and `overrides` win.
    """
    from dlu_deploy.checkpoints import load_model

    recorded_arch, recorded_given = recorded_export(exported) if exported else (None, {})
    merged = {**recorded_given, **(overrides or {})}
    return load_model(
        checkpoint, arch=arch or recorded_arch, overrides=merged, trust_pickle=trust_pickle
    )


def recorded_export(model: str | Path) -> tuple[str | None, dict[str, object]]:
    """(architecture, hyper-parameters given to dlu-export) as recorded in an ONNX file's
    metadata or, for an engine, in its sidecar; (None, {}) when nothing was recorded."""
    import json

    from dlu_deploy.onnx_info import inspect_onnx
    from dlu_deploy.runtime.sidecar import read_sidecar

    path = Path(model)
    if path.suffix.lower() == ".onnx":
        settings = inspect_onnx(path).export_settings
    else:
        settings = (read_sidecar(path) or {}).get("export", {})
    try:
        given = json.loads(settings.get("given", "{}"))
    except json.JSONDecodeError:
        given = {}
    return settings.get("arch"), given if isinstance(given, dict) else {}


def validate(
    reference: ReferenceModel,
    candidate: Backend,
    *,
    shape_sets: Sequence[ShapeSet] | None = None,
    inputs: Mapping[str, np.ndarray] | None = None,
    seed: int = 0,
    tolerances: TolerancePolicy | None = None,
    candidate_name: str = "model",
    reference_name: str = "checkpoint",
    inputs_file: str | None = None,
    fp64: bool = True,
    noise_factor: float = DEFAULT_NOISE_FACTOR,
    detection_tolerance: DetectionTolerance | None = None,
    score_threshold: float | None = None,
) -> ValidationReport:
    """Compare `candidate` with the PyTorch model on identical inputs.

    Inputs: `inputs` if given (one run), else seeded random arrays for each of `shape_sets`
    (missing inputs take the model's example shape), else for the engine's profile
    (min/opt/max) or, for ONNX, the sweep of `inputs.sweep_shapes`. A detector's images are
    uniform 0-255 pixels.

    Outputs are compared element by element against `tolerances` and, with `fp64`, against
    the float64 noise floor (`noise`). A detector's `dets` / `labels` are compared as
    detections (`detections`), against `detection_tolerance` (the precision's defaults when
    None) with `score_threshold` (default: the model's `score_thr` attribute) as a boundary.
    """
    # A whole pickled model does not name its outputs: then the exported file's names apply.
    output_names = list(reference.output_names) or list(candidate.output_names)
    _check_names(reference.input_names, output_names, candidate)
    torch_backend = TorchBackend(reference.model, reference.input_names, output_names)
    policy = tolerances or make_policy(candidate.precision, output_names=candidate.output_names)
    detector = is_detector(output_names)
    tensor_names = [n for n in output_names if not (detector and n in DETECTION_OUTPUTS)]
    if detector:
        detection_tolerance = detection_tolerance or make_detection_tolerance(candidate.precision)
        score_threshold = find_score_threshold(
            [score_threshold, _model_score_threshold(reference.model)]
        )
    # zip: a pickled model may come without example shapes (then --shapes is needed)
    example: dict[str, Shape] = {
        n: tuple(s) for n, s in zip(reference.input_names, reference.example_shapes, strict=False)
    }
    report = ValidationReport(
        candidate=candidate_name,
        backend=candidate.label,
        reference=reference_name,
        precision=candidate.precision,
        seed=None if inputs is not None else seed,
        inputs_file=inputs_file,
        noise_factor=noise_factor if fp64 else None,
    )
    exact = _Float64Reference(reference, output_names, report.notes) if fp64 else None
    if inputs is not None:
        feeds = [dict(inputs)]
    else:
        if shape_sets:
            sets = [complete_shapes(candidate.inputs, s, example) for s in shape_sets]
        else:
            sets = candidate.profile_shape_sets() or sweep_shapes(candidate.inputs, example)
        pixels = PIXEL_RANGE if detector else None
        feeds = [generate_inputs(candidate.inputs, s, seed, value_range=pixels) for s in sets]
    for feed in feeds:
        got = candidate.run(feed)
        want = torch_backend.run(feed)
        floor = exact.run(feed) if exact is not None else None
        outputs = [
            compare_output(name, want[name], got[name], policy.for_output(name))
            for name in tensor_names
        ]
        floors = {
            name: noise_floor(name, floor[name], want[name], got[name], noise_factor)
            for name in tensor_names
            if floor is not None
        }
        detections = None
        if detector:
            assert detection_tolerance is not None
            detections = compare_detections(want, got, floor, detection_tolerance, score_threshold)
        shapes = {n: tuple(a.shape) for n, a in feed.items()}
        report.runs.append(RunResult(shapes, outputs, floors, detections))
    return report


PIXEL_RANGE = (0.0, 255.0)  # a detector's input: RGB pixel values


class _Float64Reference:
    """The checkpoint's model in float64; if it cannot run in float64 (a pickled model with
    float32-only code), validate goes on without the noise floor and says why."""

    def __init__(self, reference: ReferenceModel, output_names: list[str], notes: list[str]):
        self.notes = notes
        self.backend: TorchBackend | None = TorchBackend(
            float64_copy(reference.model),
            reference.input_names,
            output_names,
            label="torch-eager-fp64",
            dtype="float64",
        )

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray] | None:
        if self.backend is None:
            return None
        try:
            return self.backend.run(feed)
        except (RuntimeError, TypeError, ValueError) as exc:  # dtype mismatches inside the model
            self.backend = None
            self.notes.append(
                f"the PyTorch model does not run in float64 ({str(exc).splitlines()[0]}): "
                "no noise floor, the tolerances alone decide"
            )
            return None


def compare_detections(
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    exact: Mapping[str, np.ndarray] | None,
    tolerance: DetectionTolerance,
    score_threshold: float | None,
) -> DetectionComparison:
    """Deployed vs PyTorch fp32 detections; with `exact` (the fp64 run) also PyTorch fp32 vs
    fp64 and deployed vs fp64, the detector's noise floor."""

    def pair(outputs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return outputs["dets"], outputs["labels"]

    def match(want: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray]) -> MatchSummary:
        return match_outputs(pair(want), pair(got), tolerance, score_threshold)

    return DetectionComparison(
        tolerance=tolerance,
        score_threshold=score_threshold,
        deployed=match(reference, candidate),
        problems=format_problems(*pair(candidate)),
        reference_vs_fp64=match(exact, reference) if exact is not None else None,
        deployed_vs_fp64=match(exact, candidate) if exact is not None else None,
    )


def _model_score_threshold(model: torch.nn.Module) -> float | None:
    """The score threshold the detector applies, from its modules: an attribute `score_thr`,
    or one in `test_cfg` / `test_cfg.rcnn` (mmdetection's names; objects or dicts)."""

    def field(holder: object, name: str) -> object:
        return holder.get(name) if isinstance(holder, Mapping) else getattr(holder, name, None)

    values: list[object] = []
    for module in model.modules():
        test_cfg = field(module, "test_cfg")
        values += [
            field(module, "score_thr"),
            field(test_cfg, "score_thr"),
            field(field(test_cfg, "rcnn"), "score_thr"),
        ]
    return find_score_threshold(values)


def _check_names(
    input_names: Sequence[str], output_names: Sequence[str], candidate: Backend
) -> None:
    ref_in, cand_in = set(input_names), {s.name for s in candidate.inputs}
    missing_out = [n for n in output_names if n not in candidate.output_names]
    if ref_in != cand_in or missing_out:
        raise UserError(
            f"The model's inputs/outputs do not match the checkpoint's: model inputs "
            f"{sorted(cand_in)}, outputs {candidate.output_names}; checkpoint inputs "
            f"{sorted(ref_in)}, outputs {list(output_names)}.",
            "Export the ONNX from this checkpoint with dlu-export (it keeps the names), or pass "
            "the checkpoint the model was exported from.",
        )
