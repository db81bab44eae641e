"""mmdetection's DeltaXYWHBBoxCoder.decode (delta2bbox), batched and clipped to the image."""

from __future__ import annotations

import math

import torch

from .config import CoderConfig


def clip_boxes(boxes: torch.Tensor, image_size: torch.Tensor) -> torch.Tensor:
    """Clamp x to [0, W] and y to [0, H]; `image_size` is the tensor [W, H, W, H]."""
    return torch.minimum(boxes.clamp(min=0), image_size.to(boxes.dtype))


def delta2bbox(
    rois: torch.Tensor, deltas: torch.Tensor, config: CoderConfig, image_size: torch.Tensor
) -> torch.Tensor:
    """rois [..., 4] (x1, y1, x2, y2) and deltas [..., 4] -> boxes [..., 4], clipped.

    Same arithmetic, in the same order, as mmdetection 3.3 delta2bbox (add_ctr_clamp=False).
    """
    means = deltas.new_tensor(config.means)
    stds = deltas.new_tensor(config.stds)
    denorm = deltas * stds + means
    dxy = denorm[..., :2]
    dwh = denorm[..., 2:]
    pxy = (rois[..., :2] + rois[..., 2:]) * 0.5
    pwh = rois[..., 2:] - rois[..., :2]
    dxy_wh = pwh * dxy
    max_ratio = abs(math.log(config.wh_ratio_clip))
    dwh = dwh.clamp(min=-max_ratio, max=max_ratio)
    gxy = pxy + dxy_wh
    gwh = pwh * dwh.exp()
    x1y1 = gxy - gwh * 0.5
    x2y2 = gxy + gwh * 0.5
    return clip_boxes(torch.cat([x1y1, x2y2], dim=-1), image_size)
