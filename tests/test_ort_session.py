"""dlu_deploy.ort.make_session and the native custom-op library (libdlu_ort_ops) on hand-built
plugin-mode graphs (onnx.helper) and on an ONNX file exported the way mmcv exports CARAFE, against
the PyTorch reference and the compiled kernels."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from dlu_deploy import native, reference
from dlu_deploy.errors import OpArgumentError
from dlu_deploy.libraries import ORT_OPS_LIBRARY, find_native_library
from dlu_deploy.ops import carafe, ddf, dlu
from dlu_deploy.ort import custom_ops_library, make_session

pytestmark = pytest.mark.skipif(
    not native.available() or find_native_library(ORT_OPS_LIBRARY) is None,
    reason="libdlu_kernels / libdlu_ort_ops are not built "
    "(cmake -S . -B build -DONNXRUNTIME_INCLUDE_DIR=... && cmake --build build)",
)
FP16 = [False, True]

GRAPH_ATOL = 1e-4
OPSETS = [helper.make_opsetid("", 17), helper.make_opsetid("dlu_deploy", 1)]
IR_VERSION = 10  # onnxruntime 1.31 reads up to IR 13; onnx 1.23 writes 14 by default


def _model(
    nodes: list[onnx.NodeProto],
    inputs: dict[str, tuple[int, list]],
    outputs: list[str],
    initializers: list[onnx.TensorProto] | None = None,
    opsets: list | None = None,
    output_type: int = TensorProto.FLOAT,
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "test",
        [
            helper.make_tensor_value_info(name, dtype, shape)
            for name, (dtype, shape) in inputs.items()
        ],
        [
            helper.make_tensor_value_info(name, output_type, [f"{name}_{i}" for i in range(4)])
            for name in outputs
        ],
        initializer=initializers or [],
    )
    return helper.make_model(graph, opset_imports=opsets or OPSETS, ir_version=IR_VERSION)


def _dyn(channels: int) -> list:
    return ["n", channels, "h", "w"]


def _dlu_model(k: int, g: int, s: int, dtype: int = TensorProto.FLOAT) -> onnx.ModelProto:
    node = helper.make_node(
        "DLU",
        ["x", "kernels", "offsets"],
        ["y"],
        domain="dlu_deploy",
        kernel_size=k,
        group=g,
        scale=s,
        plugin_version="1",
    )
    inputs = {
        "x": (dtype, ["n", "c", "h", "w"]),
        "kernels": (dtype, _dyn(g * k * k)),
        "offsets": (dtype, _dyn(g * 2 * s * s)),
    }
    return _model([node], inputs, ["y"], output_type=dtype)


def _inputs(
    seed: int, n: int, c: int, h: int, w: int, k: int, g: int, s: int
) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    kernels = torch.randn(n, g, k * k, h, w, generator=gen).softmax(2).reshape(n, g * k * k, h, w)
    return {
        "x": torch.randn(n, c, h, w, generator=gen),
        "kernels": kernels,
        "offsets": torch.randn(n, g * 2 * s * s, h, w, generator=gen) * 2.5,
    }


def _run(session: object, feeds: dict[str, torch.Tensor]) -> np.ndarray:
    return session.run(None, {name: t.numpy() for name, t in feeds.items()})[0]  # type: ignore[attr-defined]


def _feeds(feeds: dict[str, torch.Tensor], fp16: bool) -> dict[str, torch.Tensor]:
    return {name: t.half() if fp16 else t for name, t in feeds.items()}


def _check(got: np.ndarray, fp16: bool, want_fp32: torch.Tensor, want_fp16: torch.Tensor) -> None:
    """fp32: within GRAPH_ATOL of the PyTorch reference; fp16: the fp16 kernel, bit for bit."""
    if fp16:
        assert got.dtype == np.float16 and np.array_equal(got, want_fp16.numpy())
    else:
        assert got.dtype == np.float32 and np.abs(got - want_fp32.numpy()).max() <= GRAPH_ATOL


@pytest.mark.parametrize("fp16", FP16, ids=["fp32", "fp16"])
@pytest.mark.parametrize(
    ("k", "g", "s", "shapes"),
    [
        (5, 1, 2, [(1, 8, 5, 7), (2, 8, 3, 9)]),
        (3, 4, 3, [(2, 8, 3, 1), (1, 8, 1, 4)]),
        (7, 2, 4, [(1, 4, 6, 6), (3, 4, 2, 5)]),
    ],
)
def test_dlu_node_at_several_shapes(
    k: int, g: int, s: int, shapes: list[tuple[int, ...]], fp16: bool
) -> None:
    session = make_session(_dlu_model(k, g, s, TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT))
    for n, c, h, w in shapes:  # one session, dynamic N, H, W
        feeds = _inputs(n + c + k + h, n, c, h, w, k, g, s)
        want = reference.dlu(feeds["x"], feeds["kernels"], feeds["offsets"], k, g, s)
        half = _feeds(feeds, True)
        want16 = dlu(half["x"], half["kernels"], half["offsets"], k, g, s)
        _check(_run(session, _feeds(feeds, fp16)), fp16, want, want16)


@pytest.mark.parametrize("fp16", FP16, ids=["fp32", "fp16"])
def test_carafe_node_and_mmcv_carafe_node(fp16: bool) -> None:
    k, g, s = 5, 2, 2
    dtype = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    inputs = {
        "x": (dtype, ["n", 6, "h", "w"]),
        "masks": (dtype, ["n", g * k * k, "H", "W"]),
    }
    ours = helper.make_node(
        "CARAFE",
        ["x", "masks"],
        ["y"],
        domain="dlu_deploy",
        kernel_size=k,
        group=g,
        scale=s,
        plugin_version="1",
    )
    mmcv = helper.make_node(
        "MMCVCARAFE",
        ["x", "masks"],
        ["y"],
        domain="mmcv",
        kernel_size=k,
        group_size=g,
        scale_factor=float(s),
    )
    for node, opsets in (
        (ours, OPSETS),
        (mmcv, [helper.make_opsetid("", 17), helper.make_opsetid("mmcv", 1)]),
    ):
        session = make_session(_model([node], inputs, ["y"], opsets=opsets, output_type=dtype))
        for n, h, w in ((2, 4, 5), (1, 3, 7)):
            gen = torch.Generator().manual_seed(n * h * w)
            x = torch.randn(n, 6, h, w, generator=gen)
            masks = (
                torch.randn(n, g, k * k, s * h, s * w, generator=gen)
                .softmax(2)
                .reshape(n, -1, s * h, s * w)
            )
            want16 = carafe(x.half(), masks.half(), k, g, s)
            got = _run(session, _feeds({"x": x, "masks": masks}, fp16))
            _check(got, fp16, reference.carafe(x, masks, k, g, s), want16)


@pytest.mark.parametrize("fp16", FP16, ids=["fp32", "fp16"])
@pytest.mark.parametrize(
    ("k", "d", "stride", "combine"), [(3, 1, 1, 0), (5, 2, 2, 1), (13, 1, 1, 0)]
)
def test_ddf_node(k: int, d: int, stride: int, combine: int, fp16: bool) -> None:
    dtype = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    node = helper.make_node(
        "DDF",
        ["x", "cf", "sf"],
        ["y"],
        domain="dlu_deploy",
        kernel_size=k,
        dilation=d,
        stride=stride,
        combine=combine,
        plugin_version="1",
    )
    inputs = {
        "x": (dtype, _dyn(5)),
        "cf": (dtype, ["n", 5, k, k]),
        "sf": (dtype, ["n", k * k, "ho", "wo"]),
    }
    session = make_session(_model([node], inputs, ["y"], output_type=dtype))
    for n, h, w in ((2, 9, 11), (1, 6, 4)):
        gen = torch.Generator().manual_seed(k + d + h)
        feeds = {
            "x": torch.randn(n, 5, h, w, generator=gen),
            "cf": torch.randn(n, 5, k, k, generator=gen) * 0.2,
            "sf": torch.randn(n, k * k, h // stride, w // stride, generator=gen) * 0.2,
        }
        want = reference.ddf(*feeds.values(), k, d, stride, "mul" if combine == 0 else "add")
        want16 = ddf(*_feeds(feeds, True).values(), k, d, stride, combine)
        _check(_run(session, _feeds(feeds, fp16)), fp16, want, want16)


class _MmcvCarafe(torch.autograd.Function):
    """mmcv.ops.carafe.CARAFEFunction as mmcv exports it: its symbolic, transcribed (mmcv 2.x
    `g.op('mmcv::MMCVCARAFE', features, masks, kernel_size_i=..., group_size_i=...,
    scale_factor_f=...)`); the forward runs a compiled op, as mmcv's runs its extension."""

    @staticmethod
    def symbolic(g, features, masks, kernel_size, group_size, scale_factor):  # type: ignore[no-untyped-def]
        return g.op(
            "mmcv::MMCVCARAFE",
            features,
            masks,
            kernel_size_i=kernel_size,
            group_size_i=group_size,
            scale_factor_f=scale_factor,
        )

    @staticmethod
    def forward(ctx, features, masks, kernel_size, group_size, scale_factor):  # type: ignore[no-untyped-def]
        return carafe(features, masks, kernel_size, group_size, scale_factor)


