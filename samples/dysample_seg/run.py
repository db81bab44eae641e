"""DySample in a small segmentation head, styles 'lp' and 'pl', dyscope off and on: checkpoint ->
ONNX in both export modes (standard GridSample, no custom node) -> validation of one
dynamic-shape export at several input sizes.

    python samples/dysample_seg/run.py [--small] [--out DIR]

Two of the three validated sizes differ from the traced one on purpose: the official DySample
builds its grid normaliser with torch.tensor([W, H]), which the TorchScript exporter freezes into
a constant, so such an export is silently wrong at other sizes (samples/README.md).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import onnx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common

from dlu_deploy.models.dysample_seg import DySampleSegConfig, DySampleSegHead
from dlu_deploy.models.seeded import build_seeded
from dlu_deploy.validate import ValidationReport

VARIANTS = (("lp", False), ("lp", True), ("pl", False), ("pl", True))
# Offsets of a trained DySample move points by a fraction of a pixel to a few pixels; the
# official initialisation (std 0.001) would leave the sampler a plain bilinear upsampler.
OFFSET_WEIGHT_STD = 0.3
SCOPE_WEIGHT_STD = 1.0


def make_checkpoint(config: DySampleSegConfig, seed: int, path: Path) -> None:
    head = build_seeded(lambda: DySampleSegHead(config), seed)
    generator = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        head.upsample.offset.weight.normal_(0.0, OFFSET_WEIGHT_STD, generator=generator)
        if config.dyscope:
            head.upsample.scope.weight.normal_(0.0, SCOPE_WEIGHT_STD, generator=generator)
    common.save_checkpoint(head.state_dict(), path)


def main(argv: list[str] | None = None) -> int:
    p = common.parser("dysample_seg", __doc__.split("\n")[0])
    args = p.parse_args(argv)
    console = common.console
    size = 16 if args.small else 64
    channels = 32 if args.small else 64
    traced = (1, channels, size, size)
    # Other sizes than the traced one: batch 2, non-square, odd.
    sizes = [traced, (2, channels, size + 8, 2 * size), (1, channels, size + 1, size // 2 + 3)]
    reports: list[ValidationReport] = []
    rows: list[tuple[object, ...]] = []
    for style, dyscope in VARIANTS:
        name = f"dysample_seg_{style}" + ("_dyscope" if dyscope else "")
        common.heading(f"{name}: style '{style}', dyscope {'on' if dyscope else 'off'}")
        config = DySampleSegConfig(channels, channels, 19, 2, style, 4, dyscope)
        checkpoint = args.out / f"{name}.pth"
        make_checkpoint(config, args.seed, checkpoint)
        loaded = common.load(checkpoint)
        modes = {}
        # DySample has no custom node, so plugin mode gives the portable graph; --small checks
        # that on the first variant only.
        both = not args.small or not reports
        for mode in ("plugin", "portable") if both else ("portable",):
            path = args.out / f"{name}.{mode}.onnx"
            result = common.export(loaded, path, mode, input_shapes=[traced])
            modes[mode] = Counter(n.op_type for n in onnx.load(path).graph.node)
            if result.custom_nodes:
                console.print(f"[bold red]unexpected custom nodes: {result.custom_nodes}[/]")
                return 1
        same = modes.get("plugin", modes["portable"]) == modes["portable"]
        console.print(
            f"GridSample nodes: {modes['portable']['GridSample']}; custom nodes: none"
            + (
                f"; plugin and portable graphs {'have the same ops' if same else 'DIFFER'}"
                if both
                else ""
            )
        )
        path = args.out / f"{name}.portable.onnx"
        report = common.validate_onnx(
            loaded, path, checkpoint, [{"features": s} for s in sizes], args.threads
        )
        reports.append(report)
        worst = common.max_abs_error(report)
        rows.append((name, sum(modes["portable"].values()), f"{worst:.2g}", report.passed))
        if not same:
            console.print("[bold red]the two export modes should give the same graph[/]")
            return 1

    common.heading("Summary")
    console.print(
        common.table(
            f"one dynamic export each, traced at {traced}, validated at {len(sizes)} sizes",
            ("variant", "ONNX nodes", "max |diff| vs PyTorch", "passed"),
            rows,
        )
    )
    checkpoint = args.out / "dysample_seg_lp.pth"
    onnx_path = args.out / "dysample_seg_lp.portable.onnx"
    commands = [common.export_command(checkpoint, onnx_path, "portable", traced)]
    commands += common.gpu_commands(
        checkpoint,
        onnx_path,
        {"features": traced},
        {"features": (1, channels, 4 * size, 4 * size)},
        {"features": (2, channels, 8 * size, 8 * size)},
        plugins=False,
    )
    common.print_gpu_commands(
        commands,
        "DySample needs no plugin: TensorRT (8.5 and later) runs ONNX GridSample itself. The "
        "export pins opset <= 18 (TensorRT's GridSample is wrong at opset 20, TensorRT #4646).",
    )
    return common.finish(reports)


if __name__ == "__main__":
    sys.exit(main())
