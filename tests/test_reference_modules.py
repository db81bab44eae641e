"""Reference modules against independent transcriptions of the official code and the spec.

DLUPack / CARAFEPack / DySample: tests/official.py (official forward, unfold-based CARAFE).
DDFPack / DDFUpPack: the branches transcribed below in float64 NumPy, then tests/formulas.ddf.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlu_deploy import reference
from tests import formulas, official
from tests.helpers import randomize

FP32_ATOL = 1e-5


def _max_err(a: torch.Tensor, b: torch.Tensor | np.ndarray) -> float:
    other = b.double().numpy() if isinstance(b, torch.Tensor) else b
    return float(np.abs(a.detach().double().numpy() - other).max())


def _twin(ours: torch.nn.Module, theirs: torch.nn.Module, seed: int) -> None:
    randomize(ours, seed)
    theirs.load_state_dict(ours.state_dict())
    theirs.eval()


@pytest.mark.parametrize(
    ("channels", "scale", "k", "encoder_kernel", "dilation", "compressed", "size"),
    [
        (16, 2, 5, 3, 1, 8, (1, 7, 9)),
        (8, 3, 3, 5, 2, 4, (2, 5, 4)),
        (12, 4, 5, 1, 1, 6, (1, 3, 6)),
    ],
)
def test_dlupack_matches_official(
    channels: int,
    scale: int,
    k: int,
    encoder_kernel: int,
    dilation: int,
    compressed: int,
    size: tuple[int, int, int],
) -> None:
    args = (channels, scale, k, 1, encoder_kernel, dilation, compressed)
    ours, theirs = reference.DLUPack(*args), official.DLUPack(*args)
    _twin(ours, theirs, seed=channels + scale)
    # Offsets of a few pixels, reaching past the borders.
    with torch.no_grad():
        ours.conv_offset.bias.normal_(0, 2.0, generator=torch.Generator().manual_seed(1))
        theirs.conv_offset.bias.copy_(ours.conv_offset.bias)
    n, h, w = size
    x = torch.randn(n, channels, h, w, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert _max_err(ours(x), theirs(x)) <= FP32_ATOL


def test_light_carafepack_is_dlupack() -> None:
    ours, theirs = (
        reference.DLUPack(8, 2, compressed_channels=4),
        official.light_CARAFEPack(8, 2, compressed_channels=4),
    )
    _twin(ours, theirs, seed=3)
    x = torch.randn(1, 8, 6, 5, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert _max_err(ours(x), theirs(x)) <= FP32_ATOL


@pytest.mark.parametrize(
    ("channels", "scale", "k", "group", "encoder_kernel", "size"),
    [(16, 2, 5, 1, 3, (1, 6, 7)), (8, 3, 3, 2, 3, (2, 4, 5)), (12, 2, 1, 4, 1, (1, 3, 3))],
)
def test_carafepack_matches_official(
    channels: int, scale: int, k: int, group: int, encoder_kernel: int, size: tuple[int, int, int]
) -> None:
    args = (channels, scale, k, group, encoder_kernel, 1, 8)
    ours, theirs = reference.CARAFEPack(*args), official.CARAFEPack(*args)
    _twin(ours, theirs, seed=channels * scale)
    n, h, w = size
    x = torch.randn(n, channels, h, w, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert _max_err(ours(x), theirs(x)) <= FP32_ATOL


def test_unfold_carafe_matches_formula() -> None:
    """The test's own CARAFE agrees with the spec, so the two comparisons above are anchored."""
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(1, 4, 3, 4, generator=gen)
    masks = torch.randn(1, 2 * 9, 6, 8, generator=gen).softmax(1)
    got = official.carafe_unfold(x, masks, 3, 2, 2)
    assert _max_err(got, formulas.carafe(x.numpy(), masks.numpy(), 3, 2, 2)) <= FP32_ATOL


@pytest.mark.parametrize(
    ("channels", "scale", "style", "groups", "dyscope"),
    [
        (16, 2, "lp", 4, False),
        (16, 2, "lp", 2, True),
        (16, 2, "pl", 4, False),
        (18, 3, "pl", 2, True),
        (8, 4, "lp", 1, False),
    ],
)
def test_dysample_matches_official_at_several_sizes(
    channels: int, scale: int, style: str, groups: int, dyscope: bool
) -> None:
    ours = reference.DySample(channels, scale, style, groups, dyscope)
    theirs = official.DySample(channels, scale, style, groups, dyscope)
    _twin(ours, theirs, seed=channels + groups)
    assert torch.equal(ours.init_pos, theirs.init_pos)
    gen = torch.Generator().manual_seed(7)
    # One module, several sizes: the reference builds its grid from the runtime shape.
    for n, h, w in ((1, 5, 7), (2, 8, 3), (1, 1, 4)):
        x = torch.randn(n, channels, h, w, generator=gen)
        with torch.no_grad():
            assert _max_err(ours(x), theirs(x)) <= FP32_ATOL


