"""The validation report: JSON for machines, rich tables for people."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dlu_deploy.shapes import ShapeSet, format_shape_set
from dlu_deploy.validate.detections import DetectionComparison
from dlu_deploy.validate.metrics import OutputComparison
from dlu_deploy.validate.noise import NoiseFloor


@dataclass
class RunResult:
    """The comparison of every output for one set of input shapes."""

    shapes: ShapeSet
    outputs: list[OutputComparison]  # element by element (a detector's dets/labels: not here)
    floors: dict[str, NoiseFloor] = field(default_factory=dict)  # by output; {} without fp64
    detections: DetectionComparison | None = None  # a detector's dets/labels

    def rule(self, output: OutputComparison) -> str | None:
        """Which rule passed the output ('tolerance', then 'noise floor'); None if none did."""
        if output.passed:
            return "tolerance"
        floor = self.floors.get(output.name)
        if floor is not None and floor.passed and output.shape == output.reference_shape:
            return "noise floor"
        return None

    @property
    def passed(self) -> bool:
        compared = bool(self.outputs) or self.detections is not None
        return (
            compared
            and all(self.rule(o) is not None for o in self.outputs)
            and (self.detections is None or self.detections.passed)
        )


@dataclass
class ValidationReport:
    candidate: str
    backend: str
    reference: str
    precision: str
    seed: int | None
    inputs_file: str | None
    runs: list[RunResult] = field(default_factory=list)
    noise_factor: float | None = None  # None: no float64 run
    notes: list[str] = field(default_factory=list)

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
            "noise_factor": self.noise_factor,
            "notes": self.notes,
            "runs": [
                {
                    "shapes": {k: list(v) for k, v in r.shapes.items()},
                    "passed": r.passed,
                    "outputs": [
                        {
                            **o.to_json(),
                            "rule": r.rule(o),
                            "noise_floor": _floor_json(r.floors.get(o.name)),
                        }
                        for o in r.outputs
                    ],
                    "detections": r.detections.to_json() if r.detections else None,
                }
                for r in self.runs
            ],
        }

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2, allow_nan=True) + "\n")


def _floor_json(floor: NoiseFloor | None) -> dict[str, Any] | None:
    return None if floor is None else floor.to_json()


def render_report(report: ValidationReport, console: Console) -> None:
    title = (
        f"{report.candidate} ({report.backend}, {report.precision}) vs PyTorch {report.reference}"
    )
    if any(run.outputs for run in report.runs):
        console.print(_tensor_table(report, escape(title)))
    if any(run.detections is not None for run in report.runs):
        console.print(_detection_table(report, escape(title + ": detections")))
    for note in report.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    for run in report.runs:
        for warning in run.detections.warnings if run.detections is not None else []:
            console.print(
                f"[yellow]note:[/] {escape(f'{format_shape_set(run.shapes)}: {warning}')}"
            )
    for run in report.runs:
        where = format_shape_set(run.shapes)
        for out in run.outputs:
            if out.problem and run.rule(out) is None:
                floor = run.floors.get(out.name)
                beyond = ""
                if floor is not None:
                    beyond = (
                        f"; {floor.ratio:.3g} x PyTorch fp32's error against fp64 "
                        f"(noise floor: <= {floor.factor:g} x)"
                    )
                console.print(
                    f"[red]FAIL[/] {escape(f'{where} {out.name}: {out.problem}{beyond}')}"
                )
        if run.detections is not None and run.detections.problem:
            console.print(f"[red]FAIL[/] {escape(f'{where} detections: {run.detections.problem}')}")
    verdict = "[bold green]PASS[/]" if report.passed else "[bold red]FAIL[/]"
    console.print(f"{verdict}: {sum(r.passed for r in report.runs)}/{len(report.runs)} shape sets")


def _tensor_table(report: ValidationReport, title: str) -> Table:
    # mean abs error: in the JSON (the table keeps what decides and what explains)
    table = Table(title=title, title_justify="left")
    table.add_column("shapes", no_wrap=True)
    table.add_column("output")
    for column in ("max abs", "max rel", "cosine"):
        table.add_column(column, justify="right")
    table.add_column("atol / rtol", justify="right")
    table.add_column("min atol", justify="right")
    table.add_column("NaN/Inf", justify="right")
    if report.noise_factor is not None:
        # max abs error against the float64 run: PyTorch fp32's own, then the model's
        table.add_column("fp32 vs fp64", justify="right")
        table.add_column("model vs fp64", justify="right")
    table.add_column("result", no_wrap=True)
    for run in report.runs:
        for index, out in enumerate(run.outputs):
            cells = [
                escape(format_shape_set(run.shapes)) if index == 0 else "",
                escape(out.name),
                _g(out.max_abs),
                _g(out.max_rel),
                f"{out.cosine:.6f}",
                f"{out.atol:g} / {out.rtol:g}",
                _g(out.required_atol),
                f"{out.nan}/{out.inf}",
            ]
            if report.noise_factor is not None:
                floor = run.floors.get(out.name)
                cells += (
                    [_g(floor.reference_error), _g(floor.candidate_error)]
                    if floor
                    else [
                        "-",
                        "-",
                    ]
                )
            table.add_row(*cells, _verdict(run.rule(out)))
        table.add_section()
    return table


def _detection_table(report: ValidationReport, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("shapes", no_wrap=True)
    for column in ("image", "ref / model", "matched", "of ref", "of model", "excused"):
        table.add_column(column, justify="right")
    table.add_column("max box diff", justify="right")
    table.add_column("max score diff", justify="right")
    if report.noise_factor is not None:
        # matched fractions against the float64 run (reference's, model's): PyTorch fp32, model
        table.add_column("fp32 vs fp64", justify="right", no_wrap=True)
        table.add_column("model vs fp64", justify="right", no_wrap=True)
    table.add_column("result", no_wrap=True)
    for run in report.runs:
        det = run.detections
        if det is None:
            continue
        shapes = escape(format_shape_set(run.shapes))
        for index, image in enumerate(det.deployed.images):
            table.add_row(
                shapes if index == 0 else "",
                str(index),
                f"{image.reference} / {image.candidate}",
                str(image.matched),
                _share(image.matched, len(image.missing)),
                _share(image.matched, len(image.extra)),
                f"{len(image.excused_reference)} / {len(image.excused_candidate)}",
                _g(image.max_box_diff),
                _g(image.max_score_diff),
                *(["", ""] if report.noise_factor is not None else []),
                "",
            )
        cells = [
            "",
            "all",
            f"{sum(i.reference for i in det.deployed.images)} / "
            f"{sum(i.candidate for i in det.deployed.images)}",
            str(det.deployed.matched),
            f"{det.deployed.reference_fraction:.1%}",
            f"{det.deployed.candidate_fraction:.1%}",
            "{} / {}".format(*det.deployed.excused),
            _g(det.deployed.max_box_diff),
            _g(det.deployed.max_score_diff),
        ]
        if report.noise_factor is not None:
            cells += [_fractions(det.reference_vs_fp64), _fractions(det.deployed_vs_fp64)]
        table.add_row(*cells, _verdict(det.rule), style="bold")
        table.add_section()
    threshold = next(
        (r.detections.score_threshold for r in report.runs if r.detections is not None), None
    )
    needed = next(r.detections.tolerance for r in report.runs if r.detections is not None)
    table.caption = escape(
        f"matched: same label, IoU >= {needed.iou:g}, |score diff| <= {needed.score:g}; PASS "
        f"needs >= {needed.min_matched:.1%} of both sides matched. excused (ref / model): "
        "unmatched within the score tolerance of the score threshold "
        f"({'unknown' if threshold is None else f'{threshold:g}'}) or of the K-th score"
    )
    table.caption_justify = "left"
    return table


def _fractions(summary: Any) -> str:
    if summary is None:
        return "-"
    return f"{summary.reference_fraction:.1%}/{summary.candidate_fraction:.1%}"


def _share(matched: int, unmatched: int) -> str:
    total = matched + unmatched
    return f"{matched / total:.1%}" if total else "-"


def _verdict(rule: str | None) -> str:
    if rule is None:
        return "[red]FAIL[/]"
    return "[green]PASS[/]" if rule == "tolerance" else f"[green]PASS[/] ({rule})"


def _g(value: float) -> str:
    return f"{value:.3g}"
