"""Shared test utilities: seeded non-trivial weights, checkpoints on disk, ONNX Runtime runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn


def randomize(module: nn.Module, seed: int, std: float = 0.2) -> nn.Module:
    """Seeded random parameters and BatchNorm statistics (offsets, biases all non-zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point() or name.endswith("init_pos"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * std)
    return module.eval()


def save(obj: object, path: Path) -> Path:
    torch.save(obj, path)
    return path


def run_onnx(path: Path | str, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, dict(inputs))  # type: ignore[return-value]


def torch_outputs(model: nn.Module, x: torch.Tensor) -> list[np.ndarray]:
    with torch.no_grad():
        out = model(x)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o.double().numpy() for o in outs]


def max_error(got: Sequence[np.ndarray], want: Sequence[np.ndarray]) -> float:
    assert len(got) == len(want)
    errors = []
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape, (g.shape, w.shape)
        errors.append(float(np.abs(g.astype(np.float64) - w).max()))
    return max(errors)


def dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
