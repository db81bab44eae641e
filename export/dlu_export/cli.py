"""`dlu-export [CHECKPOINT [OUTPUT.onnx]]`: the exporter's command line.

Without arguments it exports the shipped sample checkpoint (samples/default/) to
./dlu_default.onnx. Errors a user can fix print one paragraph (problem, then the fix) and
exit with status 1, without a traceback unless --verbose; bad arguments exit with 2.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from dlu_deploy.checkpoints import LoadedModel, all_params, architectures, load_model
from dlu_deploy.errors import UserError

from . import default
from .exporting import DEFAULT_OPSET, MODES, ExportOptions, ExportResult, export_model

EXIT_USER_ERROR = 1
EXIT_INTERNAL_ERROR = 3
TRT_PLUGIN_LIBRARY = "build/lib/libdlu_trt_plugins.so"


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not N,C,H,W (e.g. 1,256,64,64)") from None
    if len(shape) != 4 or min(shape) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not four positive sizes N,C,H,W (e.g. 1,256,64,64)"
        )
    return shape


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlu-export",
        description="Export a checkpoint of a model with DLU, CARAFE, DySample or DDF upsampling "
        "to ONNX. Without arguments, exports the shipped sample checkpoint.",
        epilog="The architecture and its hyper-parameters are inferred from the checkpoint; "
        "see docs/export.md.",
    )
    parser.add_argument(
        "checkpoint",
        nargs="?",
        type=Path,
        help="checkpoint (.pth): state_dict, mmdet checkpoint, "
        "or pickled module with --trust-pickle; default: the shipped sample",
    )
    parser.add_argument(
        "output", nargs="?", type=Path, help="ONNX file to write (default: <checkpoint name>.onnx)"
    )
    parser.add_argument(
        "--arch", help="force an architecture instead of detecting it (see --list-archs)"
    )
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="plugin",
        help="plugin: one custom node per DLU/CARAFE/DDF (TensorRT plugins); portable: standard "
        "ONNX ops only (default: plugin)",
    )
    parser.add_argument(
        "--input-shape",
        type=parse_shape,
        action="append",
        metavar="N,C,H,W",
        help="example input shape, once per input (default: the architecture's)",
    )
    parser.add_argument(
        "--dynamic", action="store_true", help="make N, H and W of every input symbolic"
    )
    parser.add_argument(
        "--opset",
        type=int,
        default=DEFAULT_OPSET,
        help=f"ONNX opset, 16-18 (default {DEFAULT_OPSET})",
    )
    parser.add_argument(
        "--fp16", action="store_true", help="export a float16 graph (fp16 inputs and outputs)"
    )
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow loading pickled Python objects (runs code from the file: trusted files only)",
    )
    parser.add_argument(
        "--list-archs", action="store_true", help="list the known architectures and exit"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show exporter logs and tracebacks"
    )
    group = parser.add_argument_group(
        "hyper-parameter overrides (for what the weights cannot show)"
    )
    for param in all_params():
        # Values are checked by the architecture, whose message explains the allowed range.
        choices = f" ({', '.join(map(str, param.choices))})" if param.choices else ""
        group.add_argument(
            param.flag,
            dest=f"hp_{param.name}",
            type=param.type,
            metavar=param.name.upper(),
            help=param.help + choices,
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(highlight=False)
    errors = Console(stderr=True, highlight=False)
    try:
        if args.list_archs:
            _print_archs(console)
        else:
            _run(args, console)
        return 0
    except UserError as exc:
        if args.verbose:
            errors.print_exception()
        # soft_wrap: one line per part, so that logs and grep see whole sentences
        errors.print(
            f"[bold red]error:[/] {escape(exc.problem)}\n[bold]fix:[/] {escape(exc.fix)}",
            soft_wrap=True,
        )
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        errors.print("interrupted; nothing was written")
        return 130
    except Exception as exc:  # a bug: say so, without burying the user in a trace
        if args.verbose:
            errors.print_exception()
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        errors.print(
            f"[bold red]internal error:[/] {escape(type(exc).__name__)}: {escape(first_line)}\n"
            "Nothing was written. Rerun with --verbose and report the trace.",
            soft_wrap=True,
        )
        return EXIT_INTERNAL_ERROR


def _run(args: argparse.Namespace, console: Console) -> None:
    checkpoint: Path = args.checkpoint or default.default_checkpoint()
    output: Path = args.output or (
        default.DEFAULT_OUTPUT if args.checkpoint is None else Path(checkpoint.stem + ".onnx")
    )
    overrides = {
        name[3:]: value
        for name, value in vars(args).items()
        if name.startswith("hp_") and value is not None
    }
    options = ExportOptions(
        mode=args.mode,
        opset=args.opset,
        input_shapes=args.input_shape,
        dynamic=args.dynamic,
        fp16=args.fp16,
        verbose=args.verbose,
    )
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        steps: list[tuple[str, float]] = []

        def step(description: str) -> None:
            steps.append((description, time.perf_counter()))
            progress.update(task, description=description)

        task = progress.add_task("Loading the checkpoint", total=None)
        steps.append(("Loading the checkpoint", time.perf_counter()))
        loaded = load_model(
            checkpoint, arch=args.arch, overrides=overrides, trust_pickle=args.trust_pickle
        )
        result = export_model(loaded, output, options, step)
    _print_summary(console, checkpoint, loaded, result, args.verbose)


def _print_summary(
    console: Console, checkpoint: Path, loaded: LoadedModel, result: ExportResult, verbose: bool
) -> None:
    precision = "fp16" if result.fp16 else "fp32"
    size = result.size_bytes / 2**20
    shown_size = f"{size:.1f} MiB" if size >= 1 else f"{result.size_bytes / 1024:.0f} KiB"
    console.print(
        f"[bold green]Exported[/] {escape(_shown(result.path))} ({result.mode} mode, opset "
        f"{result.opset}, {precision}, {shown_size}, {result.seconds:.1f} s)",
        soft_wrap=True,
    )
    console.print(f"architecture [bold]{loaded.arch}[/] from {escape(_shown(checkpoint))}")
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("hyper-parameter")
    table.add_column("value")
    table.add_column("source")
    for source, values in (
        ("inferred from weights", loaded.inferred),
        ("assumed", loaded.assumed),
        ("given", loaded.given),
    ):
        for name, value in values.items():
            table.add_row(name, escape(str(value)), source)
    if table.row_count:
        console.print(table)
    for name, dims in result.inputs.items():
        console.print(f"input  {escape(name)} {dims}")
    for name, dims in result.outputs.items():
        console.print(f"output {escape(name)} {dims}")
    if result.custom_nodes:
        nodes = ", ".join(f"{op} x{count}" for op, count in result.custom_nodes.items())
        console.print(f"custom nodes (domain dlu_deploy): {nodes}")
    for note in loaded.notes:
        if verbose or "assumed" not in note:
            console.print(f"[dim]note: {escape(note)}[/]")
    console.print("\n[bold]Next:[/]")
    console.print(escape(_trtexec_line(result)), soft_wrap=True)
    validate = ["dlu-deploy", "validate", _shown(checkpoint), _shown(result.path)]
    console.print(escape(shlex.join(validate)), soft_wrap=True)


def _shown(path: Path) -> str:
    """A path as the user would type it here: relative below the current directory."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def _trtexec_line(result: ExportResult) -> str:
    engine = result.path.with_suffix(".engine")
    parts = ["trtexec", f"--onnx={shlex.quote(_shown(result.path))}"]
    if result.custom_nodes:
        parts.append(f"--dynamicPlugins={TRT_PLUGIN_LIBRARY}")
    if any(isinstance(d, str) for dims in result.inputs.values() for d in dims):
        # A suggested profile around the example shape: half to twice its sizes.
        lowest, typical, highest = [], [], []
        for name, (n, c, h, w) in zip(result.inputs, result.example_shapes, strict=True):
            lowest.append(f"{name}:1x{c}x{max(1, h // 2)}x{max(1, w // 2)}")
            typical.append(f"{name}:{n}x{c}x{h}x{w}")
            highest.append(f"{name}:{2 * n}x{c}x{2 * h}x{2 * w}")
        parts += [
            f"--minShapes={','.join(lowest)}",
            f"--optShapes={','.join(typical)}",
            f"--maxShapes={','.join(highest)}",
        ]
    if result.fp16:
        parts.append(
            "--stronglyTyped"
        )  # TensorRT 10: keep the graph's fp16; a no-op on TensorRT 11
    parts.append(f"--saveEngine={shlex.quote(_shown(engine))}")
    return " ".join(parts)


def _print_archs(console: Console) -> None:
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("--arch", no_wrap=True)
    table.add_column("checkpoints")
    table.add_column("overridable hyper-parameters")
    for arch in architectures().values():
        table.add_row(
            arch.name, escape(arch.summary), ", ".join(p.flag for p in arch.params) or "-"
        )
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
