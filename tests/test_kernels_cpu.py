"""The compiled CPU kernels (through the torch ops) against the spec's formulas (float64) and
the PyTorch reference, on randomized shapes and parameters (docs/ops.md tolerances)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from dlu_deploy import native, reference
from dlu_deploy.ops import carafe, ddf, dlu
from tests import formulas

pytestmark = pytest.mark.skipif(
    not native.available(), reason="libdlu_kernels is not built (cmake --build build)"
)

FP32_ATOL = 1e-5


def _fp16_ok(got: torch.Tensor, want: np.ndarray) -> bool:
    err = np.abs(got.double().numpy() - want)
    return bool((err <= 1e-3 + 1e-3 * np.abs(want)).all())


def _softmax_groups(t: torch.Tensor, k: int) -> torch.Tensor:
    n, gc, h, w = t.shape
    return t.reshape(n, gc // (k * k), k * k, h, w).softmax(2).reshape(n, gc, h, w)


def _reassembly_cases(seed: int, count: int) -> list[tuple[int, int, int, int, int, int, int]]:
    """(n, c, h, w, k, g, s): k in {1,3,5,7}, G in {1,2,4}, s in {2,3,4}, H or W = 1 included."""
    rng = random.Random(seed)
    cases = [
        (1, 4, 1, 1, 3, 4, 2),
        (2, 4, 1, 5, 5, 2, 3),
        (1, 2, 6, 1, 7, 1, 4),
        (1, 8, 3, 4, 1, 2, 2),
    ]
    while len(cases) < count:
        g = rng.choice((1, 2, 4))
        cases.append(
            (
                rng.choice((1, 2)),
                g * rng.choice((1, 2)),
                rng.randint(1, 6),
                rng.randint(1, 6),
                rng.choice((1, 3, 5, 7)),
                g,
                rng.choice((2, 3, 4)),
            )
        )
    return cases


def _dlu_inputs(
    n: int, c: int, h: int, w: int, k: int, g: int, s: int, seed: int, offset_scale: float = 3.0
):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=gen)
    kernels = _softmax_groups(torch.randn(n, g * k * k, h, w, generator=gen), k)
    offsets = (
        torch.randn(n, g * 2 * s * s, h, w, generator=gen) * offset_scale
    )  # far past the borders
    return x, kernels, offsets


@pytest.mark.parametrize(("n", "c", "h", "w", "k", "g", "s"), _reassembly_cases(seed=11, count=14))
def test_dlu_matches_formula(n: int, c: int, h: int, w: int, k: int, g: int, s: int) -> None:
    x, kernels, offsets = _dlu_inputs(
        n, c, h, w, k, g, s, seed=n + c * 7 + h * 31 + w * 131 + k + s
    )
    got = dlu(x, kernels, offsets, k, g, s)
    want = formulas.dlu(x.numpy(), kernels.numpy(), offsets.numpy(), k, g, s)
    assert got.shape == want.shape
    assert np.abs(got.double().numpy() - want).max() <= FP32_ATOL


def test_dlu_non_finite_offsets_follow_spec() -> None:
    x, kernels, offsets = _dlu_inputs(2, 4, 3, 5, 3, 2, 2, seed=5)
    offsets[0, 0, 1, 1] = float("nan")
    offsets[1, 5, 0, 2] = float("inf")
    offsets[0, 14, 2, 4] = float("-inf")
    offsets[1, 3, 2, 0] = 1e30
    got = dlu(x, kernels, offsets, 3, 2, 2)
    assert torch.isfinite(got).all()
    want = formulas.dlu(x.numpy(), kernels.numpy(), offsets.numpy(), 3, 2, 2)
    assert np.abs(got.double().numpy() - want).max() <= FP32_ATOL


@pytest.mark.parametrize(("n", "c", "h", "w", "k", "g", "s"), _reassembly_cases(seed=12, count=12))
def test_carafe_matches_formula(n: int, c: int, h: int, w: int, k: int, g: int, s: int) -> None:
    gen = torch.Generator().manual_seed(n + c + h * w + k * s)
    x = torch.randn(n, c, h, w, generator=gen)
    masks = _softmax_groups(torch.randn(n, g * k * k, h * s, w * s, generator=gen), k)
    got = carafe(x, masks, k, g, s)
    want = formulas.carafe(x.numpy(), masks.numpy(), k, g, s)
    assert np.abs(got.double().numpy() - want).max() <= FP32_ATOL


def _ddf_cases(seed: int, count: int) -> list[tuple[int, int, int, int, int, int, int, str]]:
    """(n, c, h, w, k, dilation, stride, combine): odd sizes, dilation past the image, k <= 13."""
    rng = random.Random(seed)
    cases = [
        (1, 2, 3, 9, 13, 1, 1, "mul"),
        (2, 3, 5, 4, 3, 7, 2, "add"),
        (1, 1, 1, 1, 1, 1, 1, "mul"),
    ]
    while len(cases) < count:
        stride = rng.choice((1, 2))
        cases.append(
            (
                rng.choice((1, 2)),
                rng.randint(1, 5),
                rng.randint(stride, 8),
                rng.randint(stride, 8),
                rng.choice((1, 3, 5, 7)),
                rng.choice((1, 2, 3)),
                stride,
                rng.choice(("mul", "add")),
            )
        )
    return cases


@pytest.mark.parametrize(
    ("n", "c", "h", "w", "k", "d", "stride", "combine"), _ddf_cases(seed=13, count=14)
)
def test_ddf_matches_formula(
    n: int, c: int, h: int, w: int, k: int, d: int, stride: int, combine: str
) -> None:
    gen = torch.Generator().manual_seed(n + c + h + w * 3 + k + d + stride)
    x = torch.randn(n, c, h, w, generator=gen)
    cf = torch.randn(n, c, k, k, generator=gen)
    sf = torch.randn(n, k * k, h // stride, w // stride, generator=gen)
    got = ddf(x, cf, sf, k, d, stride, 0 if combine == "mul" else 1)
    want = formulas.ddf(x.numpy(), cf.numpy(), sf.numpy(), k, d, stride, combine)
    assert got.shape == want.shape
    assert np.abs(got.double().numpy() - want).max() <= FP32_ATOL


@pytest.mark.parametrize(("k", "g", "s"), [(3, 2, 2), (5, 1, 3), (7, 4, 4)])
def test_fp16_within_documented_tolerance(k: int, g: int, s: int) -> None:
    x, kernels, offsets = (t.half() for t in _dlu_inputs(2, 8, 4, 5, k, g, s, seed=k * g * s))
    got = dlu(x, kernels, offsets, k, g, s)
    assert got.dtype == torch.float16
    assert _fp16_ok(got, formulas.dlu(x.numpy(), kernels.numpy(), offsets.numpy(), k, g, s))

    masks = _softmax_groups(torch.randn(2, g * k * k, 4 * s, 5 * s), k).half()
    got = carafe(x, masks, k, g, s)
    assert got.dtype == torch.float16
    assert _fp16_ok(got, formulas.carafe(x.numpy(), masks.numpy(), k, g, s))

    cf, sf = torch.randn(2, 8, k, k).half(), torch.randn(2, k * k, 4, 5).half()
    got = ddf(x, cf, sf, k, 2, 1, 1)
    assert got.dtype == torch.float16
    assert _fp16_ok(got, formulas.ddf(x.numpy(), cf.numpy(), sf.numpy(), k, 2, 1, "add"))


def test_larger_shapes_match_the_reference() -> None:
    """Several column tiles and many channels per group, against the PyTorch reference."""
    x, kernels, offsets = _dlu_inputs(2, 24, 9, 150, 5, 2, 2, seed=3, offset_scale=1.5)
    assert (
        dlu(x, kernels, offsets, 5, 2, 2) - reference.dlu(x, kernels, offsets, 5, 2, 2)
    ).abs().max() <= FP32_ATOL
    masks = _softmax_groups(torch.randn(2, 3 * 9, 27, 450), 3)
    x3 = torch.randn(2, 24, 9, 150)
    assert (
        carafe(x3, masks, 3, 3, 3) - reference.carafe(x3, masks, 3, 3, 3)
    ).abs().max() <= FP32_ATOL
    cf, sf = torch.randn(2, 24, 5, 5), torch.randn(2, 25, 4, 300)
    x2 = torch.randn(2, 24, 9, 601)
    got = ddf(x2, cf, sf, 5, 3, 2, 0)
    assert (
        got - reference.ddf(x2, cf, sf, 5, 3, 2, "mul")
    ).abs().max() <= 1e-4  # 25 taps of N(0,1)^3 terms


def test_results_do_not_depend_on_the_thread_count() -> None:
    x, kernels, offsets = _dlu_inputs(2, 16, 7, 9, 5, 2, 2, seed=9)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = dlu(x, kernels, offsets, 5, 2, 2)
        torch.set_num_threads(3)
        multi = dlu(x, kernels, offsets, 5, 2, 2)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(single, multi)


def test_non_contiguous_inputs() -> None:
    x, kernels, offsets = _dlu_inputs(1, 4, 5, 6, 3, 1, 2, seed=4)
    x_nc = x.transpose(2, 3).contiguous().transpose(2, 3)
    assert not x_nc.is_contiguous()
    assert torch.equal(dlu(x_nc, kernels, offsets, 3, 1, 2), dlu(x, kernels, offsets, 3, 1, 2))
