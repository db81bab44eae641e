"""Post-processing of the exporter's graph: readable names, onnx-graphsurgeon cleanup, versions.

- Nodes are named after the module that produced them (`neck.upsample_modules.0/DLU`), and
  the exporter's per-node debug metadata (stack traces with local paths) is dropped.
- Symbolic dims are renamed from the tracer's `s77` to `N`, `H`, `W` (and expressions of them).
- onnx-graphsurgeon folds constants, removes dead nodes and sorts the graph.
- The IR version is the lowest the opset needs (onnxruntime 1.31 refuses IR 14, older
  TensorRT parsers cap it), and custom nodes list their attributes in docs/ops.md order.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping, Sequence

import onnx
import onnx_graphsurgeon as gs
from onnx import helper

from dlu_deploy import ONNX_DOMAIN

from .opsets import default_opset
from .rules import ONNX_DOMAIN_VERSION, RULES_BY_OP_TYPE
from .tracing import DYNAMIC_AXES

NAME_SCOPES = "pkg.torch.onnx.name_scopes"


def name_nodes(graph: onnx.GraphProto) -> None:
    """`<module path>/<op_type>` names (unique), from the exporter's scope metadata."""
    used: dict[str, int] = {}
    for node in graph.node:
        scope = ""
        for prop in node.metadata_props:
            if prop.key == NAME_SCOPES:
                # The last scope is the FX node; "_..." scopes are torch internals.
                scopes = [
                    s for s in ast.literal_eval(prop.value)[:-1] if s and not s.startswith("_")
                ]
                scope = scopes[-1] if scopes else ""
        base = f"{scope}/{node.op_type}" if scope else node.op_type
        count = used.get(base, 0)
        used[base] = count + 1
        node.name = base if count == 0 else f"{base}_{count}"
        del node.metadata_props[:]


def _typed_values(graph: onnx.GraphProto) -> Iterable[onnx.ValueInfoProto]:
    yield from graph.input
    yield from graph.output
    yield from graph.value_info


def rename_symbolic_dims(graph: onnx.GraphProto) -> None:
    """Call the inputs' dynamic N, H, W by those names everywhere they appear."""
    names: dict[str, str] = {}
    single = len(graph.input) == 1
    for value in graph.input:
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if axis in DYNAMIC_AXES and dim.dim_param and dim.dim_param not in names:
                names[dim.dim_param] = (
                    DYNAMIC_AXES[axis] if single else f"{DYNAMIC_AXES[axis]}_{value.name}"
                )
    if not names:
        return
    symbol = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
    for value in _typed_values(graph):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_param = symbol.sub(lambda m: names[m.group(1)], dim.dim_param)


def order_custom_attributes(graph: onnx.GraphProto) -> None:
    for node in graph.node:
        rule = RULES_BY_OP_TYPE.get(node.op_type) if node.domain == ONNX_DOMAIN else None
        if rule is not None:
            order = {name: i for i, name in enumerate((*rule.attributes, "plugin_version"))}
            attrs = sorted(node.attribute, key=lambda a: order.get(a.name, len(order)))
            del node.attribute[:]
            node.attribute.extend(attrs)


def custom_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.domain == ONNX_DOMAIN]


def finalize(model: onnx.ModelProto, metadata: Mapping[str, str]) -> onnx.ModelProto:
    """Dim names, graphsurgeon cleanup, opset imports, IR version and metadata (module doc)."""
    opset = default_opset(model)
    rename_symbolic_dims(model.graph)
    graph = gs.import_onnx(model)
    graph.fold_constants().cleanup().toposort()
    model = gs.export_onnx(graph)
    order_custom_attributes(model.graph)
    used_domains = {node.domain for node in model.graph.node} - {"", "ai.onnx"}
    if used_domains - {ONNX_DOMAIN}:
        raise AssertionError(
            f"unexpected ONNX domains in the exported graph: {sorted(used_domains)}"
        )
    imports = [helper.make_opsetid("", opset)]
    if ONNX_DOMAIN in used_domains:
        imports.append(helper.make_opsetid(ONNX_DOMAIN, ONNX_DOMAIN_VERSION))
    del model.opset_import[:]
    model.opset_import.extend(imports)
    model.ir_version = helper.find_min_ir_version_for(imports, ignore_unknown=True)
    model.producer_name = "dlu-export"
    del model.metadata_props[:]
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    _infer_missing_shapes(model)
    return model


def _infer_missing_shapes(model: onnx.ModelProto) -> None:
    """Add value_info for custom nodes' outputs when the exporter left any without a shape."""
    typed = {v.name for v in _typed_values(model.graph) if v.type.tensor_type.HasField("shape")}
    if all(output in typed for node in custom_nodes(model) for output in node.output):
        return
    inferred = {v.name: v for v in _typed_values(onnx.shape_inference.infer_shapes(model).graph)}
    for value in model.graph.output:
        if not value.type.tensor_type.HasField("shape") and value.name in inferred:
            value.CopyFrom(inferred[value.name])
    known = {v.name for v in _typed_values(model.graph)}
    model.graph.value_info.extend(v for name, v in inferred.items() if name not in known)


def shapes_of(values: Sequence[onnx.ValueInfoProto]) -> dict[str, list[int | str]]:
    """{name: [dim_value or dim_param]} for display and checks."""
    return {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in values
    }
