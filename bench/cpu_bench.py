"""CPU benchmark of DLU at FPN shapes (not a test: it prints ratios measured in this run).

  plugin-mode ONNX in onnxruntime, the DLU node on the native kernels (dlu_deploy.ort)
  vs the portable ONNX (standard ops only) in onnxruntime
  vs PyTorch eager (the reference op, dlu_deploy.reference.dlu)
The native torch op (same kernels, no ONNX Runtime around them) is listed for scale.
A second section (bench/_kernel_ratios.py) gives the CPU kernels' ratios against a numpy copy,
fp16 against fp32 and two threads against one, per instruction set (--kernel-isas).

    python bench/cpu_bench.py [--repeats 5] [--threads N] [--shapes A,B] [--json out.json]
                              [--kernels-only] [--kernel-isas portable,avx2,avx512,neon]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _common as common
from bench import _kernel_ratios as kernel_ratios
from dlu_deploy import reference
from dlu_deploy.ops import dlu
from dlu_deploy.ort import make_session

K, G, S = common.KERNEL_SIZE, common.GROUP, common.SCALE
PLUGIN = "ORT plugin mode (native kernels)"
EAGER = "PyTorch eager (reference)"


def timed(fn: Callable[[], object], repeats: int) -> tuple[list[float], np.ndarray]:
    result = fn()  # warm-up (first-touch allocations, ORT arena)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, np.asarray(result)


def measure_shape(
    shape: common.Shape,
    plugin: onnxruntime.InferenceSession,
    portable: onnxruntime.InferenceSession,
    repeats: int,
) -> dict[str, tuple[list[float], np.ndarray]]:
    x, kernels, offsets = common.dlu_inputs(shape)
    feeds = {"x": x.numpy(), "kernels": kernels.numpy(), "offsets": offsets.numpy()}
    names = [i.name for i in portable.get_inputs()]
    portable_feeds = dict(zip(names, feeds.values(), strict=True))
    methods: dict[str, Callable[[], object]] = {
        PLUGIN: lambda: plugin.run(None, feeds)[0],
        "ORT portable ONNX": lambda: portable.run(None, portable_feeds)[0],
        EAGER: lambda: reference.dlu(x, kernels, offsets, K, G, S),
        "torch op (native kernels)": lambda: dlu(x, kernels, offsets, K, G, S),
    }
    with torch.no_grad():
        return {name: timed(fn, repeats) for name, fn in methods.items()}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    parser.add_argument("--shapes", default="A,B", help="A = 1x256x100x152, B = 1x256x50x76")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--kernels-only", action="store_true", help="only the CPU kernel ratios")
    parser.add_argument(
        "--kernel-isas",
        default="portable,avx2,avx512,neon",
        help="instruction sets of the kernel-ratio section (unsupported ones are left out)",
    )
    args = parser.parse_args()
    if args.kernels_only:
        ratios = kernel_ratios.print_ratios(
            common.FPN_SHAPES["A"], max(args.repeats, 9), args.kernel_isas.split(",")
        )
        common.write_json(args.json, {"kernel_ratios": ratios})
        return 0
    threads = args.threads or common.cpu_count()
    torch.set_num_threads(threads)

    print(f"DLU k={K} G={G} s={S}, fp32, {threads} threads, {args.repeats} timed runs each")
    print("exporting the portable graph (torch.onnx, dynamo) ...", flush=True)
    plugin = make_session(common.plugin_model(), intra_op_threads=threads)
    portable = make_session(common.portable_model(common.FPN_SHAPES["A"]), intra_op_threads=threads)

    rows, results = [], []
    for key in args.shapes.split(","):
        shape = common.FPN_SHAPES[key]
        measured = measure_shape(shape, plugin, portable, args.repeats)
        want = measured[EAGER][1]
        base = statistics.median(measured[PLUGIN][0])
        for name, (times, out) in measured.items():
            err = float(np.abs(out - want).max())
            med = statistics.median(times)
            rows.append(
                [
                    shape.label,
                    name,
                    f"{med * 1e3:.1f}",
                    f"{min(times) * 1e3:.1f}",
                    f"{med / base:.2f}x",
                    f"{err:.1e}",
                ]
            )
            results.append(
                {
                    "shape": shape.label,
                    "method": name,
                    "median_ms": med * 1e3,
                    "min_ms": min(times) * 1e3,
                    "vs_plugin": med / base,
                    "max_abs_err_vs_eager": err,
                }
            )
    common.print_table(
        "DLU on the CPU (time relative to ORT plugin mode; >1x = slower)",
        ["shape", "method", "median ms", "min ms", "vs plugin", "max |err| vs eager"],
        rows,
    )
    ratios = kernel_ratios.print_ratios(
        common.FPN_SHAPES["A"], max(args.repeats, 9), args.kernel_isas.split(",")
    )
    common.write_json(
        args.json,
        {"threads": threads, "repeats": args.repeats, "results": results, "kernel_ratios": ratios},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
