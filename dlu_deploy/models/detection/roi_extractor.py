"""mmdetection's SingleRoIExtractor with RoIAlign (aligned, sampling ratio 0) on P2..P5.

Each RoI goes to level floor(log2(sqrt(w * h) / finest_scale + 1e-6)), clamped to the levels.
Export-friendly form: every level's RoiAlign sees all RoIs, those of other levels replaced by
an empty box (which has no sample point, so costs nothing and gives zeros), and the levels'
outputs are combined by the level mask.
"""

from __future__ import annotations

import torch
from torch import nn

import dlu_deploy.ops.detection  # noqa: F401  (registers torch.ops.dlu_deploy.roi_align)


def map_roi_levels(rois: torch.Tensor, num_levels: int, finest_scale: int) -> torch.Tensor:
    """rois [R, 4] -> level index [R] (mmdetection SingleRoIExtractor.map_roi_levels)."""
    scale = torch.sqrt((rois[:, 2] - rois[:, 0]) * (rois[:, 3] - rois[:, 1]))
    levels = torch.floor(torch.log2(scale / finest_scale + 1e-6))
    return levels.clamp(min=0, max=num_levels - 1).long()


class SingleRoIExtractor(nn.Module):
    def __init__(
        self,
        featmap_strides: tuple[int, ...],
        output_size: int = 7,
        sampling_ratio: int = 0,
        aligned: bool = True,
        finest_scale: int = 56,
    ) -> None:
        super().__init__()
        self.featmap_strides = featmap_strides
        self.output_size = output_size
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned
        self.finest_scale = finest_scale

    def forward(
        self, features: tuple[torch.Tensor, ...], rois: torch.Tensor, batch_indices: torch.Tensor
    ) -> torch.Tensor:
        """rois [R, 4] in image pixels, batch_indices [R] -> [R, C, out, out]."""
        num_levels = len(self.featmap_strides)
        levels = map_roi_levels(rois, num_levels, self.finest_scale)
        out: torch.Tensor | None = None
        for level, stride in enumerate(self.featmap_strides):
            member = (levels == level)[:, None]
            level_rois = torch.where(member, rois, 0.0)
            pooled = torch.ops.dlu_deploy.roi_align(
                features[level],
                level_rois,
                batch_indices,
                self.output_size,
                self.output_size,
                self.sampling_ratio,
                1.0 / stride,
                self.aligned,
            )
            pooled = torch.where(member[:, :, None, None], pooled, 0.0)
            out = pooled if out is None else out + pooled
        assert out is not None
        return out
