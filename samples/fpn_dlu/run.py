"""FPN with DLU: the DLU repository's coco_custom_dlu.py neck (UNIFIED_FPN) on ResNet-50, from an
mmdetection checkpoint to a backbone + neck ONNX in both export modes, validated in onnxruntime;
and the CARAFE and bilinear variants of the same neck for comparison (ONNX size, node counts,
CPU latency).

    python samples/fpn_dlu/run.py [--small] [--size H W] [--out DIR]

The trained checkpoints are not public in a form this sample can fetch: it writes seeded
stand-ins in mmdetection's format ({"state_dict": backbone.* neck.* rpn_head.* roi_head.*,
"meta": {"cfg": ...}}). The exporter keeps the backbone and the neck (image -> P2..P6).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from pathlib import Path

import onnx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common

from dlu_deploy.bench import bench
from dlu_deploy.models import BackboneNeck, ResNet50, UnifiedFPN
from dlu_deploy.models.seeded import build_seeded

IN_CHANNELS, OUT_CHANNELS, NUM_OUTS = [256, 512, 1024, 2048], 256, 5  # coco_custom_*.py
# upsample_cfg of custom/config/FPN/coco_custom_dlu.py, coco_custom_carafe.py and
# coco_baseline_bilinear.py.
DYNAMIC = {
    "up_kernel": 5,
    "up_group": 1,
    "encoder_kernel": 3,
    "encoder_dilation": 1,
    "compressed_channels": 64,
}
VARIANTS: dict[str, dict[str, object]] = {
    "dlu": {"type": "dlu", **DYNAMIC},
    "carafe": {"type": "carafe", **DYNAMIC},
    "bilinear": {"type": "bilinear"},
}
CONFIG_TEXT = """_base_ = '../../../configs/faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
model = dict(
    neck=dict(
        type='UNIFIED_FPN',
        in_channels=[256, 512, 1024, 2048],
        out_channels=256,
        num_outs=5,
        start_level=0,
        end_level=-1,
        norm_cfg=None,
        act_cfg=None,
        order=('conv', 'norm', 'act'),
        upsample_cfg={upsample_cfg}))
"""
NUM_CLASSES = 80
ROI_FEATURES = 256 * 7 * 7


def detector_heads(generator: torch.Generator, with_roi_head: bool) -> dict[str, torch.Tensor]:
    """mmdetection's Faster R-CNN heads (RPNHead, Shared2FCBBoxHead); the export leaves them out."""
    shapes: dict[str, tuple[int, ...]] = {
        "rpn_head.rpn_conv": (256, 256, 3, 3),
        "rpn_head.rpn_cls": (3, 256, 1, 1),
        "rpn_head.rpn_reg": (12, 256, 1, 1),
    }
    if with_roi_head:
        shapes |= {
            "roi_head.bbox_head.shared_fcs.0": (1024, ROI_FEATURES),
            "roi_head.bbox_head.shared_fcs.1": (1024, 1024),
            "roi_head.bbox_head.fc_cls": (NUM_CLASSES + 1, 1024),
            "roi_head.bbox_head.fc_reg": (4 * NUM_CLASSES, 1024),
        }
    heads = {}
    for name, shape in shapes.items():
        heads[f"{name}.weight"] = torch.randn(*shape, generator=generator) * 0.01
        heads[f"{name}.bias"] = torch.zeros(shape[0])
    return heads


def make_checkpoint(variant: str, seed: int, path: Path, with_roi_head: bool) -> None:
    cfg = VARIANTS[variant]
    model = build_seeded(
        lambda: BackboneNeck(ResNet50(), UnifiedFPN(IN_CHANNELS, OUT_CHANNELS, NUM_OUTS, cfg)), seed
    )
    state = dict(model.state_dict())
    state |= detector_heads(torch.Generator().manual_seed(seed), with_roi_head)
    text = CONFIG_TEXT.format(upsample_cfg=repr(cfg))
    meta = {"cfg": text, "epoch": 12, "iter": 87960, "mmengine_version": "0.10.4"}
    common.save_checkpoint({"state_dict": state, "meta": meta}, path)


