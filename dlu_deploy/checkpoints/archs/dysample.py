"""DySample (tiny-smart/dysample) state_dicts: `offset.*`, optional `scope.weight`, `init_pos`.

`init_pos` (a persistent buffer, so normally saved) gives the scale from its values and the
groups from its length; the offset conv's widths then tell 'lp' from 'pl'.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from dlu_deploy.checkpoints.errors import StateDictMismatchError
from dlu_deploy.checkpoints.hyper import SCALES, HyperParameters, weight_shape
from dlu_deploy.checkpoints.reading import Checkpoint, StateDict
from dlu_deploy.checkpoints.registry import Architecture, Built, Param, register
from dlu_deploy.reference import DySample

EXAMPLE_SIZE = 64
NAMES = ("style", "scale", "groups")


def _scale_from_init_pos(init_pos: torch.Tensor) -> int:
    """init_pos[comp 0] holds (dx - (s-1)/2)/s, whose minimum -(s-1)/(2s) gives s."""
    low = float(init_pos.min())
    for scale in SCALES:
        if abs(-(scale - 1) / (2 * scale) - low) < 1e-6:
            return scale
    raise StateDictMismatchError(
        f"'init_pos' holds values (min {low:.4g}) that no DySample scale produces.",
        "Check that the checkpoint is a DySample state_dict; pass --scale to rebuild init_pos if "
        "it was modified.",
    )


def _candidates(conv_in: int, conv_out: int, init_pos: torch.Tensor | None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    scales = SCALES
    total = None
    if init_pos is not None:
        scales = (_scale_from_init_pos(init_pos),)
        total = init_pos.numel()
    for scale in sorted(scales, key=lambda s: (s != 2, s)):
        # 'lp': the conv sees the low-res map and emits all 2*G*s^2 offsets.
        if conv_out % (2 * scale * scale) == 0 and total in (None, conv_out):
            found.append(
                {
                    "style": "lp",
                    "scale": scale,
                    "groups": conv_out // (2 * scale * scale),
                    "channels": conv_in,
                }
            )
        # 'pl': the conv sees the pixel-shuffled map (C/s^2 channels) and emits 2*G offsets.
        if scale > 1 and conv_out % 2 == 0 and total in (None, conv_out * scale * scale):
            found.append(
                {
                    "style": "pl",
                    "scale": scale,
                    "groups": conv_out // 2,
                    "channels": conv_in * scale * scale,
                }
            )
    return found


class DySampleArchitecture(Architecture):
    name = "dysample"
    summary = "DySample state_dict (offset, init_pos, optional scope)"
    params = (
        Param("scale", int, "upsampling factor", attribute="scale"),
        Param("groups", int, "offset groups", attribute="groups"),
        Param("style", str, "'lp' or 'pl'", choices=("lp", "pl"), attribute="style"),
    )
    official_classes = ("DySample",)

    def detect(self, checkpoint: Checkpoint) -> bool:
        keys = set(checkpoint.state_dict)
        return {"offset.weight", "offset.bias"} <= keys and keys <= {
            "offset.weight",
            "offset.bias",
            "scope.weight",
            "init_pos",
        }

    def build(self, checkpoint: Checkpoint, overrides: Mapping[str, object]) -> Built:
        hp = HyperParameters(overrides)
        state: StateDict = dict(checkpoint.state_dict)
        conv_out, conv_in, _, _ = weight_shape(state, "offset.weight", 4, "1x1 offset conv")
        dyscope = hp.infer("dyscope", "scope.weight" in state)
        init_pos = state.get("init_pos")
        chosen = hp.choose(
            NAMES,
            _candidates(conv_in, conv_out, init_pos),
            f"the offset conv ({conv_in} -> {conv_out} channels)"
            + (f" and init_pos ({init_pos.numel()} values)" if init_pos is not None else ""),
        )
        channels = hp.infer("in_channels", chosen["channels"])
        model = DySample(channels, chosen["scale"], chosen["style"], chosen["groups"], dyscope)
        if init_pos is None:
            state["init_pos"] = model.state_dict()["init_pos"].clone()
            hp.notes.append("init_pos is not in the checkpoint; rebuilt from scale and groups")
        return Built(
            model=model,
            state_dict=state,
            input_names=["features"],
            output_names=["upsampled"],
            example_shapes=[(1, channels, EXAMPLE_SIZE, EXAMPLE_SIZE)],
            inferred=hp.inferred,
            assumed=hp.assumed,
            given=hp.given,
            notes=hp.notes,
        )


register(DySampleArchitecture())
