"""The PyTorch reference ops against the spec's formulas (tests/formulas.py), float64 oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlu_deploy import reference
from dlu_deploy.errors import OpArgumentError
from tests import formulas

FP32_ATOL = 1e-5


def _max_err(a: torch.Tensor, b: np.ndarray) -> float:
    return float(np.abs(a.double().numpy() - b).max())


def _softmax_groups(t: torch.Tensor, k: int) -> torch.Tensor:
    n, gc, h, w = t.shape
    return t.reshape(n, gc // (k * k), k * k, h, w).softmax(2).reshape(n, gc, h, w)


@pytest.mark.parametrize(
    ("n", "c", "h", "w", "k", "g", "s"),
    [
        (1, 4, 3, 5, 3, 1, 2),
        (2, 8, 4, 3, 5, 2, 2),
        (1, 6, 2, 2, 1, 3, 3),
        (1, 4, 1, 1, 3, 4, 2),
        (1, 4, 3, 1, 5, 1, 4),
    ],
)
def test_carafe_matches_formula(n: int, c: int, h: int, w: int, k: int, g: int, s: int) -> None:
    gen = torch.Generator().manual_seed(n * 100 + c + k + s)
    x = torch.randn(n, c, h, w, generator=gen)
    masks = _softmax_groups(torch.randn(n, g * k * k, h * s, w * s, generator=gen), k)
    got = reference.carafe(x, masks, k, g, s)
    assert got.shape == (n, c, h * s, w * s)
    assert _max_err(got, formulas.carafe(x.numpy(), masks.numpy(), k, g, s)) <= FP32_ATOL


@pytest.mark.parametrize(
    ("n", "c", "h", "w", "k", "g", "s", "offset_scale"),
    [
        (1, 4, 3, 5, 3, 1, 2, 1.5),
        (2, 8, 4, 3, 5, 2, 2, 4.0),  # offsets far past the borders
        (1, 6, 3, 3, 3, 3, 3, 0.7),
        (1, 4, 1, 1, 5, 2, 2, 2.0),  # H = W = 1
        (1, 2, 1, 4, 3, 1, 4, 1.0),  # H = 1
        (1, 3, 5, 2, 1, 1, 2, 1.0),  # k = 1
    ],
)
def test_dlu_matches_formula(
    n: int, c: int, h: int, w: int, k: int, g: int, s: int, offset_scale: float
) -> None:
    gen = torch.Generator().manual_seed(n * 1000 + c * 10 + k + s)
    x = torch.randn(n, c, h, w, generator=gen)
    kernels = _softmax_groups(torch.randn(n, g * k * k, h, w, generator=gen), k)
    offsets = torch.randn(n, g * 2 * s * s, h, w, generator=gen) * offset_scale
    got = reference.dlu(x, kernels, offsets, k, g, s)
    want = formulas.dlu(x.numpy(), kernels.numpy(), offsets.numpy(), k, g, s)
    assert _max_err(got, want) <= FP32_ATOL


def test_dlu_non_finite_offsets_follow_spec() -> None:
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(1, 2, 3, 4, generator=gen)
    kernels = _softmax_groups(torch.randn(1, 9, 3, 4, generator=gen), 3)
    offsets = torch.randn(1, 8, 3, 4, generator=gen)
    offsets[0, 0, 1, 1] = float("nan")
    offsets[0, 5, 0, 2] = float("inf")
    offsets[0, 6, 2, 3] = float("-inf")
    got = reference.dlu(x, kernels, offsets, 3, 1, 2)
    assert torch.isfinite(got).all()
    want = formulas.dlu(x.numpy(), kernels.numpy(), offsets.numpy(), 3, 1, 2)
    assert _max_err(got, want) <= FP32_ATOL


def test_dlu_fp16_within_documented_tolerance() -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, 4, 4, 5, generator=gen).half()
    kernels = _softmax_groups(torch.randn(1, 2 * 9, 4, 5, generator=gen), 3).half()
    offsets = (torch.randn(1, 2 * 8, 4, 5, generator=gen) * 2).half()
    got = reference.dlu(x, kernels, offsets, 3, 2, 2)
    assert got.dtype == torch.float16
    want = formulas.dlu(x.numpy(), kernels.numpy(), offsets.numpy(), 3, 2, 2)
    err = np.abs(got.double().numpy() - want)
    assert (err <= 1e-3 + 1e-3 * np.abs(want)).all()


@pytest.mark.parametrize(
    ("n", "c", "h", "w", "k", "d", "s", "combine"),
    [
        (1, 3, 5, 6, 3, 1, 1, "mul"),
        (2, 4, 6, 5, 3, 2, 2, "add"),
        (1, 2, 7, 7, 5, 1, 2, "mul"),
        (1, 2, 4, 4, 1, 1, 1, "add"),
        (1, 2, 3, 5, 3, 3, 1, "mul"),
    ],
)
def test_ddf_matches_formula(
    n: int, c: int, h: int, w: int, k: int, d: int, s: int, combine: str
) -> None:
    gen = torch.Generator().manual_seed(n + c + h + k + d + s)
    x = torch.randn(n, c, h, w, generator=gen)
    cf = torch.randn(n, c, k, k, generator=gen)
    sf = torch.randn(n, k * k, h // s, w // s, generator=gen)
    got = reference.ddf(x, cf, sf, k, d, s, combine)
    assert got.shape == (n, c, h // s, w // s)
    want = formulas.ddf(x.numpy(), cf.numpy(), sf.numpy(), k, d, s, combine)
    assert _max_err(got, want) <= FP32_ATOL


@pytest.mark.parametrize(("h", "w", "s", "g"), [(3, 4, 2, 2), (5, 2, 3, 1), (1, 1, 2, 4)])
def test_dysample_matches_formula(h: int, w: int, s: int, g: int) -> None:
    gen = torch.Generator().manual_seed(h * w + s)
    c = 4 * g
    x = torch.randn(2, c, h, w, generator=gen)
    offsets = torch.randn(2, 2 * g * s * s, h, w, generator=gen)
    got = reference.dysample_sample(x, offsets, s, g)
    want = formulas.dysample_sample(x.numpy(), offsets.numpy(), s, g)
    assert _max_err(got, want) <= FP32_ATOL


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (
            lambda: reference.carafe(torch.randn(1, 4, 2, 2), torch.rand(1, 16, 4, 4), 4, 1, 2),
            "kernel_size=4",
        ),
        (
            lambda: reference.carafe(torch.randn(1, 6, 2, 2), torch.rand(1, 36, 4, 4), 3, 4, 2),
            "group=4",
        ),
        (
            lambda: reference.carafe(torch.randn(1, 4, 2, 2), torch.rand(1, 9, 3, 4), 3, 1, 2),
            "masks has shape",
        ),
        (
            lambda: reference.dlu(
                torch.randn(1, 4, 2, 2), torch.rand(1, 9, 2, 2), torch.rand(1, 4, 2, 2), 3, 1, 2
            ),
            "offsets has shape",
        ),
        (
            lambda: reference.ddf(
                torch.randn(1, 2, 1, 3),
                torch.rand(1, 2, 3, 3),
                torch.rand(1, 9, 0, 1),
                3,
                1,
                2,
                "mul",
            ),
            "empty output",
        ),
        (lambda: reference.DLUPack(16, 2, up_kernel=6), "kernel_size=6"),
    ],
)
def test_bad_arguments_name_the_problem(call, needle: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(OpArgumentError, match=needle):
        call()
