"""Strict weight loading with errors that name the keys and the shapes."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from dlu_deploy.checkpoints.errors import StateDictMismatchError


def _listed(items: list[str], limit: int = 5) -> str:
    return ", ".join(items[:limit]) + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def load_weights(
    model: nn.Module, state: Mapping[str, torch.Tensor], arch: str, hyper: Mapping[str, object]
) -> None:
    """Copy `state` into `model`; every key must exist on both sides with the same shape."""
    expected = model.state_dict()
    described = ", ".join(f"{k}={v}" for k, v in hyper.items()) or "defaults"
    missing = [k for k in expected if k not in state]
    if missing:
        raise StateDictMismatchError(
            f"The checkpoint lacks {len(missing)} weights that architecture '{arch}' "
            f"({described}) needs: {_listed(missing)}.",
            "Check that the file is complete, or choose the matching --arch and hyper-parameters.",
        )
    misshaped = [
        f"'{k}' is {tuple(state[k].shape)} in the checkpoint but {tuple(v.shape)} in the model"
        for k, v in expected.items()
        if tuple(state[k].shape) != tuple(v.shape)
    ]
    if misshaped:
        raise StateDictMismatchError(
            f"Weights disagree with architecture '{arch}' ({described}): {_listed(misshaped, 3)}.",
            "The weights are inconsistent with each other or with the overrides: check the "
            "overrides, and that the checkpoint was not modified and belongs to this "
            "architecture.",
        )
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        raise StateDictMismatchError(
            f"The checkpoint has {len(unexpected)} weights that architecture '{arch}' does not "
            f"use: {_listed(unexpected)}.",
            "Choose the matching --arch, or check the hyper-parameter overrides.",
        )
    model.load_state_dict(dict(state), strict=True)
