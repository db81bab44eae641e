"""Error statistics and tolerances of validate against an element-by-element float64 oracle
written here, and against Polygraphy's comparator where it is installed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlu_deploy.errors import UserError
from dlu_deploy.validate import DEFAULT_TOLERANCES, Tolerance, compare_output, make_policy


def _oracle(ref: np.ndarray, out: np.ndarray, atol: float, rtol: float) -> dict[str, float]:
    """Plain loops over the elements, written from the documented semantics."""
    abs_errors, rel_errors, failing = [], [], 0
    need_atol = need_rtol = 0.0
    dot = norm_a = norm_b = 0.0
    for r, o in zip(ref.ravel().tolist(), out.ravel().tolist(), strict=True):
        if not (math.isfinite(r) and math.isfinite(o)):
            failing += 1
            continue
        a = abs(o - r)
        rel = a / (abs(r) if r != 0 else np.finfo(np.float64).eps)
        abs_errors.append(a)
        rel_errors.append(rel)
        if a > atol and rel > rtol:
            failing += 1
        if rel > rtol:
            need_atol = max(need_atol, a)
        if a > atol:
            need_rtol = max(need_rtol, rel)
        dot += o * r
        norm_a += o * o
        norm_b += r * r
    return {
        "max_abs": max(abs_errors, default=0.0),
        "mean_abs": sum(abs_errors) / len(abs_errors) if abs_errors else 0.0,
        "max_rel": max(rel_errors, default=0.0),
        "cosine": dot / math.sqrt(norm_a * norm_b),
        "required_atol": need_atol,
        "required_rtol": need_rtol,
        "mismatched": failing,
    }


def _pair(seed: int, scale: float, size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal(size) * rng.choice([1e-3, 1.0, 100.0], size)
    ref[:5] = 0.0  # zeros in the reference: relative error against epsilon
    return ref, ref + rng.standard_normal(size) * scale


@pytest.mark.parametrize(
    ("seed", "scale", "atol", "rtol"),
    [(0, 1e-5, 1e-4, 1e-4), (1, 1e-3, 1e-4, 1e-2), (2, 1e-2, 1e-2, 0.0)],
)
def test_statistics_match_the_oracle(seed: int, scale: float, atol: float, rtol: float) -> None:
    ref, out = _pair(seed, scale)
    got = compare_output("y", ref, out, Tolerance(atol, rtol))
    want = _oracle(ref, out, atol, rtol)
    for key, value in want.items():
        assert getattr(got, key) == pytest.approx(value, rel=1e-9, abs=1e-300), key
    assert got.passed == (want["mismatched"] == 0)


def test_required_atol_is_the_exact_threshold() -> None:
    ref, out = _pair(4, 1e-3)
    needed = compare_output("y", ref, out, Tolerance(1e-9, 1e-3)).required_atol
    assert needed > 1e-9
    assert compare_output("y", ref, out, Tolerance(needed, 1e-3)).passed
    assert not compare_output("y", ref, out, Tolerance(needed * (1 - 1e-9), 1e-3)).passed


def test_non_finite_values_fail_and_are_counted() -> None:
    ref = np.linspace(-1, 1, 12).reshape(3, 4)
    out = ref.copy()
    out[0, 0], out[1, 1], out[2, 2] = np.nan, np.inf, -np.inf
    got = compare_output("y", ref, out, Tolerance(1e9, 1e9))
    assert (got.nan, got.inf, got.reference_nonfinite, got.mismatched) == (1, 2, 0, 3)
    assert not got.passed and "1 NaN and 2 Inf" in got.problem
    # statistics cover the finite elements, which are exact here
    assert got.max_abs == 0.0 and got.cosine == pytest.approx(1.0)
    both_nan = compare_output("y", np.full(3, np.nan), np.full(3, np.nan), Tolerance(1, 1))
    assert not both_nan.passed and both_nan.reference_nonfinite == 3


def test_shape_mismatch_fails() -> None:
    got = compare_output("y", np.zeros((2, 3)), np.zeros((3, 2)), Tolerance(1, 1))
    assert not got.passed and "differs from the reference" in got.problem


def test_half_candidate_is_compared_in_float64() -> None:
    ref = np.linspace(-2, 2, 101)
    out = ref.astype(np.float16)
    got = compare_output("y", ref, out, DEFAULT_TOLERANCES["fp16"])
    assert got.dtype == "float16" and got.passed
    assert got.max_abs == pytest.approx(np.abs(out.astype(np.float64) - ref).max())


def test_agrees_with_polygraphy() -> None:
    comparator = pytest.importorskip("polygraphy.comparator")
    from polygraphy.logger import G_LOGGER

    G_LOGGER.module_severity = G_LOGGER.CRITICAL
    # SimpleCompareFunc since Polygraphy 0.50; CompareFunc.simple before
    make_compare = getattr(comparator, "SimpleCompareFunc", None) or comparator.CompareFunc.simple
    for seed in range(20):
        ref, out = _pair(seed, [1e-6, 1e-4, 1e-2][seed % 3])
        atol, rtol = [(1e-4, 1e-4), (1e-3, 1e-5), (1e-5, 1e-2)][seed % 3]
        compare = make_compare(atol=atol, rtol=rtol)
        result = compare(
            comparator.IterationResult({"y": out}, runner_name="candidate"),
            comparator.IterationResult({"y": ref}, runner_name="reference"),
        )["y"]
        ours = compare_output("y", ref, out, Tolerance(atol, rtol))
        assert ours.passed == bool(result)
        assert ours.max_abs == pytest.approx(float(result.max_absdiff), rel=1e-12)
        assert ours.max_rel == pytest.approx(float(result.max_reldiff), rel=1e-12)


def test_tolerance_policy() -> None:
    policy = make_policy(
        "fp16",
        rtol=0.5,
        overrides=["seg:1e-3", "out:0:2e-3,3e-3"],
        output_names=["seg", "out:0", "x"],
    )
    assert policy.for_output("x") == Tolerance(1e-2, 0.5)
    assert policy.for_output("seg") == Tolerance(1e-3, 0.5)
    assert policy.for_output("out:0") == Tolerance(2e-3, 3e-3)  # names may contain ':'
    assert make_policy("fp32").default == Tolerance(1e-4, 1e-4)
    with pytest.raises(UserError, match="unknown output"):
        make_policy("fp32", overrides=["nope:1"], output_names=["seg"])
    for bad in ("seg", "seg:x", "seg:1,2,3", ":1"):
        with pytest.raises(UserError, match="is not NAME:ATOL"):
            make_policy("fp32", overrides=[bad])
    with pytest.raises(UserError, match=">= 0"):
        make_policy("fp32", atol=-1)
