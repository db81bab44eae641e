"""DLU (Dynamic Lightweight Upsampling, "Lighten CARAFE"): op and module (spec: docs/ops.md#dlu).

The op samples a low-resolution, normalised kernel space bilinearly at offset positions, one
kernel per output pixel, and reassembles the features with them as CARAFE does. This reference
expands the kernels to full resolution (a gather) and calls the CARAFE reference; the fused
kernels and the plugin never materialise that tensor.

Deviations from the official DLUPack (Fu0511/Dynamic-Lightweight-Upsampling, custom/ops/dlu.py),
all documented in docs/ops.md: groups > 1 work (the official base grid only broadcasts for one
group), H or W = 1 gives finite results (the official divides by W-1 and H-1), and the sampling
grid follows the input's device and runtime shape (the official builds it on the host with
trace-time sizes).
"""

from __future__ import annotations

import torch
from torch import nn

from dlu_deploy.reference._checks import (
    check_groups,
    check_kernel_size,
    check_scale,
    check_shape,
    check_tensor,
    compute_dtype,
)
from dlu_deploy.reference.carafe import carafe, normalize_group_kernels


def check_dlu_args(
    x: torch.Tensor,
    kernels: torch.Tensor,
    offsets: torch.Tensor,
    kernel_size: int,
    group: int,
    scale: int,
) -> None:
    op = "DLU"
    check_tensor(op, "features", x)
    check_tensor(op, "kernels", kernels, x.dtype)
    check_tensor(op, "offsets", offsets, x.dtype)
    check_kernel_size(op, kernel_size)
    check_scale(op, scale)
    n, c, h, w = x.shape
    check_groups(op, c, group)
    check_shape(
        op,
        "kernels",
        kernels,
        (n, group * kernel_size * kernel_size, h, w),
        "N, group*kernel_size^2, H, W",
    )
    check_shape(
        op, "offsets", offsets, (n, group * 2 * scale * scale, h, w), "N, group*2*scale^2, H, W"
    )


