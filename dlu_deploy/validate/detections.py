"""Detections compared as detections: boxes matched one-to-one by label, IoU and score.

A detector's outputs are `dets` float32 [N, K, 5] (x1, y1, x2, y2, score in input pixels) and
`labels` int64 [N, K], sorted by score, rows past the last detection zero with label -1
(`DETECTION_OUTPUTS`; docs/runner.md, "Detectors"). Element-wise errors say little about them:
a box that moves from rank 7 to rank 8 changes two rows completely. So, per image:

- a reference and a deployed detection may pair when their labels are equal, their IoU is at
  least `iou` and their scores differ by at most `score`;
- the pairs are a maximum one-to-one assignment (augmenting paths, references tried by
  descending score, partners by descending IoU). With the default IoU >= 0.95 it is also the
  only one: the Jaccard distance 1 - IoU is a metric, so two deployed boxes that both overlap
  one reference box by IoU >= t overlap each other by IoU >= 2t - 1 = 0.9, which class-wise
  NMS (IoU threshold 0.5) never lets through. Greedy matching by score (pycocotools) finds
  the same pairs there; the assignment also stays exact for lower thresholds and for outputs
  without NMS;
- a detection whose score lies within `score` of a boundary, the score threshold of the
  detector or the K-th (last) score of a full list on either side, may legitimately be there
  on one side only: its score moving by the tolerance moves it across the boundary. Unmatched,
  it is "excused": counted neither as missing nor as extra (and left out of the fractions).

The verdict needs both matched fractions (of the reference's detections, and of the deployed
model's) to reach `min_matched`, and the deployed output to be well-formed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlu_deploy.errors import UserError

DETECTION_OUTPUTS = ("dets", "labels")
EXCUSED_WARNING = 0.2  # share of excused reference detections above which the report warns


def is_detector(output_names: Iterable[str]) -> bool:
    """True for models with the detector outputs (`dets`, `labels`)."""
    names = set(output_names)
    return all(n in names for n in DETECTION_OUTPUTS)


@dataclass(frozen=True)
class DetectionTolerance:
    iou: float  # smallest IoU of a matched pair
    score: float  # largest |score difference| of a matched pair
    min_matched: float  # smallest matched fraction, both ways


# fp32: issue 10's criterion. fp16: 11-bit mantissas round coordinates near 1000 px to 0.5 px
# (a 1 px shift of each side of a 32 px box is IoU 0.94) and the float16 features move logits
# by ~1e-2, softmax scores by up to a few 1e-2.
DEFAULT_DETECTION_TOLERANCES = {
    "fp32": DetectionTolerance(iou=0.95, score=0.01, min_matched=0.99),
    "fp16": DetectionTolerance(iou=0.9, score=0.05, min_matched=0.95),
}


def make_detection_tolerance(
    precision: str,
    *,
    iou: float | None = None,
    score: float | None = None,
    min_matched: float | None = None,
) -> DetectionTolerance:
    """The precision's defaults with the given parts replaced (checked)."""
    base = DEFAULT_DETECTION_TOLERANCES[precision]
    tolerance = DetectionTolerance(
        base.iou if iou is None else iou,
        base.score if score is None else score,
        base.min_matched if min_matched is None else min_matched,
    )
    if not 0 < tolerance.iou <= 1:
        raise UserError(f"--det-iou {tolerance.iou:g} is outside (0, 1].", "Use e.g. 0.95.")
    if not tolerance.score >= 0:
        raise UserError(f"--det-score {tolerance.score:g} is negative.", "Use e.g. 0.01.")
    if not 0 <= tolerance.min_matched <= 1:
        raise UserError(
            f"--det-min-matched {tolerance.min_matched:g} is outside [0, 1].",
            "Give a fraction, e.g. 0.99 for 99 %.",
        )
    return tolerance


@dataclass(frozen=True)
class Detections:
    """The detections of one image (padding rows removed), scores in descending order."""

    boxes: np.ndarray  # [M, 4] float64, x1 y1 x2 y2
    scores: np.ndarray  # [M] float64
    labels: np.ndarray  # [M] int64
    capacity: int  # K: rows of the output

    @property
    def full(self) -> bool:
        return len(self.scores) == self.capacity

    def __len__(self) -> int:
        return len(self.scores)


