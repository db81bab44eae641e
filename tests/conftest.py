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


def detector_heads(
    num_classes: int = 80, seed: int = 0, agnostic: bool = False
) -> dict[str, torch.Tensor]:
    """Seeded RPNHead + Shared2FCBBoxHead weights under mmdetection's keys, scaled so that the
    detector finds boxes (a fresh fc_cls spreads softmax scores below score_thr 0.05)."""
    generator = torch.Generator().manual_seed(seed)
    shapes = {
        "rpn_head.rpn_conv": ((256, 256, 3, 3), 0.01),
        "rpn_head.rpn_cls": ((3, 256, 1, 1), 0.05),
        "rpn_head.rpn_reg": ((12, 256, 1, 1), 0.05),
        "roi_head.bbox_head.shared_fcs.0": ((1024, 256 * 7 * 7), 0.002),
        "roi_head.bbox_head.shared_fcs.1": ((1024, 1024), 0.03),
        "roi_head.bbox_head.fc_cls": ((num_classes + 1, 1024), 0.5),
        "roi_head.bbox_head.fc_reg": ((4 if agnostic else 4 * num_classes, 1024), 0.05),
    }
    state = {}
    for name, (shape, std) in shapes.items():
        state[f"{name}.weight"] = torch.randn(shape, generator=generator) * std
        state[f"{name}.bias"] = torch.randn(shape[0], generator=generator) * 0.1
    return state


def mmdet_checkpoint(upsample: str, with_config: bool = True) -> dict[str, object]:
    """An mmdetection-style checkpoint: detector state_dict (with heads) and meta."""
    state = dict(fpn_model(upsample).state_dict())
    state |= detector_heads()
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