class _MmcvCarafeModule(torch.nn.Module):
    """mmcv.ops.CARAFE(kernel_size=5, group_size=1, scale_factor=2) behind a 1x1 mask conv."""

    def __init__(self) -> None:
        super().__init__()
        self.mask = torch.nn.Conv2d(8, 25 * 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        masks = torch.nn.functional.pixel_shuffle(self.mask(x), 2).softmax(1)
        return _MmcvCarafe.apply(x, masks, 5, 1, 2)  # type: ignore[no-any-return]


def test_mmcv_carafe_exported_the_way_mmcv_does(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = _MmcvCarafeModule().eval()
    path = tmp_path / "mmcv_carafe.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.randn(1, 8, 6, 7),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}},
        )
    model = onnx.load(path)
    (node,) = [n for n in model.graph.node if n.domain == "mmcv"]
    attributes = {a.name: a.type for a in node.attribute}
    assert node.op_type == "MMCVCARAFE"
    assert attributes["scale_factor"] == onnx.AttributeProto.FLOAT
    model.ir_version = min(model.ir_version, IR_VERSION)
    onnx.save(model, path)
    session = make_session(path)
    for shape in ((1, 8, 6, 7), (2, 8, 4, 9)):
        x = torch.randn(shape)
        with torch.no_grad():  # the same module with the reference op (independent of the kernels)
            masks = torch.nn.functional.pixel_shuffle(module.mask(x), 2).softmax(1)
            want = reference.carafe(x, masks, 5, 1, 2).numpy()
        assert np.abs(session.run(None, {"x": x.numpy()})[0] - want).max() <= GRAPH_ATOL


def test_float16_graph_matches_the_fp16_kernel_bit_for_bit() -> None:
    """A float16 graph runs the fp16 kernels natively (fp32 math, one rounding), no Casts."""
    k, g, s = 3, 2, 2
    feeds = {name: t.half() for name, t in _inputs(4, 2, 8, 5, 6, k, g, s).items()}
    relu = helper.make_node("Relu", ["y"], ["z"])
    model = _dlu_model(k, g, s, TensorProto.FLOAT16)
    model.graph.node.append(relu)
    model.graph.output[0].name = "z"
    got = _run(make_session(model), feeds)
    assert got.dtype == np.float16
    want = dlu(feeds["x"], feeds["kernels"], feeds["offsets"], k, g, s).relu()
    assert np.array_equal(got, want.numpy())


def _dlupack_nodes(prefix: str, pack: reference.DLUPack, x: str, out: str) -> tuple[list, list]:
    """Plugin-mode nodes of a DLUPack (compressor, kernel space + group softmax, offsets, DLU)."""
    k, g, s = pack.up_kernel, pack.up_group, pack.scale_factor
    inits = [
        numpy_helper.from_array(p.detach().numpy(), f"{prefix}.{name}")
        for name, p in pack.state_dict().items()
    ]
    inits.append(
        numpy_helper.from_array(np.array([0, g, k * k, -1], np.int64), f"{prefix}.grouped")
    )
    pad = (pack.encoder_kernel - 1) * pack.encoder_dilation // 2
    conv = {
        "kernel_shape": [pack.encoder_kernel] * 2,
        "pads": [pad] * 4,
        "dilations": [pack.encoder_dilation] * 2,
    }
    p = prefix
    nodes = [
        helper.make_node(
            "Conv",
            [x, f"{p}.channel_compressor.weight", f"{p}.channel_compressor.bias"],
            [f"{p}.z"],
        ),
        helper.make_node(
            "Conv",
            [f"{p}.z", f"{p}.kernel_space_generator.weight", f"{p}.kernel_space_generator.bias"],
            [f"{p}.logits"],
            **conv,
        ),
        helper.make_node("Shape", [f"{p}.logits"], [f"{p}.shape"]),
        helper.make_node("Reshape", [f"{p}.logits", f"{p}.grouped"], [f"{p}.logits_g"]),
        helper.make_node("Softmax", [f"{p}.logits_g"], [f"{p}.kernels_g"], axis=2),
        helper.make_node("Reshape", [f"{p}.kernels_g", f"{p}.shape"], [f"{p}.kernels"]),
        helper.make_node(
            "Conv",
            [f"{p}.z", f"{p}.conv_offset.weight", f"{p}.conv_offset.bias"],
            [f"{p}.offsets"],
            **conv,
        ),
        helper.make_node(
            "DLU",
            [x, f"{p}.kernels", f"{p}.offsets"],
            [out],
            domain="dlu_deploy",
            kernel_size=k,
            group=g,
            scale=s,
            plugin_version="1",
        ),
    ]
    return nodes, inits


def test_fpn_like_neck_with_chained_dlu_nodes(tmp_path: Path) -> None:
    """Top-down path of an FPN with DLU upsamplers: p4 + DLU(p5), then p3 + DLU(that)."""
    torch.manual_seed(0)
    up5 = reference.DLUPack(16, 2, up_kernel=5, up_group=1, compressed_channels=8).eval()
    up4 = reference.DLUPack(16, 2, up_kernel=3, up_group=2, compressed_channels=8).eval()
    nodes5, inits5 = _dlupack_nodes("up5", up5, "p5", "u5")
    nodes4, inits4 = _dlupack_nodes("up4", up4, "m4", "u4")
    nodes = [
        *nodes5,
        helper.make_node("Add", ["p4", "u5"], ["m4"]),
        *nodes4,
        helper.make_node("Add", ["p3", "u4"], ["m3"]),
    ]
    inputs = {
        "p5": (TensorProto.FLOAT, ["n", 16, "h", "w"]),
        "p4": (TensorProto.FLOAT, ["n", 16, "h2", "w2"]),
        "p3": (TensorProto.FLOAT, ["n", 16, "h4", "w4"]),
    }
    model = _model(nodes, inputs, ["m4", "m3"], initializers=inits5 + inits4)
    onnx.checker.check_model(model)
    path = tmp_path / "neck.onnx"
    onnx.save(model, path)
    session = make_session(path, intra_op_threads=1)
    p5, p4, p3 = torch.randn(2, 16, 5, 7), torch.randn(2, 16, 10, 14), torch.randn(2, 16, 20, 28)
    m4_got, m3_got = session.run(None, {"p5": p5.numpy(), "p4": p4.numpy(), "p3": p3.numpy()})
    with torch.no_grad():
        m4 = p4 + up5(p5)
        m3 = p3 + up4(m4)
    assert np.abs(m4_got - m4.numpy()).max() <= GRAPH_ATOL
    assert np.abs(m3_got - m3.numpy()).max() <= GRAPH_ATOL
    assert onnx.load(path).graph.node[-2].domain == "dlu_deploy"  # the file keeps its own domain


def test_portable_graph_runs_without_custom_ops(tmp_path: Path) -> None:
    class PortableDlu(torch.nn.Module):
        def forward(
            self, x: torch.Tensor, kernels: torch.Tensor, offsets: torch.Tensor
        ) -> torch.Tensor:
            return reference.dlu(x, kernels, offsets, 3, 1, 2)

    feeds = _inputs(8, 1, 4, 5, 6, 3, 1, 2)
    path = tmp_path / "portable.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            PortableDlu(),
            tuple(feeds.values()),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=list(feeds),
        )
    session = make_session(path)
    want = reference.dlu(feeds["x"], feeds["kernels"], feeds["offsets"], 3, 1, 2).numpy()
    assert np.abs(_run(session, feeds) - want).max() <= GRAPH_ATOL


