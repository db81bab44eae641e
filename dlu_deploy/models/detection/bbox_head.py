"""mmdetection's Shared2FCBBoxHead and StandardRoIHead in test mode: proposals in, detections out.

`shared_fcs.0/1` (+ ReLU), `fc_cls` (num_classes + 1, background last, softmax) and `fc_reg`
(4 per class, or 4 with class-agnostic regression). Post-processing is multiclass_nms: class
scores > score_thr, NMS per class, the best max_per_img, boxes decoded with stds 0.1/0.2 and
clipped to the image.
"""

from __future__ import annotations

import torch
from torch import nn

from .box_coder import delta2bbox
from .config import CoderConfig, RCNNTestConfig
from .nms import INVALID, batched_nms_boxes, gather_rows, nms_keep, top_k
from .roi_extractor import SingleRoIExtractor


class Shared2FCBBoxHead(nn.Module):
    def __init__(
        self,
        in_channels: int,
        roi_size: int,
        fc_channels: int,
        num_classes: int,
        reg_class_agnostic: bool,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.reg_class_agnostic = reg_class_agnostic
        self.shared_fcs = nn.ModuleList(
            [
                nn.Linear(in_channels * roi_size * roi_size, fc_channels),
                nn.Linear(fc_channels, fc_channels),
            ]
        )
        self.relu = nn.ReLU(inplace=True)
        self.fc_cls = nn.Linear(fc_channels, num_classes + 1)
        self.fc_reg = nn.Linear(fc_channels, 4 * (1 if reg_class_agnostic else num_classes))

    def forward(self, roi_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = roi_features.flatten(1)
        for fc in self.shared_fcs:
            x = self.relu(fc(x))
        return self.fc_cls(x), self.fc_reg(x)


class StandardRoIHead(nn.Module):
    """`bbox_roi_extractor` (no weights) + `bbox_head`, and the test-mode post-processing."""

    def __init__(
        self,
        bbox_roi_extractor: SingleRoIExtractor,
        bbox_head: Shared2FCBBoxHead,
        coder: CoderConfig,
        test_cfg: RCNNTestConfig,
    ) -> None:
        super().__init__()
        self.bbox_roi_extractor = bbox_roi_extractor
        self.bbox_head = bbox_head
        self.coder = coder
        self.test_cfg = test_cfg

    def forward(
        self,
        features: tuple[torch.Tensor, ...],
        proposals: torch.Tensor,
        proposal_valid: torch.Tensor,
        image_size: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """proposals [N, R, 4] -> (dets [N, K, 5], labels [N, K]); empty rows 0 and -1."""
        n, r = proposals.shape[0], proposals.shape[1]
        batch_indices = torch.arange(n, device=proposals.device)[:, None].expand(n, r).reshape(-1)
        rois = proposals.reshape(-1, 4)
        roi_features = self.bbox_roi_extractor(features, rois, batch_indices)
        cls_score, bbox_pred = self.bbox_head(roi_features)
        num_classes = self.bbox_head.num_classes
        scores = cls_score.softmax(dim=-1)[:, :num_classes].reshape(n, r, num_classes)
        deltas = bbox_pred.reshape(n, r, -1, 4)
        boxes = delta2bbox(proposals[:, :, None, :], deltas, self.coder, image_size)
        boxes = boxes.expand(n, r, num_classes, 4)  # class-agnostic: one box for every class
        return self.multiclass_nms(boxes, scores, proposal_valid)

    def multiclass_nms(
        self, boxes: torch.Tensor, scores: torch.Tensor, proposal_valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """boxes [N, R, C, 4], scores [N, R, C] -> the best max_per_img after per-class NMS."""
        cfg = self.test_cfg
        n, r, num_classes = scores.shape
        valid = (scores > cfg.score_thr) & proposal_valid[:, :, None]
        # Class-major [N, C, R]: each class is one NMS group, and index // R is the label.
        class_scores = torch.where(valid, scores, INVALID).permute(0, 2, 1)
        class_boxes = boxes.permute(0, 2, 1, 3)
        nms_boxes = batched_nms_boxes(class_boxes, valid.permute(0, 2, 1))
        keep = nms_keep(
            nms_boxes.reshape(n * num_classes, r, 4),
            class_scores.reshape(n * num_classes, r),
            cfg.iou_threshold,
            cfg.max_per_img,
        ).reshape(n, num_classes * r)
        flat_scores = torch.where(keep, class_scores.reshape(n, -1), INVALID)
        values, indices, found = top_k(flat_scores, cfg.max_per_img)
        det_boxes = gather_rows(class_boxes.reshape(n, num_classes * r, 4), indices)
        dets = torch.cat([det_boxes, values[:, :, None]], dim=-1)
        dets = torch.where(found[:, :, None], dets, 0.0)
        labels = torch.where(found, torch.div(indices, r, rounding_mode="floor"), -1)
        return dets, labels
