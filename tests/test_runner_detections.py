"""Detections compared as detections: the matching against a brute-force search over every
one-to-one assignment, the near-boundary rule transcribed from docs/runner.md, and validate
end to end (API and CLI) on a small real detector exported to ONNX."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dlu_deploy.checkpoints import registry
from dlu_deploy.cli import EXIT_FAIL, EXIT_USER_ERROR, main
from dlu_deploy.errors import UserError
from dlu_deploy.validate import (
    DEFAULT_DETECTION_TOLERANCES,
    DetectionComparison,
    DetectionTolerance,
    generate_inputs,
    is_detector,
    make_detection_tolerance,
    match_outputs,
    open_candidate,
    validate,
)
from dlu_deploy.validate.detections import (
    Detections,
    box_iou,
    format_problems,
    match_image,
    split_images,
)
from tests import runner_detector, runner_models

# ----------------------------------------------------------------------------- oracle


def _iou(a: list[float], b: list[float]) -> float:
    """Plain-Python IoU (areas without +1; identical boxes 1)."""
    if a == b:
        return 1.0
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _may_pair(ref: Detections, cand: Detections, i: int, j: int, tol: DetectionTolerance) -> bool:
    return (
        int(ref.labels[i]) == int(cand.labels[j])
        and _iou(ref.boxes[i].tolist(), cand.boxes[j].tolist()) >= tol.iou
        and abs(float(ref.scores[i]) - float(cand.scores[j])) <= tol.score
    )


def _most_pairs(ref: Detections, cand: Detections, tol: DetectionTolerance) -> int:
    """The size of the largest one-to-one matching, by trying every assignment."""
    options = [
        [j for j in range(len(cand)) if _may_pair(ref, cand, i, j, tol)] for i in range(len(ref))
    ]
    best = 0

    def search(i: int, used: frozenset[int], count: int) -> None:
        nonlocal best
        if count + (len(ref) - i) <= best:
            return
        if i == len(ref):
            best = count
            return
        for j in options[i]:
            if j not in used:
                search(i + 1, used | {j}, count + 1)
        search(i + 1, used, count)

    search(0, frozenset(), 0)
    return best


def _excused(
    score: float, ref: Detections, cand: Detections, tol: float, thr: float | None
) -> bool:
    """docs/runner.md: within the score tolerance of the threshold or a full list's last score."""
    bounds = [] if thr is None else [thr]
    bounds += [float(d.scores[-1]) for d in (ref, cand) if len(d) == d.capacity and len(d)]
    return any(abs(score - b) <= tol for b in bounds)


# ----------------------------------------------------------------------------- synthetic sets


def _detections(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, k: int) -> Detections:
    order = np.argsort(-scores, kind="stable")
    return Detections(boxes[order], scores[order], labels[order].astype(np.int64), capacity=k)


