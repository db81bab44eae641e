"""Every sample runs end to end with --small (what CI runs): checkpoint in the original format,
export in both modes with dlu-export, validation in onnxruntime, GPU commands printed.

Each sample exits non-zero when a validation fails, so the exit status is the main check; the
output and the files it leaves are checked for what the sample is there to show.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dlu_deploy.checkpoints import read_checkpoint

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 600


def run_sample(name: str, out: Path, *extra: str) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), str(REPO / "export"), env.get("PYTHONPATH", "")]
    )
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "samples" / name / "run.py"),
            "--small",
            "--out",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT_S,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout


@pytest.mark.slow
def test_dynamic_routing(tmp_path: Path) -> None:
    out = run_sample("dynamic_routing", tmp_path)
    checkpoint = torch.load(tmp_path / "dynamic_routing_layer4.pth", weights_only=True)
    assert set(checkpoint) == {"model", "iteration"}  # dl_lib's Checkpointer layout
    assert any(k.startswith("backbone.all_cell_list.3.") for k in checkpoint["model"])
    assert "loaded as dynamic_routing" in out
    # The chosen closed cells, and the cell skipped because its only input was.
    assert "closed by their gates: all_cell_list.1.2, all_cell_list.2.0, all_cell_list.3.1" in out
    assert "skipped because every input was skipped: all_cell_list.2.3" in out
    assert "dense vs original, batch 1: max |diff| = 0" in out
    assert "PASS: 3/3 shape sets" in out
    assert "trtexec --onnx=" in out and "all 1 validations passed" in out


@pytest.mark.slow
def test_dysample_seg(tmp_path: Path) -> None:
    out = run_sample("dysample_seg", tmp_path)
    for variant in ("lp", "lp_dyscope", "pl", "pl_dyscope"):
        state = torch.load(tmp_path / f"dysample_seg_{variant}.pth", weights_only=True)
        assert {"upsample.offset.weight", "upsample.init_pos"} <= set(state)
        assert ("upsample.scope.weight" in state) == variant.endswith("dyscope")
    assert out.count("GridSample nodes: 1; custom nodes: none") == 4
    assert "plugin and portable graphs have the same ops" in out
    assert out.count("PASS: 3/3 shape sets") == 4 and "all 4 validations passed" in out


@pytest.mark.slow
def test_ddf(tmp_path: Path) -> None:
    out = run_sample("ddf", tmp_path)
    block = torch.load(tmp_path / "ddf_add_bottleneck.pth", weights_only=True)
    assert {"conv2.spatial_branch.0.weight", "conv2.channel_branch.4.std", "bn3.weight"} <= set(
        block
    )
    assert "downsample.0.weight" in torch.load(
        tmp_path / "ddf_mul_bottleneck.pth", weights_only=True
    )
    assert "given: combine=add" in out and "assumed: stride=2, combine=mul" in out
    assert "custom nodes: DDF x1" in out and "custom nodes: DDF x4" in out
    assert "--dynamicPlugins=" in out and "--combine=add" in out
    assert "validations passed" in out


@pytest.mark.slow
def test_fpn_dlu(tmp_path: Path) -> None:
    out = run_sample("fpn_dlu", tmp_path)
    path = tmp_path / "faster_rcnn_r50_unified_fpn_dlu.pth"
    # Saved as mmengine's Runner saves (numpy in the message hub: weights_only refuses it), and
    # read by the project's safe loader without trust.
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path)
    checkpoint = read_checkpoint(path)
    assert checkpoint.module is None and checkpoint.config_text
    assert "neck.upsample_modules.3.kernel_space_generator.weight" in checkpoint.state_dict
    assert "upsample 'bilinear' read from the config saved in the checkpoint's meta" in out
    assert "the whole detector" in out and "part=detector" in out and "num_classes=80" in out
    assert "NonMaxSuppression x2, RoiAlign x4, TopK x7" in out
    assert "detector.plugin.onnx" in out and "detector.portable.onnx" in out
    assert "custom nodes: DLU x4" in out and "custom nodes: CARAFE x4" in out
    for graph in (
        "dlu plugin",
        "dlu portable",
        "carafe plugin",
        "carafe portable",
        "bilinear portable",
    ):
        assert graph in out
    assert "vs bilinear" in out and "validations passed" in out
