"""CPU kernel ratios (issue 13): DLU, CARAFE and DDF through the torch ops against a numpy copy
of an array the size of the op's output, all measured interleaved in this one process.

Targets: fp32 on one thread <= 2x the copy; two threads <= 0.6x one thread; fp16 <= 1.2x fp32.
A second baseline bounds what the copy ratio can reach: the op's multiply-adds (DLU/CARAFE:
k*k per output element; DDF: k*k filter products and k*k multiply-adds) at the rate of a
one-thread fp32 matrix product (torch.mm, 1024^3) measured in the same run; "floor/copy" above
2 would make the copy target unreachable on this CPU.
Kernels and copy write into preallocated outputs; the torch op column (DLU, fp32, one thread)
adds what a caller of torch.ops.dlu_deploy.dlu also pays: allocating the 62 MB output, whose
pages the OS maps and zeroes on first touch (glibc serves such sizes with a fresh mmap; the
kernels ask for 2 MiB pages there, large_output.h).
Each repeat times every method once (in turn), so that a burst of load elsewhere on the
machine hits all of them alike; the medians are compared. When the machine's load average
says the other cores are busy, the two-thread ratio measures that, not the kernels: the
table says so instead of judging it.
"""

from __future__ import annotations

import ctypes
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from bench import _common as common
from dlu_deploy import native
from dlu_deploy.ops import dlu

CPU_ISAS = {"portable": 1, "avx2": 2, "avx512": 3, "neon": 4}  # DluCpuIsa (dlu_kernels.h)
TARGET_VS_COPY, TARGET_TWO_THREADS, TARGET_FP16 = 2.0, 0.6, 1.2
SGEMM_SIZE = 1024


@dataclass(frozen=True)
class Case:
    op: str
    dtype: torch.dtype
    threads: int
    run: Callable[[], object]


def _library() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(native.load().path))  # the handle the torch ops use
    for name in ("dlu_kernels_set_cpu_isa", "dlu_kernels_cpu_isa_supported"):
        getattr(lib, name).argtypes = [ctypes.c_int32]
        getattr(lib, name).restype = ctypes.c_int32
    lib.dlu_kernels_cpu_isa.restype = ctypes.c_int32
    lib.dlu_kernels_cpu_isa_name.argtypes = [ctypes.c_int32]
    lib.dlu_kernels_cpu_isa_name.restype = ctypes.c_char_p
    return lib


def _cases(shape: common.Shape, dtype: torch.dtype, threads: int) -> list[Case]:
    """The three kernels writing into preallocated outputs (dlu_deploy.native, the torch ops'
    binding): what is timed is the kernel, not the allocation and first touch of a new
    output, which the torch ops add (a separate column)."""
    k, g, s = common.KERNEL_SIZE, common.GROUP, common.SCALE
    lib = native.load()
    code = native.DType.FLOAT32 if dtype == torch.float32 else native.DType.FLOAT16
    x, kernels, offsets = common.dlu_inputs(shape, dtype)
    gen = torch.Generator().manual_seed(1)
    n, c, h, w = shape.n, shape.c, shape.h, shape.w
    masks = torch.rand(n, g * k * k, h * s, w * s, generator=gen).to(dtype)
    cf = torch.randn(n, c, 3, 3, generator=gen).to(dtype)
    sf = torch.randn(n, 9, h, w, generator=gen).to(dtype)
    up = torch.zeros(n, c, h * s, w * s, dtype=dtype)
    same = torch.zeros(n, c, h, w, dtype=dtype)
    reassembly = native.DluParams(n, c, h, w, k, g, s)
    carafe_params = native.CarafeParams(n, c, h, w, k, g, s)
    ddf_params = native.DdfParams(n, c, h, w, 3, 1, 1, 0)
    ops: dict[str, Callable[[], object]] = {
        "DLU": lambda: lib.dlu(
            code,
            reassembly,
            x.data_ptr(),
            kernels.data_ptr(),
            offsets.data_ptr(),
            up.data_ptr(),
            num_threads=threads,
        ),
        "CARAFE": lambda: lib.carafe(
            code, carafe_params, x.data_ptr(), masks.data_ptr(), up.data_ptr(), num_threads=threads
        ),
        "DDF": lambda: lib.ddf(
            code,
            ddf_params,
            x.data_ptr(),
            cf.data_ptr(),
            sf.data_ptr(),
            same.data_ptr(),
            num_threads=threads,
        ),
    }
    cases = [Case(op, dtype, threads, fn) for op, fn in ops.items()]
    if dtype == torch.float32 and threads == 1:

        def torch_op() -> object:
            torch.set_num_threads(1)
            return dlu(x, kernels, offsets, k, g, s)

        cases.append(Case("DLU torch op", dtype, threads, torch_op))
    return cases


def _sgemm() -> Callable[[], object]:
    gen = torch.Generator().manual_seed(2)
    a, b = (torch.randn(SGEMM_SIZE, SGEMM_SIZE, generator=gen) for _ in range(2))
    out = torch.empty(SGEMM_SIZE, SGEMM_SIZE)

    def run() -> object:
        torch.set_num_threads(1)
        return torch.mm(a, b, out=out)

    return run


def _multiply_adds(shape: common.Shape) -> dict[str, int]:
    n, c, h, w, s = shape.n, shape.c, shape.h, shape.w, common.SCALE
    k, k_ddf = common.KERNEL_SIZE, 3
    reassembly = n * c * h * s * w * s * k * k
    return {"DLU": reassembly, "CARAFE": reassembly, "DDF": n * c * h * w * k_ddf * k_ddf * 2}


