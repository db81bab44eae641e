"""The RPN and RoI heads of an mmdetection Faster R-CNN checkpoint: shapes, settings, model.

Shapes come from the weights (`rpn_head.rpn_conv/rpn_cls/rpn_reg`,
`roi_head.bbox_head.shared_fcs.{0,1}/fc_cls/fc_reg`): the number of classes from fc_cls,
class-agnostic regression from fc_reg. Settings the weights cannot show come from the config
saved in the checkpoint (`model.test_cfg`, `model.rpn_head.anchor_generator`, the box coders,
`model.data_preprocessor`, or mmdetection 2.x's `img_norm_cfg`), else mmdetection 3.3's
defaults (faster-rcnn_r50_fpn.py); the test_cfg values can be overridden on the command line.
Other heads (cascade stages, shared convs, a softmax RPN, other RoI sizes) are refused with
what differs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from dlu_deploy.checkpoints.config_text import lookup, parse_config
from dlu_deploy.checkpoints.errors import HyperParameterError, StateDictMismatchError
from dlu_deploy.checkpoints.hyper import HyperParameters, weight_shape
from dlu_deploy.checkpoints.reading import Checkpoint, StateDict
from dlu_deploy.checkpoints.registry import Built, Param, prefixed
from dlu_deploy.errors import UserError
from dlu_deploy.models.detection import (
    AnchorConfig,
    CoderConfig,
    DetectorConfig,
    FasterRCNN,
    Preprocess,
    RCNNTestConfig,
    RPNTestConfig,
)

PARTS = ("detector", "backbone-neck")
HEAD_PREFIXES = ("rpn_head.", "roi_head.")
# (parameter, config path, mmdetection default, help)
TEST_CFG: tuple[tuple[Param, str, object], ...] = (
    (
        Param("score_thr", float, "RoI head: minimum class score of a detection (test_cfg.rcnn)"),
        "model.test_cfg.rcnn.score_thr",
        RCNNTestConfig.score_thr,
    ),
    (
        Param("nms_iou", float, "RoI head: per-class NMS IoU threshold (test_cfg.rcnn.nms)"),
        "model.test_cfg.rcnn.nms.iou_threshold",
        RCNNTestConfig.iou_threshold,
    ),
    (
        Param("max_per_img", int, "detections per image, K of the outputs (test_cfg.rcnn)"),
        "model.test_cfg.rcnn.max_per_img",
        RCNNTestConfig.max_per_img,
    ),
    (
        Param("rpn_nms_pre", int, "RPN: best anchors per level before NMS (test_cfg.rpn)"),
        "model.test_cfg.rpn.nms_pre",
        RPNTestConfig.nms_pre,
    ),
    (
        Param("rpn_nms_iou", float, "RPN: NMS IoU threshold (test_cfg.rpn.nms)"),
        "model.test_cfg.rpn.nms.iou_threshold",
        RPNTestConfig.iou_threshold,
    ),
    (
        Param("rpn_max_per_img", int, "RPN: proposals per image (test_cfg.rpn)"),
        "model.test_cfg.rpn.max_per_img",
        RPNTestConfig.max_per_img,
    ),
    (
        Param("rpn_min_bbox_size", float, "RPN: proposals must be wider and taller (test_cfg.rpn)"),
        "model.test_cfg.rpn.min_bbox_size",
        RPNTestConfig.min_bbox_size,
    ),
)
DETECTOR_PARAMS = tuple(param for param, _, _ in TEST_CFG)
HEAD_LAYERS = (
    "rpn_head.rpn_conv",
    "rpn_head.rpn_cls",
    "rpn_head.rpn_reg",
    "roi_head.bbox_head.shared_fcs.0",
    "roi_head.bbox_head.shared_fcs.1",
    "roi_head.bbox_head.fc_cls",
    "roi_head.bbox_head.fc_reg",
)
SAVED_CONFIG = "the config saved in the checkpoint"


def has_heads(state: StateDict) -> bool:
    return any(k.startswith(HEAD_PREFIXES) for k in state)


def build_detector(
    checkpoint: Checkpoint,
    backbone: nn.Module,
    neck: nn.Module,
    hp: HyperParameters,
    example_shape: tuple[int, ...],
) -> Built:
    state = checkpoint.state_dict
    if not has_heads(state):
        raise HyperParameterError(
            "--part detector was given, but the checkpoint has no head weights (rpn_head.*, "
            "roi_head.*).",
            "Export backbone + neck (drop --part), or use a checkpoint saved with its heads.",
        )
    config = parse_config(checkpoint.config_text)
    _refuse_other_heads(state, config)
    missing = [
        f"{layer}.{p}"
        for layer in HEAD_LAYERS
        for p in ("weight", "bias")
        if f"{layer}.{p}" not in state
    ]
    if missing:
        raise StateDictMismatchError(
            f"The checkpoint has head weights but lacks {', '.join(missing[:4])}"
            f"{', ...' if len(missing) > 4 else ''} ({len(missing)} of the RPNHead + "
            "Shared2FCBBoxHead weights).",
            "Export backbone + neck with --part backbone-neck, or use the complete checkpoint.",
        )
    try:
        detector_config = _detector_config(state, config, hp)
        model = FasterRCNN(
            backbone,
            neck,
            detector_config,
            neck_channels=_neck_channels(state),
            fc_channels=_fc_channels(state),
        )
    except StateDictMismatchError:
        raise
    except UserError as exc:  # a setting outside what the detector supports
        raise HyperParameterError(exc.problem, exc.fix) from exc
    wanted = set(model.state_dict())
    selected = {k: v for k, v in state.items() if k in wanted}
    left_out = sorted({k.split(".")[0] + "." + k.split(".")[1] for k in state if k not in wanted})
    if left_out:
        hp.notes.append(f"not exported: {', '.join(left_out)}")
    metadata = {"dlu_deploy.outputs": "dets [N, K, 5] x1 y1 x2 y2 score; labels [N, K], -1 = none"}
    classes = _class_names(checkpoint.meta)
    if classes is not None:
        if len(classes) == detector_config.num_classes:
            metadata["dlu_deploy.classes"] = json.dumps(list(classes))
        else:
            hp.notes.append(
                f"the checkpoint's meta names {len(classes)} classes, fc_cls has "
                f"{detector_config.num_classes}: class names left out of the ONNX metadata"
            )
    return Built(
        model=model,
        state_dict=selected,
        input_names=["image"],
        output_names=["dets", "labels"],
        example_shapes=[example_shape],
        inferred=hp.inferred,
        assumed=hp.assumed,
        given=hp.given,
        notes=hp.notes,
        metadata=metadata,
    )


def _refuse_other_heads(state: StateDict, config: Mapping[str, Any]) -> None:
    differs: list[str] = []
    head = prefixed(state, "roi_head.bbox_head.")
    if any(k.startswith("roi_head.bbox_head.0.") for k in state):
        differs.append("a multi-stage RoI head (roi_head.bbox_head.0.*, Cascade R-CNN)")
    for part in ("shared_convs", "cls_convs", "reg_convs", "cls_fcs", "reg_fcs"):
        if any(k.startswith(f"{part}.") for k in head):
            differs.append(f"bbox head layers roi_head.bbox_head.{part}.* (not Shared2FCBBoxHead)")
    if any(k.startswith("rpn_head.rpn_conv.0.") for k in state):
        differs.append("an RPN with several convs (rpn_head.rpn_conv.0.*)")
    roi_type = lookup(config, "model.roi_head.type")
    if isinstance(roi_type, str) and roi_type != "StandardRoIHead":
        differs.append(f"model.roi_head.type={roi_type!r} in the saved config")
    checks = (
        ("model.rpn_head.loss_cls.use_sigmoid", True, "a softmax RPN (use_sigmoid=False)"),
        ("model.roi_head.bbox_roi_extractor.roi_layer.output_size", 7, "RoIAlign output size"),
        ("model.roi_head.bbox_roi_extractor.roi_layer.sampling_ratio", 0, "RoIAlign sampling"),
        ("model.roi_head.bbox_roi_extractor.roi_layer.type", "RoIAlign", "the RoI layer"),
        ("model.roi_head.bbox_roi_extractor.type", "SingleRoIExtractor", "the RoI extractor"),
        ("model.roi_head.bbox_roi_extractor.featmap_strides", [4, 8, 16, 32], "RoI strides"),
        ("model.roi_head.bbox_head.loss_cls.use_sigmoid", False, "a sigmoid RoI classifier"),
        ("model.roi_head.bbox_head.bbox_coder.type", "DeltaXYWHBBoxCoder", "the RoI box coder"),
        ("model.rpn_head.bbox_coder.type", "DeltaXYWHBBoxCoder", "the RPN box coder"),
        ("model.test_cfg.rpn.nms.type", "nms", "the RPN's NMS type"),
        ("model.test_cfg.rcnn.nms.type", "nms", "the RoI head's NMS type"),
    )
    for path, supported, what in checks:
        value = lookup(config, path)
        if value is not None and _normalised(value) != _normalised(supported):
            differs.append(
                f"{what}: {path.removeprefix('model.')}={value!r}, supported {supported!r}"
            )
    if differs:
        raise StateDictMismatchError(
            "The checkpoint's heads are not mmdetection's Faster R-CNN test path this exporter "
            "reproduces (RPNHead + StandardRoIHead, Shared2FCBBoxHead, RoIAlign 7x7): "
            + "; ".join(differs)
            + ".",
            "Export backbone + neck with --part backbone-neck and run these heads yourself.",
        )


def _normalised(value: object) -> object:
    if isinstance(value, (list, tuple)):
        return [_normalised(v) for v in value]
    return value


def _neck_channels(state: StateDict) -> int:
    return weight_shape(state, "rpn_head.rpn_conv.weight", 4, "RPN 3x3 conv")[1]


def _fc_channels(state: StateDict) -> int:
    return weight_shape(
        state, "roi_head.bbox_head.shared_fcs.1.weight", 2, "second shared fc of Shared2FCBBoxHead"
    )[0]


def _floats(value: object, count: int) -> tuple[float, ...] | None:
    numbers = _number_list(value)
    return numbers if numbers is not None and len(numbers) == count else None


def _detector_config(
    state: StateDict, config: Mapping[str, Any], hp: HyperParameters
) -> DetectorConfig:
    neck_channels = _neck_channels(state)
    feat_channels, _, kernel, _ = weight_shape(state, "rpn_head.rpn_conv.weight", 4, "RPN conv")
    anchors = _anchors(config)
    num_anchors = anchors.num_base_anchors
    cls_out = weight_shape(state, "rpn_head.rpn_cls.weight", 4, "RPN objectness, one per anchor")[0]
    reg_out = weight_shape(state, "rpn_head.rpn_reg.weight", 4, "RPN deltas, 4 per anchor")[0]
    if kernel != 3 or feat_channels != neck_channels:
        raise StateDictMismatchError(
            f"rpn_head.rpn_conv is {feat_channels}x{neck_channels}x{kernel}x{kernel}; RPNHead "
            f"has a 3x3 conv keeping the neck's {neck_channels} channels.",
            "Export backbone + neck with --part backbone-neck.",
        )
    if cls_out != num_anchors or reg_out != 4 * num_anchors:
        softmax = cls_out == 2 * num_anchors
        raise StateDictMismatchError(
            f"rpn_head.rpn_cls has {cls_out} outputs and rpn_reg {reg_out}; with {num_anchors} "
            f"anchors per position (scales {list(anchors.scales)} x ratios "
            f"{list(anchors.ratios)}) a sigmoid RPN has {num_anchors} and {4 * num_anchors}"
            + (" (this looks like a softmax RPN, which is not supported)." if softmax else "."),
            "Check the anchor settings of the saved config, or export backbone + neck with "
            "--part backbone-neck.",
        )
    fc0 = weight_shape(state, "roi_head.bbox_head.shared_fcs.0.weight", 2, "first shared fc")
    fc_channels = _fc_channels(state)
    roi_features = neck_channels * 7 * 7
    if fc0[1] != roi_features or fc0[0] != fc_channels:
        raise StateDictMismatchError(
            f"roi_head.bbox_head.shared_fcs.0 is {fc0[0]}x{fc0[1]}; over 7x7 RoIs of "
            f"{neck_channels} channels it takes {roi_features} inputs and gives shared_fcs.1's "
            f"{fc_channels}.",
            "Only Shared2FCBBoxHead on 7x7 RoIAlign features is supported; export backbone + "
            "neck with --part backbone-neck.",
        )
    cls_rows = weight_shape(state, "roi_head.bbox_head.fc_cls.weight", 2, "classes + background")
    reg_rows = weight_shape(state, "roi_head.bbox_head.fc_reg.weight", 2, "4 deltas per class")[0]
    num_classes = hp.infer("num_classes", cls_rows[0] - 1)
    if num_classes < 1:
        raise StateDictMismatchError(
            f"roi_head.bbox_head.fc_cls has {cls_rows[0]} outputs: no class besides background.",
            "Check that the checkpoint is a trained detector.",
        )
    if reg_rows == 4 * num_classes:
        agnostic = False
    elif reg_rows == 4:
        agnostic = True
    else:
        raise StateDictMismatchError(
            f"roi_head.bbox_head.fc_reg has {reg_rows} outputs; with {num_classes} classes "
            f"(fc_cls) Shared2FCBBoxHead has {4 * num_classes} (class-specific) or 4 "
            "(reg_class_agnostic).",
            "Check that fc_cls and fc_reg belong to the same head.",
        )
    hp.infer("reg_class_agnostic", agnostic)
    values = {
        param.name: hp.configured(
            param.name, _typed(lookup(config, path), param.type), default, SAVED_CONFIG
        )
        for param, path, default in TEST_CFG
    }
    return DetectorConfig(
        num_classes=num_classes,
        reg_class_agnostic=agnostic,
        preprocess=_preprocess(config, hp),
        anchors=anchors,
        rpn_coder=_coder(config, "model.rpn_head.bbox_coder", CoderConfig()),
        rcnn_coder=_coder(
            config, "model.roi_head.bbox_head.bbox_coder", CoderConfig(stds=(0.1, 0.1, 0.2, 0.2))
        ),
        rpn=RPNTestConfig(
            nms_pre=values["rpn_nms_pre"],  # type: ignore[arg-type]
            max_per_img=values["rpn_max_per_img"],  # type: ignore[arg-type]
            iou_threshold=values["rpn_nms_iou"],  # type: ignore[arg-type]
            min_bbox_size=values["rpn_min_bbox_size"],  # type: ignore[arg-type]
        ),
        rcnn=RCNNTestConfig(
            score_thr=values["score_thr"],  # type: ignore[arg-type]
            iou_threshold=values["nms_iou"],  # type: ignore[arg-type]
            max_per_img=values["max_per_img"],  # type: ignore[arg-type]
        ),
        finest_scale=_int_or(lookup(config, "model.roi_head.bbox_roi_extractor.finest_scale"), 56),
    )


def _typed(value: object, kind: type) -> object:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return kind(value)


def _int_or(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _anchors(config: Mapping[str, Any]) -> AnchorConfig:
    path = "model.rpn_head.anchor_generator"
    generator = lookup(config, path)
    if generator is None:
        return AnchorConfig()
    if lookup(config, f"{path}.type") not in (None, "AnchorGenerator"):
        raise StateDictMismatchError(
            f"The saved config's RPN uses {lookup(config, f'{path}.type')!r}; only "
            "AnchorGenerator is supported.",
            "Export backbone + neck with --part backbone-neck.",
        )
    for key in ("center_offset", "octave_base_scale", "scales_per_octave", "base_sizes"):
        if lookup(config, f"{path}.{key}") not in (None, 0, 0.0):
            raise StateDictMismatchError(
                f"The saved config sets anchor_generator.{key}; only scales, ratios and strides "
                "are supported.",
                "Export backbone + neck with --part backbone-neck.",
            )
    default = AnchorConfig()
    scales = _number_list(lookup(config, f"{path}.scales")) or default.scales
    ratios = _number_list(lookup(config, f"{path}.ratios")) or default.ratios
    strides = _number_list(lookup(config, f"{path}.strides"))
    return AnchorConfig(
        scales=scales,
        ratios=ratios,
        strides=tuple(int(s) for s in strides) if strides else default.strides,
    )


def _number_list(value: object) -> tuple[float, ...] | None:
    if not isinstance(value, (list, tuple)) or not value:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return None
    return tuple(float(v) for v in value)


def _coder(config: Mapping[str, Any], path: str, default: CoderConfig) -> CoderConfig:
    means = _floats(lookup(config, f"{path}.target_means"), 4)
    stds = _floats(lookup(config, f"{path}.target_stds"), 4)
    return CoderConfig(
        means=means or default.means,  # type: ignore[arg-type]
        stds=stds or default.stds,  # type: ignore[arg-type]
    )


def _preprocess(config: Mapping[str, Any], hp: HyperParameters) -> Preprocess:
    """model.data_preprocessor (mmdetection 3.x) or img_norm_cfg (2.x), else the defaults."""
    default = Preprocess()
    mean = _floats(lookup(config, "model.data_preprocessor.mean"), 3)
    std = _floats(lookup(config, "model.data_preprocessor.std"), 3)
    to_rgb = lookup(config, "model.data_preprocessor.bgr_to_rgb")
    divisor = lookup(config, "model.data_preprocessor.pad_size_divisor")
    if mean is None and lookup(config, "img_norm_cfg") is not None:
        mean = _floats(lookup(config, "img_norm_cfg.mean"), 3)
        std = _floats(lookup(config, "img_norm_cfg.std"), 3)
        to_rgb = lookup(config, "img_norm_cfg.to_rgb")
    found = mean is not None and std is not None
    preprocess = Preprocess(
        mean=mean or default.mean,  # type: ignore[arg-type]
        std=std or default.std,  # type: ignore[arg-type]
        bgr_to_rgb=to_rgb if isinstance(to_rgb, bool) else default.bgr_to_rgb,
        pad_size_divisor=_int_or(divisor, default.pad_size_divisor),
    )
    if found:
        hp.notes.append(
            f"input normalisation from the saved config: mean {list(preprocess.mean)}, std "
            f"{list(preprocess.std)}, {'RGB' if preprocess.bgr_to_rgb else 'BGR'} network input"
        )
    else:
        hp.notes.append(
            "input normalisation assumed (mmdetection's defaults, no saved config says): mean "
            f"{list(default.mean)}, std {list(default.std)}, RGB"
        )
    return preprocess


def _class_names(meta: Mapping[str, Any]) -> Sequence[str] | None:
    """dataset_meta.classes (mmengine) or CLASSES (mmcv runner), when a list of strings."""
    dataset_meta = meta.get("dataset_meta")
    names = dataset_meta.get("classes") if isinstance(dataset_meta, Mapping) else None
    if names is None:
        names = meta.get("CLASSES")
    if isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names):
        return tuple(names)
    return None
