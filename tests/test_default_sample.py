"""The shipped default checkpoint: reproducible bit for bit, and a non-trivial DLUPack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from dlu_export import default

from dlu_deploy.checkpoints import load_model

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "samples" / "default" / default.FILE_NAME


def test_script_reproduces_the_shipped_file(tmp_path: Path) -> None:
    env = {"PYTHONPATH": f"{REPO}:{REPO / 'export'}", "PATH": "/usr/bin:/bin"}
    subprocess.run(
        [sys.executable, str(REPO / "samples" / "default" / "make_checkpoint.py"), str(tmp_path)],
        check=True,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert (tmp_path / default.FILE_NAME).read_bytes() == SHIPPED.read_bytes()


def test_default_is_the_shipped_file_and_non_trivial() -> None:
    assert default.default_checkpoint() == SHIPPED
    loaded = load_model(SHIPPED)
    assert loaded.arch == "dlu"
    assert loaded.inferred == {
        "channels": 256,
        "compressed_channels": 64,
        "up_kernel": 5,
        "up_group": 1,
        "scale": 2,
        "encoder_kernel": 3,
    }
    x = torch.randn(1, 256, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        kernels, offsets = loaded.model.predict(x)
    assert (
        0.5 < float(offsets.abs().mean()) < 3
    )  # offsets of about a pixel: bilinear sampling is exercised
    assert float(kernels.max()) > 2 / 25  # peaked, not uniform, kernels
    assert SHIPPED.stat().st_size < 200_000
