"""DDF in plugin mode: DDFPack / DDFUpPack -> filter branches + one `DDF` node per application.

Heads are folded into the batch around the node exactly as the modules do, so the node sees
[N*head, C/head, H, W]; DDFUpPack emits one node per sub-pixel branch.
"""

from __future__ import annotations

import onnxscript
import torch

import dlu_deploy.ops  # noqa: F401  (registers torch.ops.dlu_deploy.*)
from dlu_deploy import ONNX_DOMAIN, PLUGIN_VERSION
from dlu_deploy.reference import DDFPack, DDFUpPack
from dlu_deploy.reference.ddf import COMBINE_MODES, check_ddf_args

from .base import ONNX_DOMAIN_VERSION, PluginRule, divided

_opset = onnxscript.values.Opset(ONNX_DOMAIN, ONNX_DOMAIN_VERSION)


class DDFPackPlugin(DDFPack):
    """DDFPack whose filter application is the custom op (one DDF node)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        s, g = self.stride, self.head
        channel_filter, spatial_filter = self.filters(x)
        folded = x.reshape(n * g, c // g, h, w)
        k, d, combine = self.kernel_size, self.dilation, self.kernel_combine
        # The op's fake (shape-only) kernel trusts its inputs; check them as the reference does.
        check_ddf_args(folded, channel_filter, spatial_filter, k, d, s, combine)
        out = torch.ops.dlu_deploy.ddf(
            folded, channel_filter, spatial_filter, k, d, s, COMBINE_MODES[combine]
        )
        return out.reshape(n, c, h // s, w // s)


class DDFUpPackPlugin(DDFUpPack):
    """DDFUpPack with one custom DDF node per sub-pixel branch."""

    def forward(self, x: torch.Tensor, joint_x: torch.Tensor | None = None) -> torch.Tensor:
        guide = x if joint_x is None else joint_x
        n, c, h, w = x.shape
        g, k = self.head, self.kernel_size
        folded = x.reshape(n * g, c // g, h, w)
        outs = []
        for spatial_branch, channel_branch in zip(
            self.spatial_branch, self.channel_branch, strict=True
        ):
            channel_filter = channel_branch(x).reshape(n * g, c // g, k, k)
            spatial_filter = spatial_branch(guide).reshape(n * g, k * k, h, w)
            out = torch.ops.dlu_deploy.ddf(
                folded,
                channel_filter,
                spatial_filter,
                k,
                self.dilation,
                1,
                COMBINE_MODES[self.kernel_combine],
            )
            outs.append(out.reshape(n, c, h, w))
        stacked = torch.stack(outs, dim=2).reshape(n, c * self.scale_factor**2, h, w)
        return torch.nn.functional.pixel_shuffle(stacked, self.scale_factor)


def ddf_to_onnx(
    x, channel_filter, spatial_filter, kernel_size: int, dilation: int, stride: int, combine: int
):
    return _opset.DDF(
        x,
        channel_filter,
        spatial_filter,
        kernel_size=kernel_size,
        dilation=dilation,
        stride=stride,
        combine=combine,
        plugin_version=PLUGIN_VERSION,
    )


RULE = PluginRule(
    op_type="DDF",
    inputs=("x", "channel_filter", "spatial_filter"),
    attributes=("kernel_size", "dilation", "stride", "combine"),
    modules={DDFPack: DDFPackPlugin, DDFUpPack: DDFUpPackPlugin},
    translation={torch.ops.dlu_deploy.ddf.default: ddf_to_onnx},
    output_dims=lambda d, a: [d[0], d[1], divided(d[2], a["stride"]), divided(d[3], a["stride"])],
    doc="Decoupled dynamic filter (docs/ops.md#ddf); combine 0 = mul, 1 = add.",
)
