"""The DySample segmentation head against docs/ops.md#dysample (float64 oracle: tests/formulas)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlu_deploy.models.dysample_seg import DySampleSegConfig, DySampleSegHead
from dlu_deploy.models.seeded import build_seeded
from tests import formulas

FP32_ATOL = 1e-5
VARIANTS = [("lp", False), ("lp", True), ("pl", False), ("pl", True)]


def _head(style: str, dyscope: bool, scale: int = 2, seed: int = 0) -> DySampleSegHead:
    config = DySampleSegConfig(16, 16, 5, scale, style, 4, dyscope)
    head = build_seeded(lambda: DySampleSegHead(config), seed)
    with torch.no_grad():  # offsets of a few pixels, not the official 0.001-std initialisation
        head.upsample.offset.weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(seed))
        if dyscope:
            head.upsample.scope.weight.normal_(
                0.0, 1.0, generator=torch.Generator().manual_seed(seed + 1)
            )
    return head


def _offsets_from_spec(head: DySampleSegHead, feat: torch.Tensor) -> torch.Tensor:
    """docs/ops.md#dysample: O = 0.25*offset(x) + init_pos, or 0.5*sigmoid(scope(x))*offset(x) +
    init_pos with dyscope; 'pl' evaluates both convs on pixel_shuffle(x, s) and unshuffles.
    init_pos is rebuilt from its formula, not read from the buffer."""
    up, c = head.upsample, head.config
    s, g = c.scale, c.groups
    src = F.pixel_shuffle(feat, s) if c.style == "pl" else feat
    raw = F.conv2d(src, up.offset.weight, up.offset.bias)
    raw = 0.5 * torch.sigmoid(F.conv2d(src, up.scope.weight)) * raw if c.dyscope else 0.25 * raw
    if c.style == "pl":
        raw = F.pixel_unshuffle(raw, s)
    init = torch.zeros(2, g, s, s)
    for dy in range(s):
        for dx in range(s):
            init[0, :, dy, dx] = (dx - (s - 1) / 2) / s
            init[1, :, dy, dx] = (dy - (s - 1) / 2) / s
    return raw + init.reshape(1, -1, 1, 1)


@pytest.mark.parametrize(("style", "dyscope"), VARIANTS)
def test_head_matches_the_spec(style: str, dyscope: bool) -> None:
    head = _head(style, dyscope)
    x = torch.randn(2, 16, 5, 7, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        got = head(x)
        feat = head.conv(x)
        offsets = _offsets_from_spec(head, feat)
    sampled = formulas.dysample_sample(feat.numpy(), offsets.numpy(), 2, 4)
    w = head.conv_seg.weight.detach().double().numpy()[:, :, 0, 0]
    want = (
        np.einsum("oc,nchw->nohw", w, sampled)
        + head.conv_seg.bias.detach().double().numpy()[None, :, None, None]
    )
    assert got.shape == (2, 5, 10, 14)
    assert np.abs(got.double().numpy() - want).max() <= FP32_ATOL
