"""The validation report: JSON for machines, a rich table for people."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dlu_deploy.shapes import ShapeSet, format_shape_set
from dlu_deploy.validate.metrics import OutputComparison


@dataclass
class RunResult:
    """The comparison of every output for one set of input shapes."""

    shapes: ShapeSet
    outputs: list[OutputComparison]

    @property
    def passed(self) -> bool:
        return bool(self.outputs) and all(o.passed for o in self.outputs)


@dataclass
class ValidationReport:
    candidate: str
    backend: str
    reference: str
    precision: str
    seed: int | None
    inputs_file: str | None
    runs: list[RunResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.runs) and all(r.passed for r in self.runs)

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "candidate": self.candidate,
            "backend": self.backend,
            "reference": self.reference,
            "precision": self.precision,
            "seed": self.seed,
            "inputs_file": self.inputs_file,
            "runs": [
                {
                    "shapes": {k: list(v) for k, v in r.shapes.items()},
                    "passed": r.passed,
                    "outputs": [o.to_json() for o in r.outputs],
                }
                for r in self.runs
            ],
        }

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2, allow_nan=True) + "\n")


def render_report(report: ValidationReport, console: Console) -> None:
    title = (
        f"{report.candidate} ({report.backend}, {report.precision}) vs PyTorch {report.reference}"
    )
    table = Table(title=escape(title), title_justify="left")
    for column in ("shapes", "output", "max abs", "mean abs", "max rel", "cosine"):
        table.add_column(column, justify="left" if column in ("shapes", "output") else "right")
    table.add_column("atol / rtol", justify="right")
    table.add_column("min atol", justify="right")
    table.add_column("NaN/Inf", justify="right")
    table.add_column("result")
    for run in report.runs:
        for index, out in enumerate(run.outputs):
            table.add_row(
                escape(format_shape_set(run.shapes)) if index == 0 else "",
                escape(out.name),
                _g(out.max_abs),
                _g(out.mean_abs),
                _g(out.max_rel),
                f"{out.cosine:.6f}",
                f"{out.atol:g} / {out.rtol:g}",
                _g(out.required_atol),
                f"{out.nan}/{out.inf}",
                "[green]PASS[/]" if out.passed else "[red]FAIL[/]",
            )
        table.add_section()
    console.print(table)
    for run in report.runs:
        for out in run.outputs:
            if out.problem:
                where = escape(f"{format_shape_set(run.shapes)} {out.name}: {out.problem}")
                console.print(f"[red]FAIL[/] {where}")
    verdict = "[bold green]PASS[/]" if report.passed else "[bold red]FAIL[/]"
    console.print(f"{verdict}: {sum(r.passed for r in report.runs)}/{len(report.runs)} shape sets")


def _g(value: float) -> str:
    return f"{value:.3g}"
