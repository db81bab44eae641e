"""Portable exports (standard ONNX ops only) run in ONNX Runtime on the CPU and match PyTorch.

Each model is exported once with --dynamic and run at two or more sizes (different N, H, W).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from dlu_export import ExportError, ExportOptions, export_model
from torch import nn

from dlu_deploy import reference
from dlu_deploy.checkpoints import LoadedModel, load_model
from tests.helpers import dims, max_error, randomize, run_onnx, save, torch_outputs

FP32_GRAPH_ATOL = 1e-4
# docs/export.md: a float16 graph stays within 1% of the float32 output's range (per output).
FP16_RELATIVE_TO_RANGE = 1e-2


def _loaded(tmp_path: Path, module: nn.Module, seed: int) -> LoadedModel:
    randomize(module, seed)
    return load_model(save(module.state_dict(), tmp_path / "m.pth"))


def _inputs(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


MODULES: list[tuple[str, Callable[[], nn.Module], list[tuple[int, int, int]]]] = [
    ("dlu", lambda: reference.DLUPack(16, 2, compressed_channels=8), [(1, 8, 8), (2, 5, 11)]),
    (
        "dlu-k3-g2-s3",
        lambda: reference.DLUPack(16, 3, up_kernel=3, up_group=2, compressed_channels=8),
        [(1, 6, 6), (3, 4, 7)],
    ),
    ("carafe", lambda: reference.CARAFEPack(16, 2, compressed_channels=8), [(1, 8, 8), (2, 5, 11)]),
    ("dysample-lp", lambda: reference.DySample(16, 2, "lp", 4), [(1, 8, 8), (2, 5, 11)]),
    (
        "dysample-pl-dyscope",
        lambda: reference.DySample(16, 2, "pl", 2, dyscope=True),
        [(1, 8, 8), (2, 3, 13)],
    ),
    ("ddf-stride2", lambda: reference.DDFPack(16, 3, stride=2, head=2), [(1, 8, 8), (2, 6, 10)]),
    ("ddf_up", lambda: reference.DDFUpPack(16, 3, head=2), [(1, 8, 8), (2, 5, 7)]),
]


@pytest.mark.parametrize(("name", "factory", "sizes"), MODULES, ids=[m[0] for m in MODULES])
def test_dynamic_portable_export_matches_pytorch(
    tmp_path: Path, name: str, factory: Callable[[], nn.Module], sizes: list[tuple[int, int, int]]
) -> None:
    loaded = _loaded(tmp_path, factory(), seed=len(name))
    result = export_model(loaded, tmp_path / "m.onnx", ExportOptions(mode="portable", dynamic=True))
    model = onnx.load(result.path)
    assert not [n for n in model.graph.node if n.domain not in ("", "ai.onnx")]
    assert dims(model.graph.input[0]) == ["N", 16, "H", "W"]
    channels = loaded.example_shapes[0][1]
    for index, (n, h, w) in enumerate(sizes):
        x = _inputs((n, channels, h, w), seed=index)
        got = run_onnx(result.path, {"features": x.numpy()})
        assert max_error(got, torch_outputs(loaded.model, x)) <= FP32_GRAPH_ATOL


@pytest.mark.parametrize("opset", [16, 18])  # 17, the default, is what every other test exports
def test_opsets_16_to_18(tmp_path: Path, opset: int) -> None:
    model = nn.Sequential(
        reference.DLUPack(16, 2, compressed_channels=8), reference.DySample(16, 2, groups=2)
    )
    randomize(model, seed=opset)
    loaded = LoadedModel(model, "test", ["features"], ["output"], [(1, 16, 6, 6)], {}, {})
    result = export_model(
        loaded, tmp_path / "m.onnx", ExportOptions(mode="portable", opset=opset, dynamic=True)
    )
    proto = onnx.load(result.path)
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", opset)]
    assert proto.ir_version == 8
    assert "GridSample" in {n.op_type for n in proto.graph.node}
    x = _inputs((2, 16, 5, 7), seed=1)
    assert (
        max_error(run_onnx(result.path, {"features": x.numpy()}), torch_outputs(model, x))
        <= FP32_GRAPH_ATOL
    )


@pytest.mark.parametrize("opset", [15, 19, 20])
def test_other_opsets_are_refused(tmp_path: Path, opset: int) -> None:
    loaded = _loaded(tmp_path, reference.DySample(16, 2), seed=1)
    with pytest.raises(ExportError, match=f"--opset {opset} is not supported"):
        export_model(loaded, tmp_path / "m.onnx", ExportOptions(opset=opset))


FP16_MODULES = [m for m in MODULES if m[0] in ("dlu", "dysample-lp", "ddf_up")]


@pytest.mark.parametrize(
    ("name", "factory", "sizes"), FP16_MODULES, ids=[m[0] for m in FP16_MODULES]
)
def test_fp16_export_within_documented_tolerance(
    tmp_path: Path, name: str, factory: Callable[[], nn.Module], sizes: list[tuple[int, int, int]]
) -> None:
    loaded = _loaded(tmp_path, factory(), seed=len(name))
    result = export_model(
        loaded, tmp_path / "m.onnx", ExportOptions(mode="portable", dynamic=True, fp16=True)
    )
    proto = onnx.load(result.path)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    channels = loaded.example_shapes[0][1]
    for index, (n, h, w) in enumerate(sizes):
        x = _inputs((n, channels, h, w), seed=index)
        (got,) = run_onnx(result.path, {"features": x.half().numpy()})
        assert got.dtype == np.float16
        (want,) = torch_outputs(loaded.model, x)
        assert max_error([got], [want]) <= FP16_RELATIVE_TO_RANGE * float(np.abs(want).max())


@pytest.mark.slow
def test_fpn_dlu_backbone_and_neck(tmp_path: Path, fpn_dlu_checkpoint: Path) -> None:
    """Faster R-CNN R50 + UNIFIED_FPN(DLU): one dynamic export, two image sizes, P2..P6."""
    loaded = load_model(fpn_dlu_checkpoint, overrides={"part": "backbone-neck"})
    result = export_model(
        loaded, tmp_path / "fpn.onnx", ExportOptions(mode="portable", dynamic=True)
    )
    proto = onnx.load(result.path, load_external_data=False)
    assert [o.name for o in proto.graph.output] == ["p2", "p3", "p4", "p5", "p6"]
    assert dims(proto.graph.input[0]) == ["N", 3, "H", "W"]
    for index, (n, h, w) in enumerate([(1, 64, 64), (2, 96, 128)]):
        image = _inputs((n, 3, h, w), seed=index)
        got = run_onnx(result.path, {"image": image.numpy()})
        want = torch_outputs(loaded.model, image)
        # strides 4..64, each stride-2 step rounding up
        assert [g.shape[2:] for g in got] == [
            (math.ceil(h / 4 / 2**i), math.ceil(w / 4 / 2**i)) for i in range(5)
        ]
        assert max_error(got, want) <= FP32_GRAPH_ATOL
