"""CARAFE: the reassembly op and mmcv's CARAFEPack, in plain PyTorch (spec: docs/ops.md#carafe).

The functional op is written with ops that export to standard ONNX (Pad, Slice, Concat,
Transpose, MatMul, Reshape), so it doubles as the portable-mode decomposition.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlu_deploy.reference._checks import (
    check_groups,
    check_kernel_size,
    check_scale,
    check_shape,
    check_tensor,
    compute_dtype,
)


def windows(x: torch.Tensor, kernel_size: int, dilation: int = 1, stride: int = 1) -> torch.Tensor:
    """All k*k zero-padded neighbours of every (strided) pixel: [N, C, k*k, Ho, Wo].

    windows(x)[n, c, ky*k + kx, p, q]
        = x[n, c, p*stride + (ky-r)*dilation, q*stride + (kx-r)*dilation],
    zero outside the map, with Ho = H // stride (floor). Shared by CARAFE, DLU and DDF.
    """
    k = kernel_size
    r = (k - 1) // 2 * dilation
    h, w = x.shape[-2], x.shape[-1]
    ho, wo = h // stride, w // stride
    padded = F.pad(x, (r, r, r, r))
    taps = []
    for ky in range(k):
        for kx in range(k):
            y0, x0 = ky * dilation, kx * dilation
            taps.append(
                padded[
                    :,
                    :,
                    y0 : y0 + (ho - 1) * stride + 1 : stride,
                    x0 : x0 + (wo - 1) * stride + 1 : stride,
                ]
            )
    return torch.stack(taps, dim=2)


def check_carafe_args(
    x: torch.Tensor, masks: torch.Tensor, kernel_size: int, group: int, scale: int
) -> None:
    op = "CARAFE"
    check_tensor(op, "features", x)
    check_tensor(op, "masks", masks, x.dtype)
    check_kernel_size(op, kernel_size)
    check_scale(op, scale)
    n, c, h, w = x.shape
    check_groups(op, c, group)
    check_shape(
        op,
        "masks",
        masks,
        (n, group * kernel_size * kernel_size, h * scale, w * scale),
        "N, group*kernel_size^2, scale*H, scale*W",
    )


def carafe(
    x: torch.Tensor, masks: torch.Tensor, kernel_size: int, group: int, scale: int
) -> torch.Tensor:
    """out[n,c,oy,ox] = sum_t x[n, c, oy//s + ky - r, ox//s + kx - r] * masks[n, g*k*k + t, oy, ox].

    x: [N, C, H, W]; masks: [N, G*k*k, s*H, s*W]; returns [N, C, s*H, s*W] in x's dtype.
    fp16 inputs are computed in fp32 and rounded once, as the kernels do.
    """
    check_carafe_args(x, masks, kernel_size, group, scale)
    out_dtype = x.dtype
    work = compute_dtype(x)
    x, masks = x.to(work), masks.to(work)
    n, c, h, w = x.shape
    k, g, s = kernel_size, group, scale
    t = k * k
    # [N, G, C/G, T, H, W] -> [N, G, H, W, C/G, T]
    win = windows(x, k).reshape(n, g, c // g, t, h, w).permute(0, 1, 4, 5, 2, 3)
    # masks [N, G*T, s*H, s*W] -> [N, G, T, H, s, W, s] -> [N, G, H, W, T, s*s]
    m = (
        masks.reshape(n, g, t, h, s, w, s)
        .permute(0, 1, 3, 5, 2, 4, 6)
        .reshape(n, g, h, w, t, s * s)
    )
    out = torch.matmul(win, m)  # [N, G, H, W, C/G, s*s]
    out = out.reshape(n, g, h, w, c // g, s, s).permute(0, 1, 4, 2, 5, 3, 6)
    return out.reshape(n, c, h * s, w * s).to(out_dtype)


def normalize_group_kernels(logits: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Softmax over the k*k taps of each group: [N, G*k*k, H, W] -> same shape."""
    n, gc, h, w = logits.shape
    t = kernel_size * kernel_size
    grouped = logits.reshape(n, gc // t, t, h, w)
    return F.softmax(grouped, dim=2, dtype=logits.dtype).reshape(n, gc, h, w)


class CARAFEPack(nn.Module):
    """mmcv's CARAFEPack: compressor -> content encoder -> pixel_shuffle -> softmax -> CARAFE.

    Parameter names and constructor arguments are mmcv's, so its state_dicts load unchanged.
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
        check_kernel_size("CARAFEPack", up_kernel)
        check_scale("CARAFEPack", scale_factor)
        check_groups("CARAFEPack", channels, up_group)
        self.channels = channels
        self.scale_factor = scale_factor
        self.up_kernel = up_kernel
        self.up_group = up_group
        self.encoder_kernel = encoder_kernel
        self.encoder_dilation = encoder_dilation
        self.compressed_channels = compressed_channels
        self.channel_compressor = nn.Conv2d(channels, compressed_channels, 1)
        self.content_encoder = nn.Conv2d(
            compressed_channels,
            up_kernel * up_kernel * up_group * scale_factor * scale_factor,
            encoder_kernel,
            padding=(encoder_kernel - 1) * encoder_dilation // 2,
            dilation=encoder_dilation,
        )

    def predict_masks(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised full-resolution reassembly kernels [N, G*k*k, s*H, s*W]."""
        logits = self.content_encoder(self.channel_compressor(x))
        return normalize_group_kernels(F.pixel_shuffle(logits, self.scale_factor), self.up_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        masks = self.predict_masks(x)
        return carafe(x, masks, self.up_kernel, self.up_group, self.scale_factor)
