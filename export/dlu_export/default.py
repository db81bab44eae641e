"""The embedded default: a small DLUPack(256, scale 2) checkpoint with the official key names.

`samples/default/dlu_default.pth` is written by `samples/default/make_checkpoint.py`, which
calls `write_default_checkpoint`; the weights are seeded, so the file is reproduced bit for
bit. Where the source tree is absent (an installed wheel), the same file is generated into
the user's cache on first use.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from dlu_deploy.reference import DLUPack

CHANNELS = 256
SCALE = 2
SEED = 20241022  # ICPR 2024
FILE_NAME = "dlu_default.pth"
DEFAULT_OUTPUT = Path("dlu_default.onnx")
DEFAULT_SHAPE = (1, CHANNELS, 64, 64)
SAMPLES_DIR = Path(__file__).resolve().parents[2] / "samples" / "default"


def default_state_dict() -> dict[str, torch.Tensor]:
    """Seeded, non-trivial DLUPack weights: peaked kernels and offsets of about a pixel.

    (The official init zeroes the offset conv; here offsets are non-zero so that every
    consumer exercises the bilinear kernel sampling, not just nearest repetition.)
    """
    generator = torch.Generator().manual_seed(SEED)
    pack = DLUPack(CHANNELS, SCALE)
    std = {"channel_compressor": 0.06, "kernel_space_generator": 0.08, "conv_offset": 0.05}
    bias_std = {"channel_compressor": 0.1, "kernel_space_generator": 0.5, "conv_offset": 0.6}
    state = {}
    for name, tensor in pack.state_dict().items():
        module, kind = name.split(".")
        spread = std[module] if kind == "weight" else bias_std[module]
        state[name] = torch.randn(tensor.shape, generator=generator) * spread
    return state


def write_default_checkpoint(directory: Path) -> Path:
    path = directory / FILE_NAME
    torch.save(default_state_dict(), path)
    return path


def default_checkpoint() -> Path:
    """The shipped sample checkpoint, or its regenerated copy in the user cache."""
    shipped = SAMPLES_DIR / FILE_NAME
    if shipped.is_file():
        return shipped
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dlu-deploy"
    cached = cache / FILE_NAME
    if not cached.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        write_default_checkpoint(cache)
    return cached
