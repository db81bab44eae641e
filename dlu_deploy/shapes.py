"""Input-shape arguments in trtexec's syntax: `name:1x3x256x256`, several joined by commas.

Used by `build` (--min/--opt/--max), `validate`/`bench`/`run` (--shapes). Pure Python: no
TensorRT, ONNX or torch, so the edge runtime can use it too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dlu_deploy.errors import UserError

Shape = tuple[int, ...]
ShapeSet = dict[str, Shape]


def parse_dims(text: str, *, what: str) -> Shape:
    """'1x3x64x64' -> (1, 3, 64, 64); every dim a positive integer."""
    parts = text.strip().lower().split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if not dims or any(d < 1 for d in dims):
        raise UserError(
            f"{what}: '{text}' is not a shape.",
            "Write a shape as positive integers joined by 'x', e.g. 1x3x256x256.",
        )
    return dims


def parse_shape_set(spec: str | Iterable[str], *, what: str = "--shapes") -> ShapeSet:
    """'x:1x3x64x64,y:1x8' (or several such strings) -> {'x': (1, 3, 64, 64), 'y': (1, 8)}.

    The name is everything before the last ':', so ONNX names such as 'input:0' work.
    """
    items = [spec] if isinstance(spec, str) else list(spec)
    shapes: ShapeSet = {}
    for item in items:
        for entry in filter(None, (e.strip() for e in item.split(","))):
            name, sep, dims = entry.rpartition(":")
            if not sep or not name:
                raise UserError(
                    f"{what}: '{entry}' does not name an input.",
                    "Write NAME:DIMS, e.g. image:1x3x256x256 (several joined by commas).",
                )
            if name in shapes:
                raise UserError(f"{what}: input '{name}' is given twice.", "Give each input once.")
            shapes[name] = parse_dims(dims, what=f"{what} {name}")
    return shapes


def format_shape(shape: Iterable[int | str | None]) -> str:
    """(1, 3, 64, 64) -> '1x3x64x64' (dynamic dims print as '?' or their symbol)."""
    return "x".join("?" if d is None or d == -1 else str(d) for d in shape)


def format_shape_set(shapes: Mapping[str, Iterable[int]]) -> str:
    return ",".join(f"{name}:{format_shape(shape)}" for name, shape in shapes.items())


def example_shape(dims: Iterable[int | str | None], size: int = 256) -> str:
    """An example for a shape argument: static dims kept, a dynamic batch 1, other dynamic
    dims `size` (dynamic dims are -1, None or a symbol)."""
    example = []
    for index, dim in enumerate(dims):
        static = isinstance(dim, int) and dim >= 0
        example.append(str(dim) if static else "1" if index == 0 else str(size))
    return "x".join(example)
