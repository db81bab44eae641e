"""The CUDA kernels (through the torch ops) against the CPU kernels, the spec's formulas and the
PyTorch reference. Needs a CUDA GPU, a CUDA build of torch and libdlu_kernels built with CUDA
(scripts/gpu-check runs these); skipped with the reason elsewhere."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from dlu_deploy import native, reference
from dlu_deploy.ops import carafe, ddf, dlu
from tests import formulas


def _skip_reason() -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA GPU visible to torch"
    if not native.available():
        return "libdlu_kernels is not built (cmake --build build)"
    if not native.load().has_cuda:
        return "libdlu_kernels was built without CUDA (no nvcc at configure time)"
    return None


_REASON = _skip_reason()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_REASON is not None, reason=_REASON or "")]

FP32_ATOL = 1e-5


def _fp16_ok(got: torch.Tensor, want: np.ndarray) -> bool:
    err = np.abs(got.double().cpu().numpy() - want)
    return bool((err <= 1e-3 + 1e-3 * np.abs(want)).all())


def _softmax_groups(t: torch.Tensor, k: int) -> torch.Tensor:
    n, gc, h, w = t.shape
    return t.reshape(n, gc // (k * k), k * k, h, w).softmax(2).reshape(n, gc, h, w)


def _cases(seed: int, count: int) -> list[tuple[int, int, int, int, int, int, int]]:
    """(n, c, h, w, k, g, s) over the fast path (k 3/5/7, even s) and the generic path."""
    rng = random.Random(seed)
    cases = [
        (1, 8, 1, 1, 5, 2, 2),
        (2, 16, 13, 37, 5, 1, 2),
        (1, 8, 7, 1, 3, 4, 4),
        (1, 4, 5, 6, 9, 2, 2),
        (1, 6, 5, 9, 7, 3, 3),
        (2, 4, 4, 4, 11, 1, 2),
        (1, 4, 3, 5, 15, 4, 8),
        (1, 12, 6, 7, 1, 2, 3),
    ]
    while len(cases) < count:
        g = rng.choice((1, 2, 4))
        cases.append(
            (
                rng.choice((1, 2)),
                g * rng.choice((1, 3, 8)),
                rng.randint(1, 20),
                rng.randint(1, 40),
                rng.choice((1, 3, 5, 7)),
                g,
                rng.choice((2, 3, 4, 6)),
            )
        )
    return cases


@pytest.mark.parametrize(("n", "c", "h", "w", "k", "g", "s"), _cases(seed=21, count=24))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_dlu_cuda_matches_cpu_and_formula(
    n: int, c: int, h: int, w: int, k: int, g: int, s: int, dtype: torch.dtype
) -> None:
    gen = torch.Generator().manual_seed(n + c + h + w + k + g + s)
    x = torch.randn(n, c, h, w, generator=gen).to(dtype)
    kernels = _softmax_groups(torch.randn(n, g * k * k, h, w, generator=gen), k).to(dtype)
    offsets = (torch.randn(n, g * 2 * s * s, h, w, generator=gen) * 3).to(dtype)
    offsets.view(-1)[0] = float("nan")
    offsets.view(-1)[-1] = float("inf")
    got = dlu(x.cuda(), kernels.cuda(), offsets.cuda(), k, g, s)
    assert got.dtype == dtype and got.is_cuda
    small = n * h * w * s * s * g * k * k <= 20000  # the float64 oracle loops in Python
    want = formulas.dlu(x.numpy(), kernels.numpy(), offsets.numpy(), k, g, s) if small else None
    if dtype == torch.float32:
        assert (got.cpu() - dlu(x, kernels, offsets, k, g, s)).abs().max() <= FP32_ATOL
        if want is not None:
            assert np.abs(got.double().cpu().numpy() - want).max() <= FP32_ATOL
    else:
        cpu = dlu(x, kernels, offsets, k, g, s)
        assert _fp16_ok(got, cpu.double().numpy())
        if want is not None:
            assert _fp16_ok(got, want)


@pytest.mark.parametrize(("n", "c", "h", "w", "k", "g", "s"), _cases(seed=22, count=16))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_carafe_cuda_matches_cpu(
    n: int, c: int, h: int, w: int, k: int, g: int, s: int, dtype: torch.dtype
) -> None:
    gen = torch.Generator().manual_seed(n * c + h * w + k + s)
    x = torch.randn(n, c, h, w, generator=gen).to(dtype)
    masks = _softmax_groups(torch.randn(n, g * k * k, h * s, w * s, generator=gen), k).to(dtype)
    got = carafe(x.cuda(), masks.cuda(), k, g, s).cpu()
    cpu = carafe(x, masks, k, g, s)
    if dtype == torch.float32:
        assert (got - cpu).abs().max() <= FP32_ATOL
        assert (got - reference.carafe(x, masks, k, g, s)).abs().max() <= FP32_ATOL
    else:
        assert _fp16_ok(got, cpu.double().numpy())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(
    ("k", "d", "stride", "combine"),
    [
        (1, 1, 1, 0),
        (3, 1, 1, 0),
        (3, 2, 2, 1),
        (5, 3, 1, 1),
        (7, 1, 2, 0),
        (13, 1, 1, 0),
        (15, 2, 1, 1),
        (3, 8, 1, 0),
        (3, 1, 3, 1),
    ],
)
def test_ddf_cuda_matches_cpu_and_reference(
    k: int, d: int, stride: int, combine: int, dtype: torch.dtype
) -> None:
    gen = torch.Generator().manual_seed(k * 100 + d * 10 + stride)
    x = torch.randn(2, 20, 19, 23, generator=gen).to(dtype)
    cf = (torch.randn(2, 20, k, k, generator=gen) * 0.3).to(dtype)
    sf = (torch.randn(2, k * k, 19 // stride, 23 // stride, generator=gen) * 0.3).to(dtype)
    got = ddf(x.cuda(), cf.cuda(), sf.cuda(), k, d, stride, combine).cpu()
    cpu = ddf(x, cf, sf, k, d, stride, combine)
    if dtype == torch.float32:
        assert (got - cpu).abs().max() <= FP32_ATOL
        name = "mul" if combine == 0 else "add"
        assert (got - reference.ddf(x, cf, sf, k, d, stride, name)).abs().max() <= 1e-4
    else:
        assert _fp16_ok(got, cpu.double().numpy())


def test_kernels_run_on_the_current_stream() -> None:
    """Work is enqueued on torch's current stream: results are correct after that stream syncs."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 64, 50, 76, generator=gen)
    kernels = _softmax_groups(torch.randn(2, 25, 50, 76, generator=gen), 5)
    offsets = torch.randn(2, 8, 50, 76, generator=gen)
    want = dlu(x, kernels, offsets, 5, 1, 2)
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        xs, ks, os_ = x.cuda(non_blocking=False), kernels.cuda(), offsets.cuda()
        got = dlu(xs, ks, os_, 5, 1, 2)
        got_cpu = torch.empty_like(want).pin_memory()
        got_cpu.copy_(got, non_blocking=True)
    side.synchronize()
    assert (got_cpu - want).abs().max() <= FP32_ATOL


