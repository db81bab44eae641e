"""DDF (Decoupled Dynamic Filter, theFoxofSky/ddfnet): op, FilterNorm, DDFPack, DDFUpPack.

Spec: docs/ops.md#ddf. Parameter names follow the ddfnet repository at HEAD so its state_dicts
load unchanged. Fixed defects (documented): DDFUpPack passes its arguments to the op in the
right order, pads its depthwise conv by dw_kernel_size // 2, and fp16 in gives fp16 out.
"""

from __future__ import annotations

import torch
from torch import nn

from dlu_deploy.reference._checks import (
    check_kernel_size,
    check_shape,
    check_tensor,
    compute_dtype,
    require,
)
from dlu_deploy.reference.carafe import windows

COMBINE_MODES = {"mul": 0, "add": 1}


def check_ddf_args(
    x: torch.Tensor,
    channel_filter: torch.Tensor,
    spatial_filter: torch.Tensor,
    kernel_size: int,
    dilation: int,
    stride: int,
    combine: str,
) -> None:
    op = "DDF"
    check_tensor(op, "features", x)
    check_tensor(op, "channel_filter", channel_filter, x.dtype)
    check_tensor(op, "spatial_filter", spatial_filter, x.dtype)
    check_kernel_size(op, kernel_size)
    require(
        isinstance(dilation, int) and dilation >= 1,
        f"{op}: dilation={dilation!r} is not allowed.",
        "Use an integer dilation >= 1.",
    )
    require(
        isinstance(stride, int) and stride >= 1,
        f"{op}: stride={stride!r} is not allowed.",
        "Use an integer stride >= 1.",
    )
    require(
        combine in COMBINE_MODES,
        f"{op}: combine={combine!r} is not known.",
        "Use 'mul' or 'add'.",
    )
    n, c, h, w = x.shape
    require(
        h >= stride and w >= stride,
        f"{op}: a {h}x{w} input gives an empty output at stride {stride}.",
        "Use inputs at least stride pixels high and wide.",
    )
    k = kernel_size
    check_shape(op, "channel_filter", channel_filter, (n, c, k, k), "N, C, k, k")
    check_shape(
        op,
        "spatial_filter",
        spatial_filter,
        (n, k * k, h // stride, w // stride),
        "N, k*k, H//stride, W//stride",
    )


def ddf(
    x: torch.Tensor,
    channel_filter: torch.Tensor,
    spatial_filter: torch.Tensor,
    kernel_size: int,
    dilation: int = 1,
    stride: int = 1,
    combine: str = "mul",
) -> torch.Tensor:
    """out[n,c,p,q] = sum_{i,j} x[n, c, p*s + (i-r)*d, q*s + (j-r)*d] * K[n,c,i,j,p,q].

    K = channel_filter[n,c,i,j] * spatial_filter[n, i*k+j, p, q] ('mul') or their sum ('add');
    zero padding; output [N, C, H//stride, W//stride] in x's dtype (computed in fp32, or in
    fp64 for fp64 inputs).
    """
    check_ddf_args(x, channel_filter, spatial_filter, kernel_size, dilation, stride, combine)
    out_dtype = x.dtype
    n, c = x.shape[0], x.shape[1]
    t = kernel_size * kernel_size
    work = compute_dtype(x)
    win = windows(x.to(work), kernel_size, dilation, stride)  # [N, C, T, Ho, Wo]
    cf = channel_filter.to(work).reshape(n, c, t, 1, 1)
    sf = spatial_filter.to(work).unsqueeze(1)  # [N, 1, T, Ho, Wo]
    kernel = cf * sf if combine == "mul" else cf + sf
    return (win * kernel).sum(dim=2).to(out_dtype)


class FilterNorm(nn.Module):
    """Standardises filters over their k*k taps, then rescales ('spatial' or 'channel' type).

    'spatial': input [N, heads*k*k, H, W], scale calculate_gain(nonlinearity)/k (a constant).
    'channel': input [N, C*k*k, 1, 1] -> output [N, C*k*k], scaled by the learnt `std`.
    std over taps is the unbiased one; 1e-10 is added to it, as in ddfnet.
    """

    def __init__(
        self,
        in_channels: int,
        kernel_size: int,
        filter_type: str,
        nonlinearity: str = "linear",
        running_std: bool = False,
        running_mean: bool = False,
    ) -> None:
        super().__init__()
        require(
            filter_type in ("spatial", "channel"),
            f"FilterNorm: filter_type={filter_type!r} is not known.",
            "Use 'spatial' or 'channel'.",
        )
        self.in_channels = in_channels
        self.filter_type = filter_type
        self.running_std = running_std
        self.running_mean = running_mean
        gain = nn.init.calculate_gain(nonlinearity) / kernel_size  # type: ignore[arg-type]
        self.gain = gain
        if running_std:
            self.std = nn.Parameter(torch.randn(in_channels * kernel_size**2) * gain)
        if running_mean:
            self.mean = nn.Parameter(torch.randn(in_channels * kernel_size**2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if self.filter_type == "spatial":
            h, w = x.shape[-2], x.shape[-1]
            grouped = x.reshape(n, self.in_channels, -1, h, w)
            grouped = grouped - grouped.mean(dim=2, keepdim=True)
            grouped = grouped / (grouped.std(dim=2, keepdim=True) + 1e-10)
            out = grouped.reshape(x.shape)
            scale_view: tuple[int, ...] = (1, -1, 1, 1)
        else:
            grouped = x.reshape(n, self.in_channels, -1)
            grouped = grouped - grouped.mean(dim=2, keepdim=True)
            grouped = grouped / (grouped.std(dim=2, keepdim=True) + 1e-10)
            out = grouped.reshape(n, -1)
            scale_view = (1, -1)
        out = out * self.std.view(scale_view) if self.running_std else out * self.gain
        if self.running_mean:
            out = out + self.mean.view(scale_view)
        return out


def _spatial_branch(
    in_channels: int, kernel_size: int, head: int, nonlinearity: str, stride: int
) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, head * kernel_size**2, 1, stride=stride),
        FilterNorm(head, kernel_size, "spatial", nonlinearity),
    )


def _channel_branch(
    in_channels: int, kernel_size: int, nonlinearity: str, se_ratio: float
) -> nn.Sequential:
    mid = int(in_channels * se_ratio)
    require(
        mid >= 1,
        f"DDF: the channel branch of {in_channels} channels with se_ratio={se_ratio} "
        "has no hidden units.",
        "Use more channels or a larger se_ratio (in_channels * se_ratio must be >= 1).",
    )
    return nn.Sequential(
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Conv2d(in_channels, mid, 1),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid, in_channels * kernel_size**2, 1),
        FilterNorm(in_channels, kernel_size, "channel", nonlinearity, running_std=True),
    )


