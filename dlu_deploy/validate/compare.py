"""Validation: the same inputs through the PyTorch model and the candidate, output by output."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from dlu_deploy.errors import UserError
from dlu_deploy.shapes import Shape, ShapeSet
from dlu_deploy.validate.backends import Backend, TorchBackend
from dlu_deploy.validate.inputs import complete_shapes, generate_inputs, sweep_shapes
from dlu_deploy.validate.metrics import compare_output
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
) -> ValidationReport:
    """Compare `candidate` with the PyTorch model on identical inputs.

    Inputs: `inputs` if given (one run), else seeded random arrays for each of `shape_sets`
    (missing inputs take the model's example shape), else for the engine's profile
    (min/opt/max) or, for ONNX, the sweep of `inputs.sweep_shapes`.
    """
    # A whole pickled model does not name its outputs: then the exported file's names apply.
    output_names = list(reference.output_names) or list(candidate.output_names)
    _check_names(reference.input_names, output_names, candidate)
    torch_backend = TorchBackend(reference.model, reference.input_names, output_names)
    policy = tolerances or make_policy(candidate.precision, output_names=candidate.output_names)
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
    )
    if inputs is not None:
        feeds = [dict(inputs)]
    else:
        if shape_sets:
            sets = [complete_shapes(candidate.inputs, s, example) for s in shape_sets]
        else:
            sets = candidate.profile_shape_sets() or sweep_shapes(candidate.inputs, example)
        feeds = [generate_inputs(candidate.inputs, s, seed) for s in sets]
    for feed in feeds:
        got = candidate.run(feed)
        want = torch_backend.run(feed)
        outputs = [
            compare_output(name, want[name], got[name], policy.for_output(name))
            for name in output_names
        ]
        report.runs.append(RunResult({n: tuple(a.shape) for n, a in feed.items()}, outputs))
    return report


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
