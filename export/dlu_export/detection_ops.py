"""Standard ONNX nodes for the detection custom ops (dlu_deploy/ops/detection.py), in both modes.

- `dlu_deploy::nms_mask` -> NonMaxSuppression (center_point_box=0; the three limits as scalar
  constants, which TensorRT's importer requires to be initializers), then ScatterND of ones
  into zeros shaped like the scores: the selected-index list becomes a fixed-shape mask. ONNX
  defines NonMaxSuppression on float32 only, so an fp16 graph casts around it.
- `dlu_deploy::roi_align` -> RoiAlign-16, mode avg, every attribute written out (TensorRT's
  importer defaults sampling_ratio to 1 where ONNX says 0); aligned=True is
  coordinate_transformation_mode=half_pixel.

Which of these ops and attributes TensorRT parses is listed in docs/export.md ("Detectors").
"""

from __future__ import annotations

from collections.abc import Callable

import onnxscript
import torch
from onnx import TensorProto

import dlu_deploy.ops.detection  # noqa: F401  (registers the custom ops)

from .tracing import EXPORTER_OPSET

op = onnxscript.values.Opset("", EXPORTER_OPSET)


def nms_mask_to_onnx(
    boxes,
    scores,
    max_output_boxes_per_class: int,
    iou_threshold: float,
    score_threshold: float,
):
    selected = op.NonMaxSuppression(
        op.Cast(boxes, to=TensorProto.FLOAT),
        op.Cast(scores, to=TensorProto.FLOAT),
        op.Constant(value_int=max_output_boxes_per_class),
        op.Constant(value_float=iou_threshold),
        op.Constant(value_float=score_threshold),
        center_point_box=0,
    )
    zeros = op.CastLike(op.ConstantOfShape(op.Shape(scores)), scores)
    ones = op.Expand(op.CastLike(op.Constant(value_float=1.0), scores), op.Shape(selected, end=1))
    return op.ScatterND(zeros, selected, ones)


def roi_align_to_onnx(
    features,
    rois,
    batch_indices,
    output_height: int,
    output_width: int,
    sampling_ratio: int,
    spatial_scale: float,
    aligned: bool,
):
    return op.RoiAlign(
        features,
        op.CastLike(rois, features),
        batch_indices,
        coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel",
        mode="avg",
        output_height=output_height,
        output_width=output_width,
        sampling_ratio=sampling_ratio,
        spatial_scale=spatial_scale,
    )


def translation_table() -> dict[object, Callable[..., object]]:
    return {
        torch.ops.dlu_deploy.nms_mask.default: nms_mask_to_onnx,
        torch.ops.dlu_deploy.roi_align.default: roi_align_to_onnx,
    }
