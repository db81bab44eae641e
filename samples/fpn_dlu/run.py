"""FPN with DLU: the DLU repository's coco_custom_dlu.py detector (Faster R-CNN, ResNet-50,
UNIFIED_FPN with DLU) from an mmdetection checkpoint to ONNX: the whole detector (image ->
dets, labels) in both export modes, validated in onnxruntime; then backbone + neck
(image -> P2..P6) of the DLU, CARAFE and bilinear variants side by side (ONNX size, node
counts, CPU latency).

    python samples/fpn_dlu/run.py [--small] [--size H W] [--out DIR]

The trained checkpoints are not public in a form this sample can fetch: it writes seeded
stand-ins saved as mmengine saves them ({"state_dict": backbone.* neck.* rpn_head.* roi_head.*,
"meta": {"cfg": <config text>, "dataset_meta": {"classes": ...}, ...}, "optimizer",
"param_schedulers", "message_hub"}), which dlu-export reads without mmengine and without
--trust-pickle.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common

from dlu_deploy.bench import bench
from dlu_deploy.models import BackboneNeck, ResNet50, UnifiedFPN
from dlu_deploy.models.seeded import build_seeded
from dlu_deploy.validate import OrtBackend, render_report, validate

console = common.console

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
        upsample_cfg={upsample_cfg}),
    test_cfg=dict(
        rpn=dict(nms_pre=1000, max_per_img=1000, nms=dict(type='nms', iou_threshold=0.7),
                 min_bbox_size=0),
        rcnn=dict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)))
"""
NUM_CLASSES = 80
ROI_FEATURES = 256 * 7 * 7
# COCO's 80 classes, as mmdetection's CocoDataset.METAINFO lists them (first and last few).
COCO_CLASSES = ("person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck")
CLASS_NAMES = COCO_CLASSES + tuple(f"class_{i}" for i in range(len(COCO_CLASSES), NUM_CLASSES))


