"""Independent transcriptions of the official forward passes, for tests only.

Written from the official code (DLU repository custom/ops/dlu.py, mmcv CARAFEPack, the
DySample seed /work/shared/seeds/001_*.txt) with mmcv's CUDA CARAFE replaced by an
unfold-based CARAFE written here. Nothing in this file is shared with dlu_deploy.reference.

The module classes carry the official class and attribute names, so that pickled models
built from them exercise the exporter's recognition of official upsamplers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def carafe_unfold(
    x: torch.Tensor, masks: torch.Tensor, k: int, group: int, scale: int
) -> torch.Tensor:
    """mmcv CARAFE: every output pixel reassembles the k*k window at its low-res parent."""
    n, c, h, w = x.shape
    cols = F.unfold(x, k, padding=(k - 1) // 2).view(n, group, c // group, k * k, h, w)
    cols = cols.repeat_interleave(scale, dim=4).repeat_interleave(scale, dim=5)
    weights = masks.view(n, group, 1, k * k, h * scale, w * scale)
    return (cols * weights).sum(dim=3).view(n, c, h * scale, w * scale)


def softmax_taps(mask: torch.Tensor, k: int) -> torch.Tensor:
    n, mask_c, h, w = mask.shape
    return F.softmax(mask.view(n, mask_c // (k * k), -1, h, w), dim=2).view(n, mask_c, h, w)


def official_dlu_expander(offset: torch.Tensor, mask: torch.Tensor, scale: int) -> torch.Tensor:
    """The official kernel_space_expander (one group): grid_sample, border, align_corners=True."""
    n, _, h, w = offset.shape
    offset = F.pixel_shuffle(offset, scale).permute(0, 2, 3, 1).clone()
    offset[:, :, :, 0] = offset[:, :, :, 0] * 1 / (w - 1) * 2
    offset[:, :, :, 1] = offset[:, :, :, 1] * 1 / (h - 1) * 2
    new_h = (
        torch.repeat_interleave(torch.linspace(-1, 1, h), scale).view(-1, 1).repeat(1, scale * w)
    )
    new_w = torch.repeat_interleave(torch.linspace(-1, 1, w), scale).repeat(scale * h, 1)
    grid = (
        torch.cat((new_w.unsqueeze(2), new_h.unsqueeze(2)), dim=2)
        .unsqueeze(0)
        .expand(n, -1, -1, -1)
    )
    return F.grid_sample(mask, grid + offset, padding_mode="border", align_corners=True)


class DLUPack(nn.Module):
    """The official DLUPack's structure and forward (CARAFE by unfold instead of mmcv)."""

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
        self.channels = channels
        self.scale_factor = scale_factor
        self.up_kernel = up_kernel
        self.up_group = up_group
        self.encoder_kernel = encoder_kernel
        self.encoder_dilation = encoder_dilation
        self.compressed_channels = compressed_channels
        padding = int((encoder_kernel - 1) * encoder_dilation / 2)
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        compressed = self.channel_compressor(x)
        offset = self.conv_offset(compressed)
        mask = softmax_taps(self.kernel_space_generator(compressed), self.up_kernel)
        mask = official_dlu_expander(offset, mask, self.scale_factor)
        return carafe_unfold(x, mask, self.up_kernel, self.up_group, self.scale_factor)


class light_CARAFEPack(DLUPack):
    """The older name of the same module (custom/ops/dlu_original.py)."""


class CARAFEPack(nn.Module):
    """mmcv's CARAFEPack structure and forward (CARAFE by unfold)."""

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
            padding=int((encoder_kernel - 1) * encoder_dilation / 2),
            dilation=encoder_dilation,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = self.content_encoder(self.channel_compressor(x))
        mask = softmax_taps(F.pixel_shuffle(mask, self.scale_factor), self.up_kernel)
        return carafe_unfold(x, mask, self.up_kernel, self.up_group, self.scale_factor)


class DySample(nn.Module):
    """tiny-smart/dysample's DySample, transcribed from the seed (init omitted: tests set "
    "weights)."""

    def __init__(
        self,
        in_channels: int,
        scale: int = 2,
        style: str = "lp",
        groups: int = 4,
        dyscope: bool = False,
    ):
        super().__init__()
        self.scale = scale
        self.style = style
        self.groups = groups
        if style == "pl":
            in_channels = in_channels // scale**2
            out_channels = 2 * groups
        else:
            out_channels = 2 * groups * scale**2
        self.offset = nn.Conv2d(in_channels, out_channels, 1)
        if dyscope:
            self.scope = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.register_buffer("init_pos", self._init_pos())

    def _init_pos(self) -> torch.Tensor:
        h = torch.arange((-self.scale + 1) / 2, (self.scale - 1) / 2 + 1) / self.scale
        return (
            torch.stack(torch.meshgrid([h, h], indexing="ij"))
            .transpose(1, 2)
            .repeat(1, self.groups, 1)
            .reshape(1, -1, 1, 1)
        )

    def sample(self, x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        b, _, h, w = offset.shape
        offset = offset.view(b, 2, -1, h, w)
        coords_h = torch.arange(h) + 0.5
        coords_w = torch.arange(w) + 0.5
        coords = torch.stack(torch.meshgrid([coords_w, coords_h], indexing="ij")).transpose(1, 2)
        coords = coords.unsqueeze(1).unsqueeze(0).type(x.dtype).to(x.device)
        normalizer = torch.tensor([w, h], dtype=x.dtype, device=x.device).view(1, 2, 1, 1, 1)
        coords = 2 * (coords + offset) / normalizer - 1
        coords = (
            F.pixel_shuffle(coords.view(b, -1, h, w), self.scale)
            .view(b, 2, -1, self.scale * h, self.scale * w)
            .permute(0, 2, 3, 4, 1)
            .contiguous()
            .flatten(0, 1)
        )
        return F.grid_sample(
            x.reshape(b * self.groups, -1, h, w),
            coords,
            mode="bilinear",
            align_corners=False,
            padding_mode="border",
        ).view(b, -1, self.scale * h, self.scale * w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.style == "pl":
            x_ = F.pixel_shuffle(x, self.scale)
            if hasattr(self, "scope"):
                offset = (
                    F.pixel_unshuffle(self.offset(x_) * self.scope(x_).sigmoid(), self.scale) * 0.5
                    + self.init_pos
                )
            else:
                offset = F.pixel_unshuffle(self.offset(x_), self.scale) * 0.25 + self.init_pos
        elif hasattr(self, "scope"):
            offset = self.offset(x) * self.scope(x).sigmoid() * 0.5 + self.init_pos
        else:
            offset = self.offset(x) * 0.25 + self.init_pos
        return self.sample(x, offset)
