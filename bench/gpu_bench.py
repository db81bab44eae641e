"""GPU benchmark of the fused DLU kernel (not a test: it prints ratios measured in this run).

At FPN shape A (1x256x100x152 -> 200x304, k=5, G=1, s=2) in fp32 and fp16:
  fused    the CUDA kernel of libdlu_kernels (torch.ops.dlu_deploy.dlu)
  eager    the PyTorch DLU path of the official code: grid_sample of the kernel space
           (border, align_corners=True) to full resolution, then the reassembly
           (dlu_deploy.reference.carafe)
  compiled torch.compile of that eager path
  floor    bytes that must move (x, kernels, offsets read once, the output written once)
           divided by the device-to-device copy bandwidth measured here
Every timed run starts with a cold L2 (a buffer larger than L2 is rewritten first) and is
timed with CUDA events around the op alone; p50 and p90 over --repeats runs.
Targets (issue 3): fused >= 4x faster than eager, and >= 60% of the measured copy bandwidth.

    python bench/gpu_bench.py [--repeats 50] [--shapes A,B] [--no-compile] [--json out.json]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _common as common
from dlu_deploy import reference
from dlu_deploy.ops import dlu

K, G, S = common.KERNEL_SIZE, common.GROUP, common.SCALE

SPEEDUP_TARGET = 4.0
BANDWIDTH_TARGET = 0.60


def eager_dlu(x: torch.Tensor, kernels: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """The official DLUPack expansion (grid_sample, G = 1) followed by the CARAFE reassembly."""
    h, w = x.shape[-2:]
    s = S
    o = F.pixel_shuffle(offsets, s)  # [N, 2, sH, sW]: x then y offsets in low-res pixels
    gx = torch.arange(w * s, device=x.device, dtype=x.dtype).div(s, rounding_mode="floor")
    gy = torch.arange(h * s, device=x.device, dtype=x.dtype).div(s, rounding_mode="floor")
    px = (gx.view(1, 1, -1) + o[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    py = (gy.view(1, -1, 1) + o[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack((px, py), dim=-1)
    full = F.grid_sample(kernels, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return reference.carafe(x, full, K, G, s)


def measured_copy_bandwidth(flush_bytes: int) -> float:
    """Device-to-device copy bandwidth in bytes/s (read + write), best of 10 large copies."""
    src = torch.empty(flush_bytes // 4, dtype=torch.float32, device="cuda").normal_()
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(10):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / 1e3)
    return 2 * src.numel() * src.element_size() / best


def cold_l2_times(fn: Callable[[], torch.Tensor], repeats: int, flush: torch.Tensor) -> list[float]:
    fn()  # warm-up: kernels loaded, compile done, allocator primed
    times = []
    for _ in range(repeats):
        flush.add_(1)  # evicts the op's inputs and outputs from L2
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def minimum_bytes(shape: common.Shape, dtype: torch.dtype) -> int:
    n, c, h, w = shape.n, shape.c, shape.h, shape.w
    elements = n * h * w * (c + G * K * K + G * 2 * S * S + c * S * S)
    return elements * torch.tensor([], dtype=dtype).element_size()


def measure(
    shape: common.Shape,
    dtype: torch.dtype,
    compiled: Callable[..., torch.Tensor] | None,
    repeats: int,
    flush: torch.Tensor,
    bandwidth: float,
) -> dict:
    """Times fused / eager / compiled at one shape and dtype; returns results and table rows."""
    x, kernels, offsets = common.dlu_inputs(shape, dtype=dtype, device="cuda")
    # grid_sample runs in the input dtype; the reference reassembly computes in fp32.
    methods: dict[str, Callable[[], torch.Tensor]] = {
        "fused": lambda: dlu(x, kernels, offsets, K, G, S),
        "eager": lambda: eager_dlu(x, kernels, offsets),
    }
    if compiled is not None:
        methods["compiled"] = lambda: compiled(x, kernels, offsets)
    with torch.no_grad():
        err = (methods["fused"]().float() - methods["eager"]().float()).abs().max().item()
        times = {name: cold_l2_times(fn, repeats, flush) for name, fn in methods.items()}
    floor = minimum_bytes(shape, dtype) / bandwidth
    p50 = {name: percentile(t, 0.5) for name, t in times.items()}
    speedup = p50["eager"] / p50["fused"]
    fraction = floor / p50["fused"]
    met_speed, met_bw = speedup >= SPEEDUP_TARGET, fraction >= BANDWIDTH_TARGET
    label = f"{shape.label} {str(dtype).removeprefix('torch.')}"
    rows = [
        [
            label,
            name,
            f"{p50[name] * 1e6:.1f}",
            f"{percentile(t, 0.9) * 1e6:.1f}",
            f"{p50[name] / p50['fused']:.2f}x",
            f"{floor / p50[name] * 100:.0f}%",
        ]
        for name, t in times.items()
    ]
    rows.append([label, "floor", f"{floor * 1e6:.1f}", "", "", "100%"])
    rows.append(
        [
            label,
            "target",
            f"eager/fused {speedup:.2f}x >= {SPEEDUP_TARGET}x: {'MET' if met_speed else 'NOT MET'}",
            f"{fraction * 100:.0f}% of copy bandwidth >= {BANDWIDTH_TARGET * 100:.0f}%: "
            f"{'MET' if met_bw else 'NOT MET'}",
            "",
            f"|fused-eager| {err:.1e}",
        ]
    )
    return {
        "shape": shape.label,
        "dtype": str(dtype),
        "p50_s": p50,
        "p90_s": {name: percentile(t, 0.9) for name, t in times.items()},
        "floor_s": floor,
        "speedup_vs_eager": speedup,
        "fraction_of_copy_bandwidth": fraction,
        "speedup_target_met": met_speed,
        "bandwidth_target_met": met_bw,
        "max_abs_diff_fused_vs_eager": err,
        "rows": rows,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument(
        "--shapes", default="A", help="FPN shapes: A = 1x256x100x152, B = 1x256x50x76"
    )
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile baseline")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU visible to torch: nothing to benchmark")
        return 2
    props = torch.cuda.get_device_properties(0)
    l2 = getattr(props, "L2_cache_size", 50 * 2**20)
    flush = torch.empty(max(4 * l2, 256 * 2**20) // 4, dtype=torch.float32, device="cuda")
    bandwidth = measured_copy_bandwidth(1 << 30)
    print(
        f"{props.name}: L2 {l2 / 2**20:.0f} MiB, measured copy bandwidth {bandwidth / 1e9:.0f} GB/s"
    )

    compiled = None if args.no_compile else torch.compile(eager_dlu, dynamic=False)
    rows: list[list[str]] = []
    results, all_met = [], True
    for key in args.shapes.split(","):
        for dtype in (torch.float32, torch.float16):
            result = measure(
                common.FPN_SHAPES[key], dtype, compiled, args.repeats, flush, bandwidth
            )
            rows += result.pop("rows")
            all_met = all_met and result["speedup_target_met"] and result["bandwidth_target_met"]
            results.append(result)
    common.print_table(
        f"Fused DLU on {props.name}, cold L2, CUDA events, {args.repeats} runs",
        ["shape", "method", "p50 us", "p90 us", "vs fused", "of floor"],
        rows,
    )
    common.write_json(
        args.json,
        {"device": props.name, "copy_bandwidth_bytes_per_s": bandwidth, "results": results},
    )
    print("all targets met" if all_met else "some targets NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
