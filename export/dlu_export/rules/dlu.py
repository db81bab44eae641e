"""DLU in plugin mode: DLUPack -> convs + softmax + one `dlu_deploy::DLU(x, kernels, offsets)`.

The node receives the normalised low-resolution kernel space and the offsets; the
full-resolution kernel tensor [N, G*k*k, s*H, s*W] never exists in the graph.
"""

from __future__ import annotations

import onnxscript
import torch

import dlu_deploy.ops  # noqa: F401  (registers torch.ops.dlu_deploy.*)
from dlu_deploy import ONNX_DOMAIN, PLUGIN_VERSION
from dlu_deploy.reference import DLUPack
from dlu_deploy.reference.dlu import check_dlu_args

from .base import ONNX_DOMAIN_VERSION, PluginRule, scaled

_opset = onnxscript.values.Opset(ONNX_DOMAIN, ONNX_DOMAIN_VERSION)


class DLUPackPlugin(DLUPack):
    """DLUPack whose reassembly is the custom op (exported as one DLU node)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernels, offsets = self.predict(x)
        # The op's fake (shape-only) kernel trusts its inputs; check them as the reference does.
        check_dlu_args(x, kernels, offsets, self.up_kernel, self.up_group, self.scale_factor)
        return torch.ops.dlu_deploy.dlu(
            x, kernels, offsets, self.up_kernel, self.up_group, self.scale_factor
        )


def dlu_to_onnx(x, kernels, offsets, kernel_size: int, group: int, scale: int):
    return _opset.DLU(
        x,
        kernels,
        offsets,
        kernel_size=kernel_size,
        group=group,
        scale=scale,
        plugin_version=PLUGIN_VERSION,
    )


RULE = PluginRule(
    op_type="DLU",
    inputs=("x", "kernels", "offsets"),
    attributes=("kernel_size", "group", "scale"),
    modules={DLUPack: DLUPackPlugin},
    translation={torch.ops.dlu_deploy.dlu.default: dlu_to_onnx},
    output_dims=lambda d, a: [d[0], d[1], scaled(d[2], a["scale"]), scaled(d[3], a["scale"])],
    doc="Dynamic Lightweight Upsampling (docs/ops.md#dlu).",
)