def test_shape_errors_are_raised_by_run_naming_the_node_and_the_session_recovers() -> None:
    model = _dlu_model(3, 1, 2)
    model.graph.node[0].name = "up/DLU"
    session = make_session(model)
    feeds = _inputs(1, 1, 4, 5, 6, 3, 1, 2)
    bad = dict(feeds, offsets=feeds["offsets"][:, :, :4])
    with pytest.raises(
        Exception,
        match=r'dlu_deploy::DLU node "up/DLU": input offsets has shape \[1, 8, 4, 6\], '
        r"expected \[1, 8, 5, 6\] \(N, group\*2\*scale\^2, H, W",
    ):
        _run(session, bad)
    with pytest.raises(Exception, match="x has 4 channels, which group = 3 does not split"):
        _run(
            make_session(_dlu_model(3, 3, 2)),
            dict(_inputs(1, 1, 3, 5, 6, 3, 3, 2), x=torch.randn(1, 4, 5, 6)),
        )
    want = reference.dlu(feeds["x"], feeds["kernels"], feeds["offsets"], 3, 1, 2).numpy()
    assert np.abs(_run(session, feeds) - want).max() <= GRAPH_ATOL
    empty = {name: t[:0] for name, t in feeds.items()}
    assert _run(session, empty).shape == (0, 4, 10, 12)