# --- DDF: the branches transcribed from ddfnet in float64 NumPy ------------------------------


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def _conv1x1(
    x: np.ndarray, weight: torch.Tensor, bias: torch.Tensor, stride: int = 1
) -> np.ndarray:
    x = x[:, :, ::stride, ::stride]
    return np.einsum("oc,nchw->nohw", _np(weight)[:, :, 0, 0], x) + _np(bias)[None, :, None, None]


def _filter_norm(groups: np.ndarray) -> np.ndarray:
    """Standardise over axis 2 with the unbiased std + 1e-10 (ddfnet's FilterNorm)."""
    centred = groups - groups.mean(axis=2, keepdims=True)
    return centred / (groups.std(axis=2, ddof=1, keepdims=True) + 1e-10)


def _channel_filter(x: np.ndarray, branch: torch.nn.Sequential, k: int) -> np.ndarray:
    n, c = x.shape[:2]
    pooled = x.mean(axis=(2, 3), keepdims=True)
    hidden = np.maximum(_conv1x1(pooled, branch[1].weight, branch[1].bias), 0)
    taps = _conv1x1(hidden, branch[3].weight, branch[3].bias).reshape(n, c, k * k)
    return (_filter_norm(taps).reshape(n, c * k * k) * _np(branch[4].std)).reshape(n, c, k, k)


def _spatial_filter(
    x: np.ndarray, conv: torch.nn.Conv2d, k: int, head: int, gain: float, stride: int = 1
) -> np.ndarray:
    raw = _conv1x1(x, conv.weight, conv.bias, stride)
    n, _, h, w = raw.shape
    return _filter_norm(raw.reshape(n, head, k * k, h, w)) * gain


def _ddf_heads(
    x: np.ndarray, cf: np.ndarray, sf: np.ndarray, k: int, d: int, s: int, head: int, combine: str
) -> np.ndarray:
    """Channel c uses spatial head c // (C/head)."""
    c = x.shape[1]
    per = c // head
    outs = [
        formulas.ddf(
            x[:, g * per : (g + 1) * per],
            cf[:, g * per : (g + 1) * per],
            sf[:, g],
            k,
            d,
            s,
            combine,
        )
        for g in range(head)
    ]
    return np.concatenate(outs, axis=1)


@pytest.mark.parametrize(
    ("channels", "k", "stride", "dilation", "head", "combine", "nonlinearity", "size"),
    [
        (10, 3, 1, 1, 1, "mul", "relu", (1, 5, 6)),
        (12, 3, 2, 2, 2, "add", "linear", (2, 6, 4)),
        (8, 5, 1, 1, 4, "mul", "tanh", (1, 4, 4)),
    ],
)
def test_ddfpack_matches_formula(
    channels: int,
    k: int,
    stride: int,
    dilation: int,
    head: int,
    combine: str,
    nonlinearity: str,
    size: tuple[int, int, int],
) -> None:
    module = randomize(
        reference.DDFPack(channels, k, stride, dilation, head, 0.5, nonlinearity, combine),
        seed=k + head,
    )
    n, h, w = size
    x = torch.randn(n, channels, h, w, generator=torch.Generator().manual_seed(8))
    gain = torch.nn.init.calculate_gain(nonlinearity) / k  # type: ignore[arg-type]
    xn = _np(x)
    cf = _channel_filter(xn, module.channel_branch, k)
    sf = _spatial_filter(xn, module.spatial_branch[0], k, head, gain, stride)
    want = _ddf_heads(xn, cf, sf, k, dilation, stride, head, combine)
    with torch.no_grad():
        assert _max_err(module(x), want) <= FP32_ATOL


@pytest.mark.parametrize(
    ("scale", "head", "depthwise", "combine"), [(2, 1, True, "mul"), (3, 2, False, "add")]
)
def test_ddfuppack_matches_formula(scale: int, head: int, depthwise: bool, combine: str) -> None:
    channels, k = 8, 3
    module = reference.DDFUpPack(
        channels, k, scale, 1, head, 0.5, "linear", 3, -1 if depthwise else 1, combine
    )
    randomize(module, seed=scale)
    x = torch.randn(1, channels, 4, 5, generator=torch.Generator().manual_seed(9))
    xn = _np(x)
    n, c, h, w = xn.shape
    want = np.zeros((n, c, h * scale, w * scale))
    for b, (spatial, channel) in enumerate(
        zip(module.spatial_branch, module.channel_branch, strict=True)
    ):
        guide = xn
        if depthwise:  # depthwise 3x3 with bias, zero padding 1
            dw = spatial[0]
            padded = np.pad(xn, ((0, 0), (0, 0), (1, 1), (1, 1)))
            guide = (
                sum(
                    padded[:, :, i : i + h, j : j + w]
                    * _np(dw.weight)[None, :, 0, i, j, None, None]
                    for i in range(3)
                    for j in range(3)
                )
                + _np(dw.bias)[None, :, None, None]
            )
            spatial = spatial[1]
        sf = _spatial_filter(guide, spatial[0], k, head, 1 / k)
        out = _ddf_heads(xn, _channel_filter(xn, channel, k), sf, k, 1, 1, head, combine)
        want[:, :, b // scale :: scale, b % scale :: scale] = out
    with torch.no_grad():
        assert _max_err(module(x), want) <= FP32_ATOL
