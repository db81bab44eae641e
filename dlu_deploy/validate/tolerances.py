"""Tolerances: Polygraphy's semantics with precision-aware defaults and per-output overrides.

An element fails only when its absolute error exceeds `atol` AND its relative error (against
the PyTorch reference) exceeds `rtol`. Defaults: float32 graphs atol = rtol = 1e-4 (docs/ops.md:
a whole float32 graph is within 1e-4 of PyTorch); float16 graphs atol = rtol = 1e-2 (float16
keeps about 3 significant digits and errors accumulate over a network).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dlu_deploy.errors import UserError


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float


DEFAULT_TOLERANCES = {"fp32": Tolerance(1e-4, 1e-4), "fp16": Tolerance(1e-2, 1e-2)}


@dataclass(frozen=True)
class TolerancePolicy:
    """The tolerance of each output: a per-output override, else the default of the precision
    (with --atol/--rtol replacing the default's parts)."""

    default: Tolerance
    per_output: dict[str, Tolerance]

    def for_output(self, name: str) -> Tolerance:
        return self.per_output.get(name, self.default)


def make_policy(
    precision: str,
    *,
    atol: float | None = None,
    rtol: float | None = None,
    overrides: Iterable[str] = (),
    output_names: Iterable[str] | None = None,
) -> TolerancePolicy:
    """Build the policy; `overrides` are 'NAME:ATOL' or 'NAME:ATOL,RTOL' strings."""
    base = DEFAULT_TOLERANCES[precision]
    default = Tolerance(base.atol if atol is None else atol, base.rtol if rtol is None else rtol)
    _check(default, "--atol/--rtol")
    per_output: dict[str, Tolerance] = {}
    for text in overrides:
        name, sep, values = text.rpartition(":")
        parts = values.split(",")
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            numbers = []
        if not sep or not name or len(numbers) not in (1, 2):
            raise UserError(
                f"--tol '{text}' is not NAME:ATOL or NAME:ATOL,RTOL.",
                "Write e.g. --tol seg:1e-3 or --tol seg:1e-3,1e-2.",
            )
        tolerance = Tolerance(numbers[0], numbers[1] if len(numbers) == 2 else default.rtol)
        _check(tolerance, f"--tol {text}")
        per_output[name] = tolerance
    if output_names is not None:
        known = set(output_names)
        unknown = sorted(set(per_output) - known)
        if unknown:
            raise UserError(
                f"--tol names unknown output(s) {', '.join(unknown)}.",
                f"The outputs are: {', '.join(sorted(known))}.",
            )
    return TolerancePolicy(default, per_output)


def _check(tolerance: Tolerance, what: str) -> None:
    if not (tolerance.atol >= 0 and tolerance.rtol >= 0):
        raise UserError(f"{what}: tolerances must be >= 0.", "Give non-negative atol and rtol.")
