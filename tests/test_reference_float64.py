"""The reference ops and models run in float64 (the noise floor of `dlu-deploy validate`):
float64 in, float64 computed and out, equal to the spec's float64 formulas to rounding."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

from dlu_deploy import reference
from dlu_deploy.errors import OpArgumentError
from dlu_deploy.models import UnifiedFPN
from dlu_deploy.models.ddf_resnet import DDFBottleneck, DDFBottleneckConfig
from dlu_deploy.models.dynamic_routing import DynamicRoutingConfig, DynamicRoutingSeg
from dlu_deploy.models.dysample_seg import DySampleSegConfig, DySampleSegHead
from dlu_deploy.models.seeded import build_seeded
from tests import formulas

# float32 arithmetic anywhere in the op leaves errors near 1e-7; float64 throughout near 1e-15.
FP64_ATOL = 1e-12


def _softmax_groups(t: torch.Tensor, k: int) -> torch.Tensor:
    n, gc, h, w = t.shape
    return t.reshape(n, gc // (k * k), k * k, h, w).softmax(2).reshape(n, gc, h, w)


def _err(got: torch.Tensor, want: np.ndarray) -> float:
    assert got.dtype == torch.float64
    return float(np.abs(got.numpy() - want).max())


def test_ops_compute_in_float64() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 3, 5, generator=gen, dtype=torch.float64)
    masks = _softmax_groups(torch.randn(2, 18, 6, 10, generator=gen, dtype=torch.float64), 3)
    want = formulas.carafe(x.numpy(), masks.numpy(), 3, 2, 2)
    assert _err(reference.carafe(x, masks, 3, 2, 2), want) <= FP64_ATOL

    kernels = _softmax_groups(torch.randn(2, 18, 3, 5, generator=gen, dtype=torch.float64), 3)
    offsets = 1.7 * torch.randn(2, 16, 3, 5, generator=gen, dtype=torch.float64)
    want = formulas.dlu(x.numpy(), kernels.numpy(), offsets.numpy(), 3, 2, 2)
    assert _err(reference.dlu(x, kernels, offsets, 3, 2, 2), want) <= FP64_ATOL

    cf = torch.randn(2, 4, 3, 3, generator=gen, dtype=torch.float64)
    sf = torch.randn(2, 9, 3, 5, generator=gen, dtype=torch.float64)
    want = formulas.ddf(x.numpy(), cf.numpy(), sf.numpy(), 3, 1, 1, "mul")
    assert _err(reference.ddf(x, cf, sf, 3, 1, 1, "mul"), want) <= FP64_ATOL

    shifts = torch.randn(2, 16, 3, 5, generator=gen, dtype=torch.float64)
    want = formulas.dysample_sample(x.numpy(), shifts.numpy(), 2, 2)
    assert _err(reference.dysample_sample(x, shifts, 2, 2), want) <= FP64_ATOL
    # the float32 path is unchanged: float32 out, float32 rounding
    got32 = reference.dlu(x.float(), kernels.float(), offsets.float(), 3, 2, 2)
    assert got32.dtype == torch.float32
    want = formulas.dlu(x.numpy(), kernels.numpy(), offsets.numpy(), 3, 2, 2)
    assert 1e-9 < np.abs(got32.double().numpy() - want).max() < 1e-5


def test_mixed_float64_and_float32_arguments_are_refused() -> None:
    x = torch.randn(1, 4, 3, 3, dtype=torch.float64)
    with pytest.raises(OpArgumentError, match="same dtype"):
        reference.carafe(x, torch.rand(1, 9, 6, 6), 3, 1, 2)


def _pyramid(gen: torch.Generator) -> list[torch.Tensor]:
    return [torch.randn(1, c, s, s, generator=gen) for c, s in ((8, 16), (16, 8), (16, 4), (32, 2))]


UPSAMPLER = {
    "up_kernel": 3,
    "up_group": 1,
    "encoder_kernel": 3,
    "encoder_dilation": 1,
    "compressed_channels": 8,
}
MODELS: dict[str, tuple[Callable[[], nn.Module], Callable[[torch.Generator], object]]] = {
    "fpn_dlu": (
        lambda: UnifiedFPN([8, 16, 16, 32], 16, 5, {"type": "dlu", **UPSAMPLER}),
        _pyramid,
    ),
    "fpn_carafe": (
        lambda: UnifiedFPN([8, 16, 16, 32], 16, 5, {"type": "carafe", **UPSAMPLER}),
        _pyramid,
    ),
    "dysample_seg": (
        lambda: DySampleSegHead(DySampleSegConfig(16, 16, 5, 2, "lp", 4, True)),
        lambda g: torch.randn(1, 16, 6, 8, generator=g),
    ),
    "ddf_bottleneck": (
        lambda: DDFBottleneck(DDFBottleneckConfig(32, 8, 2, "mul")),
        lambda g: torch.randn(1, 32, 8, 8, generator=g),
    ),
    "dynamic_routing": (
        lambda: DynamicRoutingSeg(DynamicRoutingConfig(layer_num=3, init_channel=8, num_classes=5)),
        lambda g: torch.randn(1, 3, 64, 64, generator=g),
    ),
}


def _as_double(value: object) -> object:
    if isinstance(value, torch.Tensor):
        return value.double()
    return [_as_double(v) for v in value]  # type: ignore[attr-defined]


def _tensors(value: object) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_run_in_float64_throughout(name: str) -> None:
    build, make_input = MODELS[name]
    model = build_seeded(build, 3)
    model64 = copy.deepcopy(model).double()
    seen: list[tuple[str, torch.dtype]] = []
    for module_name, module in model64.named_modules():
        module.register_forward_hook(
            lambda _m, _i, out, n=module_name: seen.extend(
                (n, t.dtype) for t in _tensors(out) if t.is_floating_point()
            )
        )
    x = make_input(torch.Generator().manual_seed(5))
    with torch.no_grad():
        got32 = _tensors(model(x))
        got64 = _tensors(model64(_as_double(x)))
    assert seen and all(dtype == torch.float64 for _, dtype in seen), [
        s for s in seen if s[1] != torch.float64
    ][:3]
    # the same function: float32 differs from it by float32 rounding only
    for a, b in zip(got32, got64, strict=True):
        assert b.dtype == torch.float64
        scale = float(b.abs().max()) or 1.0
        assert float((a.double() - b).abs().max()) <= 1e-4 * scale