def test_torch_compile_cuda() -> None:
    pack = reference.DLUPack(32, 2, up_kernel=5, compressed_channels=16).cuda().eval()

    def forward(x: torch.Tensor) -> torch.Tensor:
        kernels, offsets = pack.predict(x)
        return torch.ops.dlu_deploy.dlu(x, kernels, offsets, 5, 1, 2)

    x = torch.randn(2, 32, 20, 30, device="cuda")
    with torch.no_grad():
        got = torch.compile(forward, fullgraph=True)(x)
        want = pack(x)
    assert (got - want).abs().max() <= FP32_ATOL


def test_mixed_devices_are_rejected() -> None:
    from dlu_deploy.errors import OpArgumentError

    with pytest.raises(OpArgumentError, match="Move all inputs"):
        carafe(torch.randn(1, 4, 2, 2, device="cuda"), torch.rand(1, 9, 4, 4), 3, 1, 2)


@pytest.mark.slow
def test_more_than_2_31_elements() -> None:
    """64-bit indexing: outputs (DLU) and inputs (DDF) past 2^31 elements, checked on the last
    channels against the CPU kernels (channel slices are independent problems with G = 1)."""
    free, _ = torch.cuda.mem_get_info()
    if free < 14 * 2**30:
        pytest.skip(f"needs 14 GiB of free GPU memory, {free / 2**30:.1f} GiB free")
    gen = torch.Generator(device="cuda").manual_seed(0)
    c, h, w = 8200, 256, 256  # output 8200 * 512 * 512 = 2.15e9 elements
    x = torch.randn(1, c, h, w, device="cuda", dtype=torch.float16, generator=gen)
    kernels = _softmax_groups(torch.randn(1, 9, h, w, device="cuda", generator=gen), 3).half()
    offsets = (torch.randn(1, 8, h, w, device="cuda", generator=gen) * 2).half()
    out = dlu(x, kernels, offsets, 3, 1, 2)
    assert out.numel() > 2**31
    tail = dlu(x[:, -4:].cpu(), kernels.cpu(), offsets.cpu(), 3, 1, 2)
    assert _fp16_ok(out[:, -4:].cpu(), tail.double().numpy())
    del out, x
    torch.cuda.empty_cache()
    x = torch.randn(
        1, c, 2 * h, 2 * w, device="cuda", dtype=torch.float16, generator=gen
    )  # 2.15e9 elements
    cf = (torch.randn(1, c, 3, 3, device="cuda", generator=gen) * 0.3).half()
    sf = (torch.randn(1, 9, 2 * h, 2 * w, device="cuda", generator=gen) * 0.3).half()
    out = ddf(x, cf, sf, 3, 1, 1, 0)
    tail = ddf(x[:, -4:].cpu(), cf[:, -4:].cpu(), sf.cpu(), 3, 1, 1, 0)
    assert _fp16_ok(out[:, -4:].cpu(), tail.double().numpy())
