"""The settings of a Faster R-CNN in test mode, with mmdetection 3.3's defaults.

The defaults are those of mmdetection's `configs/_base_/models/faster-rcnn_r50_fpn.py` (and of
`DetDataPreprocessor` there); a checkpoint's saved config or the command line may change any
of them (dlu_deploy.checkpoints.archs.faster_rcnn).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dlu_deploy.errors import UserError


@dataclass(frozen=True)
class Preprocess:
    """DetDataPreprocessor: channel order, normalisation and padding of the input batch."""

    mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    # True: the network was trained on RGB (mmdetection loads BGR and converts). The exported
    # graph takes RGB, so it flips channels only when this is False.
    bgr_to_rgb: bool = True
    pad_size_divisor: int = 32


@dataclass(frozen=True)
class AnchorConfig:
    """AnchorGenerator (center offset 0, scale-major)."""

    scales: tuple[float, ...] = (8.0,)
    ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    strides: tuple[int, ...] = (4, 8, 16, 32, 64)

    @property
    def num_base_anchors(self) -> int:
        return len(self.scales) * len(self.ratios)


@dataclass(frozen=True)
class CoderConfig:
    """DeltaXYWHBBoxCoder (clip_border=True, add_ctr_clamp=False)."""

    means: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    stds: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    wh_ratio_clip: float = 16 / 1000


@dataclass(frozen=True)
class RPNTestConfig:
    """model.test_cfg.rpn."""

    nms_pre: int = 1000
    max_per_img: int = 1000
    iou_threshold: float = 0.7
    min_bbox_size: float = 0.0


@dataclass(frozen=True)
class RCNNTestConfig:
    """model.test_cfg.rcnn."""

    score_thr: float = 0.05
    iou_threshold: float = 0.5
    max_per_img: int = 100


# TensorRT's TopK takes K < 3840 (onnx-tensorrt docs/operators.md).
MAX_TOPK = 3839


@dataclass(frozen=True)
class DetectorConfig:
    num_classes: int = 80
    reg_class_agnostic: bool = False
    preprocess: Preprocess = field(default_factory=Preprocess)
    anchors: AnchorConfig = field(default_factory=AnchorConfig)
    rpn_coder: CoderConfig = field(default_factory=CoderConfig)
    rcnn_coder: CoderConfig = field(default_factory=lambda: CoderConfig(stds=(0.1, 0.1, 0.2, 0.2)))
    rpn: RPNTestConfig = field(default_factory=RPNTestConfig)
    rcnn: RCNNTestConfig = field(default_factory=RCNNTestConfig)
    roi_output_size: int = 7
    roi_sampling_ratio: int = 0
    roi_aligned: bool = True
    featmap_strides: tuple[int, ...] = (4, 8, 16, 32)
    finest_scale: int = 56

    def __post_init__(self) -> None:
        checks = [
            (self.num_classes >= 1, f"num_classes={self.num_classes}", "at least 1"),
            (
                1 <= self.rpn.nms_pre <= MAX_TOPK,
                f"rpn nms_pre={self.rpn.nms_pre}",
                f"1..{MAX_TOPK} (TensorRT's TopK limit)",
            ),
            (
                1 <= self.rpn.max_per_img <= MAX_TOPK,
                f"rpn max_per_img={self.rpn.max_per_img}",
                f"1..{MAX_TOPK} (TensorRT's TopK limit)",
            ),
            (
                1 <= self.rcnn.max_per_img <= MAX_TOPK,
                f"rcnn max_per_img={self.rcnn.max_per_img}",
                f"1..{MAX_TOPK} (TensorRT's TopK limit)",
            ),
            (
                0.0 <= self.rcnn.score_thr < 1.0,
                f"score_thr={self.rcnn.score_thr}",
                "in [0, 1)",
            ),
            (
                0.0 <= self.rpn.iou_threshold <= 1.0 and 0.0 <= self.rcnn.iou_threshold <= 1.0,
                f"NMS IoU thresholds {self.rpn.iou_threshold}, {self.rcnn.iou_threshold}",
                "in [0, 1]",
            ),
            (self.rpn.min_bbox_size >= 0, f"min_bbox_size={self.rpn.min_bbox_size}", ">= 0"),
            (
                len(self.anchors.strides) >= len(self.featmap_strides),
                f"{len(self.anchors.strides)} anchor strides",
                f"at least the {len(self.featmap_strides)} RoI feature levels",
            ),
            (
                self.preprocess.pad_size_divisor >= 1,
                f"pad_size_divisor={self.preprocess.pad_size_divisor}",
                ">= 1",
            ),
            (
                all(s > 0 for s in self.preprocess.std),
                f"std={self.preprocess.std}",
                "positive values",
            ),
        ]
        for ok, what, allowed in checks:
            if not ok:
                raise UserError(
                    f"Faster R-CNN: {what} is not supported.", f"Use a value {allowed}."
                )
