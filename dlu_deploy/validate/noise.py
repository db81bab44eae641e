"""The float64 noise floor: how far PyTorch fp32 itself is from the same model run in float64.

A fixed tolerance does not fit every model: a ResNet-50 + UNIFIED_FPN with the DLU neck
differs from its float64 run by up to 3e-3 (1e-4 relative) in PyTorch fp32, the bilinear neck
by 2e-5. So validate also runs the checkpoint's model in float64 and compares, per output, the
largest absolute error of PyTorch fp32 and of the deployed model against it. An output that
misses the tolerance still passes by the noise floor when

    max |deployed - fp64| <= factor * max |PyTorch fp32 - fp64|

with factor `DEFAULT_NOISE_FACTOR` = 10: another float32 implementation (other summation
orders, Winograd or FFT convolutions, fused kernels) is expected within a few times PyTorch's
own rounding error, one order of magnitude leaves room for that; a wrong weight, op or
attribute is orders of magnitude above it (a weight scaled by 1.01 is 1e5 times PyTorch's
error on the tests' models). NaN or Inf never pass. For float16 models the floor is far below
float16 rounding, so in practice they pass by the tolerance only.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

DEFAULT_NOISE_FACTOR = 10.0


@dataclass(frozen=True)
class NoiseFloor:
    name: str
    reference_error: float  # max |PyTorch fp32 - PyTorch fp64|
    candidate_error: float  # max |deployed - PyTorch fp64|
    factor: float

    @property
    def ratio(self) -> float:
        """candidate_error / reference_error (inf when PyTorch fp32 is exact and it is not)."""
        if self.reference_error > 0:
            return self.candidate_error / self.reference_error
        return 0.0 if self.candidate_error == 0 else float("inf")

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.candidate_error)) and (
            self.candidate_error <= self.factor * self.reference_error
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "passed": self.passed}


def noise_floor(
    name: str,
    fp64: np.ndarray,
    reference: np.ndarray,
    candidate: np.ndarray,
    factor: float = DEFAULT_NOISE_FACTOR,
) -> NoiseFloor:
    return NoiseFloor(
        name,
        _max_abs_error(reference, fp64),
        _max_abs_error(candidate, fp64),
        factor,
    )


def _max_abs_error(values: np.ndarray, exact: np.ndarray) -> float:
    """Largest |values - exact| in float64; NaN when shapes differ or anything is non-finite."""
    got, want = np.asarray(values, np.float64), np.asarray(exact, np.float64)
    if got.shape != want.shape or not (np.isfinite(got).all() and np.isfinite(want).all()):
        return float("nan")
    return float(np.abs(got - want).max()) if got.size else 0.0


def float64_copy(model: torch.nn.Module) -> torch.nn.Module:
    """The model with float64 parameters and buffers (the original is left as it is)."""
    return copy.deepcopy(model).double()
