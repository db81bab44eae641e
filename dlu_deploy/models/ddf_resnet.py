"""ddfnet's DDF ResNet bottleneck (theFoxofSky/ddfnet, ddf_resnet.py): timm's Bottleneck whose 3x3
conv2 is a DDFPack (`DDFMulBottleneck` / `DDFAddBottleneck`).

Keys are timm's: `conv1`, `bn1`, `conv2.spatial_branch.0`, `conv2.channel_branch.{1,3}`,
`conv2.channel_branch.4.std`, `bn2`, `conv3`, `bn3`, and `downsample.{0,1}` (1x1 strided conv + BN)
where the block changes width or resolution. The stride and the kernel combination ('mul' or
'add') do not show in a state_dict; the ddfnet models use stride 2 in the first block of
stages 2-4 and one combination for the whole network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dlu_deploy.errors import UserError
from dlu_deploy.reference import DDFPack

EXPANSION = 4


@dataclass(frozen=True)
class DDFBottleneckConfig:
    inplanes: int = 256
    planes: int = 64
    stride: int = 1
    kernel_combine: str = "mul"
    se_ratio: float = 0.2

    @property
    def width(self) -> int:
        return self.planes  # base_width 64, cardinality 1 (the ddfnet ResNets)

    @property
    def outplanes(self) -> int:
        return self.planes * EXPANSION


class DDFBottleneck(nn.Module):
    """1x1 -> BN -> ReLU -> DDFPack 3x3 (stride) -> BN -> ReLU -> 1x1 -> BN, + shortcut, ReLU."""

    def __init__(self, config: DDFBottleneckConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or DDFBottleneckConfig()
        if c.kernel_combine not in ("mul", "add"):
            raise UserError(
                f"DDF bottleneck: kernel_combine={c.kernel_combine!r} is not known.",
                "Use 'mul' (DDFMulBottleneck) or 'add' (DDFAddBottleneck).",
            )
        self.conv1 = nn.Conv2d(c.inplanes, c.width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c.width)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = DDFPack(
            c.width, 3, c.stride, dilation=1, se_ratio=c.se_ratio, kernel_combine=c.kernel_combine
        )
        self.bn2 = nn.BatchNorm2d(c.width)
        self.act2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(c.width, c.outplanes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c.outplanes)
        self.downsample: nn.Module | None = None
        if c.stride != 1 or c.inplanes != c.outplanes:
            self.downsample = nn.Sequential(
                nn.Conv2d(c.inplanes, c.outplanes, 1, stride=c.stride, bias=False),
                nn.BatchNorm2d(c.outplanes),
            )
        self.act3 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.act1(self.bn1(self.conv1(x)))
        y = self.act2(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.act3(y + shortcut)
