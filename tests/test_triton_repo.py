"""`dlu-deploy triton-repo`: Triton model repositories for the onnxruntime and TensorRT backends.

Each config.pbtxt is read back here with protobuf's text parser into Triton's ModelConfig and
compared with the model's interface read directly with `onnx` (or the engine's sidecar). The
onnxruntime repository is also run the way Triton's onnxruntime backend loads it: register each
`model_operations` library with the session options, then open `1/model.onnx`.

Needs tritonclient (Triton's ModelConfig protobuf): the `serve` extra, e.g. scripts/setup-triton-env
and `.venv-serve/bin/python -m pytest tests/test_triton_repo.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest

pytest.importorskip(
    "tritonclient",
    reason="needs tritonclient (the serve extra): scripts/setup-triton-env, then run this file "
    "with .venv-serve/bin/python -m pytest",
)

from google.protobuf import text_format

from dlu_deploy.cli import main
from dlu_deploy.errors import UserError
from dlu_deploy.runtime.sidecar import file_digest
from dlu_deploy.triton.config import model_config_pb2, parse_config
from tests.triton_models import default_onnx, detector_onnx

NATIVE_ORT_LIBRARY_MISSING = "native onnxruntime op library not built"


def read_config(path: Path):
    config = model_config_pb2().ModelConfig()
    text_format.Parse(path.read_text(), config)
    return config


def tensors(config_entries) -> dict[str, tuple[str, list[int]]]:
    pb2 = model_config_pb2()
    return {e.name: (pb2.DataType.Name(e.data_type), list(e.dims)) for e in config_entries}


def onnx_tensors(path: Path, which: str, drop_batch: bool) -> dict[str, tuple[str, list[int]]]:
    """The ONNX file's inputs or outputs as Triton declares them, read with onnx directly."""
    names = {onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.FLOAT16: "TYPE_FP16"}
    graph = onnx.load(str(path)).graph
    found = {}
    for value in getattr(graph, which):
        t = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
        found[value.name] = (names[t.elem_type], dims[1:] if drop_batch else dims)
    return found


@pytest.fixture(scope="module")
def portable() -> Path:
    return default_onnx("portable", dynamic=True)


@pytest.fixture(scope="module")
def plugin() -> Path:
    return default_onnx("plugin", dynamic=True)


def test_onnxruntime_repository(portable, tmp_path, capsys) -> None:
    repo = tmp_path / "models"
    argv = ["triton-repo", str(portable), str(repo), "--name", "dlu", "--instances", "2"]
    argv += ["--max-queue-delay-us", "500", "--preferred-batch-size", "2", "4"]
    assert main(argv) == 0
    assert "dlu/config.pbtxt" in capsys.readouterr().out
    assert (repo / "dlu" / "1" / "model.onnx").read_bytes() == portable.read_bytes()
    config = read_config(repo / "dlu" / "config.pbtxt")
    assert (config.name, config.backend, config.max_batch_size) == ("dlu", "onnxruntime", 8)
    assert tensors(config.input) == onnx_tensors(portable, "input", drop_batch=True)
    assert tensors(config.output) == onnx_tensors(portable, "output", drop_batch=True)
    assert tensors(config.input) == {"features": ("TYPE_FP32", [256, -1, -1])}
    assert list(config.dynamic_batching.preferred_batch_size) == [2, 4]
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    [group] = config.instance_group
    assert group.count == 2 and group.kind == model_config_pb2().ModelInstanceGroup.KIND_CPU
    assert not config.HasField("model_operations")  # standard ops only
    assert not (repo / "plugins").exists()


def test_static_model_is_not_batched_by_triton(tmp_path, capsys) -> None:
    static = default_onnx("portable", dynamic=False)
    assert main(["triton-repo", str(static), str(tmp_path / "r")]) == 0
    config = read_config(tmp_path / "r" / static.stem / "config.pbtxt")
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    assert tensors(config.input) == {"features": ("TYPE_FP32", [1, 256, 8, 8])}
    assert main(["triton-repo", str(static), str(tmp_path / "s"), "--max-batch-size", "2"]) == 2
    err = capsys.readouterr().err
    assert "cannot be batched by Triton" in err and "dlu-export --dynamic" in err


