"""The inputs validate and bench feed to every backend: seeded random arrays for a set of
shapes, or the user's own .npz, plus the shape sweep over a dynamic model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dlu_deploy.errors import UserError
from dlu_deploy.runtime.io import TensorSpec, check_feed, check_shape
from dlu_deploy.shapes import Shape, ShapeSet, example_shape


def generate_inputs(
    specs: Sequence[TensorSpec],
    shapes: ShapeSet,
    seed: int,
    *,
    value_range: tuple[float, float] | None = None,
) -> dict[str, np.ndarray]:
    """Standard-normal arrays (uniform in `value_range` if given, e.g. 0-255 pixels for a
    detector) of each input's dtype, reproducible from (`seed`, shapes).

    Values are drawn in float32 and then cast, so a float16 model and the float32 reference
    see the same numbers (the reference gets the float16 values upcast).
    """
    shape_key = [d for spec in specs for d in shapes[spec.name]]
    rng = np.random.default_rng([seed, *shape_key])
    arrays = {}
    for spec in specs:
        if spec.dtype.kind != "f":
            raise UserError(
                f"Input '{spec.name}' is {spec.dtype}; only floating-point inputs are generated.",
                "Pass your own inputs with --inputs inputs.npz.",
            )
        shape = shapes[spec.name]
        check_shape(spec, shape)
        if value_range is None:
            values = rng.standard_normal(shape, dtype=np.float32)
        else:
            values = rng.uniform(*value_range, size=shape).astype(np.float32)
        arrays[spec.name] = values.astype(spec.dtype)
    return arrays


def load_inputs(path: str | Path, specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """The arrays of an .npz file, checked against the model's input names, dtypes and shapes."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, TypeError) as exc:  # TypeError: a .npy, not an archive
        raise UserError(
            f"{path} is not a readable .npz archive of named arrays ({exc}).",
            "Save the inputs by name with numpy: np.savez('inputs.npz', image=array, ...).",
        ) from exc
    return check_feed(arrays, specs)


def complete_shapes(specs: Sequence[TensorSpec], given: ShapeSet, defaults: ShapeSet) -> ShapeSet:
    """`given` plus, for inputs it does not name, the model's own static dims, the free ones
    taken from the default shape (the checkpoint's example input)."""
    unknown = sorted(set(given) - {s.name for s in specs})
    if unknown:
        raise UserError(
            f"--shapes names unknown input(s) {', '.join(unknown)}.",
            f"The inputs are: {', '.join(s.describe() for s in specs)}.",
        )
    shapes: ShapeSet = {}
    for spec in specs:
        shape = given.get(spec.name)
        default = defaults.get(spec.name)
        if shape is None and all(d >= 0 for d in spec.shape):
            shape = spec.shape
        elif shape is None and default is not None and len(default) == len(spec.shape):
            shape = tuple(
                d if d >= 0 else free for d, free in zip(spec.shape, default, strict=True)
            )
        elif shape is None:
            shape = default
        if shape is None:
            raise UserError(
                f"No shape is known for the dynamic input '{spec.describe()}'.",
                f"Pass --shapes {spec.name}:{example_shape(spec.shape)} (a size the model takes).",
            )
        check_shape(spec, shape)
        shapes[spec.name] = shape
    return shapes


def sweep_shapes(specs: Sequence[TensorSpec], example: ShapeSet) -> list[ShapeSet]:
    """Shapes to validate a dynamic ONNX model at: the example, batch 2 (if the batch dim is
    dynamic) and a non-square size with the height doubled (if the height is dynamic).

    Doubling keeps any divisibility the network needs (strides, pixel shuffles).
    """
    base = complete_shapes(specs, {}, example)
    sets = [base]
    batch = {s.name: _with(base[s.name], 0, 2) for s in specs if _dynamic(s, 0)}
    if batch:
        sets.append({**base, **batch})
    taller = {s.name: _with(base[s.name], 2, base[s.name][2] * 2) for s in specs if _dynamic(s, 2)}
    if taller:
        sets.append({**base, **taller})
    return sets


def _dynamic(spec: TensorSpec, axis: int) -> bool:
    return len(spec.shape) > axis and spec.shape[axis] < 0


def _with(shape: Shape, axis: int, size: int) -> Shape:
    return (*shape[:axis], size, *shape[axis + 1 :])
