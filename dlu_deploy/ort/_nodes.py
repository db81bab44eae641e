"""The custom nodes a plugin-mode graph may hold, their attributes and static validation.

`dlu_deploy::{DLU,CARAFE,DDF}` (docs/ops.md#onnx-nodes-plugin-mode) and mmcv's own
`mmcv::MMCVCARAFE` (docs/ops.md#mmcvcarafe), reduced to one canonical form per op.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx import helper

from dlu_deploy import ONNX_DOMAIN, PLUGIN_VERSION
from dlu_deploy.errors import OpArgumentError, UserError
from dlu_deploy.reference._checks import MAX_SCALE, check_kernel_size, check_scale, require

MMCV_DOMAIN = "mmcv"
# INT attributes of each op, in the order of docs/ops.md (and of the kernels' parameters).
OP_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "DLU": ("kernel_size", "group", "scale"),
    "CARAFE": ("kernel_size", "group", "scale"),
    "DDF": ("kernel_size", "dilation", "stride", "combine"),
}
OP_INPUTS = {"DLU": 3, "CARAFE": 2, "DDF": 3}


@dataclass(frozen=True)
class CustomNode:
    """A custom node in canonical form: op (DLU, CARAFE or DDF) and its INT attributes."""

    op: str
    attributes: dict[str, int]


def is_custom(node: onnx.NodeProto) -> bool:
    return node.domain == ONNX_DOMAIN or (
        node.domain == MMCV_DOMAIN and node.op_type == "MMCVCARAFE"
    )


def _where(node: onnx.NodeProto) -> str:
    return f"node {node.name or '(unnamed)'} ({node.domain}::{node.op_type})"


def parse(node: onnx.NodeProto) -> CustomNode:
    """Validate a custom node's type, arity and attributes; raise a UserError naming the problem."""
    where = _where(node)
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if node.domain == MMCV_DOMAIN:
        op = "CARAFE"
        scale = attrs.get("scale_factor")
        if not (isinstance(scale, float) and scale.is_integer() and 1 <= scale <= MAX_SCALE):
            raise OpArgumentError(
                f"{where}: scale_factor={scale!r} is not a whole number between 1 and {MAX_SCALE}.",
                "Export the model with an integer upsampling factor.",
            )
        attrs = {
            "kernel_size": attrs.get("kernel_size"),
            "group": attrs.get("group_size"),
            "scale": int(scale),
        }
    else:
        op = node.op_type
        if op not in OP_ATTRIBUTES:
            raise UserError(
                f"{where}: the domain {ONNX_DOMAIN} has no op {op!r}.",
                f"Use one of {', '.join(OP_ATTRIBUTES)} (docs/ops.md), or re-export the model.",
            )
        version = attrs.get("plugin_version", PLUGIN_VERSION.encode())
        version = version.decode() if isinstance(version, bytes) else version
        require(
            version == PLUGIN_VERSION,
            f"{where}: plugin_version={version!r} is not supported.",
            f"Re-export the model with this dlu_deploy (plugin_version {PLUGIN_VERSION!r}).",
        )
    require(
        len(node.input) == OP_INPUTS[op] and len(node.output) == 1 and all(node.input),
        f"{where}: has {len(node.input)} inputs and {len(node.output)} outputs.",
        f"{op} takes {OP_INPUTS[op]} inputs and gives 1 output (docs/ops.md).",
    )
    values: dict[str, int] = {}
    for name in OP_ATTRIBUTES[op]:
        value = attrs.get(name)
        if not isinstance(value, int):
            raise OpArgumentError(
                f"{where}: the INT attribute {name!r} is missing or not an integer ({value!r}).",
                f"Give the node the attributes {', '.join(OP_ATTRIBUTES[op])} (docs/ops.md).",
            )
        values[name] = value
    check_kernel_size(where, values["kernel_size"])
    if op == "DDF":
        for name in ("dilation", "stride"):
            require(
                values[name] >= 1,
                f"{where}: {name}={values[name]} is not allowed.",
                f"Use a {name} >= 1.",
            )
        require(
            values["combine"] in (0, 1),
            f"{where}: combine={values['combine']} is not known.",
            "Use 0 (mul) or 1 (add).",
        )
    else:
        check_scale(where, values["scale"])
        require(
            values["group"] >= 1,
            f"{where}: group={values['group']} is not allowed.",
            "Use a group count >= 1.",
        )
    return CustomNode(op, values)
