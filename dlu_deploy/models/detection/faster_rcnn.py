"""mmdetection's FasterRCNN.predict (test mode, rescale=False) as one exportable module.

image [N, 3, H, W] (RGB, 0-255) -> dets [N, K, 5] (x1, y1, x2, y2, score in input pixels),
labels [N, K] (int64), K = test_cfg.rcnn.max_per_img, best first; rows past the last detection
are zeros with label -1. No Python branch depends on tensor values and every size is fixed
by the config, so the same code runs eagerly and exports (dynamic N, H, W included).
"""

from __future__ import annotations

import torch
from torch import nn

from .bbox_head import Shared2FCBBoxHead, StandardRoIHead
from .config import DetectorConfig
from .preprocess import DetDataPreprocessor
from .roi_extractor import SingleRoIExtractor
from .rpn import RPNHead

FC_CHANNELS = 1024


class FasterRCNN(nn.Module):
    """`backbone`, `neck`, `rpn_head`, `roi_head.bbox_head` under mmdetection's names."""

    def __init__(
        self,
        backbone: nn.Module,
        neck: nn.Module,
        config: DetectorConfig,
        neck_channels: int = 256,
        fc_channels: int = FC_CHANNELS,
    ) -> None:
        super().__init__()
        self.config = config
        self.data_preprocessor = DetDataPreprocessor(config.preprocess)
        self.backbone = backbone
        self.neck = neck
        self.rpn_head = RPNHead(
            neck_channels, neck_channels, config.anchors, config.rpn_coder, config.rpn
        )
        extractor = SingleRoIExtractor(
            config.featmap_strides,
            config.roi_output_size,
            config.roi_sampling_ratio,
            config.roi_aligned,
            config.finest_scale,
        )
        bbox_head = Shared2FCBBoxHead(
            neck_channels,
            config.roi_output_size,
            fc_channels,
            config.num_classes,
            config.reg_class_agnostic,
        )
        self.roi_head = StandardRoIHead(extractor, bbox_head, config.rcnn_coder, config.rcnn)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.data_preprocessor(image)
        height, width = image.shape[2], image.shape[3]
        # [W, H, W, H] of the unpadded image: boxes are clipped to it.
        image_size = torch.stack(
            [torch.ones((), device=image.device) * s for s in (width, height, width, height)]
        )
        features = tuple(self.neck(self.backbone(x)))
        proposals, valid = self.rpn_head(features, image_size)
        num_roi_levels = len(self.config.featmap_strides)
        return self.roi_head(features[:num_roi_levels], proposals, valid, image_size)
