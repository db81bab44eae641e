"""The saved-config reader evaluates literals only: values come out, code never runs."""

from __future__ import annotations

from pathlib import Path

from dlu_deploy.checkpoints.archs.faster_rcnn import upsample_from_config
from dlu_deploy.checkpoints.config_text import UNKNOWN, lookup, parse_config

# The shape of mmengine's cfg.pretty_text (what Runner saves in meta['cfg']), abridged.
PRETTY_TEXT = """auto_scale_lr = dict(base_batch_size=16, enable=False)
default_scope = 'mmdet'
model = dict(
    backbone=dict(depth=50, norm_cfg=dict(requires_grad=True, type='BN'), type='ResNet'),
    data_preprocessor=dict(
        bgr_to_rgb=True,
        mean=[123.675, 116.28, 103.53],
        pad_size_divisor=32,
        std=[58.395, 57.12, 57.375],
        type='DetDataPreprocessor'),
    rpn_head=dict(
        anchor_generator=dict(ratios=[0.5, 1.0, 2.0], scales=[8], strides=[4, 8, 16, 32, 64],
                              type='AnchorGenerator'),
        bbox_coder=dict(target_means=[.0, .0, .0, .0], target_stds=[1.0, 1.0, 1.0, 1.0],
                        type='DeltaXYWHBBoxCoder')),
    test_cfg=dict(
        rcnn=dict(max_per_img=100, nms=dict(iou_threshold=0.5, type='nms'), score_thr=0.05),
        rpn=dict(max_per_img=1000, min_bbox_size=0, nms=dict(iou_threshold=0.7, type='nms'),
                 nms_pre=1000)),
    type='FasterRCNN')
wh_ratio_clip = 16 / 1000
test_pipeline = [dict(type='LoadImageFromFile'), dict(keep_ratio=True, scale=(1333, 800),
                 type='Resize')]
"""


def test_pretty_text_values() -> None:
    config = parse_config(PRETTY_TEXT)
    assert lookup(config, "model.test_cfg.rcnn.score_thr") == 0.05
    assert lookup(config, "model.test_cfg.rpn.nms.iou_threshold") == 0.7
    assert lookup(config, "model.data_preprocessor.mean") == [123.675, 116.28, 103.53]
    assert lookup(config, "model.rpn_head.anchor_generator.scales") == [8]
    assert lookup(config, "test_pipeline")[1]["scale"] == (1333, 800)
    assert lookup(config, "wh_ratio_clip") == 0.016
    assert lookup(config, "model.test_cfg.rcnn.missing") is None
    assert lookup(config, "model.type.deeper") is None


def test_names_splats_and_mmdet2_variables() -> None:
    text = (
        "img_norm_cfg = dict(mean=[103.53, 116.28, 123.675], std=[1.0, 1.0, 1.0], to_rgb=False)\n"
        "base = dict(score_thr=0.05, max_per_img=100)\n"
        "rcnn = dict(**base, nms={'type': 'nms', 'iou_threshold': -(-0.6)})\n"
        "model = dict(test_cfg=dict(rcnn=rcnn), neck=dict(upsample_cfg=dict(type='carafe')))\n"
    )
    config = parse_config(text)
    assert lookup(config, "img_norm_cfg.to_rgb") is False
    assert lookup(config, "model.test_cfg.rcnn") == {
        "score_thr": 0.05,
        "max_per_img": 100,
        "nms": {"type": "nms", "iou_threshold": 0.6},
    }
    assert upsample_from_config(text) == "carafe"


def test_code_in_a_config_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    text = (
        f"x = __import__('os').system('touch {marker}')\n"
        f"y = open('{marker}', 'w')\n"
        f"z = [__import__('pathlib').Path('{marker}').touch() for _ in range(1)]\n"
        f"model = dict(test_cfg=dict(rcnn=dict(score_thr=eval('0.3'))), k=(lambda: 1)())\n"
        "p = 10 ** 10 ** 10\n"
    )
    config = parse_config(text)
    assert not marker.exists()
    assert config["x"] is UNKNOWN and config["y"] is UNKNOWN and config["z"] is UNKNOWN
    assert config["p"] is UNKNOWN  # no huge power computed
    assert lookup(config, "model.test_cfg.rcnn.score_thr") is None
    assert parse_config("model = dict(") == {}  # not Python: nothing, and no exception
    # A text cut short still gives its upsample_cfg (the earlier regex reader).
    assert upsample_from_config("model = dict(neck=dict(upsample_cfg=dict(type='nearest'") == (
        "nearest"
    )
