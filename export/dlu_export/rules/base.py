"""What every plugin-mode rule provides (one module per op: dlu.py, carafe.py, ddf.py).

A rule rewrites the reference modules of its op so that their forward ends in the torch
custom op (`torch.ops.dlu_deploy.<op>`), translates that op into one ONNX node in the
project's domain (op_type = TensorRT plugin name, INT attributes in docs/ops.md order, plus
`plugin_version`), and registers the node's ONNX schema so that onnx.checker validates it and
ONNX shape inference knows its output shape.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import onnx
from onnx import defs, helper
from torch import nn

from dlu_deploy import ONNX_DOMAIN, PLUGIN_VERSION

ONNX_DOMAIN_VERSION = 1
FLOAT_TYPES = ["tensor(float)", "tensor(float16)"]

# (input dims, attributes) -> output dims; a dim is an int, or None where not static.
OutputDims = Callable[[Sequence[int | None], dict[str, int]], list[int | None]]


@dataclass(frozen=True)
class PluginRule:
    """How one op becomes one custom ONNX node in plugin mode."""

    op_type: str  # ONNX op_type == TensorRT plugin name
    inputs: tuple[str, ...]
    attributes: tuple[str, ...]  # INT attributes, in the order of docs/ops.md
    modules: dict[type[nn.Module], type[nn.Module]]  # reference class -> its plugin-mode subclass
    translation: dict[object, Callable[..., object]]  # torch op overload -> onnxscript function
    output_dims: OutputDims
    doc: str

    def rewrite(self, module: nn.Module) -> bool:
        """Switch a reference module to its plugin-mode subclass in place (same parameters)."""
        plugin_class = self.modules.get(type(module))
        if plugin_class is None:
            return False
        module.__class__ = plugin_class
        return True

    def schema(self) -> defs.OpSchema:
        attr_type = defs.OpSchema.AttrType
        schema = defs.OpSchema(
            self.op_type,
            ONNX_DOMAIN,
            ONNX_DOMAIN_VERSION,
            doc=self.doc,
            inputs=[defs.OpSchema.FormalParameter(name, "T") for name in self.inputs],
            outputs=[defs.OpSchema.FormalParameter("output", "T")],
            type_constraints=[("T", FLOAT_TYPES, "float32 or float16, the same for every tensor")],
            attributes=[
                *(
                    defs.OpSchema.Attribute(name, attr_type.INT, "docs/ops.md")
                    for name in self.attributes
                ),
                defs.OpSchema.Attribute(
                    "plugin_version", attr_type.STRING, "TensorRT plugin version"
                ),
            ],
        )
        schema.set_type_and_shape_inference_function(self._infer)
        return schema

    def _infer(self, ctx: onnx.shape_inference.InferenceContext) -> None:
        source = ctx.get_input_type(0)
        out = onnx.TypeProto()
        out.tensor_type.elem_type = source.tensor_type.elem_type
        if source.tensor_type.HasField("shape"):
            dims = source.tensor_type.shape.dim
            known = [d.dim_value if d.HasField("dim_value") else None for d in dims]
            attrs = {
                name: helper.get_attribute_value(ctx.get_attribute(name))
                for name in self.attributes
            }
            for value in self.output_dims(known, attrs):
                dim = out.tensor_type.shape.dim.add()
                if value is not None:
                    dim.dim_value = value
        ctx.set_output_type(0, out)


def node_attributes(rule: PluginRule, values: Sequence[int]) -> dict[str, object]:
    """The node's attributes: the op's INT parameters, then plugin_version."""
    return {**dict(zip(rule.attributes, values, strict=True)), "plugin_version": PLUGIN_VERSION}


def scaled(dim: int | None, factor: int) -> int | None:
    return None if dim is None else dim * factor


def divided(dim: int | None, divisor: int) -> int | None:
    return None if dim is None else dim // divisor