def test_existing_model_needs_force(portable, tmp_path, capsys) -> None:
    assert main(["triton-repo", str(portable), str(tmp_path)]) == 0
    assert main(["triton-repo", str(portable), str(tmp_path)]) == 2
    assert "exists already" in capsys.readouterr().err
    assert main(["triton-repo", str(portable), str(tmp_path), "--force"]) == 0


def test_model_operations_name_the_library_where_the_server_sees_it(plugin, tmp_path) -> None:
    """Any onnxruntime custom-op library goes the same way; onnxruntime-extensions' is one."""
    from onnxruntime_extensions import get_library_path

    library = Path(get_library_path())
    argv = ["triton-repo", str(plugin), str(tmp_path), "--op-library", str(library)]
    assert main([*argv, "--server-repo", "/models"]) == 0
    config = read_config(tmp_path / plugin.stem / "config.pbtxt")
    assert list(config.model_operations.op_library_filename) == [f"/models/plugins/{library.name}"]
    assert (tmp_path / "plugins" / library.name).read_bytes() == library.read_bytes()
    assert main([*argv, "--force"]) == 0  # default: the repository's own absolute path
    config = read_config(tmp_path / plugin.stem / "config.pbtxt")
    expected = str(tmp_path.resolve() / "plugins" / library.name)
    assert list(config.model_operations.op_library_filename) == [expected]


def _native_ort_library() -> Path | None:
    import dlu_deploy.ort

    find = getattr(dlu_deploy.ort, "custom_ops_library", None)
    if find is None:
        return None
    try:
        return Path(find())
    except UserError:
        return None


def test_plugin_mode_repository_runs_as_tritons_onnxruntime_backend_loads_it(
    plugin, tmp_path
) -> None:
    import onnxruntime

    from dlu_deploy.ort import make_session

    if _native_ort_library() is None:
        pytest.skip(NATIVE_ORT_LIBRARY_MISSING)
    assert main(["triton-repo", str(plugin), str(tmp_path)]) == 0
    config = read_config(tmp_path / plugin.stem / "config.pbtxt")
    [library] = config.model_operations.op_library_filename
    options = onnxruntime.SessionOptions()
    options.register_custom_ops_library(library)  # what the backend does per library
    session = onnxruntime.InferenceSession(
        str(tmp_path / plugin.stem / "1" / "model.onnx"), options
    )
    x = np.random.default_rng(0).standard_normal((2, 256, 8, 8)).astype(np.float32)
    served = session.run(None, {"features": x})[0]
    np.testing.assert_array_equal(served, make_session(plugin).run(None, {"features": x})[0])


