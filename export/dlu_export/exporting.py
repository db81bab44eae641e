"""The export pipeline: model -> torch.export -> ONNX -> cleanup -> checks -> atomic write."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import torch

import dlu_deploy
from dlu_deploy.checkpoints import LoadedModel

from . import cleanup, detection_ops, opsets, rules, tracing
from .errors import ExportError, OptionError
from .writing import check_output_path, save_atomically

MODES = ("plugin", "portable")
OPSETS = (16, 17, 18)  # GridSample needs 16; TensorRT's GridSample is wrong at opset 20 (#4646)
DEFAULT_OPSET = 17

Step = Callable[[str], None]


@dataclass(frozen=True)
class ExportOptions:
    mode: str = "plugin"
    opset: int = DEFAULT_OPSET
    input_shapes: Sequence[tuple[int, ...]] | None = None  # default: the model's example shapes
    dynamic: bool = False  # N, H and W of every input symbolic
    fp16: bool = False  # a float16 graph (inputs, weights and outputs)
    verbose: bool = False  # let the exporters print their own progress and warnings


@dataclass
class ExportResult:
    path: Path
    mode: str
    opset: int
    fp16: bool
    inputs: dict[str, list[int | str]]
    outputs: dict[str, list[int | str]]
    custom_nodes: dict[str, int]  # op_type -> count
    size_bytes: int
    seconds: float
    example_shapes: list[tuple[int, ...]] = field(default_factory=list)  # as requested


def check_options(options: ExportOptions, loaded: LoadedModel) -> list[tuple[int, ...]]:
    """Validate the options; returns the input shapes to trace with."""
    if options.mode not in MODES:
        raise OptionError(
            f"--mode {options.mode!r} is not known.", f"Use one of: {', '.join(MODES)}."
        )
    if options.opset not in OPSETS:
        raise OptionError(
            f"--opset {options.opset} is not supported.",
            f"Use {OPSETS[0]}-{OPSETS[-1]} (GridSample needs 16; TensorRT's GridSample is wrong "
            "at opset 20).",
        )
    shapes = [tuple(s) for s in (options.input_shapes or loaded.example_shapes)]
    if not shapes:
        raise OptionError(
            f"The input shape of '{loaded.arch}' is not known.",
            "Pass --input-shape N,C,H,W (once per input).",
        )
    expected = len(loaded.input_names)
    if len(shapes) != expected:
        raise OptionError(
            f"{len(shapes)} input shapes given; the model has {expected} input(s) "
            f"({', '.join(loaded.input_names)}).",
            "Pass --input-shape once per input, in order.",
        )
    for index, shape in enumerate(shapes):
        name = loaded.input_names[index]
        if len(shape) != 4 or any(not isinstance(d, int) or d < 1 for d in shape):
            raise OptionError(
                f"Input shape {shape} for '{name}' is not four positive sizes.",
                "Use --input-shape N,C,H,W, e.g. 1,3,512,512.",
            )
        if (
            options.input_shapes
            and index < len(loaded.example_shapes)
            and "input_shape" not in loaded.assumed
        ):
            channels = loaded.example_shapes[index][1]
            if shape[1] != channels:
                raise OptionError(
                    f"--input-shape {','.join(map(str, shape))}: input '{name}' of this "
                    f"'{loaded.arch}' model has {channels} channels, not {shape[1]}.",
                    f"Use C={channels}, e.g. --input-shape "
                    f"{shape[0]},{channels},{shape[2]},{shape[3]}.",
                )
    return shapes


def export_model(
    loaded: LoadedModel,
    output: str | Path,
    options: ExportOptions = ExportOptions(),
    step: Step | None = None,
) -> ExportResult:
    """Export a loaded model to `output` (see docs/export.md); `step` reports progress."""
    started = time.perf_counter()
    report = step or (lambda _: None)
    output = Path(output)
    check_output_path(output, loaded.source)
    shapes = check_options(options, loaded)
    model = copy.deepcopy(loaded.model).eval()
    plugin_counts = rules.rewrite_for_plugins(model) if options.mode == "plugin" else {}
    dtype = torch.float16 if options.fp16 else torch.float32
    model = model.to(dtype)
    inputs = tracing.example_inputs(shapes, dtype, options.dynamic)

    with tracing.quiet(options.verbose):
        report("Tracing the model (torch.export)")
        program = tracing.trace(model, inputs, options.dynamic)
        report("Converting to ONNX")
        table = detection_ops.translation_table()
        if plugin_counts:
            table |= rules.translation_table()
        outputs = loaded.output_names or _default_output_names(program)
        proto = tracing.to_onnx(program, loaded.input_names, outputs, table).model_proto
    cleanup.name_nodes(proto.graph)
    try:
        proto = opsets.convert_opset(proto, options.opset)
    except Exception as exc:
        raise ExportError(
            f"Converting the graph from opset {tracing.EXPORTER_OPSET} to {options.opset} failed: "
            f"{exc}",
            f"Use --opset {tracing.EXPORTER_OPSET}.",
        ) from exc

    report("Cleaning the graph (onnx-graphsurgeon)")
    proto = cleanup.finalize(proto, _metadata(loaded, options))
    if options.dynamic:
        _check_dynamic(proto)
    report("Checking (onnx.checker, full)")
    onnx.checker.check_model(proto, full_check=True)
    nodes = _count_custom_nodes(proto)
    if set(nodes) != set(plugin_counts):
        raise AssertionError(
            f"custom nodes {nodes} do not match the rewritten modules {plugin_counts}"
        )
    report(f"Writing {output}")
    size = save_atomically(proto, output)
    return ExportResult(
        path=output,
        mode=options.mode,
        opset=options.opset,
        fp16=options.fp16,
        inputs=cleanup.shapes_of(proto.graph.input),
        outputs=cleanup.shapes_of(proto.graph.output),
        custom_nodes=nodes,
        size_bytes=size,
        seconds=time.perf_counter() - started,
        example_shapes=shapes,
    )


def _metadata(loaded: LoadedModel, options: ExportOptions) -> dict[str, str]:
    """Model metadata_props that let other tools (dlu-deploy validate) rebuild the source."""

    def encode(values: dict[str, object]) -> str:
        return json.dumps(values, default=list, sort_keys=True)

    return {
        "dlu_deploy.version": dlu_deploy.__version__,
        "dlu_deploy.arch": loaded.arch,
        "dlu_deploy.mode": options.mode,
        "dlu_deploy.precision": "fp16" if options.fp16 else "fp32",
        "dlu_deploy.inferred": encode(loaded.inferred),
        "dlu_deploy.assumed": encode(loaded.assumed),
        "dlu_deploy.given": encode(loaded.given),
        **loaded.metadata,
    }


def _default_output_names(program: torch.export.ExportedProgram) -> list[str]:
    count = len(program.graph_signature.user_outputs)
    return ["output"] if count == 1 else [f"output_{i}" for i in range(count)]


def _check_dynamic(model: onnx.ModelProto) -> None:
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        fixed = {
            name: dims[a].dim_value
            for a, name in tracing.DYNAMIC_AXES.items()
            if not dims[a].dim_param
        }
        if fixed:
            sizes = ", ".join(f"{name}={size}" for name, size in fixed.items())
            raise ExportError(
                f"--dynamic: the model fixes {sizes} of input '{value.name}'.",
                "Export without --dynamic (one file per input size).",
            )


def _count_custom_nodes(model: onnx.ModelProto) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in cleanup.custom_nodes(model):
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts
