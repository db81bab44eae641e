"""A small segmentation head that upsamples with DySample (tiny-smart/dysample).

conv 3x3 + BN + ReLU -> DySample (x scale) -> 1x1 classifier. The DySample keys are the official
ones (`upsample.offset.{weight,bias}`, `upsample.scope.weight`, buffer `upsample.init_pos`), so
an official module's state_dict drops in under `upsample.`. DySample exports with the standard
ONNX GridSample in both export modes (docs/ops.md#dysample).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

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