def latency(
    paths: dict[str, Path], shape: tuple[int, ...], args: argparse.Namespace, rounds: int
) -> dict[str, float]:
    """Median over `rounds` interleaved rounds of each file's p50 in onnxruntime (CPU)."""
    iterations, warmup = (3, 1) if args.small else (10, 2)
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(rounds):
        for name, path in paths.items():
            report = bench(
                path,
                backend="ort",
                shapes={"image": shape},
                warmup=warmup,
                iterations=iterations,
                compile_torch=False,
                threads=args.threads,
            )
            samples[name].append(report.timings[0].p50_ms)
    return {name: statistics.median(values) for name, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    p = common.parser("fpn_dlu", __doc__.split("\n")[0])
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="image size (x64)")
    args = p.parse_args(argv)
    console = common.console
    height, width = args.size or ((64, 96) if args.small else (512, 768))
    shape = (1, 3, height, width)
    # --small exports fixed shapes (faster to trace) and validates at the traced one only.
    dynamic = not args.small
    sizes = [shape, (2, 3, height, width), (1, 3, 2 * height, width)] if dynamic else [shape]
    plugin_missing = common.plugin_runtime_missing()
    reports, files, graphs, errors, upsampler_mib = [], {}, {}, {}, {}
    for variant in VARIANTS:
        name = f"faster_rcnn_r50_unified_fpn_{variant}"
        common.heading(f"{variant}: {name}")
        checkpoint = args.out / f"{name}.pth"
        make_checkpoint(variant, args.seed, checkpoint, with_roi_head=not args.small)
        loaded = common.load(checkpoint)
        upsamplers = loaded.model.neck.upsample_modules.parameters()  # type: ignore[union-attr]
        upsampler_mib[variant] = sum(p.numel() * p.element_size() for p in upsamplers) / 2**20
        for note in loaded.notes:
            console.print(f"  note: {note}")
        modes = ("plugin", "portable") if variant != "bilinear" else ("portable",)
        for mode in modes:
            path = args.out / f"{name}.{mode}.onnx"
            result = common.export(loaded, path, mode, input_shapes=[shape], dynamic=dynamic)
            files[(variant, mode)] = path
            graphs[(variant, mode)] = (
                result,
                Counter(n.op_type for n in onnx.load(path).graph.node),
            )
            if mode == "plugin" and plugin_missing:
                console.print(f"plugin-mode validation in onnxruntime skipped: {plugin_missing}")
                continue
            report = common.validate_onnx(
                loaded, path, checkpoint, [{"image": s} for s in sizes], args.threads
            )
            reports.append(report)
            errors[(variant, mode)] = common.max_abs_error(report)

    common.heading("Comparison: the same ResNet-50 + UNIFIED_FPN with three upsamplers")
    timed = {v: files[(v, "portable")] for v in VARIANTS}
    if not plugin_missing:
        timed |= {f"{v} (plugin)": files[(v, "plugin")] for v in ("dlu", "carafe")}
    rounds = 1 if args.small else 3
    times = latency(timed, shape, args, rounds)
    base = times["bilinear"]
    rows = []
    for (variant, mode), (result, ops) in graphs.items():
        label = variant if mode == "portable" else f"{variant} (plugin)"
        ms = times.get(label)
        error = errors.get((variant, mode))
        rows.append(
            (
                f"{variant} {mode}",
                f"{upsampler_mib[variant]:.2f}",
                f"{result.size_bytes / 2**20:.2f}",
                sum(ops.values()),
                ", ".join(f"{k} x{v}" for k, v in result.custom_nodes.items()) or "-",
                f"{error:.2g}" if error is not None else "-",
                f"{ms:.1f}" if ms is not None else "-",
                f"{ms / base:.2f}" if ms is not None else "-",
            )
        )
    columns = (
        "graph",
        "upsamplers MiB",
        "ONNX MiB",
        "nodes",
        "custom nodes",
        "max err",
        "CPU ms",
        "vs bilinear",
    )
    console.print(
        common.table(
            f"input {shape}; max err = max |diff| vs PyTorch in onnxruntime; CPU ms = "
            f"onnxruntime p50 (median of {rounds} interleaved rounds)",
            columns,
            rows,
        )
    )
    if plugin_missing:
        console.print(f"plugin-mode graphs not timed: {plugin_missing}")

    commands = []
    for variant in ("dlu", "carafe"):
        checkpoint = args.out / f"faster_rcnn_r50_unified_fpn_{variant}.pth"
        plugin = files[(variant, "plugin")]
        commands.append(common.export_command(checkpoint, plugin, "plugin", shape, dynamic=dynamic))
        opt, most = ((1, 3, 800, 1344), (2, 3, 1344, 1344)) if dynamic else (shape, shape)
        commands += common.gpu_commands(
            checkpoint, plugin, {"image": shape}, {"image": opt}, {"image": most}, plugins=True
        )
    common.print_gpu_commands(
        commands,
        "800 x 1344 is mmdetection's test size for these configs (1333 x 800, padded to 64)."
        if dynamic
        else "--small exported fixed shapes: the engines take only that shape.",
    )
    return common.finish(reports)


if __name__ == "__main__":
    sys.exit(main())
