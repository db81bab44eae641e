"""The compiled CPU kernels (through the torch ops) against the spec's formulas (float64) and
the PyTorch reference, on randomized shapes and parameters (docs/ops.md tolerances), on every
CPU instruction set the machine runs (portable, AVX2, AVX-512, NEON; selected through the C ABI,
dlu_kernels_set_cpu_isa)."""

from __future__ import annotations

import ctypes
import mmap
import random
from collections.abc import Iterator

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
CPU_ISAS = {"portable": 1, "avx2": 2, "avx512": 3, "neon": 4}  # DluCpuIsa (dlu_kernels.h)


def _kernels_library() -> ctypes.CDLL:
    """The library the torch ops use (the same dlopen handle), for the ISA selection calls."""
    lib = ctypes.CDLL(str(native.load().path))
    for name in ("dlu_kernels_set_cpu_isa", "dlu_kernels_cpu_isa_supported"):
        getattr(lib, name).argtypes = [ctypes.c_int32]
        getattr(lib, name).restype = ctypes.c_int32
    lib.dlu_kernels_cpu_isa.restype = ctypes.c_int32
    return lib


@pytest.fixture(params=list(CPU_ISAS))
def cpu_isa(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs the test once per instruction set; skipped for those this CPU or build lacks."""
    name: str = request.param
    lib = _kernels_library()
    if not lib.dlu_kernels_cpu_isa_supported(CPU_ISAS[name]):
        pytest.skip(f"this CPU or build has no {name} path")
    assert lib.dlu_kernels_set_cpu_isa(CPU_ISAS[name]) == 0
    assert lib.dlu_kernels_cpu_isa() == CPU_ISAS[name]
    try:
        yield name
    finally:
        assert lib.dlu_kernels_set_cpu_isa(0) == 0


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
def test_dlu_matches_formula(
    cpu_isa: str, n: int, c: int, h: int, w: int, k: int, g: int, s: int
) -> None:
    x, kernels, offsets = _dlu_inputs(
        n, c, h, w, k, g, s, seed=n + c * 7 + h * 31 + w * 131 + k + s
    )
    got = dlu(x, kernels, offsets, k, g, s)
    want = formulas.dlu(x.numpy(), kernels.numpy(), offsets.numpy(), k, g, s)
    assert got.shape == want.shape
    assert np.abs(got.double().numpy() - want).max() <= FP32_ATOL


@pytest.mark.parametrize(("k", "g"), [(9, 2), (15, 1)])
def test_dlu_large_kernels_match_formula(cpu_isa: str, k: int, g: int) -> None:
    """k*k = 81 and 225 taps: several vectors of taps per kernel-space pixel in the tap-minor
    copy (cpu_kernels_impl.h), the last one partly padding; 21 columns: a partial tile."""
    x, kernels, offsets = _dlu_inputs(1, 2 * g, 4, 21, k, g, 2, seed=k)
    got = dlu(x, kernels, offsets, k, g, 2)
    want = formulas.dlu(x.numpy(), kernels.numpy(), offsets.numpy(), k, g, 2)
    assert np.abs(got.double().numpy() - want).max() <= FP32_ATOL


def test_dlu_non_finite_offsets_follow_spec(cpu_isa: str) -> None:
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
def test_carafe_matches_formula(
    cpu_isa: str, n: int, c: int, h: int, w: int, k: int, g: int, s: int
) -> None:
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
    cpu_isa: str, n: int, c: int, h: int, w: int, k: int, d: int, stride: int, combine: str
) -> None:
    gen = torch.Generator().manual_seed(n + c + h + w * 3 + k + d + stride)
    x = torch.randn(n, c, h, w, generator=gen)
    cf = torch.randn(n, c, k, k, generator=gen)
    sf = torch.randn(n, k * k, h // stride, w // stride, generator=gen)
    got = ddf(x, cf, sf, k, d, stride, 0 if combine == "mul" else 1)
    want = formulas.ddf(x.numpy(), cf.numpy(), sf.numpy(), k, d, stride, combine)
    assert got.shape == want.shape
    assert np.abs(got.double().numpy() - want).max() <= FP32_ATOL


@pytest.mark.parametrize(
    ("k", "d", "combine", "dtype"),
    [
        (3, 1, "mul", torch.float32),
        (3, 2, "add", torch.float32),
        (5, 2, "mul", torch.float32),
        (3, 1, "mul", torch.float16),
        (5, 1, "add", torch.float16),
    ],
)
def test_ddf_stride1_bands_and_channel_blocks(
    cpu_isa: str, k: int, d: int, combine: str, dtype: torch.dtype
) -> None:
    """The stride-1 path's items: several row bands (150 columns: a band holds the spatial
    filter of ~90 rows for k = 3, ~32 for k = 5), a last channel block of 2 (6 channels), the
    prefetch across blocks and bands, and 3 threads against 1."""
    gen = torch.Generator().manual_seed(k * 10 + d)
    x = torch.randn(2, 6, 100, 150, generator=gen).to(dtype)
    cf = torch.randn(2, 6, k, k, generator=gen).to(dtype)
    sf = torch.randn(2, k * k, 100, 150, generator=gen).to(dtype)
    mode = 0 if combine == "mul" else 1
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        got = ddf(x, cf, sf, k, d, 1, mode)
        torch.set_num_threads(3)
        assert torch.equal(ddf(x, cf, sf, k, d, 1, mode), got)
    finally:
        torch.set_num_threads(threads)
    want = formulas.ddf(x.float().numpy(), cf.float().numpy(), sf.float().numpy(), k, d, 1, combine)
    if dtype == torch.float16:
        assert _fp16_ok(got, want)
    else:
        assert np.abs(got.double().numpy() - want).max() <= 1e-4  # up to 25 N(0,1)^3 terms


@pytest.mark.parametrize(("k", "g", "s"), [(3, 2, 2), (5, 1, 3), (7, 4, 4)])
def test_fp16_within_documented_tolerance(cpu_isa: str, k: int, g: int, s: int) -> None:
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


def test_larger_shapes_match_the_reference(cpu_isa: str) -> None:
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


@pytest.mark.parametrize(("c", "k", "g"), [(10, 7, 1), (26, 3, 2)])
def test_wide_images_with_channel_remainders(cpu_isa: str, c: int, k: int, g: int) -> None:
    """Several column tiles, channel remainders of a half block and of single channels
    (reassembly_cpu.h), two images."""
    x, kernels, offsets = _dlu_inputs(2, c, 5, 100, k, g, 2, seed=c + k, offset_scale=1.0)
    want = formulas.dlu(x.numpy(), kernels.numpy(), offsets.numpy(), k, g, 2)
    assert np.abs(dlu(x, kernels, offsets, k, g, 2).double().numpy() - want).max() <= FP32_ATOL
    masks = _softmax_groups(torch.randn(2, g * k * k, 10, 200), k)
    want = formulas.carafe(x.numpy(), masks.numpy(), k, g, 2)
    assert np.abs(carafe(x, masks, k, g, 2).double().numpy() - want).max() <= FP32_ATOL


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


def test_instruction_sets_agree() -> None:
    """Every supported path against the portable one at an FPN-like shape (many channels per
    block, several column tiles, interior and border tiles), fp32 and fp16."""
    lib = _kernels_library()
    x, kernels, offsets = _dlu_inputs(1, 40, 12, 100, 5, 1, 2, seed=21, offset_scale=1.5)
    masks = _softmax_groups(torch.randn(1, 25, 24, 200), 5)
    cf, sf = torch.randn(1, 40, 3, 3), torch.randn(1, 9, 12, 100)
    runs: dict[str, list[torch.Tensor]] = {}
    try:
        for name, code in CPU_ISAS.items():
            if not lib.dlu_kernels_cpu_isa_supported(code):
                continue
            assert lib.dlu_kernels_set_cpu_isa(code) == 0
            runs[name] = [
                out
                for dtype in (torch.float32, torch.float16)
                for out in (
                    dlu(x.to(dtype), kernels.to(dtype), offsets.to(dtype), 5, 1, 2),
                    carafe(x.to(dtype), masks.to(dtype), 5, 1, 2),
                    ddf(x.to(dtype), cf.to(dtype), sf.to(dtype), 3, 1, 1, 0),
                )
            ]
    finally:
        assert lib.dlu_kernels_set_cpu_isa(0) == 0
    base = runs.pop("portable")
    for name, outs in runs.items():
        for i, (got, want) in enumerate(zip(outs, base, strict=True)):
            err = (got.double() - want.double()).abs()
            limit = 1e-5 if got.dtype == torch.float32 else 1e-3 + 1e-3 * want.double().abs()
            assert bool((err <= limit).all()), f"{name} vs portable, output {i}: {err.max()}"


@pytest.mark.parametrize("group", [1, 4])
def test_many_channels_on_a_small_image(cpu_isa: str, group: int) -> None:
    """40000 channels of 3x16: the staged window rows of all channels exceed the kernels' 8 MiB
    ring, which then holds chunks of channels (reassembly_cpu.h); with 4 groups a chunk ends
    inside a group."""
    x, kernels, offsets = _dlu_inputs(1, 40000, 3, 16, 3, group, 1, seed=8, offset_scale=1.0)
    want = reference.dlu(x, kernels, offsets, 3, group, 1)
    assert (dlu(x, kernels, offsets, 3, group, 1) - want).abs().max() <= FP32_ATOL


def _anon_huge_pages_kib(address: int) -> int:
    """AnonHugePages of the mapping holding `address` (/proc/self/smaps)."""
    inside = False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                start, end = (int(part, 16) for part in head.split("-"))
                inside = start <= address < end
            elif inside and head == "AnonHugePages:":
                return int(line.split()[1])
    return 0


def _transparent_huge_pages() -> str:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return f.read()
    except OSError:
        return ""


def _vmstat(name: str) -> int:
    with open("/proc/vmstat") as f:
        for line in f:
            key, value = line.split()
            if key == name:
                return int(value)
    return 0


@pytest.mark.skipif(
    "[never]" in _transparent_huge_pages() or not _transparent_huge_pages(),
    reason="transparent huge pages are not available on this system",
)
def test_large_outputs_ask_for_huge_pages() -> None:
    """Outputs past 16 MiB (streamed) get MADV_HUGEPAGE before their first write
    (large_output.h): a fresh, never touched 16.8 MB output (an anonymous mapping, as the
    allocators hand out for large tensors) ends up in 2 MiB pages, and correct."""
    x, kernels, offsets = _dlu_inputs(1, 128, 64, 128, 3, 1, 2, seed=9, offset_scale=1.0)
    n, c, h, w = x.shape
    nbytes = n * c * h * 2 * w * 2 * 4
    assert nbytes >= 16 << 20
    # Private, like malloc's large chunks (a shared mapping is shmem, which THP treats apart).
    mapping = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    out = np.frombuffer(mapping, dtype=np.float32).reshape(n, c, h * 2, w * 2)
    fallbacks = _vmstat("thp_fault_fallback")
    native.load().dlu(
        native.DType.FLOAT32,
        native.DluParams(n, c, h, w, 3, 1, 2),
        x.data_ptr(),
        kernels.data_ptr(),
        offsets.data_ptr(),
        out.ctypes.data,
        num_threads=1,
    )
    huge = _anon_huge_pages_kib(out.ctypes.data + nbytes // 2)  # the 2 MiB-aligned interior
    if huge == 0 and _vmstat("thp_fault_fallback") > fallbacks:
        pytest.skip("the kernel had no free huge page (thp_fault_fallback grew)")
    assert huge >= 2048
    want = reference.dlu(x, kernels, offsets, 3, 1, 2).numpy()
    assert np.abs(out - want).max() <= FP32_ATOL