def split_images(dets: np.ndarray, labels: np.ndarray) -> list[Detections]:
    """Per-image detections of a [N, K, 5] / [N, K] pair: the rows with label >= 0."""
    dets, labels = np.asarray(dets), np.asarray(labels)
    if dets.ndim != 3 or dets.shape[2] != 5 or labels.shape != dets.shape[:2]:
        raise UserError(
            f"The detector outputs have shapes dets {dets.shape}, labels {labels.shape}; "
            "expected [N, K, 5] and [N, K].",
            "Export the whole detector with dlu-export (outputs dets and labels), or validate "
            "a model with other outputs element by element.",
        )
    images = []
    for image_dets, image_labels in zip(dets.astype(np.float64), labels, strict=True):
        valid = image_labels >= 0
        images.append(
            Detections(
                image_dets[valid, :4],
                image_dets[valid, 4],
                image_labels[valid].astype(np.int64),
                capacity=int(labels.shape[1]),
            )
        )
    return images


def format_problems(dets: np.ndarray, labels: np.ndarray) -> list[str]:
    """Where a [N, K, 5] / [N, K] pair breaks the detector output format, in words."""
    problems = []
    for index, (d, lab) in enumerate(zip(np.asarray(dets), np.asarray(labels), strict=True)):
        valid = lab >= 0
        count = int(valid.sum())
        where = f"image {index}"
        if not valid[:count].all():
            problems.append(f"{where}: padding rows (label -1) before detections")
        if not np.isfinite(d[valid]).all():
            problems.append(f"{where}: non-finite box or score values")
        scores = d[valid, 4].astype(np.float64)
        if (np.diff(scores) > 0).any():
            problems.append(f"{where}: detections not sorted by descending score")
        if (d[~valid] != 0).any():
            problems.append(f"{where}: padding rows are not zero")
        boxes = d[valid, :4]
        if (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
            problems.append(f"{where}: boxes with x2 < x1 or y2 < y1")
    return problems


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix [len(a), len(b)] of x1 y1 x2 y2 boxes (areas as mmdetection: no +1).
    Identical boxes have IoU 1 even when empty (boxes clipped flat at the image border)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    width = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    height = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    identical = (a[:, None, :] == b[None, :, :]).all(axis=2)
    return np.where(identical, 1.0, iou)


@dataclass(frozen=True)
class ImageMatch:
    """One image: reference (PyTorch) against candidate (deployed) detections."""

    reference: int  # detections of the reference
    candidate: int  # detections of the candidate
    pairs: list[tuple[int, int]]  # (reference index, candidate index), matched
    missing: list[int]  # unmatched reference detections that count
    # of those, how many have a same-label deployed box at IoU >= iou (so the score differs)
    missing_by_score: int
    extra: list[int]  # unmatched candidate detections that count
    excused_reference: list[int]  # unmatched, but within the score tolerance of a boundary
    excused_candidate: list[int]
    max_box_diff: float  # largest |coordinate difference| of a matched pair, pixels
    max_score_diff: float  # largest |score difference| of a matched pair
    min_iou: float  # smallest IoU of a matched pair (1 when none)

    @property
    def matched(self) -> int:
        return len(self.pairs)

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "candidate": self.candidate,
            "matched": self.matched,
            "missing": self.missing,
            "missing_by_score": self.missing_by_score,
            "extra": self.extra,
            "excused_reference": self.excused_reference,
            "excused_candidate": self.excused_candidate,
            "max_box_diff": self.max_box_diff,
            "max_score_diff": self.max_score_diff,
            "min_iou": self.min_iou,
        }


def match_image(
    reference: Detections,
    candidate: Detections,
    tolerance: DetectionTolerance,
    score_threshold: float | None = None,
) -> ImageMatch:
    """The maximum one-to-one matching of the module docstring, and what is left over."""
    iou = box_iou(reference.boxes, candidate.boxes)
    score_diff = np.abs(reference.scores[:, None] - candidate.scores[None, :])
    overlapping = (reference.labels[:, None] == candidate.labels[None, :]) & (iou >= tolerance.iou)
    allowed = overlapping & (score_diff <= tolerance.score)
    partner_of = _maximum_matching(allowed, reference.scores, iou)
    pairs = sorted(partner_of.items())
    taken = set(partner_of.values())
    boundaries = [b for b in (score_threshold,) if b is not None]
    boundaries += [float(d.scores[-1]) for d in (reference, candidate) if d.full and len(d)]

    def near_boundary(score: float) -> bool:
        return any(abs(score - b) <= tolerance.score for b in boundaries)

    unmatched_ref = [i for i in range(len(reference)) if i not in partner_of]
    unmatched_cand = [j for j in range(len(candidate)) if j not in taken]
    box_diffs = [float(np.abs(reference.boxes[i] - candidate.boxes[j]).max()) for i, j in pairs]
    missing = [i for i in unmatched_ref if not near_boundary(float(reference.scores[i]))]
    return ImageMatch(
        reference=len(reference),
        candidate=len(candidate),
        pairs=pairs,
        missing=missing,
        missing_by_score=sum(bool(overlapping[i].any()) for i in missing),
        extra=[j for j in unmatched_cand if not near_boundary(float(candidate.scores[j]))],
        excused_reference=[i for i in unmatched_ref if near_boundary(float(reference.scores[i]))],
        excused_candidate=[j for j in unmatched_cand if near_boundary(float(candidate.scores[j]))],
        max_box_diff=max(box_diffs, default=0.0),
        max_score_diff=max((float(score_diff[i, j]) for i, j in pairs), default=0.0),
        min_iou=min((float(iou[i, j]) for i, j in pairs), default=1.0),
    )