@pytest.mark.parametrize(
    ("node", "needle"),
    [
        (
            helper.make_node(
                "DLU", ["x", "k", "o"], ["y"], domain="dlu_deploy", kernel_size=4, group=1, scale=2
            ),
            "attribute kernel_size = 4 is invalid. Use kernel_size = an odd integer in [1, 15]",
        ),
        (
            helper.make_node(
                "DLU", ["x", "k", "o"], ["y"], domain="dlu_deploy", kernel_size=3, group=1
            ),
            "the required attribute scale is missing",
        ),
        (
            helper.make_node(
                "DLU", ["x", "k", "o"], ["y"], domain="dlu_deploy", kernel_size=3, group=1, scale=9
            ),
            "attribute scale = 9 is invalid",
        ),
        (
            helper.make_node(
                "CARAFE", ["x", "k"], ["y"], domain="dlu_deploy", kernel_size=3, group=0, scale=2
            ),
            "attribute group = 0 is invalid",
        ),
        (
            helper.make_node(
                "DLU",
                ["x", "k", "o"],
                ["y"],
                domain="dlu_deploy",
                kernel_size=3,
                group=1,
                scale=2,
                plugin_version="2",
            ),
            'plugin_version = "2" is not supported',
        ),
        (
            helper.make_node(
                "DDF",
                ["x", "k", "o"],
                ["y"],
                domain="dlu_deploy",
                kernel_size=3,
                dilation=1,
                stride=1,
                combine=3,
            ),
            "attribute combine = 3 is invalid. Use combine = 0 (mul) or 1 (add)",
        ),
        (
            helper.make_node(
                "MMCVCARAFE",
                ["x", "k"],
                ["y"],
                domain="mmcv",
                kernel_size=3,
                group_size=1,
                scale_factor=2.5,
            ),
            "attribute scale_factor = 2.5 is invalid. Use scale_factor = a whole number in [1, 8]",
        ),
    ],
)
def test_bad_attributes_are_rejected_when_the_session_is_made(
    node: onnx.NodeProto, needle: str
) -> None:
    node.name = "bad"
    inputs = {name: (TensorProto.FLOAT, None) for name in node.input}
    opsets = [*OPSETS, helper.make_opsetid("mmcv", 1)]
    with pytest.raises(OpArgumentError) as raised:
        make_session(_model([node], inputs, ["y"], opsets=opsets))
    assert f'{node.domain}::{node.op_type} node "bad": ' in str(raised.value)
    assert needle in str(raised.value)


