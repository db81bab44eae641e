"""Per-output error statistics of a candidate (engine / ONNX) against the PyTorch reference.

All statistics are computed in float64 over the elements where both outputs are finite; any
NaN or Inf in either output fails the comparison (and is counted). Relative errors divide by
|reference|, with zeros replaced by float64 epsilon as Polygraphy does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from dlu_deploy.validate.tolerances import Tolerance

_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class OutputComparison:
    name: str
    shape: tuple[int, ...]
    reference_shape: tuple[int, ...]
    dtype: str
    atol: float
    rtol: float
    max_abs: float
    mean_abs: float
    max_rel: float
    mean_rel: float
    cosine: float
    required_atol: float  # smallest atol that passes at this rtol
    required_rtol: float  # smallest rtol that passes at this atol
    mismatched: int  # elements exceeding both tolerances
    nan: int  # NaN count of the candidate
    inf: int
    reference_nonfinite: int
    passed: bool

    @property
    def problem(self) -> str | None:
        """Why it failed, in words (None if it passed)."""
        if self.shape != self.reference_shape:
            return f"shape {self.shape} differs from the reference's {self.reference_shape}"
        if self.nan or self.inf or self.reference_nonfinite:
            return (
                f"non-finite values: {self.nan} NaN and {self.inf} Inf in the output, "
                f"{self.reference_nonfinite} in the reference"
            )
        if self.mismatched:
            return (
                f"{self.mismatched} elements exceed both atol {self.atol:g} and rtol {self.rtol:g}"
            )
        return None

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["problem"] = self.problem
        return record


def compare_output(
    name: str, reference: np.ndarray, candidate: np.ndarray, tolerance: Tolerance
) -> OutputComparison:
    ref = np.asarray(reference, dtype=np.float64)
    out = np.asarray(candidate, dtype=np.float64)
    common: dict[str, Any] = {
        "name": name,
        "shape": tuple(out.shape),
        "reference_shape": tuple(ref.shape),
        "dtype": str(np.asarray(candidate).dtype),
        "atol": tolerance.atol,
        "rtol": tolerance.rtol,
    }
    if ref.shape != out.shape:
        nan = float("nan")
        return OutputComparison(
            **common,
            max_abs=nan,
            mean_abs=nan,
            max_rel=nan,
            mean_rel=nan,
            cosine=nan,
            required_atol=nan,
            required_rtol=nan,
            mismatched=int(out.size),
            nan=int(np.isnan(out).sum()),
            inf=int(np.isinf(out).sum()),
            reference_nonfinite=int((~np.isfinite(ref)).sum()),
            passed=False,
        )
    finite = np.isfinite(ref) & np.isfinite(out)
    ref_f, out_f = ref[finite], out[finite]
    abs_err = np.abs(out_f - ref_f)
    magnitude = np.abs(ref_f)
    rel_err = abs_err / np.where(magnitude == 0, _EPS, magnitude)
    failing = (abs_err > tolerance.atol) & (rel_err > tolerance.rtol)
    nan_count, inf_count = int(np.isnan(out).sum()), int(np.isinf(out).sum())
    ref_nonfinite = int((~np.isfinite(ref)).sum())
    mismatched = int(failing.sum()) + int((~finite).sum())
    return OutputComparison(
        **common,
        max_abs=_max(abs_err),
        mean_abs=_mean(abs_err),
        max_rel=_max(rel_err),
        mean_rel=_mean(rel_err),
        cosine=_cosine(out_f, ref_f),
        required_atol=_max(abs_err[rel_err > tolerance.rtol]),
        required_rtol=_max(rel_err[abs_err > tolerance.atol]),
        mismatched=mismatched,
        nan=nan_count,
        inf=inf_count,
        reference_nonfinite=ref_nonfinite,
        passed=mismatched == 0,
    )


def _max(values: np.ndarray) -> float:
    return float(values.max()) if values.size else 0.0


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else 0.0


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    if norm == 0.0:
        return 1.0 if not a.any() and not b.any() else 0.0
    return float(np.dot(a.ravel(), b.ravel()) / norm)
