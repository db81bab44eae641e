"""Matching two detection lists (same image) by label and IoU, for tests and comparisons.

Written for the detector's tests; `dlu-deploy validate` has its own matcher.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Matched:
    reference: int  # detections in the reference
    candidate: int
    matched: int
    max_box_diff: float  # over matched pairs, input pixels
    max_score_diff: float

    @property
    def fraction(self) -> float:
        return self.matched / max(self.reference, self.candidate, 1)


def valid_rows(dets: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = labels >= 0
    return dets[keep], labels[keep]


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[A, 4] x [B, 4] -> [A, B]."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:4], b[None, :, 2:4])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match(
    ref_dets: np.ndarray,
    ref_labels: np.ndarray,
    dets: np.ndarray,
    labels: np.ndarray,
    min_iou: float = 0.95,
    max_score_diff: float = 0.01,
) -> Matched:
    """Greedy, best reference first: each reference detection takes the unmatched candidate of
    the same label with the highest IoU (>= min_iou) and a score within max_score_diff."""
    ref_dets, ref_labels = valid_rows(np.asarray(ref_dets, np.float64), np.asarray(ref_labels))
    dets, labels = valid_rows(np.asarray(dets, np.float64), np.asarray(labels))
    overlaps = iou(ref_dets[:, :4], dets[:, :4]) if len(ref_dets) and len(dets) else None
    used = np.zeros(len(dets), dtype=bool)
    count, box_diff, score_diff = 0, 0.0, 0.0
    for i in np.argsort(-ref_dets[:, 4], kind="stable"):
        if overlaps is None:
            break
        ok = (
            ~used
            & (labels == ref_labels[i])
            & (overlaps[i] >= min_iou)
            & (np.abs(dets[:, 4] - ref_dets[i, 4]) <= max_score_diff)
        )
        if not ok.any():
            continue
        j = int(np.argmax(np.where(ok, overlaps[i], -1)))
        used[j] = True
        count += 1
        box_diff = max(box_diff, float(np.abs(dets[j, :4] - ref_dets[i, :4]).max()))
        score_diff = max(score_diff, float(abs(dets[j, 4] - ref_dets[i, 4])))
    return Matched(len(ref_dets), len(dets), count, box_diff, score_diff)
