"""Plugin-mode rules, one module per op (DySample needs none: it exports to GridSample)."""

from __future__ import annotations

from collections.abc import Callable

from onnx import defs
from torch import nn

from dlu_deploy import ONNX_DOMAIN

from . import carafe, ddf, dlu
from .base import ONNX_DOMAIN_VERSION, PluginRule

RULES: tuple[PluginRule, ...] = (dlu.RULE, carafe.RULE, ddf.RULE)
RULES_BY_OP_TYPE = {rule.op_type: rule for rule in RULES}


def register_schemas() -> None:
    """Make onnx (checker, shape inference, onnxscript) know the custom nodes; idempotent."""
    for rule in RULES:
        if not defs.has(rule.op_type, ONNX_DOMAIN):
            defs.register_schema(rule.schema())


def rewrite_for_plugins(model: nn.Module) -> dict[str, int]:
    """Switch every reference module with a rule to its plugin-mode class; counts per op_type."""
    counts: dict[str, int] = {}
    for module in model.modules():
        for rule in RULES:
            if rule.rewrite(module):
                counts[rule.op_type] = counts.get(rule.op_type, 0) + 1
    return counts


def translation_table() -> dict[object, Callable[..., object]]:
    table: dict[object, Callable[..., object]] = {}
    for rule in RULES:
        table.update(rule.translation)
    return table


register_schemas()

__all__ = [
    "ONNX_DOMAIN_VERSION",
    "RULES",
    "RULES_BY_OP_TYPE",
    "PluginRule",
    "register_schemas",
    "rewrite_for_plugins",
    "translation_table",
]
