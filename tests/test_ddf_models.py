"""The DDF bottleneck block and DDFUpPack against a float64 transcription of docs/ops.md#ddf.

The oracle reads only the state_dict: 1x1 convs, batch norms and FilterNorm are written out in
NumPy from the spec, and the DDF op itself is tests/formulas.ddf.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dlu_deploy.errors import UserError
from dlu_deploy.models.ddf_resnet import DDFBottleneck, DDFBottleneckConfig
from dlu_deploy.models.seeded import build_seeded
from dlu_deploy.reference import DDFUpPack
from tests import formulas

FP32_ATOL = 1e-5
Arrays = dict[str, np.ndarray]


def _np(sd: dict[str, torch.Tensor]) -> Arrays:
    return {k: v.double().numpy() for k, v in sd.items() if v.is_floating_point()}


def conv1x1(sd: Arrays, name: str, x: np.ndarray, stride: int = 1) -> np.ndarray:
    w = sd[name + ".weight"][:, :, 0, 0]
    y = np.einsum("oc,nchw->nohw", w, x[:, :, ::stride, ::stride])
    bias = sd.get(name + ".bias")
    return y if bias is None else y + bias[None, :, None, None]


def batch_norm(sd: Arrays, name: str, x: np.ndarray) -> np.ndarray:
    scale = sd[name + ".weight"] / np.sqrt(sd[name + ".running_var"] + 1e-5)
    shift = sd[name + ".bias"] - sd[name + ".running_mean"] * scale
    return x * scale[None, :, None, None] + shift[None, :, None, None]


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def filter_norm(f: np.ndarray, taps: int, scale: np.ndarray | float) -> np.ndarray:
    """Over each group of `taps` values on axis 1: (f - mean) / (unbiased std + 1e-10) * scale."""
    n, ch = f.shape[:2]
    grouped = f.reshape(n, ch // taps, taps, *f.shape[2:])
    centred = grouped - grouped.mean(axis=2, keepdims=True)
    normed = centred / (grouped.std(axis=2, ddof=1, keepdims=True) + 1e-10)
    return normed.reshape(f.shape) * scale


def channel_filter(sd: Arrays, prefix: str, x: np.ndarray, k: int) -> np.ndarray:
    """GAP -> 1x1 -> ReLU -> 1x1 -> FilterNorm('channel', learnt std): (N, C, k, k)."""
    pooled = x.mean(axis=(2, 3), keepdims=True)
    f = conv1x1(sd, prefix + "3", relu(conv1x1(sd, prefix + "1", pooled)))[:, :, 0, 0]
    f = filter_norm(f, k * k, sd[prefix + "4.std"][None, :])
    return f.reshape(x.shape[0], x.shape[1], k, k)


def ddfpack(
    sd: Arrays, p: str, x: np.ndarray, k: int, stride: int, combine: str, gain: float
) -> np.ndarray:
    """DDFPack, one head: spatial = FilterNorm(strided 1x1(x)) with constant gain/k."""
    spatial = filter_norm(conv1x1(sd, p + "spatial_branch.0", x, stride), k * k, gain / k)
    cf = channel_filter(sd, p + "channel_branch.", x, k)
    return formulas.ddf(x, cf, spatial, k, 1, stride, combine)


def bottleneck(sd: Arrays, x: np.ndarray, stride: int, combine: str) -> np.ndarray:
    y = relu(batch_norm(sd, "bn1", conv1x1(sd, "conv1", x)))
    y = relu(batch_norm(sd, "bn2", ddfpack(sd, "conv2.", y, 3, stride, combine, math.sqrt(2.0))))
    y = batch_norm(sd, "bn3", conv1x1(sd, "conv3", y))
    shortcut = (
        batch_norm(sd, "downsample.1", conv1x1(sd, "downsample.0", x, stride))
        if "downsample.0.weight" in sd
        else x
    )
    return relu(y + shortcut)


@pytest.mark.parametrize(
    ("inplanes", "planes", "stride", "combine"),
    [(32, 8, 1, "mul"), (32, 8, 2, "add"), (40, 10, 1, "add"), (40, 10, 2, "mul")],
)
def test_bottleneck_matches_the_spec(inplanes: int, planes: int, stride: int, combine: str) -> None:
    config = DDFBottleneckConfig(inplanes, planes, stride, combine)
    block = build_seeded(lambda: DDFBottleneck(config), inplanes + stride)
    x = torch.randn(2, inplanes, 8, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = block(x)
    want = bottleneck(_np(block.state_dict()), x.double().numpy(), stride, combine)
    assert got.shape == (2, planes * 4, 8 // stride, 6 // stride)
    assert np.abs(got.double().numpy() - want).max() <= FP32_ATOL


def test_bottleneck_keys_are_ddfnets() -> None:
    sd = DDFBottleneck(DDFBottleneckConfig(256, 128, 2, "mul")).state_dict()
    assert tuple(sd["conv1.weight"].shape) == (128, 256, 1, 1)
    assert tuple(sd["conv2.spatial_branch.0.weight"].shape) == (9, 128, 1, 1)
    assert tuple(sd["conv2.channel_branch.1.weight"].shape) == (25, 128, 1, 1)  # int(128 * 0.2)
    assert tuple(sd["conv2.channel_branch.3.weight"].shape) == (128 * 9, 25, 1, 1)
    assert tuple(sd["conv2.channel_branch.4.std"].shape) == (128 * 9,)
    assert tuple(sd["downsample.0.weight"].shape) == (512, 256, 1, 1)
    assert "downsample.1.running_var" in sd and "bn3.num_batches_tracked" in sd


def test_bottleneck_rejects_an_unknown_combination() -> None:
    with pytest.raises(UserError, match="kernel_combine='sum'"):
        DDFBottleneck(DDFBottleneckConfig(kernel_combine="sum"))


def up_pack(sd: Arrays, x: np.ndarray, k: int, scale: int, combine: str) -> np.ndarray:
    """DDFUpPack (joint_channels < 1, one head, 'linear'): branch b fills sub-pixel (b//s, b%s)."""
    n, c, h, w = x.shape
    out = np.zeros((n, c, h * scale, w * scale))
    for b in range(scale * scale):
        dw = sd[f"spatial_branch.{b}.0.weight"]
        r = dw.shape[-1] // 2
        padded = np.pad(x, ((0, 0), (0, 0), (r, r), (r, r)))
        guided = np.zeros_like(x) + sd[f"spatial_branch.{b}.0.bias"][None, :, None, None]
        for ky in range(dw.shape[-2]):
            for kx in range(dw.shape[-1]):
                guided += (
                    padded[:, :, ky : ky + h, kx : kx + w] * dw[None, :, 0, ky, kx, None, None]
                )
        spatial = filter_norm(conv1x1(sd, f"spatial_branch.{b}.1.0", guided), k * k, 1.0 / k)
        cf = channel_filter(sd, f"channel_branch.{b}.", x, k)
        out[:, :, b // scale :: scale, b % scale :: scale] = formulas.ddf(
            x, cf, spatial, k, 1, 1, combine
        )
    return out


@pytest.mark.parametrize(("scale", "combine"), [(2, "mul"), (2, "add"), (3, "mul")])
def test_ddfuppack_matches_the_spec(scale: int, combine: str) -> None:
    up = build_seeded(lambda: DDFUpPack(8, 3, scale, kernel_combine=combine), scale)
    x = torch.randn(1, 8, 5, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = up(x)
    want = up_pack(_np(up.state_dict()), x.double().numpy(), 3, scale, combine)
    assert got.shape == (1, 8, 5 * scale, 4 * scale)
    assert np.abs(got.double().numpy() - want).max() <= FP32_ATOL
