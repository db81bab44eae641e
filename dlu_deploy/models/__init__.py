"""Whole networks built from the reference modules, with the official state_dict names."""

from dlu_deploy.models.detector import BackboneNeck
from dlu_deploy.models.resnet import ResNet50
from dlu_deploy.models.unified_fpn import UPSAMPLE_TYPES, UnifiedFPN

__all__ = ["UPSAMPLE_TYPES", "BackboneNeck", "ResNet50", "UnifiedFPN"]
