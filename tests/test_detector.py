"""The whole Faster R-CNN: ops vs mmcv, the detector vs a transcription of mmdetection 3.3's
test path (tests/mmdet_official.py), checkpoints with heads, and the exported graphs.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from dlu_export import ExportOptions, export_model

from dlu_deploy import native
from dlu_deploy.checkpoints import HyperParameterError, StateDictMismatchError, load_model
from dlu_deploy.errors import UserError
from dlu_deploy.models import BackboneNeck, ResNet50, UnifiedFPN
from dlu_deploy.models.detection import DetectorConfig, FasterRCNN, RPNTestConfig
from dlu_deploy.models.seeded import build_seeded
from dlu_deploy.ops.detection import nms_mask, roi_align
from tests import mmdet_official
from tests.conftest import FPN_IN_CHANNELS, detector_heads
from tests.detection_matching import match
from tests.helpers import run_onnx, save

DETECTOR_CFG = """model = dict(
    type='FasterRCNN',
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
    neck=dict(type='UNIFIED_FPN', in_channels=[256, 512, 1024, 2048], out_channels=256,
        num_outs=5, upsample_cfg=dict(type='{upsample}', up_kernel=5, up_group=1,
        encoder_kernel=3, encoder_dilation=1, compressed_channels=64)),
    rpn_head=dict(type='RPNHead', anchor_generator=dict(type='AnchorGenerator', scales=[8],
        ratios=[0.5, 1.0, 2.0], strides=[4, 8, 16, 32, 64])),
    roi_head=dict(type='StandardRoIHead', bbox_head=dict(type='Shared2FCBBoxHead',
        num_classes={num_classes}, bbox_coder=dict(type='DeltaXYWHBBoxCoder',
        target_means=[0., 0., 0., 0.], target_stds=[0.1, 0.1, 0.2, 0.2]))),
    test_cfg=dict(
        rpn=dict(nms_pre=1000, max_per_img={rpn_max}, nms=dict(type='nms', iou_threshold=0.7),
            min_bbox_size=0),
        rcnn=dict(score_thr={score_thr}, nms=dict(type='nms', iou_threshold=0.5),
            max_per_img=100)))
"""
CLASSES = tuple(f"class_{i}" for i in range(80))


@functools.cache
def _backbone_neck(upsample: str) -> BackboneNeck:
    """ResNet-50 + UNIFIED_FPN with PyTorch's default initialisation (seeded) and trained-looking
    BatchNorm: features vary enough that no two anchors tie in score (tests.conftest's
    fpn_model, with every weight N(0, 0.02), gives ties, and with ties which box NMS keeps is an
    implementation choice, in mmcv as in ONNX runtimes)."""
    config: dict[str, object] = {"type": upsample}
    if upsample in ("dlu", "carafe"):
        config.update(
            up_kernel=5, up_group=1, encoder_kernel=3, encoder_dilation=1, compressed_channels=64
        )
    return build_seeded(
        lambda: BackboneNeck(ResNet50(), UnifiedFPN(FPN_IN_CHANNELS, 256, 5, config)), 7
    )


def _image(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Noise RGB images (0-255): textured everywhere (flat images make anchors tie in score)."""
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 255


def _checkpoint(
    upsample: str = "bilinear",
    rpn_max: int = 1000,
    score_thr: float = 0.05,
    config: bool = True,
    num_classes: int = 80,
    agnostic: bool = False,
) -> dict[str, object]:
    state = dict(_backbone_neck(upsample).state_dict())
    state |= detector_heads(num_classes, seed=3, agnostic=agnostic)
    meta: dict[str, object] = {"dataset_meta": {"classes": CLASSES[:num_classes]}}
    if config:
        meta["cfg"] = DETECTOR_CFG.format(
            upsample=upsample, rpn_max=rpn_max, score_thr=score_thr, num_classes=num_classes
        )
    return {"meta": meta, "state_dict": state}


@functools.cache
def _loaded(upsample: str, rpn_max: int, path: Path) -> object:
    save(_checkpoint(upsample, rpn_max), path)
    return load_model(path)


def _detections(model: torch.nn.Module, image: torch.Tensor) -> list[tuple[np.ndarray, ...]]:
    with torch.no_grad():
        dets, labels = model(image)
    return [(dets[i].numpy(), labels[i].numpy()) for i in range(len(dets))]


# --- ops -------------------------------------------------------------------------------


