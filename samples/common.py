"""Steps every sample shares: arguments, saving checkpoints, exporting with dlu-export,
validating with dlu-deploy's validator in onnxruntime, and the commands for a GPU machine.

Samples import this file as `common` (each run.py puts samples/ on sys.path).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from dlu_export import ExportOptions, ExportResult, export_model
from rich.console import Console
from rich.table import Table

from dlu_deploy.checkpoints import LoadedModel, load_model
from dlu_deploy.errors import UserError
from dlu_deploy.libraries import TRT_PLUGIN_LIBRARY
from dlu_deploy.ort import custom_ops_library
from dlu_deploy.shapes import ShapeSet, format_shape
from dlu_deploy.validate import OrtBackend, ValidationReport, render_report, validate

SAMPLES_DIR = Path(__file__).resolve().parent
REPO_DIR = SAMPLES_DIR.parent
# Tables stay readable when piped (rich would otherwise squeeze them into 80 columns).
console = Console(width=None if sys.stdout.isatty() else 140, highlight=False)


def parser(name: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"samples/{name}/run.py", description=description)
    p.add_argument(
        "--out",
        type=Path,
        default=SAMPLES_DIR / name / "out",
        help=f"where checkpoints and ONNX files go (default: samples/{name}/out)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the stand-in weights and inputs")
    p.add_argument(
        "--small", action="store_true", help="small sizes (what tests/test_samples.py runs)"
    )
    p.add_argument("--threads", type=int, help="onnxruntime CPU threads")
    return p


def heading(text: str) -> None:
    console.rule(f"[bold]{text}")


def save_checkpoint(checkpoint: Mapping[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(dict(checkpoint), path)
    console.print(f"checkpoint [bold]{path}[/] ({path.stat().st_size / 2**20:.1f} MiB)")
    return path


def load(path: Path, overrides: Mapping[str, object] | None = None) -> LoadedModel:
    """The toolkit's loader, as dlu-export and dlu-deploy validate use it."""
    loaded = load_model(path, overrides=overrides)
    inferred = ", ".join(f"{k}={v}" for k, v in loaded.inferred.items())
    console.print(f"loaded as [bold]{loaded.arch}[/]; inferred {inferred or '-'}")
    for what, values in (("given", loaded.given), ("assumed", loaded.assumed)):
        if values:
            console.print(f"  {what}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    return loaded


def export(
    loaded: LoadedModel,
    path: Path,
    mode: str,
    *,
    dynamic: bool = True,
    input_shapes: Sequence[tuple[int, ...]] | None = None,
) -> ExportResult:
    options = ExportOptions(mode=mode, dynamic=dynamic, input_shapes=input_shapes)
    result = export_model(loaded, path, options)
    custom = ", ".join(f"{n} x{c}" for n, c in result.custom_nodes.items()) or "none"
    console.print(
        f"exported [bold]{path.name}[/] ({mode}, opset {result.opset}, "
        f"{result.size_bytes / 2**20:.1f} MiB, custom nodes: {custom}) in {result.seconds:.1f} s"
    )
    return result


def plugin_runtime_missing() -> str | None:
    """Why onnxruntime cannot run plugin-mode graphs here (no custom-op library), or None."""
    try:
        custom_ops_library()
    except UserError as exc:
        return exc.problem
    return None


def validate_onnx(
    loaded: LoadedModel,
    onnx_path: Path,
    checkpoint: Path,
    shape_sets: Sequence[ShapeSet],
    threads: int | None = None,
) -> ValidationReport:
    """`dlu-deploy validate CHECKPOINT MODEL.onnx --shapes ...` through its Python API."""
    candidate = OrtBackend(onnx_path, threads=threads)
    report = validate(
        loaded,
        candidate,
        shape_sets=list(shape_sets),
        candidate_name=onnx_path.name,
        reference_name=checkpoint.name,
    )
    render_report(report, console)
    return report


def max_abs_error(report: ValidationReport) -> float:
    """The largest |candidate - PyTorch| over every output and shape set of a report."""
    return max(o.max_abs for run in report.runs for o in run.outputs)


def shape_arg(shapes: ShapeSet) -> str:
    return ",".join(f"{name}:{format_shape(shape)}" for name, shape in shapes.items())


def export_command(
    checkpoint: Path,
    onnx_path: Path,
    mode: str,
    input_shape: tuple[int, ...],
    overrides: Mapping[str, object] | None = None,
    *,
    dynamic: bool = True,
) -> str:
    """The dlu-export command line that writes the same file (works on any machine)."""
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in (overrides or {}).items()]
    if dynamic:
        flags.insert(0, "--dynamic")
    shape = ",".join(map(str, input_shape))
    paths = [_rel(checkpoint), _rel(onnx_path)]
    return shlex.join(["dlu-export", *paths, f"--mode={mode}", f"--input-shape={shape}", *flags])


def gpu_commands(
    checkpoint: Path,
    onnx_path: Path,
    min_shapes: ShapeSet,
    opt_shapes: ShapeSet,
    max_shapes: ShapeSet,
    *,
    plugins: bool,
) -> list[str]:
    """trtexec and dlu-deploy command lines for a machine with a GPU and TensorRT."""
    engine = onnx_path.with_suffix(".engine")
    library = REPO_DIR / "build" / "lib" / TRT_PLUGIN_LIBRARY
    trtexec = [
        "trtexec",
        f"--onnx={_rel(onnx_path)}",
        f"--saveEngine={_rel(engine)}",
        f"--minShapes={shape_arg(min_shapes)}",
        f"--optShapes={shape_arg(opt_shapes)}",
        f"--maxShapes={shape_arg(max_shapes)}",
    ]
    if plugins:
        trtexec.append(f"--dynamicPlugins={_rel(library)}")
    shapes = ["--min", shape_arg(min_shapes), "--opt", shape_arg(opt_shapes)]
    shapes += ["--max", shape_arg(max_shapes)]
    return [
        shlex.join(trtexec),
        shlex.join(["dlu-deploy", "build", _rel(onnx_path), "-o", _rel(engine), *shapes]),
        shlex.join(["dlu-deploy", "validate", _rel(checkpoint), _rel(engine)]),
        shlex.join(["dlu-deploy", "bench", _rel(engine), "--checkpoint", _rel(checkpoint)]),
    ]


def print_gpu_commands(commands: Sequence[str], note: str = "") -> None:
    heading("The same with the command-line tools; TensorRT on a machine with a GPU")
    if note:
        console.print(note)
    for command in commands:
        console.print(f"  {command}", markup=False, soft_wrap=True)


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> Table:
    t = Table(title=title, title_justify="left")
    for column in columns:
        t.add_column(column, justify="left" if column == columns[0] else "right")
    for row in rows:
        t.add_row(*(str(v) for v in row))
    return t


def finish(reports: Sequence[ValidationReport]) -> int:
    """Exit status: 0 when every validation passed."""
    failed = [r.candidate for r in reports if not r.passed]
    if failed:
        console.print(f"[bold red]FAILED[/]: {', '.join(failed)}")
        return 1
    console.print(f"[bold green]all {len(reports)} validations passed[/]")
    return 0
