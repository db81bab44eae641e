"""The edge runtime without a GPU: its import guarantee, engine-file and sidecar checks, input
checks and library location. (Running engines: tests/test_runner_tensorrt.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dlu_deploy import libraries
from dlu_deploy.errors import UserError
from dlu_deploy.runtime import Engine, TensorSpec
from dlu_deploy.runtime import sidecar as sc
from dlu_deploy.runtime.io import check_feed

ROOT = Path(__file__).resolve().parents[1]

try:
    import tensorrt  # noqa: F401

    HAVE_TRT = True
except ImportError:
    HAVE_TRT = False

BLOCKED_IMPORT = """
import importlib.abc, sys

class Refuse(importlib.abc.MetaPathFinder):
    # What an edge device may lack: torch above all, and the host-side tooling.
    blocked = ("torch", "onnx", "onnxruntime", "rich", "polygraphy")  # rich, polygraphy last

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.blocked:
            raise ImportError(f"{name} is blocked in this test")
        return None

sys.meta_path.insert(0, Refuse())
import dlu_deploy.runtime
from dlu_deploy.errors import UserError
from dlu_deploy.runtime import Engine, cuda, sidecar, trt_api
try:
    Engine(sys.argv[1])
except UserError as error:
    print("UserError:", error.problem)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in Refuse.blocked)
print("loaded:", loaded)
if len(sys.argv) > 2:  # the command line as well (it needs rich, nothing else)
    Refuse.blocked = Refuse.blocked[:-2]
    from dlu_deploy.cli import main
    print("exit:", main(["run", sys.argv[1]]))
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in Refuse.blocked)
    print("cli loaded:", loaded)
