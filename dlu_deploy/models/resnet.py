"""ResNet-50 with the torchvision / mmdetection parameter names, returning C2..C5.

mmdetection's `ResNet(depth=50, style='pytorch')`: the stride of a downsampling bottleneck is
on its 3x3 conv, and `norm_eval=True` keeps BatchNorm in inference mode. State_dict keys are
`conv1`, `bn1`, `layer{1..4}.{i}.conv{1,2,3}`, `.bn{1,2,3}`, `.downsample.{0,1}`, so
torchvision and mmdetection checkpoints (under `backbone.`) load unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

# (blocks, width) of each stage of ResNet-50; a stage's output has 4 * width channels.
RESNET50_STAGES = ((3, 64), (4, 128), (6, 256), (3, 512))
EXPANSION = 4


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (carries the stride, 'pytorch' style) -> 1x1 expand, plus identity."""

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = width * EXPANSION
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50(nn.Module):
    """Image [N, 3, H, W] -> (C2, C3, C4, C5) at strides 4, 8, 16, 32 with 256..2048 channels."""

    out_channels = tuple(width * EXPANSION for _, width in RESNET50_STAGES)

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels = 64
        for index, (blocks, width) in enumerate(RESNET50_STAGES):
            stride = 1 if index == 0 else 2
            layers = [Bottleneck(in_channels, width, stride)]
            in_channels = width * EXPANSION
            layers += [Bottleneck(in_channels, width) for _ in range(blocks - 1)]
            self.add_module(f"layer{index + 1}", nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        features = []
        for index in range(len(RESNET50_STAGES)):
            x = getattr(self, f"layer{index + 1}")(x)
            features.append(x)
        return tuple(features)