def expand_kernels(
    kernels: torch.Tensor, offsets: torch.Tensor, kernel_size: int, group: int, scale: int
) -> torch.Tensor:
    """Full-resolution kernels [N, G*k*k, s*H, s*W] sampled from the low-res kernel space.

    Output pixel (oy, ox) of group g reads the kernel space bilinearly at low-res position
    (oy//s + v, ox//s + u), clamped to [0, H-1] x [0, W-1], where u (x) and v (y) are offset
    channels (2g + 0)*s*s + (oy%s)*s + ox%s and (2g + 1)*s*s + ... at the parent pixel.
    Computed in fp32 (fp64 for fp64 inputs).
    """
    work = compute_dtype(kernels)
    kernels, offsets = kernels.to(work), offsets.to(work)
    n, _, h, w = kernels.shape
    k2, g, s = kernel_size * kernel_size, group, scale
    # [N, G*2*s*s, H, W] -> [N, G, 2, s, s, H, W] -> [N, G, 2, H, s, W, s] -> [N, G, 2, sH*sW]
    o = (
        offsets.reshape(n, g, 2, s, s, h, w)
        .permute(0, 1, 2, 5, 3, 6, 4)
        .reshape(n, g, 2, h * s * w * s)
    )
    # NaN offsets count as 0 (spec); +-inf clamp to the border below.
    o = torch.nan_to_num(o, nan=0.0)
    # Parent low-res coordinate of every output pixel; its last entry is W-1 (H-1), which is
    # used as the clamp limit so the bound stays a tensor of the runtime shape during export.
    parent_x = torch.div(torch.arange(w * s, device=o.device), s, rounding_mode="floor").to(o.dtype)
    parent_y = torch.div(torch.arange(h * s, device=o.device), s, rounding_mode="floor").to(o.dtype)
    last_x, last_y = parent_x[-1], parent_y[-1]
    base_x = parent_x.reshape(1, w * s).expand(h * s, w * s).reshape(-1)
    base_y = parent_y.reshape(h * s, 1).expand(h * s, w * s).reshape(-1)
    px = torch.minimum(torch.clamp(base_x + o[:, :, 0], min=0.0), last_x)
    py = torch.minimum(torch.clamp(base_y + o[:, :, 1], min=0.0), last_y)
    x0f, y0f = torch.floor(px), torch.floor(py)
    ax, ay = px - x0f, py - y0f
    x1f, y1f = torch.minimum(x0f + 1, last_x), torch.minimum(y0f + 1, last_y)
    x0, y0, x1, y1 = x0f.long(), y0f.long(), x1f.long(), y1f.long()
    space = kernels.reshape(n, g, k2, h * w)

    def tap(yi: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        index = (yi * w + xi).unsqueeze(2).expand(n, g, k2, yi.shape[-1])
        return torch.gather(space, 3, index)

    ax, ay = ax.unsqueeze(2), ay.unsqueeze(2)
    top = tap(y0, x0) * (1 - ax) + tap(y0, x1) * ax
    bottom = tap(y1, x0) * (1 - ax) + tap(y1, x1) * ax
    full = top * (1 - ay) + bottom * ay
    return full.reshape(n, g * k2, h * s, w * s)


def dlu(
    x: torch.Tensor,
    kernels: torch.Tensor,
    offsets: torch.Tensor,
    kernel_size: int,
    group: int,
    scale: int,
) -> torch.Tensor:
    """DLU reassembly. x: [N,C,H,W], kernels: [N,G*k*k,H,W], offsets: [N,2*G*s*s,H,W].

    Returns [N, C, s*H, s*W] in x's dtype (fp16 is computed in fp32 and rounded once).
    """
    check_dlu_args(x, kernels, offsets, kernel_size, group, scale)
    full = expand_kernels(kernels, offsets, kernel_size, group, scale)
    return carafe(x.to(full.dtype), full, kernel_size, group, scale).to(x.dtype)


class DLUPack(nn.Module):
    """The official DLUPack / light_CARAFEPack, with its parameter names and arguments.

    compressor (1x1) -> kernel space (k*k*G channels, low res, softmax per group)
                     -> offsets (G*2*s*s channels, low res) -> DLU op.
    """

    def __init__(
        self,
        channels: int,
        scale_factor: int,
        up_kernel: int = 5,
        up_group: int = 1,
        encoder_kernel: int = 3,
        encoder_dilation: int = 1,
        compressed_channels: int = 64,
    ) -> None:
        super().__init__()
        check_kernel_size("DLUPack", up_kernel)
        check_scale("DLUPack", scale_factor)
        check_groups("DLUPack", channels, up_group)
        self.channels = channels
        self.scale_factor = scale_factor
        self.up_kernel = up_kernel
        self.up_group = up_group
        self.encoder_kernel = encoder_kernel
        self.encoder_dilation = encoder_dilation
        self.compressed_channels = compressed_channels
        padding = (encoder_kernel - 1) * encoder_dilation // 2
        self.channel_compressor = nn.Conv2d(channels, compressed_channels, 1)
        self.kernel_space_generator = nn.Conv2d(
            compressed_channels,
            up_kernel * up_kernel * up_group,
            encoder_kernel,
            padding=padding,
            dilation=encoder_dilation,
        )
        self.conv_offset = nn.Conv2d(
            compressed_channels,
            up_group * 2 * scale_factor * scale_factor,
            encoder_kernel,
            padding=padding,
            dilation=encoder_dilation,
        )

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(normalised low-res kernel space [N,G*k*k,H,W], offsets [N,G*2*s*s,H,W])."""
        compressed = self.channel_compressor(x)
        kernels = normalize_group_kernels(self.kernel_space_generator(compressed), self.up_kernel)
        return kernels, self.conv_offset(compressed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernels, offsets = self.predict(x)
        return dlu(x, kernels, offsets, self.up_kernel, self.up_group, self.scale_factor)
