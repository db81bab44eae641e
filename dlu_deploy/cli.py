"""`dlu-deploy`: build engines, run them, validate them against PyTorch, benchmark them.

Exit codes: 0 success (validate: PASS), 1 validate FAIL, 2 a problem with the input (printed as
one paragraph: what is wrong, then the fix; --verbose adds the traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dlu_deploy.errors import UserError
from dlu_deploy.shapes import ShapeSet, format_shape, parse_shape_set
from dlu_deploy.validate.noise import DEFAULT_NOISE_FACTOR

EXIT_FAIL, EXIT_USER_ERROR, EXIT_INTERRUPTED = 1, 2, 130

# Tables stay readable when piped (rich would otherwise squeeze them into 80 columns).
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(name)s: %(message)s",
    )
    try:
        return int(args.command(args))
    except UserError as exc:
        if args.verbose:
            err.print(traceback.format_exc(), markup=False, highlight=False)
        # soft_wrap: no hard line breaks inside paths and commands the user may copy
        err.print(f"[bold red]error:[/] {escape(exc.problem)}", highlight=False, soft_wrap=True)
        err.print(f"[bold]fix:[/] {escape(exc.fix)}", highlight=False, soft_wrap=True)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        err.print("interrupted")
        return EXIT_INTERRUPTED


# ---------------------------------------------------------------------------- commands


def _build(args: argparse.Namespace) -> int:
    from dlu_deploy.engine_build import build_engine, parse_size

    result = build_engine(
        args.onnx,
        args.output,
        plugins=args.plugins,
        min_shapes=_shape_set(args.min, "--min"),
        opt_shapes=_shape_set(args.opt, "--opt"),
        max_shapes=_shape_set(args.max, "--max"),
        workspace=parse_size(args.workspace) if args.workspace else None,
        timing_cache=args.timing_cache,
        fp16=args.fp16,
        tf32=args.tf32,
        optimization_level=args.opt_level,
        device=args.device,
        console=err,
        progress=not args.no_progress,
    )
    record = result.sidecar
    out.print(
        f"built [bold]{result.engine_path}[/] ({record['engine']['bytes'] / 2**20:.1f} MiB, "
        f"{record['precision']}, TensorRT {record['tensorrt']['version']}, "
        f"{record['gpu']['name']}) in {result.seconds:.1f} s; sidecar {result.sidecar_path}"
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    import numpy as np

    from dlu_deploy.validate.backends import open_candidate
    from dlu_deploy.validate.inputs import complete_shapes, generate_inputs, load_inputs

    backend = open_candidate(args.model, args.backend, **_backend_options(args))
    if args.inputs:
        feed = load_inputs(args.inputs, backend.inputs)
    else:
        given = _shape_set(args.shapes, "--shapes")
        profile = {s.name: s.profile[1] for s in backend.inputs if s.profile is not None}
        feed = generate_inputs(
            backend.inputs, complete_shapes(backend.inputs, given, profile), args.seed
        )
    outputs = backend.run(feed)
    table = Table(title=escape(f"{args.model} ({backend.label})"), title_justify="left")
    for column in ("output", "dtype", "shape", "min", "max", "mean", "NaN/Inf"):
        table.add_column(column)
    for name, array in outputs.items():
        values = array.astype(np.float64)
        finite = values[np.isfinite(values)]
        table.add_row(
            escape(name),
            str(array.dtype),
            format_shape(array.shape),
            f"{finite.min():.4g}" if finite.size else "-",
            f"{finite.max():.4g}" if finite.size else "-",
            f"{finite.mean():.4g}" if finite.size else "-",
            f"{int(np.isnan(values).sum())}/{int(np.isinf(values).sum())}",
        )
    out.print(table)
    if args.output:
        arrays: dict[str, Any] = dict(outputs)
        np.savez(args.output, **arrays)
        out.print(f"outputs written to {args.output}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from dlu_deploy.validate import (
        load_inputs,
        make_detection_tolerance,
        make_policy,
        open_candidate,
        render_report,
        validate,
    )

    reference = _reference(args)
    candidate = open_candidate(args.model, args.backend, **_backend_options(args))
    policy = make_policy(
        candidate.precision,
        atol=args.atol,
        rtol=args.rtol,
        overrides=args.tol or (),
        output_names=candidate.output_names,
    )
    if not args.noise_factor >= 0:
        raise UserError(f"--noise-factor {args.noise_factor:g} is negative.", "Use e.g. 10.")
    report = validate(
        reference,
        candidate,
        shape_sets=[_shape_set(s, "--shapes") for s in args.shapes or []],
        inputs=load_inputs(args.inputs, candidate.inputs) if args.inputs else None,
        seed=args.seed,
        tolerances=policy,
        candidate_name=Path(args.model).name,
        reference_name=Path(args.checkpoint).name,
        inputs_file=args.inputs,
        fp64=not args.no_fp64,
        noise_factor=args.noise_factor,
        detection_tolerance=make_detection_tolerance(
            candidate.precision,
            iou=args.det_iou,
            score=args.det_score,
            min_matched=args.det_min_matched,
        ),
        score_threshold=args.det_score_thr,
    )
    render_report(report, out)
    if args.json:
        report.write_json(args.json)
        out.print(f"report written to {args.json}")
    return 0 if report.passed else EXIT_FAIL


def _bench(args: argparse.Namespace) -> int:
    from dlu_deploy.bench import bench, render_bench

    reference = _reference(args) if args.checkpoint else None
    report = bench(
        args.model,
        reference=reference,
        backend=args.backend,
        shapes=_shape_set(args.shapes, "--shapes"),
        warmup=args.warmup,
        iterations=args.iterations,
        compile_torch=not args.no_compile,
        seed=args.seed,
        **_backend_options(args),
    )
    render_bench(report, out)
    if args.json:
        report.write_json(args.json)
        out.print(f"results written to {args.json}")
    return 0


# ---------------------------------------------------------------------------- arguments


def _reference(args: argparse.Namespace) -> Any:
    from dlu_deploy.validate import load_reference

    return load_reference(
        args.checkpoint,
        arch=args.arch,
        overrides=_overrides(args.hp or []),
        trust_pickle=args.trust_pickle,
        exported=args.model,
    )


def _overrides(items: Sequence[str]) -> dict[str, object]:
    """['encoder_dilation=2', 'up-kernel=5'] -> {'encoder_dilation': 2, 'up_kernel': 5}."""
    overrides: dict[str, object] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip("-"):
            raise UserError(
                f"--hp '{item}' is not NAME=VALUE.", "Write e.g. --hp encoder_dilation=2."
            )
        value: object = text
        for kind in (int, float):
            try:
                value = kind(text)
                break
            except ValueError:
                continue
        overrides[name.strip("-").replace("-", "_")] = value
    return overrides


def _shape_set(text: str | None, flag: str) -> ShapeSet:
    return parse_shape_set(text, what=flag) if text else {}


def _backend_options(args: argparse.Namespace) -> dict[str, Any]:
    options = {
        "plugins": args.plugins,
        "ort_provider": args.ort_provider,
        "threads": args.threads,
        "device": args.device,
    }
    if getattr(args, "cuda_graph", False):
        options["cuda_graph"] = True
    if getattr(args, "skip_compat_check", False):
        options["check_compatibility"] = False
    return options


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks and TensorRT's log",
    )
    common.add_argument(
        "--plugins",
        nargs="+",
        action="extend",
        metavar="LIB",
        help="TensorRT plugin libraries (default: the project's libdlu_trt_plugins.so when needed)",
    )
    common.add_argument("--device", type=int, default=0, help="CUDA device index (default 0)")

    runner = argparse.ArgumentParser(add_help=False)
    runner.add_argument(
        "--backend",
        choices=("auto", "trt", "ort"),
        default="auto",
        help="run an engine with TensorRT or an ONNX file with onnxruntime (default: by suffix)",
    )
    runner.add_argument(
        "--ort-provider",
        choices=("cpu", "cuda", "tensorrt"),
        default="cpu",
        help="onnxruntime execution provider (cuda/tensorrt need onnxruntime-gpu)",
    )
    runner.add_argument("--threads", type=int, help="CPU threads for onnxruntime and torch")
    runner.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    runner.add_argument(
        "--skip-compat-check",
        action="store_true",
        help="load an engine even if its sidecar names another TensorRT version or GPU",
    )

    checkpoint = argparse.ArgumentParser(add_help=False)
    checkpoint.add_argument("--arch", help="architecture of the checkpoint (default: inferred)")
    checkpoint.add_argument(
        "--hp",
        action="append",
        metavar="NAME=VALUE",
        help="a hyper-parameter for the PyTorch model (e.g. --hp combine=add); by default the "
        "architecture and hyper-parameters dlu-export recorded in the model are used",
    )
    checkpoint.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow a pickled checkpoint (runs code from the file; only for files you trust)",
    )

    parser = argparse.ArgumentParser(prog="dlu-deploy", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    p = commands.add_parser("build", parents=[common], help="build a TensorRT engine from ONNX")
    p.add_argument("onnx", help="the ONNX file (from dlu-export)")
    p.add_argument("-o", "--output", help="engine path (default: the ONNX path with .engine)")
    for flag, what in (("min", "smallest"), ("opt", "tuned-for"), ("max", "largest")):
        p.add_argument(
            f"--{flag}", metavar="SHAPES", help=f"{what} input shapes, NAME:1x3x256x256[,...]"
        )
    p.add_argument("--workspace", metavar="SIZE", help="builder workspace limit, e.g. 2G")
    p.add_argument("--timing-cache", metavar="FILE", help="timing cache to read and update")
    p.add_argument(
        "--fp16",
        action="store_true",
        help="TensorRT 10 only: let TensorRT pick fp16 kernels (weak typing). TensorRT 11 takes "
        "the precision from the ONNX: export with dlu-export --fp16 instead",
    )
    p.add_argument("--tf32", action="store_true", help="allow TF32 for float32 layers")
    p.add_argument("--opt-level", type=int, choices=range(6), help="builder optimization level")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(command=_build)

    p = commands.add_parser(
        "run", parents=[common, runner], help="run an engine or ONNX file on inputs"
    )
    p.add_argument("model", help="model.engine or model.onnx")
    p.add_argument("--inputs", metavar="NPZ", help="inputs by name (default: seeded random)")
    p.add_argument("--shapes", metavar="SHAPES", help="shapes of the random inputs")
    p.add_argument("-o", "--output", metavar="NPZ", help="write the outputs here")
    p.add_argument("--cuda-graph", action="store_true", help="replay fixed shapes as a CUDA graph")
    p.set_defaults(command=_run)

    p = commands.add_parser(
        "validate",
        parents=[common, runner, checkpoint],
        help="compare an engine or ONNX file with the checkpoint's PyTorch model",
    )
    p.add_argument("checkpoint", help="the checkpoint the model was exported from")
    p.add_argument("model", help="model.engine or model.onnx")
    p.add_argument(
        "--shapes",
        action="append",
        metavar="SHAPES",
        help="input shapes to validate at (repeat for a sweep; default: the engine's "
        "min/opt/max profile, or for ONNX the example shape, batch 2 and double height)",
    )
    p.add_argument("--inputs", metavar="NPZ", help="validate on these inputs instead")
    p.add_argument("--atol", type=float, help="absolute tolerance (default 1e-4 fp32, 1e-2 fp16)")
    p.add_argument("--rtol", type=float, help="relative tolerance (default 1e-4 fp32, 1e-2 fp16)")
    p.add_argument(
        "--tol", action="append", metavar="NAME:ATOL[,RTOL]", help="tolerance of one output"
    )
    p.add_argument(
        "--no-fp64",
        action="store_true",
        help="skip the float64 run of the PyTorch model (the noise floor; halves the PyTorch time)",
    )
    p.add_argument(
        "--noise-factor",
        type=float,
        default=DEFAULT_NOISE_FACTOR,
        metavar="F",
        help="an output beyond the tolerance passes when its max abs error against PyTorch fp64 "
        f"is <= F x PyTorch fp32's own (default {DEFAULT_NOISE_FACTOR:g})",
    )
    detectors = p.add_argument_group(
        "detectors (outputs dets and labels: compared as matched detections)"
    )
    detectors.add_argument(
        "--det-iou",
        type=float,
        metavar="IOU",
        help="smallest IoU of a matched pair of boxes (default 0.95 fp32, 0.9 fp16)",
    )
    detectors.add_argument(
        "--det-score",
        type=float,
        metavar="DIFF",
        help="largest score difference of a matched pair (default 0.01 fp32, 0.05 fp16)",
    )
    detectors.add_argument(
        "--det-min-matched",
        type=float,
        metavar="FRACTION",
        help="matched share of the reference's and of the model's detections needed for PASS "
        "(default 0.99 fp32, 0.95 fp16)",
    )
    detectors.add_argument(
        "--det-score-thr",
        type=float,
        metavar="THR",
        help="the detector's score threshold, near which detections may appear on one side only "
        "(default: the PyTorch model's score_thr)",
    )
    p.add_argument("--json", metavar="FILE", help="write the report as JSON")
    p.set_defaults(command=_validate)

    p = commands.add_parser(
        "bench",
        parents=[common, runner, checkpoint],
        help="time an engine or ONNX file (and the PyTorch model)",
    )
    p.add_argument("model", help="model.engine or model.onnx")
    p.add_argument("--checkpoint", help="also time its PyTorch model, eager and compiled")
    p.add_argument("--shapes", metavar="SHAPES", help="input shapes (default: opt / example)")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs first (default 10)")
    p.add_argument("--iterations", type=int, default=100, help="timed runs (default 100)")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    p.add_argument("--cuda-graph", action="store_true", help="replay the engine as a CUDA graph")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.set_defaults(command=_bench)
    return parser


if __name__ == "__main__":
    sys.exit(main())
