"""A small segmentation head that upsamples with DySample (tiny-smart/dysample).

conv 3x3 + BN + ReLU -> DySample (x scale) -> 1x1 classifier. The DySample keys are the official
ones (`upsample.offset.{weight,bias}`, `upsample.scope.weight`, buffer `upsample.init_pos`), so
an official module's state_dict drops in under `upsample.`. DySample exports with the standard
ONNX GridSample in both export modes (docs/ops.md#dysample).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from dlu_deploy.errors import UserError
from dlu_deploy.reference import DySample


@dataclass(frozen=True)
class DySampleSegConfig:
    in_channels: int = 64
    channels: int = 64
    num_classes: int = 19
    scale: int = 2
    style: str = "lp"
    groups: int = 4
    dyscope: bool = False

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor]) -> DySampleSegConfig:
        """Every field from the tensors: init_pos gives the scale (its first entry is
        -(s-1)/(2s)) and the groups; the offset conv's input width tells 'lp' from 'pl'."""
        try:
            conv = state_dict["conv.0.weight"]
            offset = state_dict["upsample.offset.weight"]
            init_pos = state_dict["upsample.init_pos"]
            classifier = state_dict["conv_seg.weight"]
        except KeyError as missing:
            raise UserError(
                f"DySample seg head: the state_dict has no {missing} entry.",
                "Pass a DySampleSegHead checkpoint (keys conv.*, upsample.*, conv_seg.*).",
            ) from None
        channels = conv.shape[0]
        found = _scale_groups_style(init_pos, offset, channels)
        if found is None:
            raise UserError(
                f"DySample seg head: offset conv {tuple(offset.shape)} and init_pos "
                f"{tuple(init_pos.shape)} fit no (scale, groups, style).",
                "Check that the checkpoint is a DySample head saved unmodified.",
            )
        scale, groups, style = found
        return cls(
            in_channels=conv.shape[1],
            channels=channels,
            num_classes=classifier.shape[0],
            scale=scale,
            style=style,
            groups=groups,
            dyscope="upsample.scope.weight" in state_dict,
        )


def _scale_groups_style(
    init_pos: torch.Tensor, offset: torch.Tensor, channels: int
) -> tuple[int, int, str] | None:
    """init_pos's first entry is -(s-1)/(2s), its length 2*G*s*s. 'lp': the offset conv sees C
    channels and emits 2*G*s*s; 'pl': it sees the pixel-shuffled map (C/s^2) and emits 2*G."""
    first = float(init_pos.flatten()[0])
    if not -0.5 < first <= 0.0:
        return None
    scale = round(1.0 / (1.0 + 2.0 * first))
    groups = init_pos.shape[1] // (2 * scale * scale)
    if groups < 1:
        return None
    if offset.shape[1] == channels and offset.shape[0] == 2 * groups * scale * scale:
        return scale, groups, "lp"
    if offset.shape[1] * scale * scale == channels and offset.shape[0] == 2 * groups:
        return scale, groups, "pl"
    return None


class DySampleSegHead(nn.Module):
    """Features (N, in_channels, H, W) -> logits (N, num_classes, scale*H, scale*W)."""

    def __init__(self, config: DySampleSegConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or DySampleSegConfig()
        self.conv = nn.Sequential(
            nn.Conv2d(c.in_channels, c.channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(c.channels),
            nn.ReLU(inplace=True),
        )
        self.upsample = DySample(c.channels, c.scale, c.style, c.groups, c.dyscope)
        self.conv_seg = nn.Conv2d(c.channels, c.num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_seg(self.upsample(self.conv(x)))