@pytest.mark.parametrize(("aligned", "sampling_ratio"), [(True, 0), (False, 0), (True, 2)])
def test_roi_align_is_mmcv_roi_align(aligned: bool, sampling_ratio: int) -> None:
    g = torch.Generator().manual_seed(1)
    features = torch.randn(2, 5, 13, 17, generator=g)
    xy = torch.rand(40, 2, generator=g) * torch.tensor([80.0, 60.0]) - 8
    wh = torch.rand(40, 2, generator=g) * 60
    rois = torch.cat([xy, xy + wh], 1)
    rois[0] = torch.tensor([10.0, 10.0, 10.0, 10.0])  # empty: zeros when aligned
    rois[1] = torch.tensor([60.0, 40.0, 90.0, 70.0])  # beyond the map
    batch = torch.randint(0, 2, (40,), generator=g)
    got = roi_align(features, rois, batch, 7, 7, sampling_ratio, 0.25, aligned)
    want = mmdet_official.roi_align(
        features, torch.cat([batch[:, None].float(), rois], 1), 7, 0.25, sampling_ratio, aligned
    )
    assert float((got - want).abs().max()) <= 2e-6
    if aligned and sampling_ratio == 0:
        assert float(got[0].abs().max()) == 0.0


def test_nms_mask_is_mmcv_nms() -> None:
    g = torch.Generator().manual_seed(2)
    xy = torch.rand(3, 300, 2, generator=g) * 100
    boxes = torch.cat([xy, xy + torch.rand(3, 300, 2, generator=g) * 40], -1)
    scores = torch.rand(3, 2, 300, generator=g)
    mask = nms_mask(boxes, scores, 1000, 0.5, -0.5)
    for b in range(3):
        for c in range(2):
            kept = mmdet_official.nms_cpu(boxes[b], scores[b, c], 0.5)
            assert set(torch.nonzero(mask[b, c]).flatten().tolist()) == set(kept.tolist())
    capped = nms_mask(boxes, scores, 7, 0.5, 0.3)
    assert int(capped.sum(-1).max()) == 7
    assert bool((scores[capped > 0] > 0.3).all())


# --- the detector against mmdetection's test path ------------------------------------------


def test_detector_reproduces_mmdetection_predict() -> None:
    """Batch of 2 at 70 x 100 (padded to 96 x 128, boxes clipped to 70 x 100)."""
    config = DetectorConfig(rpn=RPNTestConfig(max_per_img=300))
    backbone_neck = _backbone_neck("bilinear")
    model = FasterRCNN(backbone_neck.backbone, backbone_neck.neck, config)
    model.load_state_dict(detector_heads(seed=3), strict=False)
    model.eval()
    image = _image(2, 70, 100)
    got = _detections(model, image)
    want = mmdet_official.predict(model, image)
    for (dets, labels), (ref_dets, ref_labels) in zip(got, want, strict=True):
        result = match(ref_dets.numpy(), ref_labels.numpy(), dets, labels, min_iou=0.999)
        assert result.reference >= 20, "the seeded heads should find boxes"
        # At K = max_per_img, the last row can be a different box when two candidates' scores
        # differ by float noise (1e-7): the criterion, 99 % matched both ways.
        assert result.matched >= 0.99 * max(result.reference, result.candidate), result
        assert result.max_box_diff <= 1e-3 and result.max_score_diff <= 1e-5
        assert (labels[result.candidate :] == -1).all() and (dets[result.candidate :] == 0).all()
        assert np.all(np.diff(dets[: result.candidate, 4]) <= 0), "sorted by score"
        assert dets[:, [0, 2]].max() <= 100 and dets[:, [1, 3]].max() <= 70


def test_bad_images_are_refused() -> None:
    backbone_neck = _backbone_neck("nearest")
    model = FasterRCNN(backbone_neck.backbone, backbone_neck.neck, DetectorConfig())
    with pytest.raises(UserError, match=r"\[N, 3, H, W\]"):
        model(torch.zeros(1, 4, 64, 64))
    with pytest.raises(UserError, match="float"):
        model(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))


# --- checkpoints ---------------------------------------------------------------------------


def test_checkpoint_with_heads_loads_as_the_detector(tmp_path: Path) -> None:
    path = save(_checkpoint("dlu", rpn_max=500, score_thr=0.3), tmp_path / "epoch_12.pth")
    loaded = load_model(path)
    assert loaded.output_names == ["dets", "labels"]
    assert loaded.inferred["part"] == "detector" and loaded.inferred["num_classes"] == 80
    assert loaded.inferred["score_thr"] == 0.3 and loaded.inferred["rpn_max_per_img"] == 500
    assert loaded.inferred["reg_class_agnostic"] is False
    assert json.loads(loaded.metadata["dlu_deploy.classes"]) == list(CLASSES)
    model = loaded.model
    assert model.config.rcnn.score_thr == 0.3 and model.config.rpn.max_per_img == 500
    given = load_model(path, overrides={"score_thr": 0.5, "max_per_img": 20, "rpn_nms_pre": 200})
    assert given.given == {"score_thr": 0.5, "max_per_img": 20, "rpn_nms_pre": 200}
    assert given.model.config.rcnn.max_per_img == 20 and given.model.config.rpn.nms_pre == 200
    neck_only = load_model(path, overrides={"part": "backbone-neck"})
    assert neck_only.output_names == ["p2", "p3", "p4", "p5", "p6"]
    with pytest.raises(HyperParameterError, match="--score-thr"):
        load_model(path, overrides={"part": "backbone-neck", "score_thr": 0.1})
    with pytest.raises(HyperParameterError, match="max_per_img=5000"):
        load_model(path, overrides={"max_per_img": 5000})


