"""Reading the training config saved in a checkpoint, without running it.

mmengine saves `cfg.pretty_text` in `meta['cfg']`, mmcv 2.x / mmdetection 2.x in
`meta['config']`: Python source made of assignments such as
`model = dict(type='FasterRCNN', test_cfg=dict(rcnn=dict(score_thr=0.05, ...)))`. This module
parses it with `ast` and evaluates only literals, `dict(...)` calls, lists, tuples, dict
displays, names assigned earlier, unary minus and arithmetic on numbers. Nothing is executed
or imported: anything else (function calls, attribute access, comprehensions, lambdas)
evaluates to `UNKNOWN`, and a text that does not parse gives an empty config.

    config = parse_config(checkpoint.config_text)
    lookup(config, "model.test_cfg.rcnn.score_thr")      # 0.05, or None when absent/unknown
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any


class _Unknown:
    """A value the safe evaluator does not compute (a call, an attribute, an import, ...)."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()
# Large configs have a few hundred assignments; anything far beyond is not a config.
MAX_CONFIG_CHARS = 1_000_000
_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Pow: operator.pow,
}
_NUMBER = (int, float)


def parse_config(text: str | None) -> dict[str, Any]:
    """Module-level assignments of a config text: {name: value}; {} when it does not parse."""
    if not text or len(text) > MAX_CONFIG_CHARS:
        return {}
    try:
        tree = ast.parse(text, mode="exec")
    except (SyntaxError, ValueError):
        return {}
    names: dict[str, Any] = {}
    for statement in tree.body:
        if isinstance(statement, ast.Assign):
            value = _evaluate(statement.value, names)
            for target in statement.targets:
                if isinstance(target, ast.Name):
                    names[target.id] = value
        elif (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and statement.value is not None
        ):
            names[statement.target.id] = _evaluate(statement.value, names)
    return names


def lookup(config: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (`model.test_cfg.rpn.nms.iou_threshold`), or None."""
    value: Any = config
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return None if value is UNKNOWN else value


def _evaluate(node: ast.AST, names: Mapping[str, Any], depth: int = 0) -> Any:
    if depth > 100:  # a pathological nesting: not a config
        return UNKNOWN
    ev = lambda child: _evaluate(child, names, depth + 1)  # noqa: E731
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[node.id]
        # An unassigned name is an imported class in new-style configs (type=FasterRCNN).
        return names.get(node.id, node.id)
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [ev(e) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        result: dict[Any, Any] = {}
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:  # {**other}
                splat = ev(value)
                if isinstance(splat, Mapping):
                    result.update(splat)
            else:
                result[ev(key)] = ev(value)
        return result
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        if node.args:
            return UNKNOWN
        result = {}
        for keyword in node.keywords:
            value = ev(keyword.value)
            if keyword.arg is None:  # dict(**other)
                if isinstance(value, Mapping):
                    result.update(value)
            else:
                result[keyword.arg] = value
        return result
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = ev(node.operand)
        if isinstance(operand, _NUMBER) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
        return UNKNOWN
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = ev(node.left), ev(node.right)
        numbers = all(isinstance(v, _NUMBER) and not isinstance(v, bool) for v in (left, right))
        if numbers and not (isinstance(node.op, ast.Pow) and abs(right) > 64):
            try:
                return _BINARY[type(node.op)](left, right)
            except (ArithmeticError, ValueError):
                return UNKNOWN
        return UNKNOWN
    return UNKNOWN
