"""Argument checks shared by the reference ops; limits are those of docs/ops.md."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dlu_deploy.errors import OpArgumentError

MAX_KERNEL_SIZE = 15
MAX_SCALE = 8
FLOAT_DTYPES = (torch.float32, torch.float16, torch.float64)


def compute_dtype(t: torch.Tensor) -> torch.dtype:
    """The dtype the ops compute in: float32 for float16 and float32 (as the kernels do),
    float64 for float64 (the noise-floor reference of `dlu-deploy validate`)."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def require(condition: bool, problem: str, fix: str) -> None:
    if not condition:
        raise OpArgumentError(problem, fix)


def check_kernel_size(op: str, kernel_size: int) -> None:
    require(
        isinstance(kernel_size, int)
        and kernel_size % 2 == 1
        and 1 <= kernel_size <= MAX_KERNEL_SIZE,
        f"{op}: kernel_size={kernel_size!r} is not allowed.",
        f"Use an odd kernel size between 1 and {MAX_KERNEL_SIZE} "
        "(the window is centred on a pixel).",
    )


def check_scale(op: str, scale: int) -> None:
    require(
        isinstance(scale, int) and 1 <= scale <= MAX_SCALE,
        f"{op}: scale={scale!r} is not allowed.",
        f"Use an integer upsampling factor between 1 and {MAX_SCALE}.",
    )


def check_groups(op: str, channels: int, group: int) -> None:
    require(
        isinstance(group, int) and group >= 1 and channels % group == 0,
        f"{op}: {channels} channels cannot be split into group={group!r} equal groups.",
        "Use a group count >= 1 that divides the channel count.",
    )


def check_tensor(op: str, name: str, t: torch.Tensor, dtype: torch.dtype | None = None) -> None:
    require(
        t.dim() == 4,
        f"{op}: {name} has shape {tuple(t.shape)}, expected 4 dimensions (N, C, H, W).",
        "Pass NCHW tensors.",
    )
    require(
        t.dtype in FLOAT_DTYPES,
        f"{op}: {name} has dtype {t.dtype}, expected float32, float16 or float64.",
        "Cast the inputs to float32 (or float16, or float64 for a reference run).",
    )
    if dtype is not None:
        require(
            t.dtype == dtype,
            f"{op}: {name} has dtype {t.dtype} but the features are {dtype}.",
            "Give all inputs of one call the same dtype.",
        )


def check_shape(op: str, name: str, t: torch.Tensor, expected: Sequence[int], meaning: str) -> None:
    """Check a static shape; symbolic dims (during export) are compared as expressions."""
    require(
        tuple(t.shape) == tuple(expected),
        f"{op}: {name} has shape {tuple(t.shape)}, expected {tuple(expected)} ({meaning}).",
        "Check that the op's parameters match the tensors produced by the model.",
    )