def test_checkpoint_without_config_assumes_mmdetection_defaults(tmp_path: Path) -> None:
    path = save(_checkpoint(config=False, num_classes=3, agnostic=True), tmp_path / "c.pth")
    loaded = load_model(path)
    assert loaded.assumed["score_thr"] == 0.05 and loaded.assumed["rpn_nms_iou"] == 0.7
    assert loaded.inferred["num_classes"] == 3 and loaded.inferred["reg_class_agnostic"] is True
    assert json.loads(loaded.metadata["dlu_deploy.classes"]) == list(CLASSES[:3])
    dets, labels = loaded.model(_image(1, 64, 96))
    assert dets.shape == (1, 100, 5) and int(labels.max()) < 3


def test_other_heads_are_refused_with_what_differs(tmp_path: Path) -> None:
    checkpoint = _checkpoint()
    state = checkpoint["state_dict"]
    assert isinstance(state, dict)
    state["roi_head.bbox_head.fc_reg.weight"] = torch.zeros(12, 1024)
    with pytest.raises(StateDictMismatchError, match="fc_reg has 12 outputs"):
        load_model(save(checkpoint, tmp_path / "reg.pth"))
    cascade = _checkpoint()
    state = cascade["state_dict"]
    assert isinstance(state, dict)
    for key in [k for k in state if k.startswith("roi_head.bbox_head.")]:
        state[key.replace("bbox_head.", "bbox_head.0.")] = state.pop(key)
    with pytest.raises(StateDictMismatchError, match="Cascade R-CNN"):
        load_model(save(cascade, tmp_path / "cascade.pth"))
    assert load_model(tmp_path / "cascade.pth", overrides={"part": "backbone-neck"}).arch
    partial = _checkpoint()
    state = partial["state_dict"]
    assert isinstance(state, dict)
    del state["roi_head.bbox_head.fc_cls.bias"]
    with pytest.raises(StateDictMismatchError, match=r"lacks roi_head\.bbox_head\.fc_cls\.bias"):
        load_model(save(partial, tmp_path / "partial.pth"))


# --- export --------------------------------------------------------------------------------


def _compare(path: Path, model: torch.nn.Module, image: torch.Tensor) -> None:
    dets, labels = run_onnx(path, {"image": image.numpy()})
    assert dets.dtype == np.float32 and labels.dtype == np.int64
    for i, (ref_dets, ref_labels) in enumerate(_detections(model, image)):
        result = match(ref_dets, ref_labels, dets[i], labels[i], min_iou=0.999)
        assert result.reference >= 20
        assert result.matched >= 0.99 * max(result.reference, result.candidate), result
        assert result.max_box_diff <= 1e-3 and result.max_score_diff <= 1e-5


@pytest.mark.slow
def test_detector_exports_dynamic_portable(tmp_path: Path) -> None:
    loaded = _loaded("bilinear", 1000, tmp_path / "bilinear.pth")
    result = export_model(
        loaded, tmp_path / "det.onnx", ExportOptions(mode="portable", dynamic=True)
    )
    proto = onnx.load(result.path)
    assert result.inputs == {"image": ["N", 3, "H", "W"]}
    assert result.outputs == {"dets": ["N", 100, 5], "labels": ["N", 100]}
    ops = Counter(n.op_type for n in proto.graph.node)
    assert ops["NonMaxSuppression"] == 2 and ops["RoiAlign"] == 4 and ops["TopK"] == 7
    roi = next(n for n in proto.graph.node if n.op_type == "RoiAlign")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in roi.attribute}
    assert attrs["coordinate_transformation_mode"] == b"half_pixel" and attrs["sampling_ratio"] == 0
    metadata = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(metadata["dlu_deploy.classes"]) == list(CLASSES)
    for n, h, w in [(1, 64, 96), (2, 70, 100)]:
        _compare(result.path, loaded.model, _image(n, h, w, seed=h))  # type: ignore[attr-defined]


@pytest.mark.slow
@pytest.mark.skipif(not native.available(), reason="plugin mode needs build/lib/libdlu_kernels.so")
def test_detector_exports_plugin_mode(tmp_path: Path) -> None:
    from dlu_deploy.ort import make_session

    loaded = _loaded("dlu", 1000, tmp_path / "dlu.pth")
    result = export_model(
        loaded,
        tmp_path / "det.onnx",
        ExportOptions(mode="plugin", input_shapes=[(1, 3, 64, 96)]),
    )
    assert result.custom_nodes == {"DLU": 4}
    image = _image(1, 64, 96, seed=5)
    dets, labels = make_session(result.path).run(None, {"image": image.numpy()})
    ((ref_dets, ref_labels),) = _detections(loaded.model, image)  # type: ignore[attr-defined]
    matched = match(ref_dets, ref_labels, dets[0], labels[0], min_iou=0.999)
    assert matched.reference >= 20
    assert matched.matched >= 0.99 * max(matched.reference, matched.candidate), matched
