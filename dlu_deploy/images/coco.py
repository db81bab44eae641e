"""COCO-format results, category mapping, and bbox AP through pycocotools.

Results follow the COCO detection results format: one record per detection,
{"image_id", "category_id", "bbox": [x, y, width, height], "score"}, boxes in the original
image's pixels. `dlu-deploy run` numbers images 1, 2, ... in the order processed and maps model
label i to category id i + 1 (written to images.json beside the results); `dlu-deploy eval`
uses the annotation file's image ids and the mapping of `category_mapping`.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlu_deploy.errors import UserError
from dlu_deploy.images.model import Detections

BBOX_METRICS = (
    "AP",
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR_1",
    "AR_10",
    "AR_100",
    "AR_small",
    "AR_medium",
    "AR_large",
)


def detection_records(
    image_id: int, detections: Detections, category_of: Mapping[int, int]
) -> list[dict[str, Any]]:
    """COCO result records of one image; labels without a category are left out."""
    records = []
    for box, score, label in zip(
        detections.boxes, detections.scores, detections.labels, strict=True
    ):
        category = category_of.get(int(label))
        if category is None:
            continue
        x1, y1, x2, y2 = (float(v) for v in box)
        records.append(
            {
                "image_id": int(image_id),
                "category_id": int(category),
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "score": float(score),
            }
        )
    return records


@dataclass
class CategoryMapping:
    category_of: dict[int, int]  # model label -> COCO category id
    how: str  # "names" or "order"
    notes: list[str] = field(default_factory=list)


def category_mapping(
    class_names: Sequence[str] | None,
    categories: Sequence[Mapping[str, Any]],
    num_labels: int | None = None,
) -> CategoryMapping:
    """Model labels to the annotation file's category ids.

    By name when the model records class names and every annotated category's name is one of
    them (labels without a category are then ignored); otherwise by order: label i is the
    i-th category sorted by id (mmdetection's CocoDataset order), with a note saying so.
    """
    ordered = sorted(categories, key=lambda c: int(c["id"]))
    if class_names:
        index = {name: i for i, name in enumerate(class_names)}
        names = [str(c["name"]) for c in ordered]
        if names and all(name in index for name in names):
            mapping = {index[str(c["name"])]: int(c["id"]) for c in ordered}
            notes = []
            unused = len(class_names) - len(mapping)
            if unused:
                notes.append(
                    f"{unused} of the model's {len(class_names)} classes have no category in "
                    "the annotations; their detections are ignored"
                )
            return CategoryMapping(mapping, "names", notes)
        missing = [n for n in names if n not in index][:5]
        note = (
            "the annotation categories do not all appear among the model's class names "
            f"(e.g. {', '.join(missing)}): mapped by order instead (label i = i-th category "
            "by id)"
        )
    else:
        note = "the model records no class names: mapped by order (label i = i-th category by id)"
    count = len(ordered) if num_labels is None else min(num_labels, len(ordered))
    if num_labels is not None and num_labels != len(ordered):
        note += f"; the model has {num_labels} classes, the annotations {len(ordered)}"
    mapping = {i: int(ordered[i]["id"]) for i in range(count)}
    return CategoryMapping(mapping, "order", [note])


def quiet_coco(dataset: Mapping[str, Any]) -> Any:
    """A pycocotools COCO object over an in-memory dataset (its prints swallowed)."""
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = dict(dataset)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def load_annotations(path: str) -> Any:
    """The COCO annotation file at `path`, checked enough for bbox evaluation."""
    import json
    from pathlib import Path

    file = Path(path)
    if not file.is_file():
        raise UserError(f"The annotation file {file} does not exist.", "Check --coco.")
    try:
        dataset = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(
            f"{file} is not valid JSON ({exc}).", "Pass a COCO annotation file (instances_*.json)."
        ) from exc
    if not isinstance(dataset, dict) or not all(
        isinstance(dataset.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise UserError(
            f"{file} is not a COCO annotation file (it needs lists 'images', 'annotations' "
            "and 'categories').",
            "Pass a COCO annotation file (instances_*.json), or use --self-reference.",
        )
    for ann in dataset["annotations"]:
        if "area" not in ann and "bbox" in ann:
            ann["area"] = float(ann["bbox"][2]) * float(ann["bbox"][3])
        ann.setdefault("iscrowd", 0)
    return quiet_coco(dataset)


def evaluate_bbox(
    ground_truth: Any, records: Sequence[Mapping[str, Any]], image_ids: Sequence[int]
) -> dict[str, float]:
    """COCO bbox metrics (BBOX_METRICS) of `records` on `image_ids` (pycocotools COCOeval)."""
    from pycocotools.cocoeval import COCOeval

    if not records:
        # COCOeval cannot load an empty result list; no detections: 0 where there is ground truth.
        has_gt = bool(ground_truth.getAnnIds(imgIds=list(image_ids), iscrowd=None))
        return dict.fromkeys(BBOX_METRICS, 0.0 if has_gt else -1.0)
    with contextlib.redirect_stdout(io.StringIO()):
        detections = ground_truth.loadRes([dict(r) for r in records])
        evaluator = COCOeval(ground_truth, detections, "bbox")
        evaluator.params.imgIds = sorted(int(i) for i in image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(v) for name, v in zip(BBOX_METRICS, evaluator.stats, strict=True)}


def self_reference_dataset(
    images: Sequence[Mapping[str, Any]],
    detections: Mapping[int, Detections],
    category_of: Mapping[int, int],
    score_threshold: float,
) -> dict[str, Any]:
    """A COCO annotation set whose ground truth is `detections` with score >= threshold."""
    annotations: list[dict[str, Any]] = []
    for image_id, found in detections.items():
        for record in detection_records(image_id, found.above(score_threshold), category_of):
            width, height = record["bbox"][2], record["bbox"][3]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": record["category_id"],
                    "bbox": record["bbox"],
                    "area": float(width * height),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": c, "name": str(c)} for c in sorted(set(category_of.values()))]
    return {"images": list(images), "annotations": annotations, "categories": categories}


def confusion_matrix(
    truth: np.ndarray, predicted: np.ndarray, num_classes: int, ignore_index: int
) -> np.ndarray:
    """[num_classes, num_classes] pixel counts (row: truth, column: prediction); pixels whose
    truth is ignore_index or outside 0 .. num_classes-1 are not counted."""
    valid = (truth != ignore_index) & (truth >= 0) & (truth < num_classes)
    pairs = truth[valid].astype(np.int64) * num_classes + predicted[valid].astype(np.int64)
    return np.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def segmentation_metrics(confusion: np.ndarray) -> dict[str, Any]:
    """mIoU (mean over classes present in truth or prediction), pixel accuracy, IoU per class."""
    diagonal = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - diagonal
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, diagonal / union, np.nan)
    total = confusion.sum()
    return {
        "mIoU": float(np.nanmean(iou)) if np.any(union > 0) else float("nan"),
        "aAcc": float(diagonal.sum() / total) if total else float("nan"),
        "IoU": [None if np.isnan(v) else float(v) for v in iou],
    }
