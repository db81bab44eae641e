"""Checkpoints to models: safe loading, architecture detection, hyper-parameter inference.

    loaded = load_model("fpn_dlu.pth")                      # architecture inferred
    loaded = load_model("dlu.pth", arch="dlu", overrides={"encoder_dilation": 2})

Shared by the exporter (dlu-export) and the runner (dlu-deploy validate). Every failure
raises a `CheckpointError` (a `UserError`: problem + fix).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from dlu_deploy.checkpoints.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    CodeInCheckpointError,
    CorruptCheckpointError,
    HyperParameterError,
    StateDictMismatchError,
    UnknownArchitectureError,
    UnsafeCheckpointError,
)
from dlu_deploy.checkpoints.reading import Checkpoint, read_checkpoint
from dlu_deploy.checkpoints.registry import (
    Architecture,
    Built,
    Param,
    all_params,
    architectures,
    check_overrides,
    detect,
    get,
    register,
)
from dlu_deploy.checkpoints.swap import (
    official_arch,
    official_attributes,
    replace_official,
    swap_official_modules,
)
from dlu_deploy.checkpoints.weights import load_weights

PICKLED_MODULE_ARCH = "pickled_module"
PICKLED_EXAMPLE_SIZE = 64


@dataclass
class LoadedModel:
    model: torch.nn.Module  # eval mode, float32, CPU
    arch: str  # registry name, e.g. "dlu", "faster_rcnn_r50_unified_fpn"
    input_names: list[str]
    output_names: list[str]
    example_shapes: list[tuple[int, ...]]  # default NCHW shape per input
    inferred: dict[str, object]  # hyper-parameters inferred from the checkpoint
    given: dict[str, object]  # hyper-parameters the user overrode
    assumed: dict[str, object] = field(
        default_factory=dict
    )  # defaults for what weights cannot show
    notes: list[str] = field(default_factory=list)  # how the checkpoint was read, choices made
    source: Path | None = None
    metadata: dict[str, str] = field(default_factory=dict)  # extra ONNX metadata (class names)


def load_model(
    path: str | os.PathLike[str],
    *,
    arch: str | None = None,
    overrides: Mapping[str, object] | None = None,
    trust_pickle: bool = False,
) -> LoadedModel:
    """Read a checkpoint and build the model it holds (see the module docstring)."""
    overrides = dict(overrides or {})
    checkpoint = read_checkpoint(path, trust_pickle=trust_pickle)
    if arch is not None:
        chosen = get(arch)
    elif checkpoint.module is None:
        chosen = detect(checkpoint)
    else:
        detected = _detect_or_none(checkpoint)
        if detected is None:
            return _pickled_model(checkpoint, overrides)
        chosen = detected
        if type(checkpoint.module).__name__ in chosen.official_classes:
            # A pickled official module also knows what its weights cannot show.
            attributes = official_attributes(checkpoint.module, chosen)
            overrides = {**attributes, **overrides}
            checkpoint.notes.append(f"read from the pickled module's attributes: {attributes}")
    check_overrides(chosen, overrides)
    built = chosen.build(checkpoint, overrides)
    load_weights(
        built.model,
        built.state_dict,
        chosen.name,
        {**built.inferred, **built.assumed, **built.given},
    )
    return LoadedModel(
        model=built.model.float().eval(),
        arch=chosen.name,
        input_names=built.input_names,
        output_names=built.output_names,
        example_shapes=built.example_shapes,
        inferred=built.inferred,
        given=built.given,
        assumed=built.assumed,
        notes=checkpoint.notes + built.notes,
        source=checkpoint.path,
        metadata=built.metadata,
    )


def _detect_or_none(checkpoint: Checkpoint) -> Architecture | None:
    matches = [a for a in architectures().values() if a.detect(checkpoint)]
    return detect(checkpoint) if matches else None


def _pickled_model(checkpoint: Checkpoint, overrides: Mapping[str, object]) -> LoadedModel:
    """A whole pickled model that no architecture matches: exported as it is, upsamplers swapped."""
    if overrides:
        raise HyperParameterError(
            f"Hyper-parameter overrides ({', '.join(overrides)}) do not apply to a whole pickled "
            "model.",
            "Drop them; the pickled modules carry their own settings.",
        )
    assert checkpoint.module is not None
    model, swaps = swap_official_modules(checkpoint.module, checkpoint.path)
    first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    notes = [*checkpoint.notes, *(f"swapped {s}" for s in swaps)]
    assumed: dict[str, object] = {}
    shapes: list[tuple[int, ...]] = []
    if first_conv is not None:
        shapes = [(1, first_conv.in_channels, PICKLED_EXAMPLE_SIZE, PICKLED_EXAMPLE_SIZE)]
        assumed["input_shape"] = shapes[0]
        notes.append(
            "the input shape is guessed from the first conv; pass --input-shape if it is wrong"
        )
    return LoadedModel(
        model=model.float().eval(),
        arch=PICKLED_MODULE_ARCH,
        input_names=["input"],
        output_names=[],
        example_shapes=shapes,
        inferred={},
        given={},
        assumed=assumed,
        notes=notes,
        source=checkpoint.path,
    )


__all__ = [
    "PICKLED_MODULE_ARCH",
    "Architecture",
    "Built",
    "Checkpoint",
    "CheckpointError",
    "CheckpointNotFoundError",
    "CodeInCheckpointError",
    "CorruptCheckpointError",
    "HyperParameterError",
    "LoadedModel",
    "Param",
    "StateDictMismatchError",
    "UnknownArchitectureError",
    "UnsafeCheckpointError",
    "all_params",
    "architectures",
    "check_overrides",
    "detect",
    "get",
    "load_model",
    "load_weights",
    "official_arch",
    "official_attributes",
    "read_checkpoint",
    "register",
    "replace_official",
    "swap_official_modules",
]
