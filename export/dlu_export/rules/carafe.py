"""CARAFE in plugin mode: CARAFEPack -> encoder convs + pixel shuffle + softmax + one `CARAFE`."""

from __future__ import annotations

import onnxscript
import torch

import dlu_deploy.ops  # noqa: F401  (registers torch.ops.dlu_deploy.*)
from dlu_deploy import ONNX_DOMAIN, PLUGIN_VERSION
from dlu_deploy.reference import CARAFEPack
from dlu_deploy.reference.carafe import check_carafe_args

from .base import ONNX_DOMAIN_VERSION, PluginRule, scaled

_opset = onnxscript.values.Opset(ONNX_DOMAIN, ONNX_DOMAIN_VERSION)


class CARAFEPackPlugin(CARAFEPack):
    """CARAFEPack whose reassembly is the custom op (exported as one CARAFE node)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        masks = self.predict_masks(x)
        # The op's fake (shape-only) kernel trusts its inputs; check them as the reference does.
        check_carafe_args(x, masks, self.up_kernel, self.up_group, self.scale_factor)
        return torch.ops.dlu_deploy.carafe(
            x, masks, self.up_kernel, self.up_group, self.scale_factor
        )


def carafe_to_onnx(x, masks, kernel_size: int, group: int, scale: int):
    return _opset.CARAFE(
        x, masks, kernel_size=kernel_size, group=group, scale=scale, plugin_version=PLUGIN_VERSION
    )


RULE = PluginRule(
    op_type="CARAFE",
    inputs=("x", "masks"),
    attributes=("kernel_size", "group", "scale"),
    modules={CARAFEPack: CARAFEPackPlugin},
    translation={torch.ops.dlu_deploy.carafe.default: carafe_to_onnx},
    output_dims=lambda d, a: [d[0], d[1], scaled(d[2], a["scale"]), scaled(d[3], a["scale"])],
    doc="Content-aware reassembly of features, mmcv semantics (docs/ops.md#carafe).",
)
