"""TensorRT engines with libdlu_trt_plugins.so, run on a GPU and compared with the references.

Every engine here is built from ONNX by TensorRT's own parser, so a test covers what a user
runs: the parser's field mapping, the plugins' shape expressions over an optimisation profile,
format negotiation in a strongly typed network, serialisation and enqueue. Needs TensorRT's
Python package, a CUDA GPU (with torch built for CUDA, used for device buffers), the built
library (build/lib, or DLU_DEPLOY_LIB_DIR) and, for the export tests, the exporter; each missing
piece skips with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from tests import formulas

pytestmark = pytest.mark.tensorrt

REPO = Path(__file__).resolve().parents[1]
LIBRARY_NAME = "libdlu_trt_plugins.so"
PLUGINS = ("DLU", "CARAFE", "MMCVCARAFE", "MMCVCARAFENaive", "DDF")
STATIC_LIBRARY_NAME = "libdlu_trt_plugins_static.so"

FP32_OP_ATOL = 1e-5  # docs/ops.md: float32 implementation vs the formula
FP32_GRAPH_ATOL = 1e-4  # docs/ops.md: whole exported float32 graph vs PyTorch
FP16_GRAPH_RELATIVE = 1e-2  # float16 graph vs PyTorch float32, relative to the output range


def find_library() -> Path | None:
    """DLU_DEPLOY_LIB_DIR, else the package's _native/, else build/lib (docs/architecture.md)."""
    override = os.environ.get("DLU_DEPLOY_LIB_DIR")
    if override:
        candidates = [Path(override) / LIBRARY_NAME]
    else:
        candidates = [
            REPO / "dlu_deploy" / "_native" / LIBRARY_NAME,
            REPO / "build" / "lib" / LIBRARY_NAME,
        ]
    return next((path for path in candidates if path.is_file()), None)


@pytest.fixture(scope="session")
def trt() -> ModuleType:
    tensorrt = pytest.importorskip("tensorrt", reason="TensorRT's Python package is not installed")
    if not torch.cuda.is_available():
        pytest.skip(
            "needs a CUDA GPU and torch built with CUDA (torch.cuda.is_available() is False)"
        )
    return tensorrt


@pytest.fixture(scope="session")
def library(trt: ModuleType) -> Path:
    """The plugin library, loaded into this process with IPluginRegistry::loadLibrary."""
    path = find_library()
    if path is None:
        pytest.skip(
            f"{LIBRARY_NAME} is not built: cmake -S . -B build "
            "-DTENSORRT_INCLUDE_DIR=<TensorRT include dir> && cmake --build build"
        )
    registry = trt.get_plugin_registry()
    assert registry.load_library(str(path)) is not None, f"load_library({path}) failed"
    for name in PLUGINS:
        assert registry.get_creator(name, "1", "") is not None, f"{name} version 1 not registered"
    return path


def capturing_logger(trt: ModuleType) -> Any:
    class CapturingLogger(trt.ILogger):  # type: ignore[name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            if severity <= trt.ILogger.Severity.WARNING:
                self.messages.append(msg)

    return CapturingLogger()


Profile = Mapping[str, tuple[Sequence[int], Sequence[int], Sequence[int]]]


def build_engine(
    trt: ModuleType,
    model: Path,
    profile: Profile,
    *,
    logger: Any | None = None,
    plugins_to_serialize: Sequence[Path] = (),
) -> bytes:
    logger = logger or trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    # TensorRT 10: the plugin's I/O types follow the graph only in a strongly typed network;
    # TensorRT 11 keeps the flag for compatibility and ignores it (always strongly typed).
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(model)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise AssertionError(f"ONNX parse failed: {errors}")
    config = builder.create_builder_config()
    config.clear_flag(trt.BuilderFlag.TF32)  # fp32 comparisons at 1e-5 / 1e-4
    optimisation_profile = builder.create_optimization_profile()
    for name, (smallest, typical, largest) in profile.items():
        optimisation_profile.set_shape(name, smallest, typical, largest)
    config.add_optimization_profile(optimisation_profile)
    if plugins_to_serialize:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
        config.plugins_to_serialize = [str(path) for path in plugins_to_serialize]
    plan = builder.build_serialized_network(network, config)
    assert plan is not None, "engine build failed"
    return bytes(plan)