def test_mixed_dtypes_are_rejected_when_the_session_is_made() -> None:
    node = helper.make_node(
        "DLU", ["x", "k", "o"], ["y"], domain="dlu_deploy", kernel_size=3, group=1, scale=2
    )
    inputs = {
        "x": (TensorProto.FLOAT, None),
        "k": (TensorProto.FLOAT16, None),
        "o": (TensorProto.FLOAT, None),
    }
    with pytest.raises(OpArgumentError, match="input kernels is float16 but x is float32"):
        make_session(_model([node], inputs, ["y"]))


def test_unknown_op_and_wrong_arity_are_onnxruntime_errors() -> None:
    unknown = helper.make_node("Upsample", ["x", "k", "o"], ["y"], domain="dlu_deploy")
    two_inputs = helper.make_node(
        "DLU", ["x", "k"], ["y"], domain="dlu_deploy", kernel_size=3, group=1, scale=2
    )
    for node, needle in (
        (unknown, "Upsample.* is not a registered function/op"),
        (two_inputs, "has input size 2 not in range"),
    ):
        inputs = {name: (TensorProto.FLOAT, None) for name in node.input}
        with pytest.raises(Exception, match=needle):
            make_session(_model([node], inputs, ["y"]))


def test_missing_library_is_reported_when_the_session_is_made(tmp_path: Path) -> None:
    model_path = tmp_path / "dlu.onnx"
    onnx.save(_dlu_model(3, 1, 2), model_path)
    code = (
        "from dlu_deploy.ort import make_session\n"
        "from dlu_deploy.errors import UserError\n"
        "try:\n"
        f"    make_session({str(model_path)!r})\n"
        "except UserError as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"DLU_DEPLOY_LIB_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        cwd=Path(__file__).resolve().parents[1],
    )
    assert (
        result.stdout.startswith("UserError") and "libdlu_ort_ops.so was not found" in result.stdout
    )
    assert "ONNXRUNTIME_INCLUDE_DIR" in result.stdout


