"""`dlu-deploy`: build engines, run them, validate them against PyTorch, benchmark them, serve
them with Triton.

Exit codes: 0 success (validate: PASS; serve: stopped by Ctrl-C or SIGTERM), 1 validate FAIL or
(run --image, eval) some images failed while the others were done, 2 a problem with the input
(printed as one paragraph: what is wrong, then the fix; --verbose adds the traceback),
130 interrupted.
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

    if args.image:
        return _run_images(args)
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


def _run_images(args: argparse.Namespace) -> int:
    from dlu_deploy.images.commands import run_images
    from dlu_deploy.images.model import open_image_model
    from dlu_deploy.validate.backends import open_candidate

    if args.inputs or args.shapes:
        raise UserError(
            "--image cannot be combined with --inputs or --shapes.",
            "Run on images (--image) or on tensors (--inputs / --shapes), not both.",
        )
    backend = open_candidate(args.model, args.backend, **_backend_options(args))
    model = open_image_model(backend, **_preprocessing_changes(args))
    return run_images(
        model,
        args.image,
        Path(args.output or "outputs"),
        score_threshold=args.score_thr,
        out=out,
        err=err,
    )


def _eval(args: argparse.Namespace) -> int:
    import json

    from dlu_deploy.images.commands import (
        EXIT_SOME_FAILED,
        evaluate_detection,
        evaluate_segmentation,
        render_eval,
    )
    from dlu_deploy.images.model import ImageModel, open_image_model
    from dlu_deploy.validate.backends import TorchBackend, open_candidate

    chosen = [bool(args.coco), bool(args.masks), args.self_reference]
    if sum(chosen) != 1:
        raise UserError(
            "eval needs exactly one source of ground truth.",
            "Pass --coco ANNOTATIONS.json (detection), --masks DIR (segmentation) or "
            "--self-reference (the PyTorch model's own results).",
        )
    images = Path(args.images)
    if not images.is_dir():
        raise UserError(f"--images {images} is not a folder.", "Pass the folder of the images.")
    deployed = open_image_model(
        open_candidate(args.model, args.backend, **_backend_options(args)),
        **_preprocessing_changes(args),
    )
    torch_device = _torch_device(args.torch_device)
    loaded = _reference(args)
    torch_backend = TorchBackend(
        loaded.model.to(torch_device),
        loaded.input_names,
        # a whole pickled module records no output names: the deployed model's apply
        loaded.output_names or deployed.output_names,
        device=torch_device,
    )
    reference = ImageModel(
        torch_backend,
        class_names=deployed.class_names,
        arch=deployed.arch,
        preprocessing=deployed.preprocessing,
    )
    if reference.task != deployed.task:
        raise UserError(
            f"The checkpoint's model is a {reference.task} model, {args.model} a "
            f"{deployed.task} model.",
            "Pass the checkpoint the model was exported from.",
        )
    if deployed.task == "detection":
        if args.masks:
            raise UserError("--masks is for segmentation models.", "Use --coco for a detector.")
        report = evaluate_detection(
            reference,
            deployed,
            images,
            annotations=args.coco,
            gt_score_threshold=args.gt_score_thr,
            err=err,
        )
    else:
        if args.coco:
            raise UserError(
                "--coco is for detectors; this is a segmentation model.",
                "Pass --masks DIR (label PNGs named like the images) or --self-reference.",
            )
        report = evaluate_segmentation(
            reference,
            deployed,
            images,
            masks_dir=Path(args.masks) if args.masks else None,
            ignore_index=args.ignore_index,
            err=err,
        )
    title = f"{Path(args.model).name} ({deployed.backend.label}) vs {Path(args.checkpoint).name}"
    render_eval(report, title, out)
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=2) + "\n")
        out.print(f"report written to {args.json}")
    return EXIT_SOME_FAILED if report.failures else 0


def _torch_device(text: str) -> str:
    import torch

    try:
        device = torch.device(text)
    except RuntimeError as exc:
        raise UserError(
            f"--torch-device {text} is not a device ({exc}).", "Use cpu or cuda:0."
        ) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(
            f"--torch-device {text}: this PyTorch has no usable CUDA device.",
            "Use --torch-device cpu (the default).",
        )
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"--torch-device {text} is not supported.", "Use cpu or cuda[:N].")
    return str(device)


def _preprocessing_changes(args: argparse.Namespace) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if args.no_resize:
        changes["scale"] = None
    elif args.resize:
        changes["scale"] = _pair(args.resize, "--resize", int, "x")
    if args.mean:
        changes["mean"] = _pair(args.mean, "--mean", float, ",", count=3)
    if args.std:
        changes["std"] = _pair(args.std, "--std", float, ",", count=3)
        if 0 in changes["std"]:
            raise UserError(f"--std {args.std} has a zero.", "Every std must be non-zero.")
    if args.channel_order:
        changes["channel_order"] = args.channel_order
    if args.resizer:
        changes["resizer"] = args.resizer
    if args.pad_divisor is not None:
        changes["pad_divisor"] = args.pad_divisor
    return changes


def _pair(text: str, flag: str, kind: type, sep: str, count: int = 2) -> tuple[Any, ...]:
    try:
        values = tuple(kind(v) for v in text.split(sep))
    except ValueError:
        values = ()
    if len(values) != count or (kind is int and min(values) < 1):
        example = "1333x800" if count == 2 else "103.53,116.28,123.675"
        raise UserError(f"{flag} {text} is not valid.", f"Write e.g. {flag} {example}.")
    return values


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


def _triton_repo(args: argparse.Namespace) -> int:
    from dlu_deploy.triton.repository import write_repository

    result = write_repository(
        args.model,
        args.repository,
        name=args.name,
        options=_serving_options(args),
        plugins=args.plugins,
        op_library=args.op_library,
        server_repository=args.server_repo,
        force=args.force,
    )
    table = Table(
        title=escape(f"Triton repository {result.repository} ({result.backend} backend)"),
        title_justify="left",
    )
    table.add_column("file")
    table.add_column("what")
    rows = [(result.config_path, "model configuration (checked with Triton's ModelConfig)")]
    rows.append((result.model_path, f"the model ({result.interface.path.name})"))
    rows += [(lib, "plugin library") for lib in result.libraries]
    rows.append((result.launch_script, "starts tritonserver on this repository"))
    for path, what in rows:
        table.add_row(escape(str(path)), what)
    out.print(table)
    for tensor in result.interface.inputs:
        out.print(f"input  {escape(tensor.describe())}")
    for tensor in result.interface.outputs:
        out.print(f"output {escape(tensor.describe())}")
    out.print(f"next: {escape(str(result.launch_script))}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import tempfile

    from dlu_deploy.triton.server import Endpoints, serve_forever

    def ready(endpoints: Endpoints, interface: Any, name: str) -> None:
        table = Table(title=escape(f"serving {name} with Triton"), title_justify="left")
        table.add_column("endpoint")
        table.add_column("address")
        for what, address in (
            ("HTTP (KServe v2)", endpoints.http),
            ("gRPC (KServe v2)", endpoints.grpc),
            ("inference", f"POST {endpoints.http}/v2/models/{name}/infer"),
            ("health", f"GET {endpoints.http}/v2/health/ready"),
            ("metadata", f"GET {endpoints.http}/v2/models/{name}"),
            ("metrics", f"http://{endpoints.host}:{endpoints.metrics_port}/metrics"),
        ):
            table.add_row(what, escape(address))
        out.print(table)
        out.print("Ctrl-C stops the server.")

    with tempfile.TemporaryDirectory(prefix="dlu-deploy-serve-") as log_dir:
        serve_forever(
            args.model,
            on_ready=ready,
            log_file=None if args.verbose else Path(log_dir) / "tritonserver.log",
            name=args.name,
            options=_serving_options(args),
            host=args.host,
            http_port=args.http_port,
            grpc_port=args.grpc_port,
            metrics_port=args.metrics_port,
            backend_options=_backend_options(args),
        )
    out.print("stopped")
    return 0


def _serving_options(args: argparse.Namespace) -> Any:
    from dlu_deploy.triton.config import ServingOptions, default_max_batch_size
    from dlu_deploy.triton.interface import read_interface

    max_batch = args.max_batch_size
    if max_batch is None:
        max_batch = default_max_batch_size(read_interface(args.model))
    kind = getattr(args, "instance_kind", None) or (
        "gpu" if str(args.model).endswith((".engine", ".plan", ".trt")) else "cpu"
    )
    return ServingOptions(
        max_batch_size=max_batch,
        dynamic_batching=not args.no_dynamic_batching,
        max_queue_delay_us=args.max_queue_delay_us,
        preferred_batch_sizes=tuple(args.preferred_batch_size or ()),
        instance_count=args.instances,
        instance_kind=kind,
        gpus=tuple(getattr(args, "gpus", None) or ()),
    )


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

    pictures = argparse.ArgumentParser(add_help=False)
    pictures.add_argument(
        "--resize",
        metavar="LONGxSHORT",
        help="keep-ratio resize limit as mmdetection's Resize(scale=...) (default: 1333x800 for "
        "detectors, the architecture's test size for segmenters)",
    )
    pictures.add_argument("--no-resize", action="store_true", help="feed images at their size")
    pictures.add_argument(
        "--resizer",
        choices=("mmcv", "detectron2"),
        help="size rule and interpolation: mmcv (imrescale + OpenCV bilinear, mmdetection; the "
        "default) or detectron2 (ResizeShortestEdge + Pillow bilinear; DynamicRouting's default)",
    )
    pictures.add_argument(
        "--channel-order",
        choices=("rgb", "bgr"),
        help="channel order the graph takes (default: rgb; bgr for DynamicRouting)",
    )
    pictures.add_argument(
        "--mean", metavar="A,B,C", help="subtracted per channel, in the graph's channel order"
    )
    pictures.add_argument("--std", metavar="A,B,C", help="divided by per channel")
    pictures.add_argument(
        "--pad-divisor", type=int, help="zero-pad the normalised image to a multiple of this"
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
        "run",
        parents=[common, runner, pictures],
        help="run an engine or ONNX file on inputs or on images",
    )
    p.add_argument("model", help="model.engine or model.onnx")
    p.add_argument("--inputs", metavar="NPZ", help="inputs by name (default: seeded random)")
    p.add_argument("--shapes", metavar="SHAPES", help="shapes of the random inputs")
    p.add_argument(
        "--image",
        nargs="+",
        action="extend",
        metavar="PATH",
        help="run a detector or segmenter on these images or folders of images",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="tensors: write the outputs to this .npz; images: the folder for the pictures "
        "and results (default: outputs)",
    )
    p.add_argument(
        "--score-thr",
        type=float,
        default=0.3,
        help="images: draw and list boxes with at least this score (default 0.3; the JSON has all)",
    )
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
        "eval",
        parents=[common, runner, checkpoint, pictures],
        help="COCO AP or mIoU of the PyTorch model and the deployed model, side by side",
    )
    p.add_argument("checkpoint", help="the checkpoint the model was exported from")
    p.add_argument("model", help="model.engine or model.onnx")
    p.add_argument("--images", required=True, metavar="DIR", help="the folder of the images")
    p.add_argument("--coco", metavar="JSON", help="COCO annotations (detectors: bbox AP)")
    p.add_argument(
        "--masks",
        metavar="DIR",
        help="segmenters: label PNGs (class ids, named like the images: stem.png)",
    )
    p.add_argument(
        "--self-reference",
        action="store_true",
        help="the PyTorch model's own results are the ground truth (parity without labels)",
    )
    p.add_argument(
        "--gt-score-thr",
        type=float,
        default=0.3,
        help="--self-reference: PyTorch detections with at least this score become ground "
        "truth (default 0.3)",
    )
    p.add_argument(
        "--ignore-index", type=int, default=255, help="mask value that is not scored (255)"
    )
    p.add_argument(
        "--torch-device",
        default="cpu",
        help="where the PyTorch model runs: cpu (default) or cuda[:N]",
    )
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.set_defaults(command=_eval)

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

    serving = argparse.ArgumentParser(add_help=False)
    serving.add_argument("--name", help="Triton model name (default: the model file's stem)")
    serving.add_argument(
        "--max-batch-size",
        type=int,
        help="largest batch Triton forms (default 8, the engine's profile max if smaller; "
        "0 for models without a variable batch dim)",
    )
    serving.add_argument("--no-dynamic-batching", action="store_true", help="no dynamic batcher")
    serving.add_argument(
        "--max-queue-delay-us",
        type=int,
        default=1000,
        help="how long the dynamic batcher waits to fill a batch (default 1000)",
    )
    serving.add_argument(
        "--preferred-batch-size",
        type=int,
        nargs="+",
        metavar="N",
        help="batch sizes the dynamic batcher prefers",
    )
    serving.add_argument(
        "--instances", type=int, default=1, help="model instances run in parallel (default 1)"
    )

    p = commands.add_parser(
        "triton-repo",
        parents=[common, serving],
        help="write a Triton model repository (TensorRT or onnxruntime backend)",
    )
    p.add_argument(
        "--instance-kind",
        choices=("cpu", "gpu"),
        help="where the instances run (default: gpu for engines, cpu for ONNX)",
    )
    p.add_argument("--gpus", type=int, nargs="+", help="GPUs of gpu instances")
    p.add_argument("model", help="model.engine (TensorRT backend) or model.onnx (onnxruntime)")
    p.add_argument("repository", help="the repository directory (created if missing)")
    p.add_argument(
        "--op-library",
        metavar="LIB",
        help="onnxruntime custom-op library (default: the project's libdlu_ort_ops.so when the "
        "ONNX file has custom nodes)",
    )
    p.add_argument(
        "--server-repo",
        metavar="PATH",
        help="where the server sees the repository (e.g. /models in a container); the "
        "library paths in config.pbtxt start with it (default: the repository's absolute path)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing model directory")
    p.set_defaults(command=_triton_repo)

    p = commands.add_parser(
        "serve",
        parents=[common, runner, serving],
        help="serve an engine or ONNX file with Triton (HTTP and gRPC) until Ctrl-C",
    )
    p.add_argument("model", help="model.engine or model.onnx")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--http-port", type=int, default=8000, help="HTTP port (default 8000)")
    p.add_argument("--grpc-port", type=int, default=8001, help="gRPC port (default 8001)")
    p.add_argument("--metrics-port", type=int, default=8002, help="metrics port (default 8002)")
    p.set_defaults(command=_serve)
    return parser


if __name__ == "__main__":
    sys.exit(main())