def run_engine(
    trt: ModuleType, plan: bytes, inputs: Mapping[str, torch.Tensor], *, host_code: bool = False
) -> list[torch.Tensor]:
    """Outputs in the engine's I/O order, on the CPU."""
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    runtime.engine_host_code_allowed = host_code
    engine = runtime.deserialize_cuda_engine(plan)
    assert engine is not None, "engine deserialisation failed"
    context = engine.create_execution_context()
    buffers = {name: tensor.contiguous().cuda() for name, tensor in inputs.items()}
    for name, tensor in buffers.items():
        assert context.set_input_shape(name, tuple(tensor.shape))
        context.set_tensor_address(name, tensor.data_ptr())
    outputs = []
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        if engine.get_tensor_mode(name) != trt.TensorIOMode.OUTPUT:
            continue
        dtype = (
            torch.float16 if engine.get_tensor_dtype(name) == trt.DataType.HALF else torch.float32
        )
        output = torch.full(
            tuple(context.get_tensor_shape(name)), float("nan"), dtype=dtype, device="cuda"
        )
        context.set_tensor_address(name, output.data_ptr())
        outputs.append(output)
    stream = torch.cuda.Stream()
    torch.cuda.synchronize()
    assert context.execute_async_v3(stream.cuda_stream), "execute_async_v3 failed"
    stream.synchronize()
    return [output.cpu() for output in outputs]


# ---------------------------------------------------------------------------------------------
# One plugin node, built by hand, against the spec's float64 formulas (tests/formulas.py).


@dataclass(frozen=True)
class OpInput:
    name: str
    #: the input's shape when the first input is (n, C, h, w)
    shape: Callable[[int, int, int], tuple[int, int, int, int]]
    #: H and W are fixed by the attributes (DDF's channel filter is k x k)
    static_spatial: bool = False


@dataclass(frozen=True)
class OpCase:
    name: str
    op_type: str
    domain: str
    attributes: Mapping[str, Any]
    inputs: Sequence[OpInput]
    #: random inputs for the first input of shape (n, C, h, w)
    make_inputs: Callable[[np.random.Generator, int, int, int], list[np.ndarray]]
    #: the spec's formula on float64 copies of the inputs
    formula: Callable[[list[np.ndarray]], np.ndarray]


