"""mmdetection's AnchorGenerator for the feature sizes seen at run time."""

from __future__ import annotations

import torch
from torch import nn

from .config import AnchorConfig


def base_anchors(stride: int, scales: tuple[float, ...], ratios: tuple[float, ...]) -> torch.Tensor:
    """gen_single_level_base_anchors with base_size = stride, center offset 0, scale-major."""
    ratios_t = torch.tensor(ratios, dtype=torch.float32)
    scales_t = torch.tensor(scales, dtype=torch.float32)
    h_ratios = torch.sqrt(ratios_t)
    w_ratios = 1 / h_ratios
    ws = (stride * w_ratios[:, None] * scales_t[None, :]).reshape(-1)
    hs = (stride * h_ratios[:, None] * scales_t[None, :]).reshape(-1)
    return torch.stack([-0.5 * ws, -0.5 * hs, 0.5 * ws, 0.5 * hs], dim=-1)


class AnchorGenerator(nn.Module):
    """Anchors of one level: [H * W * A, 4] ordered by row, column, then base anchor."""

    def __init__(self, config: AnchorConfig) -> None:
        super().__init__()
        self.strides = config.strides
        for level, stride in enumerate(config.strides):
            self.register_buffer(
                f"base_{level}",
                base_anchors(stride, config.scales, config.ratios),
                persistent=False,
            )

    def forward(self, level: int, feature: torch.Tensor) -> torch.Tensor:
        height, width = feature.shape[2], feature.shape[3]
        stride = self.strides[level]
        base: torch.Tensor = getattr(self, f"base_{level}")
        # Integer ranges (TensorRT takes Range on integers from shapes), then float shifts.
        shift_x = torch.arange(width, device=feature.device).to(base.dtype) * stride
        shift_y = torch.arange(height, device=feature.device).to(base.dtype) * stride
        xx = shift_x[None, :].expand(height, width).reshape(-1)
        yy = shift_y[:, None].expand(height, width).reshape(-1)
        shifts = torch.stack([xx, yy, xx, yy], dim=-1)
        return (shifts[:, None, :] + base[None, :, :]).reshape(-1, 4)