def detector_heads(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """mmdetection's Faster R-CNN heads (RPNHead, Shared2FCBBoxHead), seeded; the classifier is
    scaled so that stand-in weights still find boxes above score_thr 0.05."""
    shapes: dict[str, tuple[tuple[int, ...], float]] = {
        "rpn_head.rpn_conv": ((256, 256, 3, 3), 0.01),
        "rpn_head.rpn_cls": ((3, 256, 1, 1), 0.05),
        "rpn_head.rpn_reg": ((12, 256, 1, 1), 0.05),
        "roi_head.bbox_head.shared_fcs.0": ((1024, ROI_FEATURES), 0.002),
        "roi_head.bbox_head.shared_fcs.1": ((1024, 1024), 0.03),
        "roi_head.bbox_head.fc_cls": ((NUM_CLASSES + 1, 1024), 0.5),
        "roi_head.bbox_head.fc_reg": ((4 * NUM_CLASSES, 1024), 0.05),
    }
    heads = {}
    for name, (shape, std) in shapes.items():
        heads[f"{name}.weight"] = torch.randn(*shape, generator=generator) * std
        heads[f"{name}.bias"] = torch.randn(shape[0], generator=generator) * 0.1
    return heads


def make_checkpoint(variant: str, seed: int, path: Path) -> None:
    cfg = VARIANTS[variant]
    model = build_seeded(
        lambda: BackboneNeck(ResNet50(), UnifiedFPN(IN_CHANNELS, OUT_CHANNELS, NUM_OUTS, cfg)), seed
    )
    state = dict(model.state_dict())
    state |= detector_heads(torch.Generator().manual_seed(seed))
    text = CONFIG_TEXT.format(upsample_cfg=repr(cfg))
    meta = {
        "cfg": text,
        "dataset_meta": {"classes": CLASS_NAMES},
        "epoch": 12,
        "iter": 87960,
        "mmengine_version": "0.10.7",
    }
    common.save_checkpoint({"state_dict": state, "meta": meta, **training_state(state)}, path)


def training_state(state: dict[str, torch.Tensor]) -> dict[str, object]:
    """What mmengine's Runner saves beside the weights: the optimizer (SGD momentum buffers),
    the schedulers and the message hub with numpy values. mmengine itself also pickles its
    HistoryBuffer objects there; dlu-export reads all of it as inert data, without mmengine."""
    names = [name for name in state if state[name].is_floating_point()][:8]
    return {
        "optimizer": {
            "state": {
                i: {"momentum_buffer": torch.zeros_like(state[n])} for i, n in enumerate(names)
            },
            "param_groups": [
                {
                    "lr": 0.02,
                    "momentum": 0.9,
                    "weight_decay": 1e-4,
                    "params": list(range(len(names))),
                }
            ],
        },
        "param_schedulers": [
            {"start_factor": 0.001, "by_epoch": False, "begin": 0, "end": 500, "last_step": 87960},
            {"milestones": {8: 1, 11: 1}, "gamma": 0.1, "by_epoch": True, "last_step": 12},
        ],
        "message_hub": {
            "log_scalars": {"train/loss": np.array([0.61, 0.58], dtype=np.float64)},
            "runtime_info": {"epoch": 12, "iter": 87960, "dataset_meta": {"classes": CLASS_NAMES}},
            "resumed_keys": {"epoch": True, "iter": True},
        },
    }


def detector_section(
    args: argparse.Namespace, shape: tuple[int, ...], dynamic: bool, plugin_missing: str | None
) -> tuple[list[object], list[str]]:
    """The whole DLU detector: export both modes, validate on one image, print detections."""
    common.heading("dlu: the whole detector (image -> dets, labels)")
    checkpoint = args.out / "faster_rcnn_r50_unified_fpn_dlu.pth"
    loaded = common.load(checkpoint)
    reports: list[object] = []
    commands: list[str] = []
    image = np.random.default_rng(args.seed).uniform(0, 255, shape).astype(np.float32)
    with torch.no_grad():
        dets, labels = loaded.model(torch.from_numpy(image))
    found = int((labels[0] >= 0).sum())
    console.print(f"PyTorch: {found} detections on a {shape[2]} x {shape[3]} noise image; best:")
    for row, label in zip(dets[0, :3].tolist(), labels[0, :3].tolist(), strict=True):
        box = ", ".join(f"{v:.1f}" for v in row[:4])
        console.print(f"  {CLASS_NAMES[label]:>10} {row[4]:.3f} [{box}]")
    for mode in ("plugin", "portable"):
        path = args.out / f"faster_rcnn_r50_unified_fpn_dlu.detector.{mode}.onnx"
        result = common.export(loaded, path, mode, input_shapes=[shape], dynamic=dynamic)
        ops = Counter(n.op_type for n in onnx.load(path).graph.node)
        console.print(
            f"  {sum(ops.values())} nodes: NonMaxSuppression x{ops['NonMaxSuppression']}, "
            f"RoiAlign x{ops['RoiAlign']}, TopK x{ops['TopK']}; outputs {result.outputs}"
        )
        commands.append(common.export_command(checkpoint, path, mode, shape, dynamic=dynamic))
        if mode == "plugin" and plugin_missing:
            console.print(f"plugin-mode validation in onnxruntime skipped: {plugin_missing}")
            continue
        report = validate(
            loaded,
            OrtBackend(path, threads=args.threads),
            inputs={"image": image},
            candidate_name=path.name,
            reference_name=checkpoint.name,
        )
        render_report(report, console)
        reports.append(report)
    plugin = args.out / "faster_rcnn_r50_unified_fpn_dlu.detector.plugin.onnx"
    opt, most = ((1, 3, 800, 1344), (2, 3, 1344, 1344)) if dynamic else (shape, shape)
    commands += common.gpu_commands(
        checkpoint, plugin, {"image": shape}, {"image": opt}, {"image": most}, plugins=True
    )
    return reports, commands


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
    height, width = args.size or ((64, 96) if args.small else (512, 768))
    shape = (1, 3, height, width)
    # --small exports fixed shapes (faster to trace) and validates at the traced one only.
    dynamic = not args.small
    sizes = [shape, (2, 3, height, width), (1, 3, 2 * height, width)] if dynamic else [shape]
    plugin_missing = common.plugin_runtime_missing()
    reports, files, graphs, errors, upsampler_mib = [], {}, {}, {}, {}
    for variant in VARIANTS:
        make_checkpoint(variant, args.seed, args.out / f"faster_rcnn_r50_unified_fpn_{variant}.pth")
    detector_reports, detector_commands = detector_section(args, shape, dynamic, plugin_missing)
    reports.extend(detector_reports)
    for variant in VARIANTS:
        name = f"faster_rcnn_r50_unified_fpn_{variant}"
        common.heading(f"{variant}: {name}, backbone + neck (--part backbone-neck)")
        checkpoint = args.out / f"{name}.pth"
        loaded = common.load(checkpoint, overrides={"part": "backbone-neck"})
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

    commands = list(detector_commands)
    for variant in ("dlu", "carafe"):
        checkpoint = args.out / f"faster_rcnn_r50_unified_fpn_{variant}.pth"
        plugin = files[(variant, "plugin")]
        commands.append(
            common.export_command(
                checkpoint, plugin, "plugin", shape, {"part": "backbone-neck"}, dynamic=dynamic
            )
        )
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
