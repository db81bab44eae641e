"""Swap official upsampler modules inside a pickled model for the exportable references.

A submodule is recognised by its class name (an architecture's `official_classes`) and its
parameter layout (that architecture's detector); its hyper-parameters come from its own
attributes where the official class stores them, else from its weights.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from dlu_deploy import reference
from dlu_deploy.checkpoints.errors import StateDictMismatchError
from dlu_deploy.checkpoints.reading import Checkpoint, OfficialModuleState
from dlu_deploy.checkpoints.registry import Architecture, architectures
from dlu_deploy.checkpoints.weights import load_weights

REFERENCE_CLASSES = (
    reference.DLUPack,
    reference.CARAFEPack,
    reference.DySample,
    reference.DDFPack,
    reference.DDFUpPack,
)


def official_arch(module: nn.Module) -> Architecture | None:
    """The architecture that replaces this module, if it is a recognised official upsampler."""
    if isinstance(module, REFERENCE_CLASSES):
        return None  # already the exportable reference
    name = type(module).__name__
    for arch in architectures().values():
        if name in arch.official_classes:
            return arch
    return None


def official_attributes(module: nn.Module, arch: Architecture) -> dict[str, object]:
    """The architecture's parameters that the official module stores as attributes."""
    return {
        p.name: getattr(module, p.attribute)
        for p in arch.params
        if p.attribute is not None and isinstance(getattr(module, p.attribute, None), (int, str))
    }


def replace_official(module: nn.Module, arch: Architecture, path: Path, where: str) -> nn.Module:
    """The reference module equivalent to an official one, with its weights loaded."""
    checkpoint = Checkpoint(path, dict(module.state_dict()))
    if not arch.detect(checkpoint):
        raise StateDictMismatchError(
            f"'{where}' is a {type(module).__name__} whose parameters "
            f"({', '.join(list(checkpoint.state_dict)[:4])}) do not have the layout of "
            f"architecture '{arch.name}'.",
            "Export a state_dict of the model instead, or report the class so that it can be "
            "supported.",
        )
    overrides = official_attributes(module, arch)
    built = arch.build(checkpoint, overrides)
    load_weights(built.model, built.state_dict, arch.name, {**built.inferred, **built.given})
    return built.model


def swap_official_modules(model: nn.Module, path: Path) -> tuple[nn.Module, list[str]]:
    """(model with every recognised official upsampler replaced, descriptions of the swaps)."""
    swaps: list[str] = []

    def visit(module: nn.Module, where: str) -> nn.Module:
        arch = official_arch(module)
        if arch is not None:
            swaps.append(f"{where or 'the model'}: {type(module).__name__} -> {arch.name}")
            return replace_official(module, arch, path, where or "the model")
        if isinstance(module, OfficialModuleState):
            raise StateDictMismatchError(
                f"'{where}' is an official {module.official_name} that this tool cannot rebuild.",
                "Install the package that defines it, or export a state_dict of the model.",
            )
        for name, child in list(module.named_children()):
            replacement = visit(child, f"{where}.{name}" if where else name)
            if replacement is not child:
                setattr(module, name, replacement)
        return module

    return visit(model, ""), swaps
