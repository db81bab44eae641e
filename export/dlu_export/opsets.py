"""Opset 18 (what the exporter writes) down to 16 or 17, working around two gaps of onnx's
version converter (onnx 1.23):

- it has no Pad 18 -> 17 adapter; Pad-18 differs from Pad-13 only by the optional `axes`
  input, so a Pad without `axes` is hidden from the converter and kept as is;
- its ReduceMean/ReduceMax/... 18 -> 17 adapter moves `axes` back into an attribute but
  leaves `noop_with_empty_axes`, which those ops only have since 18; with `axes` present
  (and the attribute 0) it has no effect and is dropped.
"""

from __future__ import annotations

import onnx
from onnx import defs, helper, version_converter

_HIDDEN_DOMAIN = "dlu_export.unconverted"


def default_opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def convert_opset(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    if default_opset(model) == opset:
        return model
    hidden = []
    for node in model.graph.node:
        if node.domain == "" and node.op_type == "Pad":
            if len(node.input) > 3 and node.input[3]:
                raise ValueError(
                    f"Pad node {node.name!r} has an 'axes' input, which opset {opset} does not have"
                )
            node.domain = _HIDDEN_DOMAIN
            hidden.append(node.name)
    model.opset_import.append(helper.make_opsetid(_HIDDEN_DOMAIN, 1))
    converted = version_converter.convert_version(model, opset)
    for node in converted.graph.node:
        if node.domain == _HIDDEN_DOMAIN:
            node.domain = ""
        elif node.domain == "":
            _drop_unknown_noop_attribute(node, opset)
    imports = [o for o in converted.opset_import if o.domain != _HIDDEN_DOMAIN]
    del converted.opset_import[:]
    converted.opset_import.extend(imports)
    return converted


def _drop_unknown_noop_attribute(node: onnx.NodeProto, opset: int) -> None:
    schema = defs.get_schema(node.op_type, opset, "")
    if "noop_with_empty_axes" in schema.attributes:
        return
    kept = [
        a
        for a in node.attribute
        if not (a.name == "noop_with_empty_axes" and helper.get_attribute_value(a) == 0)
    ]
    if len(kept) != len(node.attribute):
        del node.attribute[:]
        node.attribute.extend(kept)
