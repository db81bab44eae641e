"""Shared pieces of the benchmarks: FPN shapes, DLU inputs, the single-node plugin-mode graph,
the portable export, and result printing."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from onnx import TensorProto, helper
from rich.console import Console
from rich.table import Table

from dlu_deploy import reference

KERNEL_SIZE, GROUP, SCALE = 5, 1, 2  # DLU's FPN setting (docs/ops.md, official config)


@dataclass(frozen=True)
class Shape:
    n: int
    c: int
    h: int
    w: int

    @property
    def label(self) -> str:
        return f"{self.n}x{self.c}x{self.h}x{self.w} -> {self.h * SCALE}x{self.w * SCALE}"


FPN_SHAPES = {"A": Shape(1, 256, 100, 152), "B": Shape(1, 256, 50, 76)}


def dlu_inputs(
    shape: Shape, dtype: torch.dtype = torch.float32, device: str = "cpu", seed: int = 0
):
    gen = torch.Generator(device=device).manual_seed(seed)
    n, c, h, w = shape.n, shape.c, shape.h, shape.w
    k2 = KERNEL_SIZE * KERNEL_SIZE
    x = torch.randn(n, c, h, w, generator=gen, device=device)
    kernels = (
        torch.randn(n, GROUP, k2, h, w, generator=gen, device=device)
        .softmax(2)
        .reshape(n, -1, h, w)
    )
    offsets = torch.randn(n, GROUP * 2 * SCALE * SCALE, h, w, generator=gen, device=device)
    return x.to(dtype), kernels.to(dtype), offsets.to(dtype)


def plugin_model() -> onnx.ModelProto:
    """One dlu_deploy::DLU node with dynamic N, H, W (what plugin-mode export emits per op)."""
    k2, s2 = KERNEL_SIZE * KERNEL_SIZE, SCALE * SCALE
    node = helper.make_node(
        "DLU",
        ["x", "kernels", "offsets"],
        ["y"],
        domain="dlu_deploy",
        kernel_size=KERNEL_SIZE,
        group=GROUP,
        scale=SCALE,
        plugin_version="1",
    )
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        [node],
        "dlu_plugin",
        [
            helper.make_tensor_value_info("x", f, ["n", "c", "h", "w"]),
            helper.make_tensor_value_info("kernels", f, ["n", GROUP * k2, "h", "w"]),
            helper.make_tensor_value_info("offsets", f, ["n", GROUP * 2 * s2, "h", "w"]),
        ],
        [helper.make_tensor_value_info("y", f, ["n", "c", "h2", "w2"])],
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("dlu_deploy", 1)],
        ir_version=10,
    )


class _PortableDlu(torch.nn.Module):
    def forward(
        self, x: torch.Tensor, kernels: torch.Tensor, offsets: torch.Tensor
    ) -> torch.Tensor:
        return reference.dlu(x, kernels, offsets, KERNEL_SIZE, GROUP, SCALE)


def portable_model(example: Shape) -> onnx.ModelProto:
    """The PyTorch reference exported with standard ops only (torch.onnx, dynamic N, H, W)."""
    inputs = dlu_inputs(Shape(1, example.c, 8, 12))
    dims = {
        0: torch.export.Dim("n", max=64),
        2: torch.export.Dim("h", max=4096),
        3: torch.export.Dim("w", max=4096),
    }
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp:
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            _PortableDlu(),
            inputs,
            dynamo=True,
            opset_version=18,
            dynamic_shapes=(dims, dims, dims),
            verbose=False,
        )
        path = Path(tmp) / "portable.onnx"
        program.save(str(path))
        model = onnx.load(str(path))
    model.ir_version = min(model.ir_version, 10)
    return model


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(
            column, justify="right" if column not in ("shape", "method", "target") else "left"
        )
    for row in rows:
        table.add_row(*row)
    Console(width=200).print(table)


def write_json(path: str | None, payload: dict) -> None:
    if not path:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=2))
    print(f"results written to {path}")


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
