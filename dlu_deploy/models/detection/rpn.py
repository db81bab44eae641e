"""mmdetection's RPNHead in test mode: objectness and deltas per level, proposals out.

RPNHead.predict_by_feat for every image of the batch at once, with fixed sizes: per level the
top `nms_pre` sigmoid scores (fewer anchors: the rest is padding), decoding, removal of boxes
not larger than `min_bbox_size`, NMS with the level as the group (mmdetection's batched_nms
with level ids), then the best `max_per_img` over all levels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .anchors import AnchorGenerator
from .box_coder import delta2bbox
from .config import AnchorConfig, CoderConfig, RPNTestConfig
from .nms import INVALID, batched_nms_boxes, gather_rows, nms_keep, top_k


class RPNHead(nn.Module):
    """`rpn_conv` (3x3 + ReLU), `rpn_cls` (A sigmoid logits), `rpn_reg` (4A deltas)."""

    def __init__(
        self,
        in_channels: int,
        feat_channels: int,
        anchors: AnchorConfig,
        coder: CoderConfig,
        test_cfg: RPNTestConfig,
    ) -> None:
        super().__init__()
        num_anchors = anchors.num_base_anchors
        self.rpn_conv = nn.Conv2d(in_channels, feat_channels, 3, padding=1)
        self.rpn_cls = nn.Conv2d(feat_channels, num_anchors, 1)
        self.rpn_reg = nn.Conv2d(feat_channels, num_anchors * 4, 1)
        self.prior_generator = AnchorGenerator(anchors)
        self.coder = coder
        self.test_cfg = test_cfg

    def level_candidates(
        self, level: int, feature: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Top nms_pre of one level: (scores [N, P], deltas [N, P, 4], anchors [N, P, 4])."""
        n = feature.shape[0]
        hidden = F.relu(self.rpn_conv(feature))
        scores = self.rpn_cls(hidden).permute(0, 2, 3, 1).reshape(n, -1).sigmoid()
        deltas = self.rpn_reg(hidden).permute(0, 2, 3, 1).reshape(n, -1, 4)
        anchors = self.prior_generator(level, feature)
        pre = self.test_cfg.nms_pre
        top_scores, indices, _ = top_k(scores, pre)
        top_deltas = gather_rows(deltas, indices)
        top_anchors = anchors[indices]
        return top_scores, top_deltas, top_anchors

    def forward(
        self, features: tuple[torch.Tensor, ...], image_size: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """features P2.. -> (proposals [N, R, 4], valid [N, R]), R = min(max_per_img, L*nms_pre)."""
        cfg = self.test_cfg
        levels = [self.level_candidates(i, f) for i, f in enumerate(features)]
        scores = torch.stack([s for s, _, _ in levels], dim=1)  # [N, L, P]
        deltas = torch.stack([d for _, d, _ in levels], dim=1)
        anchors = torch.stack([a for _, _, a in levels], dim=1)
        boxes = delta2bbox(anchors, deltas, self.coder, image_size)  # [N, L, P, 4]
        wh = boxes[..., 2:] - boxes[..., :2]
        valid = (scores >= 0) & (wh[..., 0] > cfg.min_bbox_size) & (wh[..., 1] > cfg.min_bbox_size)
        scores = torch.where(valid, scores, INVALID)
        n, num_levels, pre = scores.shape
        keep = nms_keep(
            batched_nms_boxes(boxes, valid).reshape(n * num_levels, pre, 4),
            scores.reshape(n * num_levels, pre),
            cfg.iou_threshold,
            cfg.max_per_img,
        ).reshape(n, num_levels * pre)
        flat_scores = torch.where(keep, scores.reshape(n, -1), INVALID)
        count = min(cfg.max_per_img, num_levels * pre)
        _, indices, proposal_valid = top_k(flat_scores, count)
        proposals = gather_rows(boxes.reshape(n, num_levels * pre, 4), indices)
        return proposals, proposal_valid
