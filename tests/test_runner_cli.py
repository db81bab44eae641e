"""`dlu-deploy` on CPU: exit codes, one-paragraph errors, run and bench on ONNX files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dlu_deploy.cli import EXIT_USER_ERROR, main
from dlu_deploy.onnx_info import inspect_onnx
from dlu_deploy.runtime import sidecar as sc
from dlu_deploy.validate import generate_inputs, open_candidate
from tests import runner_models

try:
    import tensorrt  # noqa: F401

    HAVE_TRT = True
except ImportError:
    HAVE_TRT = False


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = runner_models.make_reference().model
    return runner_models.export_portable(model, tmp_path_factory.mktemp("cli") / "net.onnx")


def _fails(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == EXIT_USER_ERROR
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return " ".join(captured.err.split())  # rich wraps lines


def test_build_with_missing_plugin_library(capsys, onnx_path) -> None:
    err = _fails(
        capsys,
        [
            "build",
            str(onnx_path),
            "--opt",
            "image:1x3x16x16",
            "--plugins",
            "/no/[v1]/libdlu_trt_plugins.so",
        ],
    )
    assert "error: Plugin library /no/[v1]/libdlu_trt_plugins.so does not exist." in err
    assert "fix: Pass the path of the built libdlu_trt_plugins.so" in err


def test_build_plugin_graph_without_any_plugin_library(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DLU_DEPLOY_LIB_DIR", str(tmp_path))
    graph = runner_models.dlu_plugin_graph(tmp_path / "plugin.onnx")
    err = _fails(
        capsys, ["build", str(graph), "--opt", "x:1x8x4x4,kernels:1x9x4x4,offsets:1x8x4x4"]
    )
    assert "libdlu_trt_plugins.so was not found" in err and "--plugins" in err


def test_build_needs_shapes_for_dynamic_inputs(capsys, onnx_path) -> None:
    err = _fails(capsys, ["build", str(onnx_path)])
    assert "Input 'image' has dynamic dims (Nx3xHxW) but no shapes were given" in err
    assert "--opt image:1x3x256x256" in err


def test_bad_shape_syntax(capsys, onnx_path) -> None:
    err = _fails(capsys, ["build", str(onnx_path), "--opt", "image=1x3x8x8"])
    assert "does not name an input" in err


@pytest.mark.skipif(HAVE_TRT, reason="checks the message given when TensorRT is absent")
def test_engine_without_tensorrt(capsys, tmp_path) -> None:
    (tmp_path / "m.engine").write_bytes(b"\x00" * 64)
    err = _fails(capsys, ["run", str(tmp_path / "m.engine")])
    assert "TensorRT is needed to run m.engine" in err
    err = _fails(capsys, ["build", str(tmp_path / "m.engine")])  # not even an ONNX file
    assert "is not a readable ONNX file" in err


def test_truncated_engine(capsys, tmp_path) -> None:
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\x01" * 4096)
    sc.write_sidecar(engine, {"format": 1, "engine": sc.file_digest(engine)})
    engine.write_bytes(b"\x01" * 100)
    err = _fails(capsys, ["run", str(engine)])
    assert "m.engine is 100 bytes but its sidecar records 4096: the file is truncated" in err
    assert "Copy the engine again, or rebuild it" in err


def test_verbose_shows_the_traceback(capsys, tmp_path) -> None:
    assert main(["run", str(tmp_path / "missing.engine"), "-v"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "Traceback" in err and "missing.engine does not exist." in err


def test_run_writes_the_outputs_of_seeded_inputs(capsys, onnx_path, tmp_path) -> None:
    out = tmp_path / "out.npz"
    assert (
        main(["run", str(onnx_path), "--shapes", "image:2x3x8x12", "--seed", "4", "-o", str(out)])
        == 0
    )
    assert "seg" in capsys.readouterr().out
    image = generate_inputs(open_candidate(onnx_path).inputs, {"image": (2, 3, 8, 12)}, seed=4)[
        "image"
    ]
    want = runner_models.ort_outputs(onnx_path, image)
    with np.load(out) as got:
        assert sorted(got.files) == ["feat", "seg"]
        for name in got.files:
            np.testing.assert_array_equal(got[name], want[name])


def test_run_with_inputs_npz(capsys, onnx_path, tmp_path) -> None:
    np.savez(tmp_path / "in.npz", image=np.ones((1, 3, 4, 4), np.float32))
    assert main(["run", str(onnx_path), "--inputs", str(tmp_path / "in.npz")]) == 0
    assert "1x2x8x8" in capsys.readouterr().out
    np.savez(tmp_path / "bad.npz", image=np.ones((1, 3, 4, 4), np.float64))
    err = _fails(capsys, ["run", str(onnx_path), "--inputs", str(tmp_path / "bad.npz")])
    assert "Input 'image' is float64, the model expects float32" in err


def test_bench_writes_json(capsys, onnx_path, tmp_path) -> None:
    argv = [
        "bench",
        str(onnx_path),
        "--shapes",
        "image:1x3x8x8",
        "--warmup",
        "1",
        "--iterations",
        "4",
        "--json",
        str(tmp_path / "b.json"),
    ]
    assert main(argv) == 0
    assert "onnxruntime-cpu" in capsys.readouterr().out
    data = json.loads((tmp_path / "b.json").read_text())
    assert [t["label"] for t in data["timings"]] == ["onnxruntime-cpu"] and data["iterations"] == 4


@pytest.fixture(scope="module")
def dlu_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A DLUPack state_dict (the checkpoint) and its portable dlu-export, dynamic N/H/W."""
    import torch

    from dlu_deploy.reference import DLUPack

    folder = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(1)
    module = DLUPack(8, 2, up_kernel=3, compressed_channels=8).eval()
    with torch.no_grad():
        module.conv_offset.weight.normal_(0.0, 0.3)
    torch.save(module.state_dict(), folder / "dlu.pth")
    return folder / "dlu.pth", _export(folder / "dlu.pth", folder / "dlu.onnx", "portable")


