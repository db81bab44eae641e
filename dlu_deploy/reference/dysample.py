"""DySample (tiny-smart/dysample): point-sampling upsampler (spec: docs/ops.md#dysample).

Same parameters, buffer and arithmetic as the official module. The one change: the sampling
grid and its normaliser are computed from the runtime shape (the official `torch.tensor([W, H])`
becomes a constant under the TorchScript exporter, which silently breaks dynamic-shape exports;
see docs/ops.md#dysample). DySample needs no
custom op: both export modes use the standard ONNX GridSample (opset >= 16).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlu_deploy.reference._checks import (
    check_groups,
    check_scale,
    check_tensor,
    compute_dtype,
    require,
)


def dysample_sample(
    x: torch.Tensor, offsets: torch.Tensor, scale: int, groups: int
) -> torch.Tensor:
    """Bilinear point sampling of x at (col + 0.5 + O_x, row + 0.5 + O_y), border padding.

    x: [N, C, H, W]; offsets: [N, 2*G*s*s, H, W] in input-pixel units, channel
    comp*G*s*s + g*s*s + dy*s + dx (comp 0 = x). Returns [N, C, s*H, s*W] in x's dtype.
    fp16 inputs are sampled in fp32 and rounded once (docs/ops.md, Dtypes): in fp16 the grid
    coordinates lose about W/1000 pixels, a 6% error at W = 128 already.
    """
    op = "DySample"
    check_tensor(op, "features", x)
    check_tensor(op, "offsets", offsets, x.dtype)
    n, c, h, w = x.shape
    check_groups(op, c, groups)
    require(
        tuple(offsets.shape) == (n, 2 * groups * scale * scale, h, w),
        f"{op}: offsets have shape {tuple(offsets.shape)}, expected "
        f"{(n, 2 * groups * scale * scale, h, w)} (N, 2*groups*scale^2, H, W).",
        "Check scale and groups against the offset convolution's output channels.",
    )
    out_dtype = x.dtype
    work = compute_dtype(x)
    x, offsets = x.to(work), offsets.to(work)
    o = offsets.reshape(n, 2, groups * scale * scale, h, w)
    col = torch.arange(w, device=x.device, dtype=x.dtype) + 0.5
    row = torch.arange(h, device=x.device, dtype=x.dtype) + 0.5
    gx = 2 * (col.view(1, 1, 1, w) + o[:, 0]) / w - 1
    gy = 2 * (row.view(1, 1, h, 1) + o[:, 1]) / h - 1
    coords = torch.stack((gx, gy), dim=1).reshape(n, 2 * groups * scale * scale, h, w)
    grid = (
        F.pixel_shuffle(coords, scale)
        .reshape(n, 2, groups, scale * h, scale * w)
        .permute(0, 2, 3, 4, 1)
        .reshape(n * groups, scale * h, scale * w, 2)
    )
    sampled = F.grid_sample(
        x.reshape(n * groups, c // groups, h, w),
        grid,
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )
    return sampled.reshape(n, c, scale * h, scale * w).to(out_dtype)


class DySample(nn.Module):
    """DySample(in_channels, scale=2, style='lp'|'pl', groups=4, dyscope=False)."""

    def __init__(
        self,
        in_channels: int,
        scale: int = 2,
        style: str = "lp",
        groups: int = 4,
        dyscope: bool = False,
    ) -> None:
        super().__init__()
        check_scale("DySample", scale)
        require(
            style in ("lp", "pl"),
            f"DySample: style={style!r} is not known.",
            "Use 'lp' (linear then pixel shuffle) or 'pl' (pixel shuffle then linear).",
        )
        if style == "pl":
            require(
                in_channels % (scale * scale) == 0,
                f"DySample: style 'pl' needs in_channels ({in_channels}) divisible by scale^2.",
                "Use style 'lp' or a channel count divisible by scale^2.",
            )
        check_groups("DySample", in_channels, groups)
        self.scale = scale
        self.style = style
        self.groups = groups
        conv_in = in_channels // (scale * scale) if style == "pl" else in_channels
        conv_out = 2 * groups if style == "pl" else 2 * groups * scale * scale
        self.offset = nn.Conv2d(conv_in, conv_out, 1)
        if dyscope:
            self.scope = nn.Conv2d(conv_in, conv_out, 1, bias=False)
        self.register_buffer("init_pos", self._init_pos())

    @property
    def dyscope(self) -> bool:
        return hasattr(self, "scope")

    def _init_pos(self) -> torch.Tensor:
        s = self.scale
        h = (torch.arange(s, dtype=torch.float32) - (s - 1) / 2) / s
        # channel comp*G*s*s + g*s*s + dy*s + dx; comp 0 (x) varies with dx, comp 1 (y) with dy.
        pos = torch.stack(torch.meshgrid(h, h, indexing="ij")).transpose(1, 2)
        return pos.repeat(1, self.groups, 1).reshape(1, -1, 1, 1)

    def predict_offsets(self, x: torch.Tensor) -> torch.Tensor:
        """Offsets in input-pixel units, init_pos included: [N, 2*G*s*s, H, W]."""
        if self.style == "pl":
            shuffled = F.pixel_shuffle(x, self.scale)
            raw = self.offset(shuffled)
            if self.dyscope:
                raw = raw * self.scope(shuffled).sigmoid()
            raw = F.pixel_unshuffle(raw, self.scale)
        else:
            raw = self.offset(x)
            if self.dyscope:
                raw = raw * self.scope(x).sigmoid()
        return raw * (0.5 if self.dyscope else 0.25) + self.init_pos

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dysample_sample(x, self.predict_offsets(x), self.scale, self.groups)
