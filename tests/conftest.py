"""Fixtures shared by the checkpoint, export and CLI tests (built once per session)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from dlu_deploy.models import BackboneNeck, ResNet50, UnifiedFPN
from tests.helpers import randomize

# The DLU repository's configs (custom/config/FPN/*.py), one per upsampler, as saved text.
FPN_CONFIGS = {
    "dlu": "upsample_cfg=dict(type='dlu', up_kernel=5, up_group=1, encoder_kernel=3, "
    "encoder_dilation=1, compressed_channels=64)",
    "carafe": "upsample_cfg=dict(\n            type='carafe',\n            up_kernel=5,\n         "
    "   up_group=1,\n            encoder_kernel=3, encoder_dilation=1, compressed_channels=64)",
    "nearest": "upsample_cfg=dict(type='nearest')",
    "bilinear": "upsample_cfg=dict(\n            type='bilinear'\n        )",
}
FPN_IN_CHANNELS = [256, 512, 1024, 2048]


@functools.cache
def fpn_model(upsample: str) -> BackboneNeck:
    """Faster R-CNN R50 backbone + UNIFIED_FPN neck with seeded random weights (shared, "
    "read-only)."""
    config: dict[str, object] = {"type": upsample}
    if upsample in ("dlu", "carafe"):
        config.update(
            up_kernel=5, up_group=1, encoder_kernel=3, encoder_dilation=1, compressed_channels=64
        )
    model = BackboneNeck(ResNet50(), UnifiedFPN(FPN_IN_CHANNELS, 256, 5, config))
    return randomize(model, seed=len(upsample), std=0.02)  # type: ignore[return-value]


def mmdet_checkpoint(upsample: str, with_config: bool = True) -> dict[str, object]:
    """An mmdetection-style checkpoint: detector state_dict (with heads) and meta."""
    state = dict(fpn_model(upsample).state_dict())
    state["rpn_head.rpn_conv.weight"] = torch.zeros(256, 256, 3, 3)
    state["roi_head.bbox_head.fc_cls.weight"] = torch.zeros(81, 1024)
    meta: dict[str, object] = {"epoch": 12, "mmdet_version": "3.3.0"}
    if with_config:
        meta["cfg"] = (
            "model = dict(\n    neck=dict(\n        type='UNIFIED_FPN',\n        "
            f"{FPN_CONFIGS[upsample]}))\n"
        )
    return {"meta": meta, "state_dict": state}


@pytest.fixture(scope="session")
def fpn_dlu_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fpn") / "faster_rcnn_r50_unified_fpn_dlu.pth"
    torch.save(mmdet_checkpoint("dlu"), path)
    return path