def test_custom_ops_library_serves_a_plain_onnxruntime_session() -> None:
    """What C, C++ and Triton users do: register the library on their own session options."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.register_custom_ops_library(str(custom_ops_library()))
    session = onnxruntime.InferenceSession(
        _dlu_model(5, 2, 2).SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    feeds = _inputs(6, 2, 8, 4, 5, 5, 2, 2)
    want = dlu(feeds["x"], feeds["kernels"], feeds["offsets"], 5, 2, 2).numpy()
    assert np.array_equal(_run(session, feeds), want)


def test_results_do_not_depend_on_the_intra_op_threads() -> None:
    feeds = _inputs(9, 2, 96, 7, 9, 5, 1, 2)
    results = [_run(make_session(_dlu_model(5, 1, 2), intra_op_threads=t), feeds) for t in (1, 2)]
    assert np.array_equal(results[0], results[1])


def test_torch_ops_and_session_agree_for_every_op() -> None:
    """The same kernels behind both entry points: identical fp32 results."""
    feeds = _inputs(6, 2, 8, 4, 5, 5, 2, 2)
    got = _run(make_session(_dlu_model(5, 2, 2)), feeds)
    assert np.array_equal(got, dlu(feeds["x"], feeds["kernels"], feeds["offsets"], 5, 2, 2).numpy())
    masks = torch.rand(2, 9, 8, 10)
    node = helper.make_node(
        "CARAFE", ["x", "m"], ["y"], domain="dlu_deploy", kernel_size=3, group=1, scale=2
    )
    session = make_session(_model([node], {"x": (1, _dyn(8)), "m": (1, _dyn(9))}, ["y"]))
    assert np.array_equal(
        _run(session, {"x": feeds["x"], "m": masks}), carafe(feeds["x"], masks, 3, 1, 2).numpy()
    )
    cf, sf = torch.rand(2, 8, 3, 3), torch.rand(2, 9, 4, 5)
    node = helper.make_node(
        "DDF",
        ["x", "cf", "sf"],
        ["y"],
        domain="dlu_deploy",
        kernel_size=3,
        dilation=1,
        stride=1,
        combine=1,
    )
    session = make_session(
        _model([node], {"x": (1, _dyn(8)), "cf": (1, ["n", 8, 3, 3]), "sf": (1, _dyn(9))}, ["y"])
    )
    got = _run(session, {"x": feeds["x"], "cf": cf, "sf": sf})
    assert np.array_equal(got, ddf(feeds["x"], cf, sf, 3, 1, 1, 1).numpy())
