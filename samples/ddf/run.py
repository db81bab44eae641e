"""DDF end to end: a ddfnet ResNet bottleneck block with a DDFPack (kernel_combine 'mul' and
'add') and a DDFUpPack upsampler, from checkpoints with the ddfnet repository's state_dict names,
exported in plugin mode (one dlu_deploy::DDF node per DDF) and portable mode (standard ops),
and validated in onnxruntime on the CPU.

    python samples/ddf/run.py [--small] [--out DIR]
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common

from dlu_deploy.models.ddf_resnet import DDFBottleneck, DDFBottleneckConfig
from dlu_deploy.models.seeded import build_seeded
from dlu_deploy.reference import DDFUpPack


@dataclass(frozen=True)
class Case:
    name: str
    what: str
    build: Callable[[], nn.Module]
    channels: int
    size: int  # H = W of the validation input
    overrides: dict[str, object]


def cases(small: bool) -> list[Case]:
    scale = 4 if small else 1  # --small: narrower blocks, smaller maps
    return [
        Case(
            "ddf_mul_bottleneck",
            "DDFMulBottleneck like ddf_mul_resnet50 layer2.0 (stride 2, downsample)",
            lambda: DDFBottleneck(DDFBottleneckConfig(256 // scale, 128 // scale, 2, "mul")),
            256 // scale,
            56 // scale,
            {},
        ),
        Case(
            "ddf_add_bottleneck",
            "DDFAddBottleneck like ddf_add_resnet50 layer3.1 (stride 1)",
            lambda: DDFBottleneck(DDFBottleneckConfig(1024 // scale, 256 // scale, 1, "add")),
            1024 // scale,
            28 // scale,
            {"combine": "add"},  # not stored in the weights
        ),
        Case(
            "ddf_up",
            "DDFUpPack x2, kernel 3, depthwise guidance (bare state_dict)",
            lambda: DDFUpPack(64 // scale, 3, 2),
            64 // scale,
            32 // scale,
            {},
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    p = common.parser("ddf", __doc__.split("\n")[0])
    args = p.parse_args(argv)
    console = common.console
    plugin_missing = common.plugin_runtime_missing()
    reports, rows = [], []
    commands: list[str] = []
    for case in cases(args.small):
        common.heading(f"{case.name}: {case.what}")
        module = build_seeded(case.build, args.seed)
        checkpoint = common.save_checkpoint(module.state_dict(), args.out / f"{case.name}.pth")
        loaded = common.load(checkpoint, case.overrides)
        shape = (1, case.channels, case.size, case.size)
        sizes = [shape, (2, case.channels, 2 * case.size, case.size)]  # keep the stride
        results, errors = {}, {}
        for mode in ("plugin", "portable"):
            path = args.out / f"{case.name}.{mode}.onnx"
            results[mode] = common.export(loaded, path, mode, input_shapes=[shape])
            if mode == "plugin" and plugin_missing:
                console.print(f"plugin-mode validation in onnxruntime skipped: {plugin_missing}")
                continue
            report = common.validate_onnx(
                loaded, path, checkpoint, [{"features": s} for s in sizes], args.threads
            )
            reports.append(report)
            errors[mode] = f"{common.max_abs_error(report):.2g}"
        rows.append(
            (
                case.name,
                results["plugin"].custom_nodes.get("DDF", 0),
                f"{results['plugin'].size_bytes / 2**20:.2f}",
                f"{results['portable'].size_bytes / 2**20:.2f}",
                errors.get("plugin", "-"),
                errors["portable"],
            )
        )
        commands += [
            common.export_command(checkpoint, results[m].path, m, shape, case.overrides)
            for m in ("plugin", "portable")
        ]
        commands += common.gpu_commands(
            checkpoint,
            args.out / f"{case.name}.plugin.onnx",
            {"features": shape},
            {"features": shape},
            {"features": (4, case.channels, 2 * case.size, 2 * case.size)},
            plugins=True,
        )

    common.heading("Summary")
    console.print(
        common.table(
            "DDF nodes in plugin mode, file sizes, max |diff| vs PyTorch in onnxruntime",
            ("model", "DDF nodes", "plugin MiB", "portable MiB", "plugin err", "portable err"),
            rows,
        )
    )
    note = "Plugin-mode graphs need the project's TensorRT plugins (libdlu_trt_plugins.so)."
    if any(c.overrides for c in cases(args.small)):
        note += (
            "\nThe combine mode is not in a ddfnet state_dict: dlu-export takes --combine add; "
            "dlu-deploy validate rebuilds the PyTorch model with the loader's default ('mul')."
        )
    common.print_gpu_commands(commands, note)
    return common.finish(reports)


if __name__ == "__main__":
    sys.exit(main())
