"""CPU benchmark of DLU at FPN shapes (not a test: it prints ratios measured in this run).

  plugin-mode ONNX in onnxruntime, the DLU node on the native kernels (dlu_deploy.ort)
  vs the portable ONNX (standard ops only) in onnxruntime
  vs PyTorch eager (the reference op, dlu_deploy.reference.dlu)
The native torch op (same kernels, no ONNX Runtime around them) is listed for scale.
A second section (bench/_kernel_ratios.py) gives the CPU kernels' ratios against a numpy copy,
fp16 against fp32 and two threads against one, per instruction set (--kernel-isas).

Plugin mode in onnxruntime (section "ONNX Runtime plugin mode"): the custom-op library
libdlu_ort_ops in a plain onnxruntime session vs the portable graph, on one DLU node at
1x256x100x152 and on the ResNet-50 + UNIFIED_FPN(DLU) neck exported both ways (--fpn-size, 0 0
to skip). The former Python-op bridge was measured against it before its removal
(docs/kernels.md#benchmarks).

    python bench/cpu_bench.py [--repeats 5] [--threads N] [--shapes A,B] [--fpn-size H W]
                              [--json out.json] [--kernels-only]
                              [--kernel-isas portable,avx2,avx512,neon]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _common as common
from bench import _kernel_ratios as kernel_ratios
from dlu_deploy import reference
from dlu_deploy.ops import dlu
from dlu_deploy.ort import custom_ops_library, make_session

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


# ---- ONNX Runtime plugin mode: the native custom-op library vs the portable graph ------------

NATIVE = "plugin mode, libdlu_ort_ops (native)"
PORTABLE = "portable graph"
FPN_IN, FPN_OUT = [256, 512, 1024, 2048], 256
FPN_DLU = {
    "type": "dlu",
    "up_kernel": 5,
    "up_group": 1,
    "encoder_kernel": 3,
    "encoder_dilation": 1,
    "compressed_channels": 64,
}  # coco_custom_dlu.py


def native_session(model: onnx.ModelProto | Path, threads: int) -> onnxruntime.InferenceSession:
    """A plain onnxruntime session with the custom-op library registered (no dlu_deploy code)."""
    options = _options(threads)
    options.register_custom_ops_library(str(custom_ops_library()))
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def fpn_exports(tmp: Path, height: int, width: int) -> dict[str, Path]:
    """ResNet-50 + UNIFIED_FPN(DLU) (seeded weights) exported in plugin and portable mode."""
    from dlu_export import ExportOptions, export_model

    from dlu_deploy.checkpoints import load_model
    from dlu_deploy.models import BackboneNeck, ResNet50, UnifiedFPN
    from dlu_deploy.models.seeded import build_seeded

    model = build_seeded(
        lambda: BackboneNeck(ResNet50(), UnifiedFPN(FPN_IN, FPN_OUT, 5, FPN_DLU)), 0
    )
    cfg = f"model = dict(neck=dict(type='UNIFIED_FPN', upsample_cfg={FPN_DLU!r}))\n"
    checkpoint = tmp / "fpn_dlu.pth"
    torch.save({"meta": {"cfg": cfg}, "state_dict": model.state_dict()}, checkpoint)
    loaded = load_model(checkpoint)
    paths = {}
    for mode in ("plugin", "portable"):
        options = ExportOptions(mode=mode, input_shapes=[(1, 3, height, width)])
        paths[mode] = export_model(loaded, tmp / f"fpn_dlu.{mode}.onnx", options).path
    return paths


def plugin_mode_section(args: argparse.Namespace, threads: int) -> list[dict[str, object]]:
    """DLU node and FPN: native custom-op library vs portable graph, one table."""
    rows, results = [], []
    portable_ratio: dict[str, float] = {}
    workloads: list[tuple[str, dict[str, Callable[[], object]]]] = []
    shape = common.FPN_SHAPES["A"]
    x, kernels, offsets = common.dlu_inputs(shape)
    feeds = {"x": x.numpy(), "kernels": kernels.numpy(), "offsets": offsets.numpy()}
    portable = onnxruntime.InferenceSession(
        common.portable_model(shape).SerializeToString(),
        _options(threads),
        providers=["CPUExecutionProvider"],
    )
    portable_feeds = dict(zip([i.name for i in portable.get_inputs()], feeds.values(), strict=True))
    native = native_session(common.plugin_model(), threads)
    dlu_methods: dict[str, Callable[[], object]] = {
        NATIVE: lambda: native.run(None, feeds)[0],
        PORTABLE: lambda: portable.run(None, portable_feeds)[0],
    }
    workloads.append((f"DLU node {shape.label}", dlu_methods))
    with tempfile.TemporaryDirectory() as tmp:
        if args.fpn_size[0] > 0:
            height, width = args.fpn_size
            print(f"exporting ResNet-50 + UNIFIED_FPN(DLU) at 1x3x{height}x{width} ...", flush=True)
            paths = fpn_exports(Path(tmp), height, width)
            image = {
                "image": np.random.default_rng(0).standard_normal(
                    (1, 3, height, width), dtype=np.float32
                )
            }
            fpn_native = native_session(paths["plugin"], threads)
            fpn_portable = onnxruntime.InferenceSession(
                str(paths["portable"]), _options(threads), providers=["CPUExecutionProvider"]
            )
            fpn_methods: dict[str, Callable[[], object]] = {
                NATIVE: lambda: _flat(fpn_native.run(None, image)),
                PORTABLE: lambda: _flat(fpn_portable.run(None, image)),
            }
            workloads.append((f"FPN neck, image 1x3x{height}x{width}", fpn_methods))
        for label, methods in workloads:
            measured = timed_interleaved(methods, args.repeats)
            base = statistics.median(measured[NATIVE][0])
            want = _flat(measured[PORTABLE][1])
            for name, (times, out) in measured.items():
                med = statistics.median(times)
                err = float(np.abs(_flat(out) - want).max())
                rows.append([label, name, f"{med * 1e3:.1f}", f"{med / base:.2f}x", f"{err:.1e}"])
                if name == PORTABLE:
                    portable_ratio[label] = med / base
                results.append(
                    {
                        "workload": label,
                        "method": name,
                        "median_ms": med * 1e3,
                        "vs_native": med / base,
                        "max_abs_diff_vs_portable": err,
                    }
                )
    common.print_table(
        "ONNX Runtime plugin mode (time relative to the native library; >1x = slower)",
        ["shape", "method", "median ms", "vs native", "max |diff| vs portable"],
        rows,
    )
    speedup = portable_ratio[workloads[0][0]]
    verdict = "met" if speedup >= 5 else "NOT met"
    print(f"target: DLU plugin mode >= 5x faster than portable: {speedup:.1f}x, {verdict}")
    return results


def timed_interleaved(
    methods: dict[str, Callable[[], object]], repeats: int
) -> dict[str, tuple[list[float], np.ndarray]]:
    """Like timed() for each method, with the methods taking turns: on a shared machine whose
    load drifts, every method sees the same drift."""
    results = {name: np.asarray(fn()) for name, fn in methods.items()}  # warm-up
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            start = time.perf_counter()
            results[name] = np.asarray(fn())
            times[name].append(time.perf_counter() - start)
    return {name: (times[name], results[name]) for name in methods}


def _options(threads: int) -> onnxruntime.SessionOptions:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    return options


def _flat(out: object) -> np.ndarray:
    arrays = out if isinstance(out, list) else [out]
    return np.concatenate([np.asarray(a, np.float32).reshape(-1) for a in arrays])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    parser.add_argument("--shapes", default="A,B", help="A = 1x256x100x152, B = 1x256x50x76")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument(
        "--fpn-size",
        type=int,
        nargs=2,
        default=(800, 1216),
        metavar=("H", "W"),
        help="image of the FPN plugin-mode comparison (0 0: skip it)",
    )
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
    plugin_mode = plugin_mode_section(args, threads)
    ratios = kernel_ratios.print_ratios(
        common.FPN_SHAPES["A"], max(args.repeats, 9), args.kernel_isas.split(",")
    )
    common.write_json(
        args.json,
        {
            "threads": threads,
            "repeats": args.repeats,
            "results": results,
            "plugin_mode": plugin_mode,
            "kernel_ratios": ratios,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