def _maximum_matching(
    allowed: np.ndarray, reference_scores: np.ndarray, iou: np.ndarray
) -> dict[int, int]:
    """Maximum bipartite matching (Kuhn's augmenting paths): {reference: candidate}."""
    owner: dict[int, int] = {}  # candidate -> reference
    # each reference's possible partners, best IoU first (stable: ties by index)
    options: list[list[int]] = [
        [int(j) for j in np.flatnonzero(row)[np.argsort(-iou[i][row], kind="stable")]]
        for i, row in enumerate(allowed)
    ]

    def augment(root: int) -> bool:
        """Depth-first search for a path ending at a free candidate, then flip it (iterative:
        paths may be as long as the detection lists)."""
        visited: set[int] = set()
        people, choices, chosen = [root], [iter(options[root])], []
        while people:
            for j in choices[-1]:
                if j in visited:
                    continue
                visited.add(j)
                chosen.append(j)
                if j not in owner:
                    for i, k in zip(people, chosen, strict=True):
                        owner[k] = i
                    return True
                people.append(owner[j])
                choices.append(iter(options[owner[j]]))
                break
            else:
                people.pop()
                choices.pop()
                if chosen:
                    chosen.pop()
        return False

    for i in np.argsort(-reference_scores, kind="stable").tolist():
        if options[i]:
            augment(i)
    return {i: j for j, i in owner.items()}


@dataclass(frozen=True)
class MatchSummary:
    """Images of one run together: matched fractions both ways."""

    images: list[ImageMatch]

    @property
    def matched(self) -> int:
        return sum(m.matched for m in self.images)

    @property
    def missing(self) -> int:
        return sum(len(m.missing) for m in self.images)

    @property
    def missing_by_score(self) -> int:
        return sum(m.missing_by_score for m in self.images)

    @property
    def extra(self) -> int:
        return sum(len(m.extra) for m in self.images)

    @property
    def excused(self) -> tuple[int, int]:
        """Unmatched but excused detections: (reference's, deployed model's)."""
        return (
            sum(len(m.excused_reference) for m in self.images),
            sum(len(m.excused_candidate) for m in self.images),
        )

    @property
    def reference_counted(self) -> int:
        return sum(m.matched + len(m.missing) for m in self.images)

    @property
    def candidate_counted(self) -> int:
        return sum(m.matched + len(m.extra) for m in self.images)

    @property
    def reference_fraction(self) -> float:
        """Matched share of the reference's detections (excused ones left out); 1 if none."""
        return self.matched / self.reference_counted if self.reference_counted else 1.0

    @property
    def candidate_fraction(self) -> float:
        return self.matched / self.candidate_counted if self.candidate_counted else 1.0

    @property
    def max_box_diff(self) -> float:
        return max((m.max_box_diff for m in self.images), default=0.0)

    @property
    def max_score_diff(self) -> float:
        return max((m.max_score_diff for m in self.images), default=0.0)

    def reaches(self, min_matched: float) -> bool:
        return min(self.reference_fraction, self.candidate_fraction) >= min_matched

    def at_least_as_good_as(self, other: MatchSummary) -> bool:
        return (
            self.reference_fraction >= other.reference_fraction
            and self.candidate_fraction >= other.candidate_fraction
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "matched": self.matched,
            "reference_fraction": self.reference_fraction,
            "candidate_fraction": self.candidate_fraction,
            "max_box_diff": self.max_box_diff,
            "max_score_diff": self.max_score_diff,
            "images": [m.to_json() for m in self.images],
        }


