"""In-memory rewrite of a plugin-mode graph for onnxruntime (the file on disk is not touched).

Every custom node (dlu_deploy::DLU/CARAFE/DDF, mmcv::MMCVCARAFE) becomes the matching Python
op of _kernels.py in the private domain `dlu_deploy.ort`, with its attributes validated and
canonicalised and two attributes added (the owning session, the kernel thread count). Python
ops only take float32, so a float16 node is wrapped in Casts: the kernels compute float16 in
float32 and round once, so Cast(fp16->fp32) -> op -> Cast(fp32->fp16) gives the same values.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper, shape_inference

from dlu_deploy.errors import UserError
from dlu_deploy.ort import _kernels
from dlu_deploy.ort._nodes import CustomNode, is_custom, parse

_FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16)


def has_custom_nodes(model: onnx.ModelProto) -> bool:
    return any(is_custom(node) for node in model.graph.node)


def _reject_nested_custom_nodes(graph: onnx.GraphProto, nested: bool = False) -> None:
    for node in graph.node:
        if nested and is_custom(node):
            raise UserError(
                f"The custom node {node.name or node.op_type} sits inside a control-flow subgraph.",
                "Keep DLU/CARAFE/DDF nodes in the main graph (as dlu-export writes them).",
            )
        for attribute in node.attribute:
            for sub in (
                [attribute.g, *attribute.graphs]
                if attribute.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                else []
            ):
                _reject_nested_custom_nodes(sub, nested=True)


def _element_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every value ONNX can type, custom node outputs included.

    Runs ONNX type inference on a data-free copy (initializers become typed inputs), giving
    each custom node's output its input's type (docs/ops.md: the output type equals the
    input type), and repeats until no custom node is left to type.
    """
    graph = onnx.GraphProto()
    graph.node.extend(model.graph.node)
    graph.input.extend(model.graph.input)
    graph.output.extend(model.graph.output)
    graph.value_info.extend(model.graph.value_info)
    graph_inputs = {v.name for v in model.graph.input}
    for init in model.graph.initializer:
        if init.name not in graph_inputs:
            graph.input.append(
                helper.make_tensor_value_info(init.name, init.data_type, list(init.dims))
            )
    typed = helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    custom = [node for node in model.graph.node if is_custom(node)]
    while True:
        inferred = shape_inference.infer_shapes(typed, strict_mode=False)
        types = {
            v.name: v.type.tensor_type.elem_type
            for v in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]
            if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type
        }
        newly_typed = [n for n in custom if n.output[0] not in types and n.input[0] in types]
        if not newly_typed:
            return types
        for node in newly_typed:
            typed.graph.value_info.append(
                helper.make_tensor_value_info(node.output[0], types[node.input[0]], None)
            )


def _rewritten(
    node: onnx.NodeProto,
    custom: CustomNode,
    session_id: int,
    num_threads: int,
    name: str,
    inputs: list[str],
    output: str,
) -> onnx.NodeProto:
    node = helper.make_node(custom.op, inputs, [output], name=name, domain=_kernels.PRIVATE_DOMAIN)
    attributes = {
        **custom.attributes,
        _kernels.SESSION_ATTRIBUTE: session_id,
        _kernels.THREADS_ATTRIBUTE: num_threads,
    }
    node.attribute.extend(helper.make_attribute(key, value) for key, value in attributes.items())
    return node


def prepare(model: onnx.ModelProto, session_id: int, num_threads: int) -> onnx.ModelProto:
    """A copy of `model` whose custom nodes run on the compiled kernels (see module docstring)."""
    _reject_nested_custom_nodes(model.graph)
    parsed = {index: parse(node) for index, node in enumerate(model.graph.node) if is_custom(node)}
    types = _element_types(model)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    for index, node in enumerate(model.graph.node):
        if index not in parsed:
            out.graph.node.append(node)
            continue
        name = node.name or f"{node.op_type}_{index}"
        elem_type = types.get(node.input[0])
        if elem_type not in _FLOAT_TYPES:
            found = "unknown" if elem_type is None else TensorProto.DataType.Name(elem_type)
            raise UserError(
                f"Node {name} ({node.domain}::{node.op_type}): the element type of its input "
                f"{node.input[0]!r} is {found}.",
                "Custom nodes take float or float16 tensors; give the graph typed inputs.",
            )
        custom = parsed[index]
        if elem_type == TensorProto.FLOAT:
            out.graph.node.append(
                _rewritten(
                    node, custom, session_id, num_threads, name, list(node.input), node.output[0]
                )
            )
            continue
        cast_inputs = [f"{name}__{i}_fp32" for i in range(len(node.input))]
        for source, target in zip(node.input, cast_inputs, strict=True):
            out.graph.node.append(
                helper.make_node(
                    "Cast", [source], [target], name=f"{target}_cast", to=TensorProto.FLOAT
                )
            )
        result = f"{name}__out_fp32"
        out.graph.node.append(
            _rewritten(node, custom, session_id, num_threads, name, cast_inputs, result)
        )
        out.graph.node.append(
            helper.make_node(
                "Cast", [result], [node.output[0]], name=f"{name}__out_cast", to=TensorProto.FLOAT16
            )
        )
    if not any(o.domain == _kernels.PRIVATE_DOMAIN for o in out.opset_import):
        out.opset_import.append(helper.make_opsetid(_kernels.PRIVATE_DOMAIN, 1))
    return out