"""


def test_runtime_and_run_command_work_without_torch(tmp_path: Path) -> None:
    """The edge install: numpy, tensorrt, pycuda (and rich for the command line) only."""
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"not an engine")
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED_IMPORT, str(engine), "--cli"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "loaded: []" in done.stdout and "cli loaded: []" in done.stdout
    if not HAVE_TRT:
        assert "UserError: TensorRT is needed to run model.engine" in done.stdout
        assert "exit: 2" in done.stdout and "TensorRT is needed" in done.stderr


def test_missing_engine_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        Engine(tmp_path / "nope.engine")


def _write_engine_with_sidecar(tmp_path: Path, payload: bytes) -> Path:
    engine = tmp_path / "model.engine"
    engine.write_bytes(payload)
    sc.write_sidecar(engine, {**BUILT_ON_ORIN, "engine": sc.file_digest(engine)})
    return engine


def test_truncated_engine_is_reported_before_tensorrt(tmp_path: Path) -> None:
    engine = _write_engine_with_sidecar(tmp_path, bytes(range(256)) * 64)
    engine.write_bytes(engine.read_bytes()[:1000])  # a copy cut short
    with pytest.raises(
        UserError, match="is 1000 bytes but its sidecar records 16384: the file is truncated"
    ):
        Engine(engine)


def test_corrupt_engine_is_reported_before_tensorrt(tmp_path: Path) -> None:
    engine = _write_engine_with_sidecar(tmp_path, bytes(range(256)) * 64)
    data = bytearray(engine.read_bytes())
    data[5000] ^= 0xFF  # same size, one byte flipped
    engine.write_bytes(bytes(data))
    with pytest.raises(UserError, match="does not match the sha256"):
        Engine(engine)


@pytest.mark.skipif(HAVE_TRT, reason="checks the message given when TensorRT is absent")
def test_engine_without_tensorrt_says_tensorrt_is_needed(tmp_path: Path) -> None:
    engine = _write_engine_with_sidecar(tmp_path, b"\x00" * 100)  # intact per its sidecar
    with pytest.raises(UserError) as error:
        Engine(engine)
    assert "TensorRT is needed to run model.engine" in error.value.problem
    assert "JetPack" in error.value.fix


def test_unreadable_sidecar(tmp_path: Path) -> None:
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"x")
    sc.sidecar_path(engine).write_text("{not json")
    with pytest.raises(UserError, match="is not valid JSON"):
        Engine(engine)
    sc.sidecar_path(engine).write_text(json.dumps({"format": 99}))
    with pytest.raises(UserError, match="is not a dlu-deploy engine sidecar"):
        Engine(engine)


# A sidecar as `dlu-deploy build` writes it (engine_build._sidecar_record), built on a Jetson Orin.
BUILT_ON_ORIN = {
    "format": 1,
    "created_by": "dlu-deploy 0.1.0",
    "created_at": "2026-11-21T10:00:00+00:00",
    "engine": {"bytes": 123, "sha256": "0" * 64},
    "onnx": {"path": "model.onnx", "bytes": 456, "sha256": "1" * 64},
    "tensorrt": {
        "version": "10.3.0.30",
        "strongly_typed": True,
        "fp16_flag": False,
        "tf32": False,
        "version_compatible": False,
    },
    "gpu": {
        "name": "Orin",
        "compute_capability": "8.7",
        "hardware_compatibility": "NONE",
        "cuda_driver": 12060,
    },
    "precision": "fp16",
    "inputs": [{"name": "image", "dtype": "DataType.HALF", "shape": [-1, 3, -1, -1]}],
    "outputs": [{"name": "seg", "dtype": "DataType.HALF", "shape": [-1, 19, -1, -1]}],
    "profiles": [
        {"image": {"min": [1, 3, 64, 64], "opt": [1, 3, 512, 512], "max": [1, 3, 1024, 1024]}}
    ],
    "plugins": [
        {
            "path": "/opt/dlu/libdlu_trt_plugins.so",
            "version": "0.1.0 (TensorRT 10.3.0 headers)",
            "bytes": 9,
            "sha256": "ab" * 32,
        }
    ],
    "plugin_nodes": ["DLU v1"],
    "workspace_bytes": None,
    "build_seconds": 61.2,
}


def _machine(version: str, gpu: str, cc: str, plugin_hash: str = "ab" * 32) -> dict:
    return {
        "tensorrt": {"version": version},
        "gpu": {"name": gpu, "compute_capability": cc},
        "plugins": [{"sha256": plugin_hash}],
    }


def test_sidecar_same_machine_is_compatible() -> None:
    assert sc.environment_mismatches(BUILT_ON_ORIN, _machine("10.3.0.30", "Orin", "8.7")) == []


@pytest.mark.parametrize(
    ("machine", "what"),
    [
        (_machine("10.16.0.1", "Orin", "8.7"), ["TensorRT version"]),
        (
            _machine("11.1.0.106", "NVIDIA H100 80GB HBM3", "9.0"),
            ["TensorRT version", "GPU compute capability", "GPU model"],
        ),
        (
            _machine("10.3.0.30", "NVIDIA A100-SXM4-40GB", "8.0"),
            ["GPU compute capability", "GPU model"],
        ),
        (_machine("10.3.0.30", "NVIDIA RTX A6000", "8.7"), ["GPU model"]),  # same SM, other model
    ],
)
def test_sidecar_other_tensorrt_or_gpu_is_refused(machine: dict, what: list[str]) -> None:
    found = sc.environment_mismatches(BUILT_ON_ORIN, machine)
    assert [m.what for m in found] == what and all(m.fatal for m in found)
    with pytest.raises(UserError) as error:
        sc.refuse_incompatible("model.engine", found)
    assert "built for another TensorRT/GPU" in error.value.problem
    assert found[0].recorded in error.value.problem and found[0].current in error.value.problem
    assert "Rebuild the engine on this machine" in error.value.fix


def test_sidecar_other_plugin_build_only_warns() -> None:
    found = sc.environment_mismatches(
        BUILT_ON_ORIN, _machine("10.3.0.30", "Orin", "8.7", "cd" * 32)
    )
    assert [(m.what, m.fatal) for m in found] == [("plugin library build", False)]
    assert sc.refuse_incompatible("model.engine", found) == found


def test_sidecar_compatibility_flags_relax_the_checks() -> None:
    portable = json.loads(json.dumps(BUILT_ON_ORIN))
    portable["tensorrt"]["version_compatible"] = True
    portable["gpu"]["hardware_compatibility"] = "AMPERE_PLUS"
    found = sc.environment_mismatches(
        portable, _machine("10.16.0.1", "NVIDIA A100-SXM4-40GB", "8.0")
    )
    assert len(found) == 3 and not any(m.fatal for m in found)


SPECS = [
    TensorSpec(
        "image",
        np.dtype(np.float16),
        (-1, 3, -1, -1),
        ((1, 3, 64, 64), (1, 3, 256, 256), (4, 3, 512, 512)),
    ),
    TensorSpec("scale", np.dtype(np.float32), (1,)),
]


def test_check_feed_accepts_names_or_order() -> None:
    image, scale = np.zeros((2, 3, 64, 100), np.float16), np.ones(1, np.float32)
    by_name = check_feed({"scale": scale, "image": image}, SPECS)
    assert list(by_name) == ["image", "scale"]
    assert check_feed([image, scale], SPECS)["image"].shape == (2, 3, 64, 100)


@pytest.mark.parametrize(
    ("feed", "message"),
    [
        ({"image": np.zeros((1, 3, 64, 64), np.float16)}, "Missing input(s) 'scale'"),
        ([np.zeros((1, 3, 64, 64), np.float16)], "1 inputs were given, 2 are needed"),
        (
            {"image": np.zeros((1, 3, 64, 64), np.float32), "scale": np.ones(1, np.float32)},
            "is float32, the model expects float16",
        ),
        (
            {"image": np.zeros((1, 3, 32, 64), np.float16), "scale": np.ones(1, np.float32)},
            "outside the engine's optimization profile (min 1x3x64x64, max 4x3x512x512)",
        ),
        (
            {"image": np.zeros((8, 3, 64, 64), np.float16), "scale": np.ones(1, np.float32)},
            "outside the engine's optimization profile",
        ),
        (
            {"image": np.zeros((1, 3, 64, 64), np.float16), "scale": np.ones(2, np.float32)},
            "'scale' has shape 2, the model expects 1",
        ),
    ],
)
def test_check_feed_errors(feed, message: str) -> None:
    with pytest.raises(UserError) as error:
        check_feed(feed, SPECS)
    assert message in str(error.value)


def test_plugin_library_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    library = tmp_path / libraries.TRT_PLUGIN_LIBRARY
    monkeypatch.setenv(libraries.LIB_DIR_ENV, str(tmp_path))
    assert libraries.library_search_dirs() == [tmp_path]
    with pytest.raises(UserError) as error:
        libraries.trt_plugin_library()
    assert str(tmp_path) in error.value.problem and "--plugins" in error.value.fix
    library.write_bytes(b"")
    assert libraries.trt_plugin_library() == library
    monkeypatch.delenv(libraries.LIB_DIR_ENV)
    dirs = libraries.library_search_dirs()
    assert dirs == [ROOT / "dlu_deploy" / "_native", ROOT / "build" / "lib"]


def test_explicit_plugin_paths_must_exist(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"nope\.so does not exist"):
        libraries.existing_plugin_paths([tmp_path / "nope.so"])


def test_plugin_library_version_of_the_built_library() -> None:
    from dlu_deploy.runtime.trt_api import plugin_library_version

    library = libraries.find_native_library(libraries.TRT_PLUGIN_LIBRARY)
    if library is None:
        pytest.skip("libdlu_trt_plugins.so is not built (needs TensorRT headers)")
    version = plugin_library_version(library)
    assert version is not None and "TensorRT" in version and "headers" in version
    assert plugin_library_version(Path(np.__file__)) is None  # not a plugin library
