"""Faster R-CNN in test mode, one module per stage, with mmdetection's names (faster_rcnn.py)."""

from dlu_deploy.models.detection.config import (
    AnchorConfig,
    CoderConfig,
    DetectorConfig,
    Preprocess,
    RCNNTestConfig,
    RPNTestConfig,
)
from dlu_deploy.models.detection.faster_rcnn import FasterRCNN

__all__ = [
    "AnchorConfig",
    "CoderConfig",
    "DetectorConfig",
    "FasterRCNN",
    "Preprocess",
    "RCNNTestConfig",
    "RPNTestConfig",
]
