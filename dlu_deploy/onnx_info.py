"""What the runner needs to know about an ONNX file, read without loading its weights.

Inputs and outputs (names, dtypes, static and symbolic dims), the custom nodes TensorRT has to
find as plugins, and whether the graph computes in float16 (which picks the default tolerances).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from dlu_deploy.errors import UserError

STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
EXPORT_METADATA_PREFIX = "dlu_deploy."

Dim = int | str | None  # static size, symbolic name, or unknown


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: np.dtype
    dims: tuple[Dim, ...]

    @property
    def is_dynamic(self) -> bool:
        return any(not isinstance(d, int) for d in self.dims)

    def accepts(self, shape: tuple[int, ...]) -> bool:
        """Whether a concrete shape fits the declared rank and static dims."""
        return len(shape) == len(self.dims) and all(
            not isinstance(d, int) or d == s for d, s in zip(self.dims, shape, strict=True)
        )


@dataclass(frozen=True)
class CustomNode:
    """A node outside the standard ONNX domains: TensorRT needs a plugin named `op_type`."""

    name: str
    domain: str
    op_type: str
    plugin_version: str = "1"
    plugin_namespace: str = ""


@dataclass(frozen=True)
class OnnxInfo:
    path: Path
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    custom_nodes: tuple[CustomNode, ...]
    has_fp16: bool
    # What dlu-export recorded (metadata_props "dlu_deploy.*": arch, mode, given, ...), so the
    # runner can rebuild the PyTorch model exactly as it was exported.
    export_settings: dict[str, str]

    @property
    def precision(self) -> str:
        return "fp16" if self.has_fp16 else "fp32"

    def input(self, name: str) -> TensorInfo:
        for tensor in self.inputs:
            if tensor.name == name:
                return tensor
        raise KeyError(name)


def inspect_onnx(path: str | Path) -> OnnxInfo:
    """Read `path`'s interface and custom nodes (weights stored externally are not loaded)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"ONNX file {path} does not exist.", "Check the path (export one with dlu-export)."
        )
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, google.protobuf errors, OSError...
        raise UserError(
            f"{path} is not a readable ONNX file ({type(exc).__name__}: {exc}).",
            "Re-export it with dlu-export; a truncated copy also gives this error.",
        ) from exc
    graph = model.graph
    initializer_names = {t.name for t in graph.initializer}
    inputs = tuple(_tensor_info(v) for v in graph.input if v.name not in initializer_names)
    outputs = tuple(_tensor_info(v) for v in graph.output)
    settings = {
        prop.key.removeprefix(EXPORT_METADATA_PREFIX): prop.value
        for prop in model.metadata_props
        if prop.key.startswith(EXPORT_METADATA_PREFIX)
    }
    return OnnxInfo(path, inputs, outputs, tuple(_custom_nodes(graph)), _has_fp16(graph), settings)


def _tensor_info(value: onnx.ValueInfoProto) -> TensorInfo:
    tensor_type = value.type.tensor_type
    dims: list[Dim] = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        else:
            dims.append(dim.dim_param or None)
    return TensorInfo(
        value.name, np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)), tuple(dims)
    )


def _custom_nodes(graph: onnx.GraphProto) -> list[CustomNode]:
    nodes = []
    for index, node in enumerate(graph.node):
        if node.domain in STANDARD_DOMAINS:
            continue
        attrs = {a.name: a for a in node.attribute}
        nodes.append(
            CustomNode(
                name=node.name or f"{node.op_type}_{index}",
                domain=node.domain,
                op_type=node.op_type,
                plugin_version=_string_attr(attrs.get("plugin_version"), "1"),
                plugin_namespace=_string_attr(attrs.get("plugin_namespace"), ""),
            )
        )
    return nodes


def _string_attr(attr: onnx.AttributeProto | None, default: str) -> str:
    if attr is None:
        return default
    value = helper.get_attribute_value(attr)
    return value.decode() if isinstance(value, bytes) else str(value)


def _has_fp16(graph: onnx.GraphProto) -> bool:
    """True if any tensor of the graph is float16 (I/O, initializers, casts, annotated values)."""
    half = TensorProto.FLOAT16
    values = [*graph.input, *graph.output, *graph.value_info]
    if any(v.type.tensor_type.elem_type == half for v in values):
        return True
    if any(t.data_type == half for t in graph.initializer):
        return True
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i == half:
                return True
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == half:
                return True
    return False