def _softmax_groups(logits: np.ndarray, taps: int) -> np.ndarray:
    n, channels, h, w = logits.shape
    grouped = logits.reshape(n, channels // taps, taps, h, w)
    grouped = np.exp(grouped - grouped.max(axis=2, keepdims=True))
    return (grouped / grouped.sum(axis=2, keepdims=True)).reshape(n, channels, h, w)


def _random(
    cases: Sequence[OpInput], make: Callable[..., np.ndarray]
) -> Callable[..., list[np.ndarray]]:
    """Inputs of the cases' shapes: features ~ N(0, 1), the rest by `make(index, rng, shape)`."""

    def inputs(rng: np.random.Generator, n: int, h: int, w: int) -> list[np.ndarray]:
        return [
            rng.standard_normal(spec.shape(n, h, w))
            if i == 0
            else make(i, rng, spec.shape(n, h, w))
            for i, spec in enumerate(cases)
        ]

    return inputs


def _dlu_case() -> OpCase:
    k, g, s, c = 3, 2, 2, 8
    inputs = [
        OpInput("x", lambda n, h, w: (n, c, h, w)),
        OpInput("kernels", lambda n, h, w: (n, g * k * k, h, w)),
        OpInput("offsets", lambda n, h, w: (n, 2 * g * s * s, h, w)),
    ]

    def make(index: int, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        if index == 1:
            return _softmax_groups(rng.standard_normal(shape), k * k)
        return 1.5 * rng.standard_normal(shape)  # offsets: many samples beyond the border

    return OpCase(
        "dlu",
        "DLU",
        "dlu_deploy",
        {"kernel_size": k, "group": g, "scale": s},
        inputs,
        _random(inputs, make),
        lambda a: formulas.dlu(a[0], a[1], a[2], k, g, s),
    )


def _carafe_case(
    name: str,
    op_type: str,
    domain: str,
    attributes: Mapping[str, Any],
    names: tuple[str, str],
    k: int,
    g: int,
    s: int,
) -> OpCase:
    c = 2 * g
    inputs = [
        OpInput(names[0], lambda n, h, w: (n, c, h, w)),
        OpInput(names[1], lambda n, h, w: (n, g * k * k, s * h, s * w)),
    ]
    return OpCase(
        name,
        op_type,
        domain,
        attributes,
        inputs,
        _random(inputs, lambda i, rng, shape: _softmax_groups(rng.standard_normal(shape), k * k)),
        lambda a: formulas.carafe(a[0], a[1], k, g, s),
    )


def _ddf_case() -> OpCase:
    k, d, s, c = 3, 2, 2, 6
    inputs = [
        OpInput("x", lambda n, h, w: (n, c, h, w)),
        OpInput("channel_filter", lambda n, h, w: (n, c, k, k), static_spatial=True),
        OpInput("spatial_filter", lambda n, h, w: (n, k * k, h // s, w // s)),
    ]
    return OpCase(
        "ddf",
        "DDF",
        "dlu_deploy",
        {"kernel_size": k, "dilation": d, "stride": s, "combine": 1},
        inputs,
        _random(inputs, lambda i, rng, shape: 0.3 * rng.standard_normal(shape)),
        lambda a: formulas.ddf(a[0], a[1], a[2], k, d, s, "add"),
    )


OP_CASES = [
    _dlu_case(),
    _carafe_case(
        "carafe",
        "CARAFE",
        "dlu_deploy",
        {"kernel_size": 5, "group": 2, "scale": 2},
        ("x", "masks"),
        5,
        2,
        2,
    ),
    # What mmcv's symbolic writes: domain mmcv, scale_factor a FLOAT, no plugin_version attribute.
    _carafe_case(
        "mmcv_carafe",
        "MMCVCARAFE",
        "mmcv",
        {"kernel_size": 3, "group_size": 1, "scale_factor": 3.0},
        ("features", "masks"),
        3,
        1,
        3,
    ),
    # mmcv's CARAFENaive export: another node name, the same function and attributes.
    _carafe_case(
        "mmcv_carafe_naive",
        "MMCVCARAFENaive",
        "mmcv",
        {"kernel_size": 5, "group_size": 1, "scale_factor": 2.0},
        ("features", "masks"),
        5,
        1,
        2,
    ),
    _ddf_case(),
]

# (n, h, w) of the first input: the profile's minimum, two runtime shapes, its maximum
PROFILE_MIN, SIZES, PROFILE_MAX = (1, 4, 4), [(1, 5, 6), (2, 8, 4)], (2, 8, 8)


def single_op_model(case: OpCase, elem_type: int) -> onnx.ModelProto:
    """One plugin node with N, H and W symbolic, as an exporter writes it."""
    inputs = []
    for spec in case.inputs:
        _, channels, h, w = spec.shape(1, 1, 1)
        spatial: list[int | str] = (
            [h, w] if spec.static_spatial else [f"{spec.name}_h", f"{spec.name}_w"]
        )
        inputs.append(
            helper.make_tensor_value_info(spec.name, elem_type, ["N", channels, *spatial])
        )
    attributes = dict(case.attributes)
    if case.domain == "dlu_deploy":
        attributes["plugin_version"] = "1"
    node = helper.make_node(
        case.op_type, [spec.name for spec in case.inputs], ["out"], domain=case.domain, **attributes
    )
    graph = helper.make_graph(
        [node],
        case.name,
        inputs,
        [helper.make_tensor_value_info("out", elem_type, ["N", "out_c", "out_h", "out_w"])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(case.domain, 1)]
    )
    model.ir_version = 10
    return model


def single_op_profile(case: OpCase, sizes: Sequence[tuple[int, int, int]]) -> Profile:
    """min, opt, max shapes of every input for first-input sizes (n, h, w)."""
    smallest, typical, largest = sizes
    return {
        spec.name: (spec.shape(*smallest), spec.shape(*typical), spec.shape(*largest))
        for spec in case.inputs
    }


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("case", OP_CASES, ids=[c.name for c in OP_CASES])
def test_single_op_engine_matches_formula(
    trt: ModuleType, library: Path, tmp_path: Path, case: OpCase, precision: str
) -> None:
    """One engine, one profile, two runtime shapes; docs/ops.md tolerances against the formula."""
    fp32 = precision == "fp32"
    model_path = tmp_path / f"{case.name}.onnx"
    onnx.save(single_op_model(case, TensorProto.FLOAT if fp32 else TensorProto.FLOAT16), model_path)
    plan = build_engine(
        trt, model_path, single_op_profile(case, [PROFILE_MIN, SIZES[1], PROFILE_MAX])
    )
    rng = np.random.default_rng(7)
    for n, h, w in SIZES:
        arrays = [
            a.astype(np.float32 if fp32 else np.float16) for a in case.make_inputs(rng, n, h, w)
        ]
        (got,) = run_engine(
            trt,
            plan,
            {spec.name: torch.from_numpy(a) for spec, a in zip(case.inputs, arrays, strict=True)},
        )
        # The formula on the very values the engine got (fp16 inputs upcast), in float64.
        want = case.formula([a.astype(np.float64) for a in arrays])
        assert got.dtype == (torch.float32 if fp32 else torch.float16)
        assert tuple(got.shape) == want.shape
        error = np.abs(got.double().numpy() - want)
        allowed = FP32_OP_ATOL if fp32 else 1e-3 + 1e-3 * np.abs(want)
        assert (error <= allowed).all(), f"{case.name} {n}x{h}x{w}: max error {error.max():.3g}"


def test_invalid_attribute_is_reported_through_tensorrt_logger(
    trt: ModuleType, library: Path, tmp_path: Path
) -> None:
    """createPlugin's message reaches the builder's logger (loadLibrary's logger finder)."""
    case = OP_CASES[0]
    model = single_op_model(case, TensorProto.FLOAT)
    for attribute in model.graph.node[0].attribute:
        if attribute.name == "kernel_size":
            attribute.i = 4
    model_path = tmp_path / "bad_dlu.onnx"
    onnx.save(model, model_path)
    logger = capturing_logger(trt)
    with pytest.raises(AssertionError, match="ONNX parse failed"):
        build_engine(trt, model_path, {}, logger=logger)
    assert any("DLU plugin" in m and '"kernel_size" = 4' in m for m in logger.messages), (
        logger.messages
    )


# ---------------------------------------------------------------------------------------------
# Plugin-mode exports of each module and of the FPN-DLU backbone + neck, against PyTorch.


def _randomize(module: torch.nn.Module, seed: int, std: float) -> torch.nn.Module:
    """Seeded non-trivial weights (offset convolutions included) and BatchNorm statistics."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * std)
    return module.eval()


def _module_checkpoint(factory: Callable[[], torch.nn.Module], seed: int) -> Callable[[], object]:
    return lambda: _randomize(factory(), seed, 0.2).state_dict()


def _fpn_dlu_checkpoint() -> object:
    models = pytest.importorskip(
        "dlu_deploy.models", reason="dlu_deploy.models (the exporter's models) missing"
    )
    config = {
        "type": "dlu",
        "up_kernel": 5,
        "up_group": 1,
        "encoder_kernel": 3,
        "encoder_dilation": 1,
        "compressed_channels": 64,
    }
    model = models.BackboneNeck(
        models.ResNet50(), models.UnifiedFPN([256, 512, 1024, 2048], 256, 5, config)
    )
    state = _randomize(model, 3, 0.02).state_dict()
    upsample = ", ".join(f"{key}={value!r}" for key, value in config.items())
    meta = {"cfg": f"model = dict(neck=dict(type='UNIFIED_FPN', upsample_cfg=dict({upsample})))"}
    return {"meta": meta, "state_dict": state}


@dataclass(frozen=True)
class ExportCase:
    name: str
    checkpoint: Callable[[], object]
    sizes: Sequence[tuple[int, int, int]]  # (N, H, W) of the first input
    plugin_ops: frozenset[str]


def _reference(name: str) -> Any:
    from dlu_deploy import reference

    return getattr(reference, name)


EXPORT_CASES = [
    ExportCase(
        "dlu",
        _module_checkpoint(lambda: _reference("DLUPack")(32, 2, compressed_channels=16), 1),
        [(1, 12, 16), (2, 20, 28)],
        frozenset({"DLU"}),
    ),
    ExportCase(
        "carafe",
        _module_checkpoint(lambda: _reference("CARAFEPack")(32, 2, compressed_channels=16), 2),
        [(1, 12, 16), (2, 20, 28)],
        frozenset({"CARAFE"}),
    ),
    ExportCase(
        "ddf",
        _module_checkpoint(lambda: _reference("DDFPack")(32, stride=2), 3),
        [(1, 12, 16), (2, 20, 28)],
        frozenset({"DDF"}),
    ),
    ExportCase(
        "ddf_up",
        _module_checkpoint(lambda: _reference("DDFUpPack")(32, scale_factor=2), 4),
        [(1, 12, 16), (2, 20, 28)],
        frozenset({"DDF"}),
    ),
    ExportCase("fpn_dlu", _fpn_dlu_checkpoint, [(1, 64, 64), (2, 96, 128)], frozenset({"DLU"})),
]


def export_plugin_mode(checkpoint: Path, output: Path, fp16: bool) -> None:
    cli = pytest.importorskip("dlu_export.cli", reason="the exporter (dlu_export) is not installed")
    argv = [str(checkpoint), str(output), "--mode", "plugin", "--dynamic"] + (
        ["--fp16"] if fp16 else []
    )
    assert cli.main(argv) == 0, f"dlu-export {' '.join(argv)} failed"


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("case", EXPORT_CASES, ids=[c.name for c in EXPORT_CASES])
def test_plugin_mode_export_engine_matches_pytorch(
    trt: ModuleType, library: Path, tmp_path: Path, case: ExportCase, precision: str
) -> None:
    checkpoints = pytest.importorskip(
        "dlu_deploy.checkpoints", reason="dlu_deploy.checkpoints missing"
    )
    checkpoint = tmp_path / f"{case.name}.pth"
    torch.save(case.checkpoint(), checkpoint)
    model_path = tmp_path / f"{case.name}_{precision}.onnx"
    export_plugin_mode(checkpoint, model_path, fp16=precision == "fp16")
    proto = onnx.load(model_path, load_external_data=False)
    assert case.plugin_ops <= {node.op_type for node in proto.graph.node}, "custom nodes missing"

    loaded = checkpoints.load_model(checkpoint)
    input_name = proto.graph.input[0].name
    channels = loaded.example_shapes[0][1]
    shapes = [(n, channels, h, w) for n, h, w in case.sizes]
    smallest = tuple(min(s[i] for s in shapes) for i in range(4))
    largest = tuple(max(s[i] for s in shapes) for i in range(4))
    plan = build_engine(trt, model_path, {input_name: (smallest, largest, largest)})

    generator = torch.Generator().manual_seed(11)
    for shape in shapes:
        x = torch.randn(shape, generator=generator)
        if precision == "fp16":
            x = x.half()
        got = run_engine(trt, plan, {input_name: x})
        with torch.no_grad():
            want = loaded.model(x.float())
        wanted = list(want) if isinstance(want, (tuple, list)) else [want]
        assert len(got) == len(wanted)
        for g, w in zip(got, wanted, strict=True):
            assert tuple(g.shape) == tuple(w.shape)
            error = float((g.double() - w.double()).abs().max())
            if precision == "fp32":
                assert error <= FP32_GRAPH_ATOL, f"{case.name} {shape}: max error {error:.3g}"
            else:
                allowed = FP16_GRAPH_RELATIVE * float(w.abs().max())
                assert error <= allowed, (
                    f"{case.name} {shape}: max error {error:.3g} > {allowed:.3g}"
                )


# ---------------------------------------------------------------------------------------------
# The other loading paths, each in a fresh process (one loading path per process).


def _run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def test_ctypes_and_init_function_register(trt: ModuleType, library: Path) -> None:
    """ctypes / an application: loading registers nothing, initLibDluTrtPlugins registers."""
    result = _run_python(
        """
        import ctypes, sys
        import tensorrt as trt
        lib = ctypes.CDLL(sys.argv[1])
        registry = trt.get_plugin_registry()
        names = sys.argv[2].split(",")
        print([n for n in names if registry.get_creator(n, "1", "") is not None])
        lib.initLibDluTrtPlugins.restype = ctypes.c_bool
        print(lib.initLibDluTrtPlugins(None, b""))
        print([n for n in names if registry.get_creator(n, "1", "") is None])
        """,
        str(library),
        ",".join(PLUGINS),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", "True", "[]"], result.stdout + result.stderr


def test_static_library_registers_when_opened_before_tensorrt(
    trt: ModuleType, library: Path
) -> None:
    """Polygraphy's --plugins order: ctypes.CDLL(libdlu_trt_plugins_static.so), then import."""
    static_library = library.with_name(STATIC_LIBRARY_NAME)
    if not static_library.is_file():
        pytest.skip(f"{STATIC_LIBRARY_NAME} is not built (needs -DTENSORRT_LIBRARY_DIR)")
    result = _run_python(
        """
        import ctypes, sys
        ctypes.CDLL(sys.argv[1])
        import tensorrt as trt
        registry = trt.get_plugin_registry()
        print([n for n in sys.argv[2].split(",") if registry.get_creator(n, "1", "") is None])
        """,
        str(static_library),
        ",".join(PLUGINS),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_engine_with_embedded_library_runs_without_loading_it(
    trt: ModuleType, library: Path, tmp_path: Path
) -> None:
    """--setPluginsToSerialize: a fresh process runs the engine without loading the library."""
    case = OP_CASES[0]
    model_path = tmp_path / "dlu.onnx"
    onnx.save(single_op_model(case, TensorProto.FLOAT), model_path)
    shape = SIZES[0]
    plan_path = tmp_path / "dlu.engine"
    profile = single_op_profile(case, [shape, shape, shape])
    plan_path.write_bytes(build_engine(trt, model_path, profile, plugins_to_serialize=[library]))
    arrays = [a.astype(np.float32) for a in case.make_inputs(np.random.default_rng(3), *shape)]
    inputs_path = tmp_path / "inputs.npz"
    named: dict[str, Any] = {spec.name: a for spec, a in zip(case.inputs, arrays, strict=True)}
    np.savez(inputs_path, **named)
    result = _run_python(
        """
        import sys
        import numpy as np, torch
        import tensorrt as trt
        from tests.test_trt_plugins import run_engine
        inputs = {k: torch.from_numpy(v) for k, v in np.load(sys.argv[2]).items()}
        (out,) = run_engine(trt, open(sys.argv[1], "rb").read(), inputs, host_code=True)
        np.save(sys.argv[3], out.numpy())
        """,
        str(plan_path),
        str(inputs_path),
        str(tmp_path / "out.npy"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    got = np.load(tmp_path / "out.npy")
    assert np.abs(got - case.formula([a.astype(np.float64) for a in arrays])).max() <= FP32_OP_ATOL


@pytest.mark.parametrize("loading", ["static", "dynamic", "embedded"])
def test_trtexec_lines_of_the_readme(
    trt: ModuleType, library: Path, tmp_path: Path, loading: str
) -> None:
    """The trtexec command lines of plugins/README.md, on an fp16 DLU node with dynamic shapes."""
    trtexec = shutil.which("trtexec")
    if trtexec is None:
        pytest.skip("trtexec is not on PATH")
    case = OP_CASES[0]
    model_path = tmp_path / "dlu.onnx"
    onnx.save(single_op_model(case, TensorProto.FLOAT16), model_path)

    def shapes(n: int, h: int, w: int) -> str:
        return ",".join(
            f"{spec.name}:" + "x".join(map(str, spec.shape(n, h, w))) for spec in case.inputs
        )

    if loading == "static" and not library.with_name(STATIC_LIBRARY_NAME).is_file():
        pytest.skip(f"{STATIC_LIBRARY_NAME} is not built (needs -DTENSORRT_LIBRARY_DIR)")
    engine = tmp_path / "dlu.engine"
    build = [
        trtexec,
        f"--onnx={model_path}",
        f"--minShapes={shapes(1, 4, 4)}",
        f"--optShapes={shapes(1, 32, 32)}",
        f"--maxShapes={shapes(2, 64, 64)}",
        f"--saveEngine={engine}",
    ]
    build += {
        "static": [f"--staticPlugins={library.with_name(STATIC_LIBRARY_NAME)}"],
        "dynamic": [f"--dynamicPlugins={library}"],
        "embedded": [
            "--versionCompatible",
            f"--dynamicPlugins={library}",
            f"--setPluginsToSerialize={library}",
        ],
    }[loading]
    result = subprocess.run(build, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    if loading == "embedded":
        # The engine carries the library: no plugin flag when running it; --versionCompatible
        # lets trtexec's runtime run the engine's embedded host code.
        run = [trtexec, f"--loadEngine={engine}", "--versionCompatible"]
        run += [f"--shapes={shapes(2, 40, 24)}"]
        result = subprocess.run(run, capture_output=True, text=True, timeout=600, check=False)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