def _export(checkpoint: Path, onnx_path: Path, mode: str) -> Path:
    from dlu_export import ExportOptions, export_model

    from dlu_deploy.checkpoints import load_model

    export_model(load_model(checkpoint), onnx_path, ExportOptions(mode=mode, dynamic=True))
    return onnx_path


def test_validate_cli_pass_fail_and_json(capsys, dlu_checkpoint, tmp_path) -> None:
    checkpoint, onnx_path = dlu_checkpoint
    report = tmp_path / "report.json"
    argv = [
        "validate",
        str(checkpoint),
        str(onnx_path),
        "--shapes",
        "features:1x8x8x8",
        "--shapes",
        "features:2x8x12x6",
    ]
    assert main([*argv, "--json", str(report)]) == 0
    assert "PASS: 2/2 shape sets" in capsys.readouterr().out
    data = json.loads(report.read_text())
    assert data["passed"] and [r["shapes"]["features"] for r in data["runs"]] == [
        [1, 8, 8, 8],
        [2, 8, 12, 6],
    ]
    assert data["runs"][0]["outputs"][0]["name"] == "upsampled" and data["precision"] == "fp32"

    broken = runner_models.edit_initializer(
        onnx_path, tmp_path / "broken.onnx", "kernel_space_generator.weight", "scale", 1.05
    )
    assert main(["validate", str(checkpoint), str(broken), "--json", str(report)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "exceed both" in out
    assert not json.loads(report.read_text())["passed"]
    # a tolerance wide enough for the perturbation turns it into a PASS
    assert main(["validate", str(checkpoint), str(broken), "--tol", "upsampled:1,1"]) == 0
    capsys.readouterr()


def test_validate_cli_user_errors(capsys, dlu_checkpoint, tmp_path) -> None:
    checkpoint, onnx_path = dlu_checkpoint
    err = _fails(capsys, ["validate", str(checkpoint), str(onnx_path), "--tol", "nope:1"])
    assert "--tol names unknown output(s) nope" in err
    np.savez(tmp_path / "in.npz", image=np.zeros((1, 8, 8, 8), np.float32))
    err = _fails(
        capsys, ["validate", str(checkpoint), str(onnx_path), "--inputs", str(tmp_path / "in.npz")]
    )
    assert "Unknown input name(s) 'image'" in err
    err = _fails(capsys, ["validate", str(tmp_path / "missing.pth"), str(onnx_path)])
    assert "missing.pth" in err
    err = _fails(capsys, ["validate", str(checkpoint), str(onnx_path), "--hp", "nope=1"])
    assert "--nope does not apply to architecture 'dlu'" in err
    err = _fails(capsys, ["validate", str(checkpoint), str(onnx_path), "--hp", "scale"])
    assert "--hp 'scale' is not NAME=VALUE" in err


def test_validate_cli_with_hyper_parameter_override(capsys, dlu_checkpoint) -> None:
    checkpoint, onnx_path = dlu_checkpoint
    argv = ["validate", str(checkpoint), str(onnx_path), "--shapes", "features:1x8x8x8"]
    assert main([*argv, "--hp", "encoder-dilation=1"]) == 0  # the value it was built with
    assert "PASS" in capsys.readouterr().out


def test_validate_cli_plugin_mode_export(capsys, dlu_checkpoint, tmp_path) -> None:
    """A plugin-mode export (dlu_deploy::DLU node) through onnxruntime on the custom-op library."""
    from dlu_deploy.libraries import ORT_OPS_LIBRARY, find_native_library

    if find_native_library(ORT_OPS_LIBRARY) is None:
        pytest.skip(
            "libdlu_ort_ops.so is not built "
            "(cmake -S . -B build -DONNXRUNTIME_INCLUDE_DIR=... && cmake --build build)"
        )
    checkpoint, _ = dlu_checkpoint
    plugin = _export(checkpoint, tmp_path / "dlu_plugin.onnx", "plugin")
    assert [n.op_type for n in inspect_onnx(plugin).custom_nodes] == ["DLU"]
    report = tmp_path / "report.json"
    assert main(["validate", str(checkpoint), str(plugin), "--json", str(report)]) == 0
    assert "PASS: 3/3 shape sets" in capsys.readouterr().out
    runs = json.loads(report.read_text())["runs"]
    # the automatic sweep of a dynamic ONNX file: example shape, batch 2, double height
    assert [r["shapes"]["features"] for r in runs] == [
        [1, 8, 64, 64],
        [2, 8, 64, 64],
        [1, 8, 128, 64],
    ]
    assert all(r["outputs"][0]["max_abs"] <= 1e-4 for r in runs)


def test_bench_cli_against_the_checkpoint(capsys, dlu_checkpoint, tmp_path) -> None:
    checkpoint, onnx_path = dlu_checkpoint
    argv = [
        "bench",
        str(onnx_path),
        "--checkpoint",
        str(checkpoint),
        "--no-compile",
        "--threads",
        "1",
    ]
    assert (
        main([*argv, "--iterations", "5", "--warmup", "1", "--json", str(tmp_path / "b.json")]) == 0
    )
    out = capsys.readouterr().out
    assert "onnxruntime-cpu" in out and "torch-eager" in out
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["shapes"] == {"features": [1, 8, 64, 64]}  # the checkpoint's example shape
    assert [t["label"] for t in data["timings"]] == ["onnxruntime-cpu", "torch-eager"]


def test_validate_rebuilds_what_the_export_recorded(capsys, tmp_path) -> None:
    """A DDF 'add' block: the combine mode is not in the weights, only in what dlu-export
    recorded; validate must rebuild the model from that, and fails without it."""
    import onnx
    import torch
    from dlu_export.cli import main as export_main

    from dlu_deploy.reference import DDFPack

    torch.manual_seed(0)
    module = DDFPack(16, kernel_size=3, kernel_combine="add")
    for p in module.parameters():
        torch.nn.init.normal_(p, std=0.3)
    checkpoint = tmp_path / "ddf_add.pth"
    torch.save(module.state_dict(), checkpoint)
    exported = tmp_path / "ddf_add.onnx"
    argv = [str(checkpoint), str(exported), "--mode", "portable", "--combine", "add"]
    assert export_main([*argv, "--input-shape", "1,16,12,12"]) == 0
    capsys.readouterr()

    assert main(["validate", str(checkpoint), str(exported)]) == 0
    assert "PASS" in capsys.readouterr().out

    model = onnx.load(str(exported))
    del model.metadata_props[:]
    stripped = tmp_path / "ddf_add_stripped.onnx"
    onnx.save(model, str(stripped))
    assert main(["validate", str(checkpoint), str(stripped)]) == 1  # rebuilt as 'mul'
    assert "FAIL" in capsys.readouterr().out


def test_validate_cli_says_which_rule_passed(capsys, dlu_checkpoint, tmp_path) -> None:
    """Beyond a tolerance float32 cannot meet, the float64 noise floor decides (docs/runner.md)."""
    checkpoint, onnx_path = dlu_checkpoint
    argv = ["validate", str(checkpoint), str(onnx_path), "--shapes", "features:1x8x8x8"]
    tight = ["--atol", "1e-12", "--rtol", "1e-12"]
    assert main([*argv, *tight, "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "PASS (noise floor)" in out and "fp32 vs fp64" in out
    data = json.loads((tmp_path / "r.json").read_text())
    output = data["runs"][0]["outputs"][0]
    assert output["rule"] == "noise floor" and not output["passed"]  # the tolerance failed
    assert output["noise_floor"]["candidate_error"] <= 10 * output["noise_floor"]["reference_error"]
    assert main([*argv, *tight, "--no-fp64"]) == 1
    assert "fp32 vs fp64" not in capsys.readouterr().out
    assert main([*argv, *tight, "--noise-factor", "0"]) == 1
    capsys.readouterr()
    assert main([*argv, "--noise-factor", "-1"]) == EXIT_USER_ERROR
    assert "--noise-factor -1 is negative" in capsys.readouterr().err