def test_plugin_mode_without_the_native_library_is_a_user_error(plugin, tmp_path, capsys):
    if _native_ort_library() is not None:
        pytest.skip("the native onnxruntime op library is built here")
    assert main(["triton-repo", str(plugin), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "libdlu_ort_ops.so" in err and "--mode portable" in err


def engine_with_sidecar(folder: Path, max_batch: int = 4) -> Path:
    """An engine file and its sidecar as dlu-deploy build writes them. The repository writer
    copies the engine and reads only the sidecar, so the engine bytes need not be a real plan."""
    engine = folder / "dlu.engine"
    engine.write_bytes(b"serialized TensorRT plan " * 40)
    sidecar = {
        "format": 1,
        "engine": file_digest(engine),
        "precision": "fp32",
        "inputs": [{"name": "features", "dtype": "DataType.FLOAT", "shape": [-1, 256, -1, -1]}],
        "outputs": [{"name": "upsampled", "dtype": "DataType.FLOAT", "shape": [-1, 256, -1, -1]}],
        "profiles": [
            {
                "features": {
                    "min": [1, 256, 8, 8],
                    "opt": [2, 256, 64, 64],
                    "max": [max_batch, 256, 128, 128],
                }
            }
        ],
        "plugins": [{"path": "/opt/dlu/libdlu_trt_plugins.so", "sha256": "ab" * 32}],
        "plugin_nodes": ["DLU v1"],
    }
    (folder / "dlu.engine.json").write_text(json.dumps(sidecar))
    return engine


def test_tensorrt_repository_and_launch_script(tmp_path) -> None:
    engine = engine_with_sidecar(tmp_path)
    plugins = tmp_path / "libdlu_trt_plugins.so"
    plugins.write_bytes(b"\x7fELF plugin library")
    repo = tmp_path / "models"
    assert main(["triton-repo", str(engine), str(repo), "--plugins", str(plugins)]) == 0
    config = read_config(repo / "dlu" / "config.pbtxt")
    assert (config.backend, config.default_model_filename) == ("tensorrt", "model.plan")
    assert config.max_batch_size == 4  # the profile's max batch (below the default 8)
    assert tensors(config.input) == {"features": ("TYPE_FP32", [256, -1, -1])}
    assert tensors(config.output) == {"upsampled": ("TYPE_FP32", [256, -1, -1])}
    assert config.instance_group[0].kind == model_config_pb2().ModelInstanceGroup.KIND_GPU
    assert (repo / "dlu" / "1" / "model.plan").read_bytes() == engine.read_bytes()
    assert (repo / "dlu" / "1" / "model.plan.json").is_file()
    assert (repo / "plugins" / plugins.name).read_bytes() == plugins.read_bytes()
    # The script starts tritonserver with the plugin library for the TensorRT backend, from
    # wherever the repository is moved to.
    moved = tmp_path / "elsewhere"
    repo.rename(moved)
    env = {**os.environ, "TRITONSERVER": "echo"}
    run = subprocess.run(
        [str(moved / "launch_tritonserver.sh"), "--http-port=9000"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert run.stdout.split() == [
        f"--model-repository={moved}",
        f"--backend-config=tensorrt,plugins={moved}/plugins/libdlu_trt_plugins.so",
        "--http-port=9000",
    ]


def test_tensorrt_repository_errors(tmp_path, capsys) -> None:
    engine = engine_with_sidecar(tmp_path, max_batch=2)
    plugins = tmp_path / "libdlu_trt_plugins.so"
    plugins.write_bytes(b"lib")
    base = ["triton-repo", str(engine), str(tmp_path / "r"), "--plugins", str(plugins)]
    assert main([*base, "--max-batch-size", "8"]) == 2
    assert "larger than the batch the engine's optimization profile allows (2)" in (
        capsys.readouterr().err
    )
    assert main([*base, "--preferred-batch-size", "3"]) == 2
    assert "Preferred batch size(s) [3]" in capsys.readouterr().err
    engine.write_bytes(engine.read_bytes()[:-10])  # truncated copy
    assert main(base) == 2
    assert "truncated" in capsys.readouterr().err
    (tmp_path / "dlu.engine.json").unlink()
    assert main(base) == 2
    assert "has no sidecar" in capsys.readouterr().err


def test_config_syntax_errors_are_user_errors() -> None:
    with pytest.raises(UserError, match=r"not a valid Triton model configuration: 2:"):
        parse_config('name: "m"\nmax_batch_size: "eight"\n')
    with pytest.raises(UserError, match="not a valid Triton"):
        parse_config("dynamic_batching { max_queue_delay: 3 }")


def test_detector_outputs_reach_the_config(tmp_path) -> None:
    model = detector_onnx(tmp_path / "det.onnx")
    assert main(["triton-repo", str(model), str(tmp_path / "r"), "--max-batch-size", "2"]) == 0
    config = read_config(tmp_path / "r" / "det" / "config.pbtxt")
    assert tensors(config.output) == {
        "dets": ("TYPE_FP32", [100, 5]),
        "labels": ("TYPE_INT64", [100]),
    }
    assert tensors(config.input) == {"image": ("TYPE_FP32", [3, -1, -1])}