def _random_pair(seed: int) -> tuple[Detections, Detections]:
    """Reference detections and a deployed version: moved boxes and scores, flipped labels,
    lost detections, duplicates (several candidates near one reference) and strays."""
    rng = np.random.default_rng(seed)
    m = int(rng.integers(0, 7))
    xy = rng.uniform(0, 40, (m, 2))
    wh = rng.uniform(0.5, 25, (m, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1)
    scores = rng.uniform(0.05, 1.0, m)
    labels = rng.integers(0, 3, m)
    noise = rng.choice([0.01, 0.3, 1.5])
    cb, cs, cl = [], [], []
    for i in range(m):
        for _ in range(int(rng.choice([0, 1, 1, 1, 2]))):
            cb.append(boxes[i] + rng.normal(0, noise, 4))
            cs.append(np.clip(scores[i] + rng.normal(0, 0.01), 0, 1))
            cl.append(labels[i] if rng.random() > 0.1 else (labels[i] + 1) % 3)
    for _ in range(int(rng.integers(0, 3))):
        xy = rng.uniform(0, 40, 2)
        cb.append(np.concatenate([xy, xy + rng.uniform(0.5, 25, 2)]))
        cs.append(rng.uniform(0.05, 1.0))
        cl.append(int(rng.integers(0, 3)))
    cand_boxes = np.array(cb).reshape(-1, 4)
    cand_boxes[:, 2:] = np.maximum(cand_boxes[:, 2:], cand_boxes[:, :2])
    k = max(m, len(cb), 1) + int(rng.integers(0, 2))  # sometimes exactly full
    return (
        _detections(boxes, scores, labels, k),
        _detections(cand_boxes, np.array(cs, float), np.array(cl, int), k),
    )


def test_iou_matrix_matches_the_plain_formula() -> None:
    rng = np.random.default_rng(0)
    a = np.concatenate([xy := rng.uniform(0, 20, (7, 2)), xy + rng.uniform(0, 10, (7, 2))], 1)
    b = np.concatenate([xy := rng.uniform(0, 20, (5, 2)), xy + rng.uniform(0, 10, (5, 2))], 1)
    a[0, 2] = a[0, 0]  # an empty (flat) box
    b[0] = a[0]  # ... and its twin
    got = box_iou(a, b)
    for i, j in itertools.product(range(7), range(5)):
        assert got[i, j] == pytest.approx(_iou(a[i].tolist(), b[j].tolist()), abs=1e-12)
    assert got[0, 0] == 1.0


@pytest.mark.parametrize("seed", range(150))
def test_matching_is_a_maximum_assignment(seed: int) -> None:
    ref, cand = _random_pair(seed)
    tol = [
        DetectionTolerance(0.95, 0.01, 0.99),
        DetectionTolerance(0.7, 0.02, 0.9),
        DetectionTolerance(0.5, 0.05, 0.9),
    ][seed % 3]
    thr = [None, 0.3][seed % 2]
    got = match_image(ref, cand, tol, thr)
    assert got.matched == _most_pairs(ref, cand, tol)
    # one-to-one, every pair allowed
    assert len({i for i, _ in got.pairs}) == len({j for _, j in got.pairs}) == got.matched
    assert all(_may_pair(ref, cand, i, j, tol) for i, j in got.pairs)
    # unmatched detections: missing / extra unless near a boundary
    paired_ref, paired_cand = {i for i, _ in got.pairs}, {j for _, j in got.pairs}
    for i in set(range(len(ref))) - paired_ref:
        excused = _excused(float(ref.scores[i]), ref, cand, tol.score, thr)
        assert (i in got.excused_reference, i in got.missing) == (excused, not excused)
    for j in set(range(len(cand))) - paired_cand:
        excused = _excused(float(cand.scores[j]), ref, cand, tol.score, thr)
        assert (j in got.excused_candidate, j in got.extra) == (excused, not excused)
    want_box = max(
        (float(np.abs(ref.boxes[i] - cand.boxes[j]).max()) for i, j in got.pairs), default=0.0
    )
    assert got.max_box_diff == want_box
    by_score = [
        i
        for i in got.missing
        if any(
            ref.labels[i] == cand.labels[j]
            and _iou(ref.boxes[i].tolist(), cand.boxes[j].tolist()) >= tol.iou
            for j in range(len(cand))
        )
    ]
    assert got.missing_by_score == len(by_score)


def test_matching_beats_greedy_where_boxes_compete() -> None:
    """Without NMS and at a low IoU threshold, greedy by score pairs A with its best box c1 and
    leaves B (which only c1 fits) alone; the maximum assignment pairs A-c2 and B-c1."""
    tol = DetectionTolerance(0.8, 0.1, 0.99)
    ref = _one([[0, 0, 10, 10], [0, 0, 10, 9]], [0.9, 0.8], [0, 0], 10)
    # IoU: A-c1 1, A-c2 0.83, B-c1 0.9, B-c2 0.75
    cand = _one([[0, 0, 10, 10], [0, 0, 10, 12]], [0.85, 0.85], [0, 0], 10)
    got = match_image(ref, cand, tol)
    assert got.matched == _most_pairs(ref, cand, tol) == 2
    assert got.pairs == [(0, 1), (1, 0)]


def test_after_class_wise_nms_each_reference_box_has_at_most_one_partner() -> None:
    """The docstring's claim: at IoU >= 0.95, boxes that survived NMS at 0.5 never compete
    for one reference box, so greedy-by-score and the maximum assignment agree."""
    rng = np.random.default_rng(1)
    for _ in range(200):
        boxes = []
        for _ in range(30):  # greedy NMS at 0.5 over random boxes of one label
            xy = rng.uniform(0, 30, 2)
            box = np.concatenate([xy, xy + rng.uniform(2, 20, 2)]).tolist()
            if all(_iou(box, kept) <= 0.5 for kept in boxes):
                boxes.append(box)
        reference = (np.array(boxes[0]) + rng.normal(0, 0.2, 4)).tolist()
        partners = [b for b in boxes if _iou(reference, b) >= 0.95]
        assert len(partners) <= 1


def _one(boxes: list[list[float]], scores: list[float], labels: list[int], k: int) -> Detections:
    return Detections(np.array(boxes, float).reshape(-1, 4), np.array(scores), np.array(labels), k)


BOXES = [[0, 0, 10, 10], [20, 20, 30, 40], [5, 30, 25, 35], [40, 0, 50, 12]]


def test_near_the_score_threshold_a_lost_detection_is_excused() -> None:
    tol = DEFAULT_DETECTION_TOLERANCES["fp32"]
    ref = _one(BOXES, [0.9, 0.7, 0.5, 0.305], [0, 1, 2, 0], 10)
    cand = _one(BOXES[:3], [0.9, 0.7, 0.5], [0, 1, 2], 10)
    near = match_image(ref, cand, tol, score_threshold=0.3)
    assert (near.matched, near.missing, near.excused_reference) == (3, [], [3])
    far = match_image(ref, cand, tol, score_threshold=0.2)  # 0.305 is 0.105 above it
    assert (far.matched, far.missing, far.excused_reference) == (3, [3], [])
    unknown = match_image(ref, cand, tol)
    assert unknown.missing == [3]


def test_at_rank_k_a_swapped_last_detection_is_excused() -> None:
    tol = DEFAULT_DETECTION_TOLERANCES["fp32"]
    ref = _one(BOXES[:3], [0.9, 0.7, 0.500], [0, 1, 2], 3)
    cand = _one([*BOXES[:2], BOXES[3]], [0.9, 0.7, 0.505], [0, 1, 0], 3)
    full = match_image(ref, cand, tol)
    assert (full.matched, full.excused_reference, full.excused_candidate) == (2, [2], [2])
    assert full.missing == full.extra == []
    # the deployed list alone full: its last score (0.505) is still a boundary for both
    one_full = match_image(_one(BOXES[:3], [0.9, 0.7, 0.5], [0, 1, 2], 4), cand, tol)
    assert (one_full.excused_reference, one_full.excused_candidate) == ([2], [2])
    # neither list full: nothing was cut at rank K, both are errors
    roomy = match_image(
        _one(BOXES[:3], [0.9, 0.7, 0.5], [0, 1, 2], 4),
        _one([*BOXES[:2], BOXES[3]], [0.9, 0.7, 0.505], [0, 1, 0], 4),
        tol,
    )
    assert (roomy.missing, roomy.extra) == ([2], [2])


def test_moved_box_relabelled_and_rescored_detections_do_not_match() -> None:
    tol = DEFAULT_DETECTION_TOLERANCES["fp32"]
    moved = [[0, 0, 10, 10.6], *BOXES[1:]]  # IoU 10/10.6 = 0.943
    ref = _one(BOXES, [0.9, 0.8, 0.7, 0.6], [0, 1, 2, 0], 10)
    got = match_image(ref, _one(moved, [0.9, 0.8, 0.7, 0.6], [0, 1, 2, 0], 10), tol)
    assert got.missing == got.extra == [0] and got.missing_by_score == 0
    got = match_image(ref, _one(BOXES, [0.9, 0.8, 0.7, 0.6], [0, 1, 1, 0], 10), tol)
    assert got.missing == [2]
    got = match_image(ref, _one(BOXES, [0.9, 0.8, 0.7, 0.62], [0, 1, 2, 0], 10), tol)
    assert got.missing == [3] and got.missing_by_score == 1
    assert got.max_score_diff == pytest.approx(0.0) and got.max_box_diff == 0.0


def test_output_arrays_split_and_format_checked() -> None:
    dets = np.zeros((2, 4, 5), np.float32)
    labels = np.full((2, 4), -1, np.int64)
    dets[0, :2] = [[0, 0, 10, 10, 0.9], [5, 5, 8, 9, 0.4]]
    labels[0, :2] = [3, 1]
    images = split_images(dets, labels)
    assert [len(d) for d in images] == [2, 0] and images[0].labels.tolist() == [3, 1]
    assert format_problems(dets, labels) == []
    bad_dets, bad_labels = dets.copy(), labels.copy()
    bad_dets[1, 3, 0] = 1.0  # a padding row not zero
    bad_labels[0, :2] = [-1, 1]  # padding before a detection
    bad_dets[0, 2:4, 4] = [0.1, 0.3]
    bad_labels[0, 2:4] = [0, 0]  # unsorted scores
    problems = format_problems(bad_dets, bad_labels)
    assert "image 0: padding rows (label -1) before detections" in problems
    assert "image 0: detections not sorted by descending score" in problems
    assert "image 1: padding rows are not zero" in problems
    with pytest.raises(UserError, match=r"expected \[N, K, 5\] and \[N, K\]"):
        split_images(dets[:, :, :4], labels)
    summary = match_outputs((dets, labels), (dets, labels), DEFAULT_DETECTION_TOLERANCES["fp32"])
    assert summary.reference_fraction == summary.candidate_fraction == 1.0
    assert summary.matched == 2


def test_detection_tolerance_defaults_and_errors() -> None:
    assert make_detection_tolerance("fp32") == DetectionTolerance(0.95, 0.01, 0.99)
    assert make_detection_tolerance("fp16", score=0.1).score == 0.1
    for kwargs, needle in (
        ({"iou": 0.0}, "--det-iou"),
        ({"score": -1.0}, "--det-score"),
        ({"min_matched": 99.0}, "--det-min-matched"),
    ):
        with pytest.raises(UserError, match=needle):
            make_detection_tolerance("fp32", **kwargs)  # type: ignore[arg-type]
    assert is_detector(["labels", "dets"]) and not is_detector(["dets"])


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def detector() -> runner_models.Reference:
    model = runner_detector.make_detector()
    return runner_models.Reference(
        model, ["image"], ["dets", "labels"], [runner_detector.EXAMPLE_SHAPE]
    )


@pytest.fixture(scope="module")
def detector_onnx(detector, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return runner_detector.export(detector.model, tmp_path_factory.mktemp("det") / "det.onnx")


def test_detector_export_validates_as_detections(detector, detector_onnx) -> None:
    candidate = open_candidate(detector_onnx)
    report = validate(detector, candidate, seed=2)
    assert report.passed
    assert [r.shapes["image"] for r in report.runs] == [
        (1, 3, 32, 48),
        (2, 3, 32, 48),
        (1, 3, 64, 48),
    ]
    for run in report.runs:
        assert run.outputs == []  # dets / labels are not compared element by element
        det = run.detections
        assert det is not None and det.rule == "tolerance" and det.score_threshold == 0.3
        # independently: the same pixel inputs through onnxruntime and torch
        feed = generate_inputs(candidate.inputs, run.shapes, 2, value_range=(0.0, 255.0))
        ort_dets, ort_labels = _ort_detections(detector_onnx, feed)
        with torch.no_grad():
            dets, labels = (t.numpy() for t in detector.model(torch.from_numpy(feed["image"])))
        assert np.array_equal(ort_labels, labels)
        valid = labels >= 0
        assert [m.reference for m in det.deployed.images] == valid.sum(1).tolist()
        assert det.deployed.matched == int(valid.sum()) and det.deployed.reference_fraction == 1.0
        diff = np.abs(ort_dets.astype(np.float64) - dets)[valid]
        assert det.deployed.max_box_diff == pytest.approx(diff[:, :4].max(), abs=0)
        assert det.deployed.max_score_diff == pytest.approx(diff[:, 4].max(), abs=0)
        assert det.reference_vs_fp64 is not None and det.reference_vs_fp64.reference_fraction == 1.0
    # the double-height image fills all K = 40 rows
    assert [m.reference for m in report.runs[2].detections.deployed.images] == [40]


def _ort_detections(path: Path, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    dets, labels = session.run(["dets", "labels"], feed)
    return dets, labels


def test_moved_boxes_and_changed_scores_fail(detector, detector_onnx, tmp_path) -> None:
    shapes = [{"image": (2, 3, 32, 48)}]
    moved = runner_models.edit_initializer(
        detector_onnx, tmp_path / "moved.onnx", "tiny_reg.weight", "scale", 1.1
    )
    report = validate(detector, open_candidate(moved), shape_sets=shapes)
    det = report.runs[0].detections
    assert not report.passed and det.rule is None
    assert det.deployed.reference_fraction < 0.9 and det.deployed.missing_by_score == 0
    assert "have no deployed box of their label at IoU >= 0.95" in det.problem
    # the fp64 noise floor does not rescue it: PyTorch fp32 matches fp64 completely
    assert det.reference_vs_fp64.reference_fraction == 1.0
    rescored = runner_models.edit_initializer(
        detector_onnx, tmp_path / "rescored.onnx", "tiny_cls.bias", "set", -2.9
    )
    report = validate(detector, open_candidate(rescored), shape_sets=shapes)
    det = report.runs[0].detections
    assert not report.passed and det.deployed.missing == det.deployed.missing_by_score > 0
    wider = make_detection_tolerance("fp32", score=0.05)
    report = validate(
        detector, open_candidate(rescored), shape_sets=shapes, detection_tolerance=wider
    )
    assert report.passed


def test_float16_detector_passes_with_the_float16_defaults(detector, tmp_path) -> None:
    half = runner_detector.export(detector.model, tmp_path / "det16.onnx", fp16=True)
    report = validate(detector, open_candidate(half), shape_sets=[{"image": (1, 3, 32, 48)}])
    det = report.runs[0].detections
    assert report.passed and report.precision == "fp16"
    assert det.tolerance == DEFAULT_DETECTION_TOLERANCES["fp16"]
    assert 1e-4 < det.deployed.max_box_diff < 0.5  # float16 rounding of pixel coordinates


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tiny detector as a checkpoint architecture, as the real one is registered."""
    registry.architectures()
    monkeypatch.setitem(
        registry._REGISTRY,
        runner_detector.TinyDetectorArchitecture.name,
        runner_detector.TinyDetectorArchitecture(),
    )


def test_validate_cli_on_a_detector(capsys, registered, detector, detector_onnx, tmp_path) -> None:
    checkpoint = tmp_path / "tiny_det.pth"
    torch.save(detector.model.state_dict(), checkpoint)
    report = tmp_path / "report.json"
    argv = ["validate", str(checkpoint), str(detector_onnx), "--shapes", "image:1x3x32x48"]
    assert main([*argv, "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "detections" in out and "PASS: 1/1 shape sets" in out
    data = json.loads(report.read_text())
    det = data["runs"][0]["detections"]
    assert det["rule"] == "tolerance" and det["tolerance"] == {
        "iou": 0.95,
        "score": 0.01,
        "min_matched": 0.99,
    }
    assert det["deployed_vs_reference"]["reference_fraction"] == 1.0
    assert det["reference_vs_fp64"] is not None

    rescored = runner_models.edit_initializer(
        detector_onnx, tmp_path / "rescored.onnx", "tiny_cls.bias", "set", -2.9
    )
    argv = ["validate", str(checkpoint), str(rescored), "--shapes", "image:1x3x32x48"]
    assert main(argv) == EXIT_FAIL
    out = " ".join(capsys.readouterr().out.split())
    assert "FAIL" in out and "whose score differs by more than 0.01" in out
    assert main([*argv, "--det-score", "0.05", "--no-fp64"]) == 0
    capsys.readouterr()
    assert main([*argv, "--det-min-matched", "50"]) == EXIT_USER_ERROR
    assert "--det-min-matched 50 is outside [0, 1]" in capsys.readouterr().err


def test_warns_when_the_comparison_says_little() -> None:
    tol = DEFAULT_DETECTION_TOLERANCES["fp32"]
    k = 10
    dets = np.zeros((1, k, 5), np.float32)
    dets[0, :, :4] = [[i, 0, i + 5, 5] for i in range(0, 40, 4)]
    dets[0, :, 4] = 0.5  # ten tied scores: which ones fill the list is arbitrary
    labels = np.zeros((1, k), np.int64)
    other = dets.copy()
    other[0, 5:, :2] += 100  # half of the list replaced by other (tied) detections
    other[0, 5:, 2:4] += 100
    summary = match_outputs((dets, labels), (other, labels), tol)
    comparison = DetectionComparison(tol, None, summary)
    assert comparison.passed and summary.excused == (5, 5)
    assert "5 of 10 reference detections were excused" in comparison.warnings[0]
    empty = match_outputs((dets * 0, labels - 1), (dets * 0, labels - 1), tol)
    assert "found no detections" in DetectionComparison(tol, None, empty).warnings[0]
    exact = DetectionComparison(tol, None, match_outputs((dets, labels), (dets, labels), tol))
    assert exact.warnings == []


def test_score_threshold_is_found_where_detectors_keep_it() -> None:
    from types import SimpleNamespace

    from dlu_deploy.validate.compare import _model_score_threshold

    head = torch.nn.Module()
    model = torch.nn.Sequential(torch.nn.Identity(), head)
    assert _model_score_threshold(model) is None
    head.test_cfg = SimpleNamespace(score_thr=0.05, iou_threshold=0.5)  # an RCNN test config
    assert _model_score_threshold(model) == 0.05
    head.test_cfg = {"rpn": {"nms_pre": 1000}, "rcnn": {"score_thr": 0.3}}  # mmdetection dict
    assert _model_score_threshold(model) == 0.3


def test_detector_noise_floor_rule() -> None:
    """Where PyTorch fp32 itself loses a detection of the fp64 run and the deployed model
    keeps it, the deployed model passes by the noise floor (docs/runner.md, Detectors)."""
    tol = DEFAULT_DETECTION_TOLERANCES["fp32"]
    exact = np.zeros((1, 6, 5), np.float32)
    exact[0, :4] = [[*box, score] for box, score in zip(BOXES, [0.9, 0.8, 0.7, 0.6], strict=True)]
    labels = np.array([[0, 1, 2, 0, -1, -1]])
    fp32 = exact.copy()
    fp32[0, 1, 3] += 3.0  # PyTorch fp32 moved one box (IoU 0.77 with the fp64 one)

    def compare(deployed: np.ndarray) -> DetectionComparison:
        return DetectionComparison(
            tol,
            None,
            match_outputs((fp32, labels), (deployed, labels), tol),
            reference_vs_fp64=match_outputs((exact, labels), (fp32, labels), tol),
            deployed_vs_fp64=match_outputs((exact, labels), (deployed, labels), tol),
        )

    assert compare(fp32).rule == "tolerance"
    like_fp64 = compare(exact)
    assert like_fp64.deployed.reference_fraction == 0.75 and like_fp64.rule == "noise floor"
    worse = exact.copy()
    worse[0, 2:4, 2] += 3.0  # the deployed model moves two other boxes: worse than fp32
    assert compare(worse).rule is None and "required" in compare(worse).problem
