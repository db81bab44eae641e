"""The dlu-export command line: default export, next-step lines, and every bad input.

A bad input gives a one-paragraph `error: ... fix: ...` on stderr, exit status 1, no
traceback (unless --verbose), and no output file.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
import torch
from dlu_export import default
from dlu_export.cli import main
from torch import nn

from dlu_deploy import reference
from tests import official
from tests.helpers import max_error, randomize, run_onnx, save, torch_outputs

REPO = Path(__file__).resolve().parents[1]


def _dlu_state() -> dict[str, torch.Tensor]:
    return dict(randomize(reference.DLUPack(16, 2, compressed_channels=8), seed=1).state_dict())


def test_default_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    out = capsys.readouterr().out
    model = onnx.load(tmp_path / "dlu_default.onnx")
    assert [n.op_type for n in model.graph.node if n.domain == "dlu_deploy"] == ["DLU"]
    assert "trtexec --onnx=dlu_default.onnx --dynamicPlugins=build/lib/libdlu_trt_plugins.so" in out
    assert f"dlu-deploy validate {default.default_checkpoint()} dlu_default.onnx" in out
    assert "architecture dlu" in out and "encoder_dilation" in out and "assumed" in out
    assert [p.name for p in tmp_path.iterdir()] == ["dlu_default.onnx"]


def test_dynamic_export_prints_shape_ranges(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = save(
        randomize(reference.DySample(16, 2), seed=3).state_dict(), tmp_path / "up.pth"
    )
    output = tmp_path / "up.onnx"
    assert (
        main(
            [
                str(checkpoint),
                str(output),
                "--dynamic",
                "--mode",
                "portable",
                "--input-shape",
                "2,16,24,32",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert (
        "--minShapes=features:1x16x12x16 --optShapes=features:2x16x24x32 "
        "--maxShapes=features:4x16x48x64" in out
    )
    assert "--dynamicPlugins" not in out  # portable graphs need no plugin library
    assert "input  features ['N', 16, 'H', 'W']" in out


def test_pickled_model_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The official DySample bakes the traced W, H into its grid; the swapped reference does not."""
    model = randomize(
        nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), official.DySample(16, 2, groups=2)), seed=2
    )
    checkpoint = save(model, tmp_path / "whole.pth")
    monkeypatch.chdir(tmp_path)
    args = [
        str(checkpoint),
        "--trust-pickle",
        "--mode",
        "portable",
        "--dynamic",
        "--input-shape",
        "1,3,10,12",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "architecture pickled_module" in out and "DySample -> dysample" in out
    for shape in ((1, 3, 10, 12), (2, 3, 7, 15)):
        x = torch.randn(shape)
        got = run_onnx(tmp_path / "whole.onnx", {"input": x.numpy()})
        assert max_error(got, torch_outputs(model, x)) <= 1e-4


Setup = Callable[[Path], list[str]]


def _file(name: str, content: bytes) -> Setup:
    def setup(tmp: Path) -> list[str]:
        (tmp / name).write_bytes(content)
        return [str(tmp / name)]

    return setup


def _checkpoint(state: object, *extra: str) -> Setup:
    def setup(tmp: Path) -> list[str]:
        return [str(save(state, tmp / "in.pth")), *extra]

    return setup


def _truncated(tmp: Path) -> list[str]:
    save(_dlu_state(), tmp / "full.pth")
    data = (tmp / "full.pth").read_bytes()
    (tmp / "in.pth").write_bytes(data[: len(data) * 2 // 3])
    (tmp / "full.pth").unlink()
    return [str(tmp / "in.pth")]


def _with(key: str, value: torch.Tensor | None) -> dict[str, torch.Tensor]:
    state = _dlu_state()
    if value is None:
        del state[key]
    else:
        state[key] = value
    return state


BAD_INPUTS: list[tuple[str, Setup, str]] = [
    ("missing file", lambda tmp: [str(tmp / "nope.pth")], "does not exist"),
    (
        "corrupt",
        _file("in.pth", random.Random(0).randbytes(4096)),
        "cannot be read as a PyTorch checkpoint",
    ),
    (
        "corrupt pickle",
        _file("in.pth", b"\x80\x02" + random.Random(2).randbytes(512)),
        "cannot be read",
    ),
    ("truncated", _truncated, "truncated, corrupt or not a torch.save file"),
    (
        "unknown architecture",
        _checkpoint(nn.Conv2d(3, 4, 3).state_dict()),
        "matches no known architecture",
    ),
    (
        "unknown --arch",
        _checkpoint(_dlu_state(), "--arch", "unet"),
        "Architecture 'unet' is not known",
    ),
    ("missing key", _checkpoint(_with("conv_offset.bias", None)), "lacks 1 weights"),
    (
        "mis-shaped key",
        _checkpoint(_with("conv_offset.weight", torch.zeros(8, 4, 3, 3))),
        "'conv_offset.weight' is (8, 4, 3, 3)",
    ),
    (
        "even kernel in weights",
        _checkpoint(
            _with("kernel_space_generator.weight", torch.zeros(16, 8, 3, 3))
            | {"kernel_space_generator.bias": torch.zeros(16)}
        ),
        "up_kernel odd",
    ),
    (
        "even kernel given",
        _checkpoint(_dlu_state(), "--up-kernel", "4"),
        "--up-kernel 4 is not allowed",
    ),
    (
        "groups do not divide",
        _checkpoint(_dlu_state(), "--up-group", "3"),
        "up_group dividing 16 channels",
    ),
    (
        "shape the op cannot take",
        _checkpoint(
            dict(reference.DDFPack(16, 3, stride=2).state_dict()),
            "--stride",
            "2",
            "--input-shape",
            "1,16,7,7",
        ),
        "not divisible by stride 2",
    ),
    (
        "wrong channels",
        _checkpoint(_dlu_state(), "--input-shape", "1,3,8,8"),
        "has 16 channels, not 3",
    ),
    ("opset", _checkpoint(_dlu_state(), "--opset", "20"), "--opset 20 is not supported"),
    ("pickle without trust", _checkpoint(nn.Sequential(nn.Conv2d(3, 4, 1))), "--trust-pickle"),
]


@pytest.mark.parametrize(
    ("setup", "message"), [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS]
)
def test_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: Setup, message: str
) -> None:
    args = setup(tmp_path)
    output = tmp_path / "out.onnx"
    before = {p.name for p in tmp_path.iterdir()}
    assert main([args[0], str(output), *args[1:]]) == 1
    captured = capsys.readouterr()
    assert message in " ".join(captured.err.split())
    assert captured.err.startswith("error:") and "\nfix:" in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert {p.name for p in tmp_path.iterdir()} == before  # no output, no partial file


def test_failed_export_keeps_an_existing_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = save(_dlu_state(), tmp_path / "in.pth")
    output = tmp_path / "out.onnx"
    output.write_bytes(b"previous export")
    assert main([str(checkpoint), str(output), "--input-shape", "1,3,8,8"]) == 1
    assert output.read_bytes() == b"previous export"


def test_output_directory_must_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = save(_dlu_state(), tmp_path / "in.pth")
    assert main([str(checkpoint), str(tmp_path / "no" / "out.onnx")]) == 1
    assert "Output directory" in capsys.readouterr().err
    assert main([str(checkpoint), str(checkpoint)]) == 1
    assert "is the checkpoint itself" in capsys.readouterr().err


def test_malformed_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["x.pth", "--input-shape", "1,2,3"])
    assert info.value.code == 2
    assert "N,C,H,W" in capsys.readouterr().err


def test_verbose_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope.pth"), "--verbose"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "does not exist" in err


def test_list_archs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list-archs"]) == 0
    out = capsys.readouterr().out
    for name in (
        "dlu",
        "carafe",
        "dysample",
        "ddf",
        "ddf_up",
        "faster_rcnn_r50_unified_fpn",
        "--upsample",
    ):
        assert name in out


def test_module_entry_point_in_a_fresh_process(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "export")]))
    run = subprocess.run(
        [sys.executable, "-m", "dlu_export.cli", str(tmp_path / "missing.pth")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1
    assert "does not exist" in run.stderr and "Traceback" not in run.stderr
    assert list(tmp_path.iterdir()) == []


def test_unexpected_failures_are_reported_as_internal_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug\nwith details")

    monkeypatch.setattr("dlu_export.cli.export_model", broken)
    checkpoint = save(_dlu_state(), tmp_path / "in.pth")
    assert main([str(checkpoint), str(tmp_path / "out.onnx")]) == 3
    err = capsys.readouterr().err
    assert err.startswith("internal error: RuntimeError: a bug\n") and "--verbose" in err
    assert "Traceback" not in err
