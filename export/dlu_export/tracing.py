"""torch.export of the model and conversion to ONNX, quietly, with user-level errors.

The `torch.export`-based exporter (dynamo=True) is the only path: custom ops reach ONNX
through `custom_translation_table`, and the DySample / DLU references build their grids from
runtime shapes, so `--dynamic` exports stay correct at every size.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from dlu_deploy.errors import UserError

from .errors import ExportError

# Dims of an NCHW input that --dynamic makes symbolic.
DYNAMIC_AXES = {0: "N", 2: "H", 3: "W"}
_NOISY_LOGGERS = (
    "torch.onnx",
    "torch.export",
    "torch._export",
    "torch.fx",
    "onnxscript",
    "onnx_ir",
    "torch._dynamo",
)


@contextlib.contextmanager
def quiet(verbose: bool) -> Iterator[None]:
    """Silence the exporters' progress prints, warnings and logs unless verbose."""
    if verbose:
        yield
        return
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def example_inputs(
    shapes: Sequence[tuple[int, ...]], dtype: torch.dtype, dynamic: bool
) -> tuple[torch.Tensor, ...]:
    """Random inputs of the given shapes; dynamic dims of size 1 are traced at 2.

    torch.export specialises dims of size 0 or 1, so a batch of 1 would freeze N in the
    graph's shape metadata; any size >= 2 traces the general case.
    """
    generator = torch.Generator().manual_seed(0)
    inputs = []
    for shape in shapes:
        traced = tuple(
            max(size, 2) if dynamic and axis in DYNAMIC_AXES else size
            for axis, size in enumerate(shape)
        )
        inputs.append(torch.randn(traced, generator=generator).to(dtype))
    return tuple(inputs)


def user_error_in(exc: BaseException) -> UserError | None:
    """The UserError that caused an exporter failure, if any (exporters wrap exceptions)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, UserError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _first_line(exc: BaseException) -> str:
    root: BaseException = exc
    while root.__cause__ is not None:
        root = root.__cause__
    text = str(root).strip() or type(root).__name__
    return text.splitlines()[0][:400]


def trace(
    model: nn.Module, inputs: tuple[torch.Tensor, ...], dynamic: bool
) -> torch.export.ExportedProgram:
    """torch.export the model; N, H and W of every input symbolic when dynamic."""
    dynamic_shapes = (
        tuple({axis: torch.export.Dim.DYNAMIC for axis in DYNAMIC_AXES} for _ in inputs)
        if dynamic
        else None
    )
    try:
        with torch.no_grad():
            return torch.export.export(model, inputs, dynamic_shapes=dynamic_shapes, strict=False)
    except Exception as exc:
        user = user_error_in(exc)
        if user is not None:
            raise user from exc
        shapes = ", ".join("x".join(map(str, t.shape)) for t in inputs)
        raise ExportError(
            "The model cannot be traced with input shape "
            f"{shapes}{' and dynamic N, H, W' if dynamic else ''}: {_first_line(exc)}",
            "Check --input-shape against the model (channels, and H and W the ops accept); rerun "
            "with --verbose for the full trace.",
        ) from exc


EXPORTER_OPSET = 18  # the exporter's native opset; lower ones are converted afterwards


def to_onnx(
    program: torch.export.ExportedProgram,
    input_names: Sequence[str],
    output_names: Sequence[str],
    translation_table: dict[object, Callable[..., object]],
) -> torch.onnx.ONNXProgram:
    try:
        onnx_program = torch.onnx.export(
            program,
            (),
            dynamo=True,
            opset_version=EXPORTER_OPSET,
            input_names=list(input_names),
            output_names=list(output_names) or None,
            custom_translation_table=translation_table,  # type: ignore[arg-type]
            optimize=True,
            verbose=False,
        )
    except Exception as exc:
        user = user_error_in(exc)
        if user is not None:
            raise user from exc
        raise ExportError(
            f"Converting the traced model to ONNX failed: {_first_line(exc)}",
            "Rerun with --verbose for the full trace; the model may use an op without an ONNX "
            "translation.",
        ) from exc
    assert onnx_program is not None
    return onnx_program
