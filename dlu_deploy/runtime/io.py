"""Input checking shared by every backend: names, dtypes, ranks, static dims, profile bounds.

A wrong input must fail here with a message naming the tensor and the fix, not inside TensorRT
or onnxruntime with an error code. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dlu_deploy.errors import UserError

Shape = tuple[int, ...]


@dataclass(frozen=True)
class TensorSpec:
    """An engine or model tensor. `shape` has -1 for dynamic dims; `profile` is (min, opt, max)
    for engine inputs with an optimization profile, else None."""

    name: str
    dtype: np.dtype
    shape: Shape
    profile: tuple[Shape, Shape, Shape] | None = None

    def describe(self) -> str:
        dims = "x".join("?" if d < 0 else str(d) for d in self.shape)
        return f"{self.name} ({self.dtype}, {dims})"


def name_feed(
    feed: Mapping[str, Any] | Sequence[Any], specs: Sequence[TensorSpec]
) -> dict[str, Any]:
    """Inputs by name: a mapping is checked for unknown and missing names, a sequence is taken
    in the order of `specs`."""
    expected = ", ".join(s.describe() for s in specs)
    if isinstance(feed, Mapping):
        unknown = [name for name in feed if name not in {s.name for s in specs}]
        if unknown:
            raise UserError(
                f"Unknown input name(s) {', '.join(repr(n) for n in unknown)}.",
                f"The inputs are: {expected}.",
            )
        missing = [s.name for s in specs if s.name not in feed]
        if missing:
            raise UserError(
                f"Missing input(s) {', '.join(repr(n) for n in missing)}.",
                f"The inputs are: {expected}.",
            )
        return dict(feed)
    values = list(feed)
    if len(values) != len(specs):
        raise UserError(
            f"{len(values)} inputs were given, {len(specs)} are needed.",
            f"The inputs are: {expected}.",
        )
    return {s.name: v for s, v in zip(specs, values, strict=True)}


def check_shape(spec: TensorSpec, shape: Shape) -> None:
    """UserError unless `shape` fits the spec's rank, static dims and profile bounds."""
    if len(shape) != len(spec.shape) or any(
        d >= 0 and d != s for d, s in zip(spec.shape, shape, strict=False)
    ):
        raise UserError(
            f"Input '{spec.name}' has shape {_dims(shape)}, the model expects {_dims(spec.shape)}.",
            "Give an array of that rank whose fixed ('?' marks free) dims match.",
        )
    if spec.profile is not None:
        low, _, high = spec.profile
        if any(s < lo or s > hi for s, lo, hi in zip(shape, low, high, strict=True)):
            raise UserError(
                f"Input '{spec.name}' has shape {_dims(shape)}, outside the engine's optimization "
                f"profile (min {_dims(low)}, max {_dims(high)}).",
                "Use a shape inside the profile, or rebuild the engine with wider --min/--max.",
            )


def check_array(spec: TensorSpec, value: Any) -> np.ndarray:
    """`value` as a C-contiguous numpy array of the spec's dtype and an accepted shape."""
    array = np.asarray(value)
    if array.dtype != spec.dtype:
        raise UserError(
            f"Input '{spec.name}' is {array.dtype}, the model expects {spec.dtype}.",
            f"Convert it first, e.g. array.astype(np.{spec.dtype.name}).",
        )
    check_shape(spec, tuple(int(d) for d in array.shape))
    return np.ascontiguousarray(array)


def check_feed(
    feed: Mapping[str, Any] | Sequence[Any], specs: Sequence[TensorSpec]
) -> dict[str, np.ndarray]:
    """Checked numpy inputs by name, in the order of `specs`."""
    named = name_feed(feed, specs)
    return {s.name: check_array(s, named[s.name]) for s in specs}


def _dims(shape: Sequence[int]) -> str:
    return "x".join("?" if d < 0 else str(d) for d in shape) or "scalar"