def _check_heads(op: str, channels: int, head: int) -> None:
    require(
        isinstance(head, int) and head >= 1 and channels % head == 0,
        f"{op}: {channels} channels cannot be split into head={head!r} equal heads.",
        "Use a head count >= 1 that divides the channel count.",
    )


class DDFPack(nn.Module):
    """ddfnet's DDFPack: a strided 1x1 spatial branch and an SE channel branch, each normalised."""

    def __init__(
        self,
        in_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        head: int = 1,
        se_ratio: float = 0.2,
        nonlinearity: str = "relu",
        kernel_combine: str = "mul",
    ) -> None:
        super().__init__()
        check_kernel_size("DDFPack", kernel_size)
        _check_heads("DDFPack", in_channels, head)
        self.kernel_size = kernel_size
        self.stride = stride
        self.dilation = dilation
        self.head = head
        self.kernel_combine = kernel_combine
        self.spatial_branch = _spatial_branch(in_channels, kernel_size, head, nonlinearity, stride)
        self.channel_branch = _channel_branch(in_channels, kernel_size, nonlinearity, se_ratio)

    def filters(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(channel filter [N*head, C/head, k, k], spatial filter [N*head, k*k, H/s, W/s])."""
        n, c, h, w = x.shape
        s = self.stride
        require(
            h % s == 0 and w % s == 0,
            f"DDFPack: a {h}x{w} input is not divisible by stride {s}; the strided spatial branch "
            f"and the op's floor(H/stride) output would disagree.",
            "Pad the input to a multiple of the stride.",
        )
        g, k = self.head, self.kernel_size
        channel_filter = self.channel_branch(x).reshape(n * g, c // g, k, k)
        spatial = self.spatial_branch(x)
        return channel_filter, spatial.reshape(n * g, k * k, spatial.shape[-2], spatial.shape[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        s = self.stride
        channel_filter, spatial_filter = self.filters(x)  # checks that s divides H and W
        g = self.head
        out = ddf(
            x.reshape(n * g, c // g, h, w),
            channel_filter,
            spatial_filter,
            self.kernel_size,
            self.dilation,
            s,
            self.kernel_combine,
        )
        return out.reshape(n, c, h // s, w // s)


class DDFUpPack(nn.Module):
    """ddfnet's DDFUpPack: scale^2 DDF branches on the low-res map, then pixel_shuffle.

    Branch b produces sub-pixel (b // scale, b % scale). With joint_channels < 1 (the default)
    each spatial branch starts with a depthwise conv of dw_kernel_size.
    """

    def __init__(
        self,
        in_channels: int,
        kernel_size: int = 3,
        scale_factor: int = 2,
        dilation: int = 1,
        head: int = 1,
        se_ratio: float = 0.2,
        nonlinearity: str = "linear",
        dw_kernel_size: int = 3,
        joint_channels: int = -1,
        kernel_combine: str = "mul",
    ) -> None:
        super().__init__()
        check_kernel_size("DDFUpPack", kernel_size)
        _check_heads("DDFUpPack", in_channels, head)
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.head = head
        self.scale_factor = scale_factor
        self.kernel_combine = kernel_combine
        self.spatial_branch = nn.ModuleList()
        self.channel_branch = nn.ModuleList()
        for _ in range(scale_factor**2):
            branch = _spatial_branch(in_channels, kernel_size, head, nonlinearity, 1)
            if joint_channels < 1:
                dw = max(dw_kernel_size, 3)
                require(
                    dw % 2 == 1,
                    f"DDFUpPack: dw_kernel_size={dw} must be odd to keep the map size.",
                    "Use an odd depthwise kernel size.",
                )
                dw_conv = nn.Conv2d(
                    in_channels, in_channels, dw, padding=dw // 2, groups=in_channels
                )
                branch = nn.Sequential(dw_conv, branch)
            self.spatial_branch.append(branch)
            self.channel_branch.append(
                _channel_branch(in_channels, kernel_size, nonlinearity, se_ratio)
            )

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
            o = ddf(
                folded, channel_filter, spatial_filter, k, self.dilation, 1, self.kernel_combine
            )
            outs.append(o.reshape(n, c, h, w))
        stacked = torch.stack(outs, dim=2).reshape(n, c * self.scale_factor**2, h, w)
        return nn.functional.pixel_shuffle(stacked, self.scale_factor)
