"""Plugin-mode exports: one custom node per DLU / CARAFE / DDF, with the spec's attributes.

The structure is checked everywhere: domain, op_type, attributes, input shapes, no
full-resolution DLU kernel tensor, and that ONNX shape inference knows the custom nodes'
outputs. Where the custom-op library libdlu_ort_ops is built, the graphs also run in
onnxruntime through dlu_deploy.ort's session (custom nodes on the compiled CPU kernels) and are
compared with PyTorch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from dlu_export import ExportOptions, cleanup, export_model
from onnx import helper
from torch import nn

from dlu_deploy import ONNX_DOMAIN, reference
from dlu_deploy.checkpoints import load_model
from dlu_deploy.libraries import ORT_OPS_LIBRARY, find_native_library
from tests.helpers import dims, max_error, randomize, save, torch_outputs


def _export(
    tmp_path: Path, module: nn.Module, overrides: dict[str, object] | None = None, **options: object
) -> onnx.ModelProto:
    randomize(module, seed=3)
    loaded = load_model(save(module.state_dict(), tmp_path / "m.pth"), overrides=overrides)
    result = export_model(loaded, tmp_path / "m.onnx", ExportOptions(mode="plugin", **options))  # type: ignore[arg-type]
    return onnx.load(result.path)


def _custom(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.domain == ONNX_DOMAIN]


def _attributes(node: onnx.NodeProto) -> list[tuple[str, object]]:
    return [(a.name, helper.get_attribute_value(a)) for a in node.attribute]


def _shapes(model: onnx.ModelProto) -> dict[str, list[int | str]]:
    values = [*model.graph.input, *model.graph.value_info, *model.graph.output]
    return {v.name: dims(v) for v in values}


def _ancestors(model: onnx.ModelProto, node: onnx.NodeProto) -> set[str]:
    """Every tensor the node depends on."""
    producer = {out: n for n in model.graph.node for out in n.output}
    seen: set[str] = set()
    stack = list(node.input)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in producer:
            stack.extend(producer[name].input)
    return seen


def _inferred_without_value_info(model: onnx.ModelProto) -> dict[str, list[int | str]]:
    stripped = onnx.ModelProto()
    stripped.CopyFrom(model)
    del stripped.graph.value_info[:]
    inferred = onnx.shape_inference.infer_shapes(stripped, strict_mode=True)
    return _shapes(inferred)


def _assert_ints_then_version(node: onnx.NodeProto, expected: list[tuple[str, int]]) -> None:
    assert _attributes(node) == [*expected, ("plugin_version", b"1")]
    ints = [a for a in node.attribute if a.name != "plugin_version"]
    assert all(a.type == onnx.AttributeProto.INT for a in ints)
    assert (
        next(a for a in node.attribute if a.name == "plugin_version").type
        == onnx.AttributeProto.STRING
    )


@pytest.mark.parametrize(("k", "group", "scale"), [(5, 1, 2), (3, 2, 3)])
def test_dlu_node(tmp_path: Path, k: int, group: int, scale: int) -> None:
    channels, h, w = 16, 10, 12
    model = _export(
        tmp_path,
        reference.DLUPack(channels, scale, up_kernel=k, up_group=group, compressed_channels=8),
        input_shapes=[(1, channels, h, w)],
    )
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17), (ONNX_DOMAIN, 1)]
    (node,) = _custom(model)
    assert node.op_type == "DLU" and node.name == "DLU"
    _assert_ints_then_version(node, [("kernel_size", k), ("group", group), ("scale", scale)])
    shapes = _shapes(model)
    assert [shapes[name] for name in node.input] == [
        [1, channels, h, w],
        [1, group * k * k, h, w],  # normalised low-res kernel space
        [1, group * 2 * scale * scale, h, w],  # offsets
    ]
    assert node.input[0] == "features" and node.output[0] == "upsampled"
    full_resolution = [1, group * k * k, scale * h, scale * w]
    assert all(shape != full_resolution for shape in shapes.values())
    assert all(shapes.get(name) != full_resolution for name in _ancestors(model, node))
    assert "Softmax" in {model.graph.node[i].op_type for i in range(len(model.graph.node))}
    assert not {"GatherElements", "GridSample", "MatMul"} & {n.op_type for n in model.graph.node}
    assert _inferred_without_value_info(model)["upsampled"] == [1, channels, scale * h, scale * w]


def test_dlu_node_dynamic(tmp_path: Path) -> None:
    model = _export(tmp_path, reference.DLUPack(16, 2, compressed_channels=8), dynamic=True)
    (node,) = _custom(model)
    shapes = _shapes(model)
    assert [shapes[name] for name in node.input] == [
        ["N", 16, "H", "W"],
        ["N", 25, "H", "W"],
        ["N", 8, "H", "W"],
    ]
    assert shapes["upsampled"] == ["N", 16, "2*H", "2*W"]
    assert all(shape[1:2] != [25] or shape[2:] == ["H", "W"] for shape in shapes.values())
    assert _inferred_without_value_info(model)["upsampled"][:2] == ["N", 16]


def test_carafe_node(tmp_path: Path) -> None:
    model = _export(
        tmp_path,
        reference.CARAFEPack(16, 2, up_group=2, compressed_channels=8),
        input_shapes=[(2, 16, 6, 7)],
    )
    (node,) = _custom(model)
    assert node.op_type == "CARAFE"
    _assert_ints_then_version(node, [("kernel_size", 5), ("group", 2), ("scale", 2)])
    shapes = _shapes(model)
    assert [shapes[name] for name in node.input] == [[2, 16, 6, 7], [2, 50, 12, 14]]
    assert _inferred_without_value_info(model)[node.output[0]] == [2, 16, 12, 14]


@pytest.mark.parametrize(
    ("factory", "overrides", "count", "attributes", "shapes"),
    [
        (
            lambda: reference.DDFPack(16, 3, stride=2, dilation=1, head=2, kernel_combine="add"),
            {"stride": 2, "combine": "add"},
            1,
            [("kernel_size", 3), ("dilation", 1), ("stride", 2), ("combine", 1)],
            [
                [2, 8, 8, 10],
                [2, 8, 3, 3],
                [2, 9, 4, 5],
                [2, 8, 4, 5],
            ],  # heads folded into the batch
        ),
        (
            lambda: reference.DDFUpPack(16, 5, scale_factor=2),
            {},
            4,
            [("kernel_size", 5), ("dilation", 1), ("stride", 1), ("combine", 0)],
            [[1, 16, 8, 10], [1, 16, 5, 5], [1, 25, 8, 10], [1, 16, 8, 10]],
        ),
    ],
    ids=["ddf", "ddf_up"],
)
def test_ddf_nodes(
    tmp_path: Path,
    factory: Callable[[], nn.Module],
    overrides: dict[str, object],
    count: int,
    attributes: list[tuple[str, int]],
    shapes: list[list[int]],
) -> None:
    batch = shapes[0][0] // 2 if count == 1 else 1
    model = _export(tmp_path, factory(), overrides, input_shapes=[(batch, 16, 8, 10)])
    nodes = _custom(model)
    assert len(nodes) == count and {n.op_type for n in nodes} == {"DDF"}
    known = _shapes(model)
    inferred = _inferred_without_value_info(model)
    for node in nodes:
        _assert_ints_then_version(node, attributes)
        assert [known[name] for name in (*node.input, node.output[0])] == shapes
        assert inferred[node.output[0]] == shapes[-1]


def test_fp16_plugin_graph(tmp_path: Path) -> None:
    model = _export(
        tmp_path, reference.DLUPack(16, 2, compressed_channels=8), fp16=True, dynamic=True
    )
    (node,) = _custom(model)
    types = {
        v.name: v.type.tensor_type.elem_type
        for v in [*model.graph.input, *model.graph.value_info, *model.graph.output]
    }
    assert [types[name] for name in (*node.input, *node.output)] == [onnx.TensorProto.FLOAT16] * 4
    weights = {
        init.data_type
        for init in model.graph.initializer
        if init.data_type != onnx.TensorProto.INT64
    }
    assert weights == {onnx.TensorProto.FLOAT16}


def test_dysample_needs_no_custom_node(tmp_path: Path) -> None:
    model = _export(tmp_path, reference.DySample(16, 2))
    assert not _custom(model)
    assert [o.domain for o in model.opset_import] == [""]
    assert "GridSample" in {n.op_type for n in model.graph.node}


def test_fpn_dlu_plugin_graph(tmp_path: Path, fpn_dlu_checkpoint: Path) -> None:
    loaded = load_model(fpn_dlu_checkpoint, overrides={"part": "backbone-neck"})
    result = export_model(
        loaded, tmp_path / "fpn.onnx", ExportOptions(mode="plugin", input_shapes=[(1, 3, 128, 160)])
    )
    model = onnx.load(result.path)
    nodes = _custom(model)
    assert [n.name for n in nodes] == [f"neck.upsample_modules.{i}/DLU" for i in (3, 2, 1, 0)]
    shapes = _shapes(model)
    for node in nodes:
        features = shapes[node.input[0]]
        assert shapes[node.input[1]] == [1, 25, *features[2:]]
        full_resolution = [1, 25, 2 * features[2], 2 * features[3]]
        assert all(shapes.get(name) != full_resolution for name in _ancestors(model, node))
    assert [dims(o) for o in model.graph.output] == [
        [1, 256, 32 // 2**i, 40 // 2**i] for i in range(4)
    ] + [[1, 256, 2, 3]]
    names = {n.name for n in model.graph.node}
    assert {
        "backbone.maxpool/MaxPool",
        "neck.lateral_convs.4.conv/Conv",
        "neck.fpn_convs.0.conv/Conv",
    } <= names
    assert "BatchNormalization" not in {n.op_type for n in model.graph.node}  # folded into convs
    if find_native_library(ORT_OPS_LIBRARY) is not None:
        from dlu_deploy.ort import make_session

        image = torch.randn(1, 3, 128, 160, generator=torch.Generator().manual_seed(0))
        got = make_session(result.path).run(None, {"image": image.numpy()})
        assert max_error(got, torch_outputs(loaded.model, image)) <= 1e-4


def test_missing_custom_output_shapes_are_inferred(tmp_path: Path) -> None:
    model = _export(
        tmp_path, reference.DLUPack(16, 2, compressed_channels=8), input_shapes=[(1, 16, 6, 5)]
    )
    (node,) = _custom(model)
    model.graph.output[0].type.tensor_type.ClearField("shape")
    cleanup._infer_missing_shapes(model)
    assert _shapes(model)[node.output[0]] == [1, 16, 12, 10]


NEEDS_KERNELS = pytest.mark.skipif(
    find_native_library(ORT_OPS_LIBRARY) is None,
    reason="libdlu_ort_ops is not built (cmake -S . -B build -DONNXRUNTIME_INCLUDE_DIR=... "
    "&& cmake --build build)",
)
RUN_CASES: list[tuple[str, Callable[[], nn.Module], dict[str, object]]] = [
    (
        "dlu-g2",
        lambda: reference.DLUPack(16, 2, up_group=2, compressed_channels=8),
        {"up_group": 2},
    ),
    ("carafe", lambda: reference.CARAFEPack(16, 2, compressed_channels=8), {}),
    ("ddf-stride2", lambda: reference.DDFPack(16, 3, stride=2, head=2), {"stride": 2}),
    ("ddf_up", lambda: reference.DDFUpPack(16, 3), {}),
]


@NEEDS_KERNELS
@pytest.mark.parametrize("fp16", [False, True], ids=["fp32", "fp16"])
@pytest.mark.parametrize(("name", "factory", "overrides"), RUN_CASES, ids=[c[0] for c in RUN_CASES])
def test_plugin_graph_runs_on_the_kernels(
    tmp_path: Path,
    name: str,
    factory: Callable[[], nn.Module],
    overrides: dict[str, object],
    fp16: bool,
) -> None:
    from dlu_deploy.ort import make_session

    randomize(module := factory(), seed=len(name))
    loaded = load_model(save(module.state_dict(), tmp_path / "m.pth"), overrides=overrides)
    result = export_model(loaded, tmp_path / "m.onnx", ExportOptions(dynamic=True, fp16=fp16))
    session = make_session(result.path)
    for index, shape in enumerate([(1, 16, 8, 8), (2, 16, 6, 10)]):
        x = torch.randn(shape, generator=torch.Generator().manual_seed(index))
        got = session.run(None, {"features": (x.half() if fp16 else x).numpy()})
        want = torch_outputs(loaded.model, x)
        bound = 1e-2 * float(np.abs(want[0]).max()) if fp16 else 1e-4
        assert max_error(got, want) <= bound