def _copy(elements: int) -> Callable[[], object]:
    src = np.random.default_rng(0).standard_normal(elements, dtype=np.float32)
    dst = np.empty_like(src)
    return lambda: np.copyto(dst, src)


def measure(shape: common.Shape, repeats: int, isa: str) -> list[list[str]]:
    """Rows of the ratio table for one instruction set."""
    threads_before = torch.get_num_threads()
    # torch itself on one thread throughout: an idle intra-op pool spinning on the other core
    # (after making the inputs) would be timed as the kernels' two-thread scaling.
    torch.set_num_threads(1)
    lib = _library()
    if lib.dlu_kernels_set_cpu_isa(CPU_ISAS[isa]) != 0:
        raise SystemExit(f"the {isa} CPU kernels cannot run here: {lib.dlu_kernels_last_error()!r}")
    n, c, h, w, s = shape.n, shape.c, shape.h, shape.w, common.SCALE
    copies = {"DLU": _copy(n * c * h * s * w * s), "DDF": _copy(n * c * h * w)}
    copies["CARAFE"] = copies["DLU"]
    cases = [
        case
        for dtype, threads in ((torch.float32, 1), (torch.float16, 1), (torch.float32, 2))
        for case in _cases(shape, dtype, threads)
    ]
    runs: list[tuple[str, Callable[[], object]]] = [(f"copy {op}", fn) for op, fn in copies.items()]
    runs.append(("sgemm", _sgemm()))
    runs += [(f"{case.op} {case.dtype} {case.threads}", case.run) for case in cases]
    times: dict[str, list[float]] = {name: [] for name, _ in runs}
    try:
        with torch.no_grad():
            for _name, fn in runs:
                fn()  # warm-up: first touch of outputs and scratch
            for _ in range(repeats):
                for name, fn in runs:
                    start = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads_before)
        lib.dlu_kernels_set_cpu_isa(0)
    med = {name: statistics.median(t) for name, t in times.items()}
    busy = os.getloadavg()[0] > 1.5
    torch_op = med[f"DLU torch op {torch.float32} 1"]
    multiply_adds_per_s = SGEMM_SIZE**3 / med["sgemm"]
    rows = []
    for op in ("DLU", "CARAFE", "DDF"):
        copy = med[f"copy {op}"]
        one = med[f"{op} {torch.float32} 1"]
        half = med[f"{op} {torch.float16} 1"]
        two = med[f"{op} {torch.float32} 2"]

        def verdict(ratio: float, target: float) -> str:
            return "yes" if ratio <= target else "no"

        two_text = f"{two / one:.2f}x" + (" (other core busy)" if busy else "")
        floor = _multiply_adds(shape)[op] / multiply_adds_per_s
        rows.append(
            [
                isa,
                op,
                f"{copy * 1e3:.1f}",
                f"{one * 1e3:.1f}",
                f"{one / copy:.2f}x ({verdict(one / copy, TARGET_VS_COPY)})",
                f"{floor * 1e3:.1f}",
                f"{floor / copy:.2f}x",
                f"{one / floor:.2f}x",
                f"{half * 1e3:.1f}",
                f"{half / one:.2f}x ({verdict(half / one, TARGET_FP16)})",
                f"{two * 1e3:.1f}",
                two_text if busy else f"{two_text} ({verdict(two / one, TARGET_TWO_THREADS)})",
                f"{torch_op * 1e3:.1f}" if op == "DLU" else "",
            ]
        )
    return rows


def print_ratios(shape: common.Shape, repeats: int, isas: list[str]) -> list[dict[str, str]]:
    lib = _library()
    available = [i for i in isas if lib.dlu_kernels_cpu_isa_supported(CPU_ISAS[i])]
    best = lib.dlu_kernels_cpu_isa_name(lib.dlu_kernels_cpu_isa()).decode()
    rows = [row for isa in available for row in measure(shape, repeats, isa)]
    columns = [
        "isa",
        "op",
        "copy ms",
        "fp32 1T ms",
        f"fp32/copy (<= {TARGET_VS_COPY})",
        "FMA floor ms",
        "floor/copy",
        "fp32/floor",
        "fp16 1T ms",
        f"fp16/fp32 (<= {TARGET_FP16})",
        "fp32 2T ms",
        f"2T/1T (<= {TARGET_TWO_THREADS})",
        "torch op ms (new output)",
    ]
    load = os.getloadavg()[0]
    common.print_table(
        f"CPU kernels at {shape.label}: DLU/CARAFE k=5 s=2, DDF k=3 d=1 stride 1 mul, into "
        f"preallocated outputs; copy = numpy copy into a preallocated output-sized fp32 array; "
        f"torch op = torch.ops.dlu_deploy.dlu fp32 1T, which also allocates and first-touches its "
        f"output; FMA floor = the op's multiply-adds at the rate of a one-thread fp32 "
        f"{SGEMM_SIZE}^3 torch.mm (BLAS) in this run; medians of {repeats} interleaved runs; "
        f"default instruction set here: {best}; load average {load:.1f}"
        + (" (other cores busy: the 2-thread ratio is not measurable)" if load > 1.5 else ""),
        columns,
        rows,
    )
    return [dict(zip(columns, row, strict=True)) for row in rows]
