"""The architecture registry: how a checkpoint becomes a model.

An architecture is one `Architecture` subclass in one module, registered with `register()`:

- `detect(checkpoint)`: does the checkpoint look like this architecture (key names)?
- `build(checkpoint, overrides)`: infer the hyper-parameters from weight shapes (overrides
  win), construct the model, and return it with the state_dict to load into it (keys exactly
  the model's); the loader then loads it strictly and reports missing / mis-shaped keys.
- `params`: the hyper-parameters a user may override (`--scale`, `--encoder-dilation`, ...).

Built-in architectures live in `dlu_deploy.checkpoints.archs` (listed in BUILTIN_ARCH_MODULES);
other packages can add theirs through the `dlu_deploy.architectures` entry-point group.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, ClassVar

from torch import nn

from dlu_deploy.checkpoints.errors import HyperParameterError, UnknownArchitectureError
from dlu_deploy.checkpoints.reading import Checkpoint, StateDict

# Modules defining the built-in architectures; each calls register() at import.
BUILTIN_ARCH_MODULES = (
    "dlu_deploy.checkpoints.archs.upsamplers",
    "dlu_deploy.checkpoints.archs.dysample",
    "dlu_deploy.checkpoints.archs.ddf",
    "dlu_deploy.checkpoints.archs.faster_rcnn",
    "dlu_deploy.checkpoints.archs.dynamic_routing",
    "dlu_deploy.checkpoints.archs.dysample_seg",
    "dlu_deploy.checkpoints.archs.ddf_bottleneck",
)
ENTRY_POINT_GROUP = "dlu_deploy.architectures"


@dataclass(frozen=True)
class Param:
    """A hyper-parameter users may override; `attribute` names it on the official module."""

    name: str
    type: type
    help: str
    choices: tuple[Any, ...] | None = None
    attribute: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass
class Built:
    """An architecture's answer: the (unloaded) model, its weights and its interface."""

    model: nn.Module
    state_dict: StateDict
    input_names: list[str]
    output_names: list[str]
    example_shapes: list[tuple[int, ...]]
    inferred: dict[str, object] = field(default_factory=dict)
    assumed: dict[str, object] = field(default_factory=dict)
    given: dict[str, object] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)  # extra ONNX metadata_props


class Architecture(ABC):
    """One model family that checkpoints can be loaded as."""

    name: ClassVar[str]
    summary: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()
    # Class names of official modules this architecture replaces inside a pickled model.
    official_classes: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def detect(self, checkpoint: Checkpoint) -> bool:
        """True when the checkpoint's keys are this architecture's."""

    @abstractmethod
    def build(self, checkpoint: Checkpoint, overrides: Mapping[str, object]) -> Built:
        """Infer hyper-parameters (overrides win), construct the model, select its weights."""


_REGISTRY: dict[str, Architecture] = {}
_loaded = False


def register(arch: Architecture) -> Architecture:
    """Add an architecture; its parameter names must agree in type with those already known."""
    if arch.name in _REGISTRY:
        raise ValueError(f"architecture {arch.name!r} is registered twice")
    known = {p.name: p for a in _REGISTRY.values() for p in a.params}
    for param in arch.params:
        other = known.get(param.name)
        if other is not None and other.type is not param.type:
            raise ValueError(
                f"parameter {param.name!r} of {arch.name!r} is {param.type}, elsewhere {other.type}"
            )
    _REGISTRY[arch.name] = arch
    return arch


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_ARCH_MODULES:
        importlib.import_module(module)
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        entry.load()


def architectures() -> dict[str, Architecture]:
    """Every registered architecture by name (built-ins and entry points)."""
    _load_all()
    return dict(_REGISTRY)


def all_params() -> list[Param]:
    """The union of every architecture's parameters (one entry per name)."""
    seen: dict[str, Param] = {}
    for arch in architectures().values():
        for param in arch.params:
            seen.setdefault(param.name, param)
    return list(seen.values())


def get(name: str) -> Architecture:
    archs = architectures()
    if name not in archs:
        raise UnknownArchitectureError(
            f"Architecture '{name}' is not known.", f"Use one of: {', '.join(sorted(archs))}."
        )
    return archs[name]


def detect(checkpoint: Checkpoint) -> Architecture:
    """The one architecture whose detector accepts the checkpoint."""
    archs = architectures()
    matches = [arch for arch in archs.values() if arch.detect(checkpoint)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(a.name for a in matches)
        raise UnknownArchitectureError(
            f"Checkpoint '{checkpoint.path}' matches several architectures ({names}).",
            f"Choose one with --arch ({names}).",
        )
    keys = sorted(checkpoint.state_dict)
    shown = ", ".join(keys[:6]) + (", ..." if len(keys) > 6 else "")
    listing = "; ".join(f"{a.name} ({a.summary})" for a in archs.values())
    raise UnknownArchitectureError(
        f"Checkpoint '{checkpoint.path}' ({len(keys)} tensors: {shown}) matches no known "
        "architecture.",
        f"Known architectures: {listing}. If the weights are one of these under other names, pass "
        "--arch NAME to see which keys are missing; a new model family needs an architecture "
        "module (docs/export.md, 'Adding an architecture').",
    )


def check_overrides(arch: Architecture, overrides: Mapping[str, object]) -> None:
    """Reject overrides the architecture does not take, or values outside their choices."""
    accepted = {p.name: p for p in arch.params}
    for name, value in overrides.items():
        param = accepted.get(name)
        if param is None:
            flags = ", ".join(p.flag for p in arch.params) or "none"
            raise HyperParameterError(
                f"--{name.replace('_', '-')} does not apply to architecture '{arch.name}'.",
                f"Its hyper-parameters are: {flags}.",
            )
        if param.choices is not None and value not in param.choices:
            raise HyperParameterError(
                f"{param.flag} {value!r} is not allowed for '{arch.name}'.",
                f"Use one of: {', '.join(map(str, param.choices))}.",
            )


def prefixed(state: StateDict, prefix: str) -> StateDict:
    """The entries under `prefix` with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def has_keys(state: Mapping[str, Any], keys: Sequence[str]) -> bool:
    return all(k in state for k in keys)
