"""The builder's checks that run before TensorRT: shape arguments, optimization profiles,
plugin lookup and parser error messages; and what is read from the ONNX file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlu_deploy.engine_build import (
    ParserProblem,
    check_plugins,
    parse_size,
    parser_failure,
    resolve_profile,
)
from dlu_deploy.errors import UserError
from dlu_deploy.onnx_info import inspect_onnx
from dlu_deploy.shapes import format_shape_set, parse_shape_set
from tests import runner_models


@pytest.fixture(scope="module")
def portable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = runner_models.make_reference().model
    return runner_models.export_portable(model, tmp_path_factory.mktemp("b") / "net.onnx")


def test_shape_arguments() -> None:
    shapes = parse_shape_set("image:1x3x256x256, mask:1X1x8x8")
    assert shapes == {"image": (1, 3, 256, 256), "mask": (1, 1, 8, 8)}
    assert parse_shape_set(["in:0:2x3", "b:4"]) == {"in:0": (2, 3), "b": (4,)}
    assert format_shape_set(shapes) == "image:1x3x256x256,mask:1x1x8x8"
    for bad, message in [
        ("image", "does not name an input"),
        ("image:1x3xHx8", "is not a shape"),
        ("image:0x3", "is not a shape"),
        ("a:1,a:2", "given twice"),
    ]:
        with pytest.raises(UserError, match=message):
            parse_shape_set(bad, what="--min")


def test_onnx_interface_and_custom_nodes(portable: Path, tmp_path: Path) -> None:
    info = inspect_onnx(portable)
    assert [(t.name, t.dims) for t in info.inputs] == [("image", ("N", 3, "H", "W"))]
    assert [t.name for t in info.outputs] == ["seg", "feat"]
    assert info.custom_nodes == () and info.precision == "fp32"
    plugin = inspect_onnx(runner_models.dlu_plugin_graph(tmp_path / "p.onnx", fp16=True))
    assert plugin.precision == "fp16"
    (node,) = plugin.custom_nodes
    assert (node.name, node.domain, node.op_type, node.plugin_version) == (
        "neck/dlu_up",
        "dlu_deploy",
        "DLU",
        "1",
    )


def test_unreadable_onnx(tmp_path: Path) -> None:
    (tmp_path / "cut.onnx").write_bytes(b"\x08\x07\x12\x05garbage")
    with pytest.raises(UserError, match="is not a readable ONNX file"):
        inspect_onnx(tmp_path / "cut.onnx")
    with pytest.raises(UserError, match="does not exist"):
        inspect_onnx(tmp_path / "missing.onnx")


def test_profile_from_min_opt_max(portable: Path) -> None:
    info = inspect_onnx(portable)
    low, opt, high = (1, 3, 64, 64), (2, 3, 256, 256), (4, 3, 512, 512)
    profile = resolve_profile(info, {"image": low}, {"image": opt}, {"image": high})
    assert profile == {"image": (low, opt, high)}
    assert resolve_profile(info, None, {"image": opt}, None) == {"image": (opt, opt, opt)}
    assert resolve_profile(info, {"image": low}, None, {"image": high}) == {
        "image": (low, high, high)
    }


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        ({}, "has dynamic dims (Nx3xHxW) but no shapes were given"),
        ({"opt": {"img": (1, 3, 8, 8)}}, "--opt names unknown input(s) img"),
        ({"opt": {"image": (1, 4, 8, 8)}}, "does not fit the input's dims Nx3xHxW"),
        ({"min": {"image": (1, 3, 64, 64)}, "opt": {"image": (1, 3, 32, 64)}}, "are not ordered"),
    ],
)
def test_profile_errors(portable: Path, shapes: dict, message: str) -> None:
    with pytest.raises(UserError) as error:
        resolve_profile(
            inspect_onnx(portable), shapes.get("min"), shapes.get("opt"), shapes.get("max")
        )
    assert message in error.value.problem


def test_missing_plugin_names_plugin_nodes_and_fix(tmp_path: Path) -> None:
    info = inspect_onnx(runner_models.dlu_plugin_graph(tmp_path / "p.onnx"))
    registered: set[tuple[str, str, str]] = set()
    with pytest.raises(UserError) as error:
        check_plugins(info, lambda *key: key in registered, [])
    assert "plugin DLU version 1 not found (node neck/dlu_up)" in error.value.problem
    assert "plugin libraries loaded: none" in error.value.problem
    assert "--plugins path/to/libdlu_trt_plugins.so" in error.value.fix
    registered.add(("DLU", "1", ""))
    check_plugins(info, lambda *key: key in registered, [])  # found: no error


def test_parser_failure_message(tmp_path: Path) -> None:
    info = inspect_onnx(runner_models.dlu_plugin_graph(tmp_path / "p.onnx"))
    problems = [
        ParserProblem(
            "neck/dlu_up",
            "DLU",
            "Plugin not found, are the plugin name, version, and namespace correct?",
            "UNSUPPORTED_NODE",
        )
    ]
    error = parser_failure(problems, info, [Path("/opt/lib.so")])
    assert "node 'neck/dlu_up' (DLU): Plugin not found" in error.problem
    assert error.fix.startswith(
        "plugin DLU version 1 not found (loaded: /opt/lib.so): pass --plugins"
    )
    other = parser_failure(
        [ParserProblem("conv_7", "Conv", "Invalid weights", "INVALID_NODE")], info, []
    )
    assert "node 'conv_7' (Conv): Invalid weights [INVALID_NODE]" in other.problem
    assert "onnx.checker" in other.fix


def test_workspace_sizes() -> None:
    assert (
        parse_size("2G") == 2 << 30
        and parse_size("512m") == 512 << 20
        and parse_size("1024") == 1024
    )
    assert parse_size("1.5KB") == 1536
    with pytest.raises(UserError, match="is not a size"):
        parse_size("lots")


def test_generated_inputs_follow_dtype_and_seed(tmp_path: Path) -> None:
    from dlu_deploy.validate import generate_inputs, open_candidate

    specs = open_candidate(
        runner_models.export_portable(runner_models.make_reference().model, tmp_path / "n.onnx")
    ).inputs
    a = generate_inputs(specs, {"image": (1, 3, 4, 4)}, seed=5)["image"]
    b = generate_inputs(specs, {"image": (1, 3, 4, 4)}, seed=5)["image"]
    c = generate_inputs(specs, {"image": (1, 3, 4, 4)}, seed=6)["image"]
    assert a.dtype == np.float32 and np.array_equal(a, b) and not np.array_equal(a, c)


def test_plugin_nodes_for_onnxruntime_tensorrt_ep(tmp_path: Path) -> None:
    """onnxruntime's TensorRT EP offers TensorRT plugins in the domain trt.plugins."""
    from onnx import helper

    from dlu_deploy.validate.backends import trt_ep_model

    model = trt_ep_model(runner_models.dlu_plugin_graph(tmp_path / "p.onnx"))
    (node,) = model.graph.node
    assert (node.domain, node.op_type) == ("trt.plugins", "DLU")
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert attrs == {"kernel_size": 3, "group": 1, "scale": 2, "plugin_version": b"1"}
    assert sorted((o.domain, o.version) for o in model.opset_import) == [
        ("", 17),
        ("trt.plugins", 1),
    ]
