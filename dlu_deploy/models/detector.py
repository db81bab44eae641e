"""Backbone + neck of a detector as one exportable network: image in, pyramid levels out."""

from __future__ import annotations

import torch
from torch import nn


class BackboneNeck(nn.Module):
    """`neck(backbone(image))`; parameters under `backbone.` and `neck.` as in mmdetection."""

    def __init__(self, backbone: nn.Module, neck: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.neck(self.backbone(image)))
