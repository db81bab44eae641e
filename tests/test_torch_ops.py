"""torch.ops.dlu_deploy.{dlu,carafe,ddf}: eager, torch.compile (CPU), torch.export, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from dlu_deploy import native, reference
from dlu_deploy.errors import OpArgumentError
from dlu_deploy.ops import carafe, ddf, dlu

pytestmark = pytest.mark.skipif(
    not native.available(), reason="libdlu_kernels is not built (cmake --build build)"
)


class Upsamplers(nn.Module):
    """A DLUPack-like block that calls all three ops."""

    def __init__(self) -> None:
        super().__init__()
        self.pack = reference.DLUPack(8, 2, up_kernel=3, up_group=2, compressed_channels=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernels, offsets = self.pack.predict(x)
        up = torch.ops.dlu_deploy.dlu(x, kernels, offsets, 3, 2, 2)
        masks = torch.nn.functional.interpolate(kernels, scale_factor=2.0, mode="nearest")
        up = up + torch.ops.dlu_deploy.carafe(x, masks, 3, 2, 2)
        k = 3
        cf = torch.ones(x.shape[0], x.shape[1], k, k) * 0.1
        sf = _spatial_filter(up)
        return torch.ops.dlu_deploy.ddf(up, cf, sf, k, 1, 2, 0)


def _spatial_filter(up: torch.Tensor) -> torch.Tensor:
    """A data-dependent [N, 9, H/2, W/2] spatial filter for DDF (k = 3, stride 2)."""
    pooled = torch.nn.functional.avg_pool2d(up.mean(1, keepdim=True), 2)
    return pooled * torch.linspace(-1.0, 1.0, 9).view(1, 9, 1, 1)


def _reference_forward(model: Upsamplers, x: torch.Tensor) -> torch.Tensor:
    kernels, offsets = model.pack.predict(x)
    up = reference.dlu(x, kernels, offsets, 3, 2, 2)
    masks = torch.nn.functional.interpolate(kernels, scale_factor=2.0, mode="nearest")
    up = up + reference.carafe(x, masks, 3, 2, 2)
    cf = torch.ones(x.shape[0], x.shape[1], 3, 3) * 0.1
    sf = _spatial_filter(up)
    return reference.ddf(up, cf, sf, 3, 1, 2, "mul")


@pytest.fixture
def model_and_input() -> tuple[Upsamplers, torch.Tensor]:
    torch.manual_seed(0)
    return Upsamplers().eval(), torch.randn(2, 8, 6, 10)


def test_eager_matches_reference(model_and_input: tuple[Upsamplers, torch.Tensor]) -> None:
    model, x = model_and_input
    with torch.no_grad():
        assert (model(x) - _reference_forward(model, x)).abs().max() <= 1e-5


def test_torch_compile_cpu(model_and_input: tuple[Upsamplers, torch.Tensor]) -> None:
    model, x = model_and_input
    compiled = torch.compile(model, backend="inductor", fullgraph=True, dynamic=False)
    with torch.no_grad():
        assert (compiled(x) - _reference_forward(model, x)).abs().max() <= 1e-5


def test_torch_export_keeps_the_custom_ops(
    model_and_input: tuple[Upsamplers, torch.Tensor],
) -> None:
    model, x = model_and_input
    batch = torch.export.Dim("batch", min=1, max=8)
    exported = torch.export.export(model, (x,), dynamic_shapes={"x": {0: batch}})
    targets = {str(node.target) for node in exported.graph.nodes if node.op == "call_function"}
    assert {
        "dlu_deploy.dlu.default",
        "dlu_deploy.carafe.default",
        "dlu_deploy.ddf.default",
    } <= targets
    x3 = torch.randn(3, 8, 6, 10)
    with torch.no_grad():
        assert (exported.module()(x3) - _reference_forward(model, x3)).abs().max() <= 1e-5


def test_opcheck() -> None:
    """torch.library's own consistency checks (schema, fake vs real, autograd registration)."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 3, 5, generator=gen)
    kernels = torch.randn(1, 2 * 9, 3, 5, generator=gen).softmax(1)
    offsets = torch.randn(1, 2 * 8, 3, 5, generator=gen)
    torch.library.opcheck(dlu, (x, kernels, offsets, 3, 2, 2))
    torch.library.opcheck(carafe, (x, torch.rand(1, 9, 6, 10, generator=gen), 3, 1, 2))
    torch.library.opcheck(ddf, (x, torch.rand(1, 4, 3, 3), torch.rand(1, 9, 3, 5), 3, 1, 1, 1))


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (
            lambda: dlu(
                torch.randn(1, 4, 2, 2), torch.rand(1, 9, 2, 2), torch.rand(1, 4, 2, 2), 3, 1, 2
            ),
            "offsets has shape",
        ),
        (
            lambda: dlu(
                torch.randn(1, 4, 2, 2), torch.rand(1, 16, 2, 2), torch.rand(1, 8, 2, 2), 4, 1, 2
            ),
            "kernel_size=4",
        ),
        (lambda: carafe(torch.randn(1, 6, 2, 2), torch.rand(1, 36, 4, 4), 3, 4, 2), "group=4"),
        (
            lambda: carafe(torch.randn(1, 4, 2, 2), torch.rand(1, 9, 4, 4).double(), 3, 1, 2),
            "dtype",
        ),
        (
            lambda: ddf(
                torch.randn(1, 2, 3, 3), torch.rand(1, 2, 3, 3), torch.rand(1, 9, 3, 3), 3, 1, 1, 2
            ),
            "combine=2",
        ),
        (
            lambda: ddf(
                torch.randn(1, 2, 3, 3), torch.rand(1, 2, 3, 3), torch.rand(1, 9, 3, 3), 3, 0, 1, 0
            ),
            "dilation=0",
        ),
        (
            lambda: dlu(
                torch.randn(1, 4, 2, 2), torch.rand(1, 9, 2, 2), torch.rand(1, 8, 2, 2), 3, 1, 9
            ),
            "scale=9",
        ),
    ],
)
def test_bad_arguments_name_the_problem(call, needle: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(OpArgumentError, match=needle):
        call()


def test_meta_tensors_use_the_fake_implementation() -> None:
    x = torch.randn(2, 4, 3, 5, device="meta")
    out = carafe(x, torch.rand(2, 9, 6, 10, device="meta"), 3, 1, 2)
    assert out.device.type == "meta" and out.shape == (2, 4, 6, 10)


def test_missing_library_says_how_to_build(tmp_path: Path) -> None:
    code = (
        "import torch\n"
        "from dlu_deploy.ops import carafe\n"
        "from dlu_deploy.errors import UserError\n"
        "try:\n"
        "    carafe(torch.randn(1, 1, 2, 2), torch.rand(1, 1, 2, 2), 1, 1, 1)\n"
        "except UserError as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    env = {"DLU_DEPLOY_LIB_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.stdout.startswith("NativeLibraryMissing")
    assert "cmake -S . -B build" in result.stdout
    assert "dlu_deploy.reference" in result.stdout