def match_outputs(
    reference: tuple[np.ndarray, np.ndarray],
    candidate: tuple[np.ndarray, np.ndarray],
    tolerance: DetectionTolerance,
    score_threshold: float | None = None,
) -> MatchSummary:
    """`match_image` over the images of a batch ((dets, labels) on each side)."""
    ref_images, cand_images = split_images(*reference), split_images(*candidate)
    if len(ref_images) != len(cand_images):
        raise UserError(
            f"The deployed model returned detections for {len(cand_images)} images, the "
            f"reference for {len(ref_images)}.",
            "Check the model's batch dimension (dlu-export --dynamic exports a dynamic batch).",
        )
    return MatchSummary(
        [
            match_image(r, c, tolerance, score_threshold)
            for r, c in zip(ref_images, cand_images, strict=True)
        ]
    )


@dataclass(frozen=True)
class DetectionComparison:
    """Deployed detections against PyTorch fp32, and (when run) both against PyTorch fp64."""

    tolerance: DetectionTolerance
    score_threshold: float | None
    deployed: MatchSummary  # reference = PyTorch fp32
    problems: list[str] = field(default_factory=list)  # format of the deployed output
    # noise floor: PyTorch fp32 vs fp64, deployed vs fp64 (None without the fp64 run)
    reference_vs_fp64: MatchSummary | None = None
    deployed_vs_fp64: MatchSummary | None = None

    @property
    def rule(self) -> str | None:
        """The rule that passed ('tolerance', then 'noise floor'), None when none did."""
        if self.problems:
            return None
        if self.deployed.reaches(self.tolerance.min_matched):
            return "tolerance"
        if (
            self.reference_vs_fp64 is not None
            and self.deployed_vs_fp64 is not None
            and self.deployed_vs_fp64.at_least_as_good_as(self.reference_vs_fp64)
        ):
            return "noise floor"
        return None

    @property
    def passed(self) -> bool:
        return self.rule is not None

    @property
    def problem(self) -> str | None:
        if self.problems:
            return "; ".join(self.problems)
        if self.passed:
            return None
        d, t = self.deployed, self.tolerance
        text = (
            f"{d.reference_fraction:.1%} of the reference's and {d.candidate_fraction:.1%} of "
            f"the deployed detections matched (label, IoU >= {t.iou:g}, |score difference| <= "
            f"{t.score:g}); at least {t.min_matched:.1%} both ways is required"
        )
        if d.missing:
            text += (
                f"; of the {d.missing} missing reference detections, "
                f"{d.missing - d.missing_by_score} have no deployed box of their label at IoU >= "
                f"{t.iou:g}, {d.missing_by_score} have one whose score differs by more than "
                f"{t.score:g}"
            )
        return text

    @property
    def warnings(self) -> list[str]:
        """When the verdict says little: no detections, or mostly excused ones."""
        total = sum(m.reference for m in self.deployed.images)
        excused = self.deployed.excused[0]
        if total == 0:
            return [
                "the reference found no detections: nothing about boxes was compared; validate "
                "on real images (--inputs images.npz)"
            ]
        if excused > EXCUSED_WARNING * total:
            return [
                f"{excused} of {total} reference detections were excused (unmatched, scores "
                f"within {self.tolerance.score:g} of the score threshold or the K-th score): "
                "clustered scores, typical of stand-in weights or random images; validate on "
                "real images (--inputs images.npz) for a comparison that says more"
            ]
        return []

    def to_json(self) -> dict[str, Any]:
        return {
            "warnings": self.warnings,
            "tolerance": {
                "iou": self.tolerance.iou,
                "score": self.tolerance.score,
                "min_matched": self.tolerance.min_matched,
            },
            "score_threshold": self.score_threshold,
            "passed": self.passed,
            "rule": self.rule,
            "problem": self.problem,
            "format_problems": self.problems,
            "deployed_vs_reference": self.deployed.to_json(),
            "reference_vs_fp64": _json_or_none(self.reference_vs_fp64),
            "deployed_vs_fp64": _json_or_none(self.deployed_vs_fp64),
        }


def _json_or_none(summary: MatchSummary | None) -> dict[str, Any] | None:
    return None if summary is None else summary.to_json()


def find_score_threshold(values: Sequence[object]) -> float | None:
    """The first number among `values` (a CLI value, a model attribute, recorded metadata)."""
    for value in values:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None
