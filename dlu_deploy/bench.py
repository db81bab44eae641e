"""`dlu-deploy bench`: latency of an engine or ONNX file, and of the checkpoint's PyTorch model
(eager and torch.compile) on the same device in the same run, with ratios.

GPU backends are timed with CUDA events around each run on the stream (the TensorRT engine:
`execute_async_v3` on staged buffers, no copies; torch: the forward pass); CPU backends with
the wall clock. No result is asserted anywhere: this prints and records numbers.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dlu_deploy.errors import UserError
from dlu_deploy.shapes import ShapeSet, format_shape_set
from dlu_deploy.validate.backends import Backend, TorchBackend, TrtBackend, open_candidate
from dlu_deploy.validate.compare import ReferenceModel
from dlu_deploy.validate.inputs import complete_shapes, generate_inputs


@dataclass
class Timing:
    label: str
    device: str
    clock: str  # "cuda-events" or "wall"
    iterations: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    throughput: float  # samples (batch items) per second at the mean latency
    memory_bytes: int | None = None
    setup_seconds: float | None = None  # e.g. torch.compile's compilation
    p50_ratio: float | None = None  # this p50 / the candidate's p50 (> 1: candidate faster)


@dataclass
class BenchReport:
    candidate: str
    shapes: ShapeSet
    warmup: int
    iterations: int
    threads: int | None
    timings: list[Timing] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # label -> reason
    environment: dict[str, str] = field(default_factory=dict)  # versions, GPU, CPU

    def to_json(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "shapes": {k: list(v) for k, v in self.shapes.items()},
            "warmup": self.warmup,
            "iterations": self.iterations,
            "threads": self.threads,
            "timings": [asdict(t) for t in self.timings],
            "skipped": self.skipped,
            "environment": self.environment,
        }

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")


def summarize(label: str, device: str, clock: str, times_ms: Sequence[float], batch: int) -> Timing:
    values = np.asarray(times_ms, dtype=np.float64)
    p50, p90, p99 = (float(v) for v in np.percentile(values, [50, 90, 99]))
    mean = float(values.mean())
    return Timing(
        label=label,
        device=device,
        clock=clock,
        iterations=int(values.size),
        p50_ms=p50,
        p90_ms=p90,
        p99_ms=p99,
        mean_ms=mean,
        min_ms=float(values.min()),
        throughput=batch * 1000.0 / mean if mean > 0 else float("inf"),
    )


def wall_clock_ms(run: Callable[[], None], warmup: int, iterations: int) -> list[float]:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def engine_event_ms(backend: TrtBackend, warmup: int, iterations: int) -> list[float]:
    """CUDA-event time of each `execute_async_v3` on the engine's stream."""
    from dlu_deploy.runtime import cuda

    engine, stream = backend.engine, backend.engine.stream
    with engine.activated():  # events are made and freed under the engine's CUDA context
        for _ in range(warmup):
            engine.execute()
        stream.synchronize()
        pairs = [(cuda.Event(), cuda.Event()) for _ in range(iterations)]
        for start, end in pairs:
            start.record(stream)
            engine.execute()
            end.record(stream)
        stream.synchronize()
        times = [end.milliseconds_since(start) for start, end in pairs]
        del pairs
    return times


def torch_event_ms(run: Callable[[], None], warmup: int, iterations: int) -> list[float]:
    import torch

    for _ in range(warmup):
        run()
    torch.cuda.synchronize()
    pairs = [
        (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
        for _ in range(iterations)
    ]
    for start, end in pairs:
        start.record()
        run()
        end.record()
    torch.cuda.synchronize()
    return [start.elapsed_time(end) for start, end in pairs]


def bench(
    candidate_path: str | Path,
    *,
    reference: ReferenceModel | None = None,
    backend: str = "auto",
    shapes: ShapeSet | None = None,
    warmup: int = 10,
    iterations: int = 100,
    compile_torch: bool = True,
    threads: int | None = None,
    plugins: Sequence[str | Path] | None = None,
    ort_provider: str = "cpu",
    device: int = 0,
    cuda_graph: bool = False,
    seed: int = 0,
) -> BenchReport:
    """Time the candidate and, given the PyTorch `reference`, its eager and compiled forms."""
    if warmup < 0 or iterations < 1:
        raise UserError("--warmup must be >= 0 and --iterations >= 1.", "Pick other counts.")
    candidate = open_candidate(
        candidate_path,
        backend,
        plugins=plugins,
        ort_provider=ort_provider,
        threads=threads,
        device=device,
        cuda_graph=cuda_graph,
    )
    chosen = _bench_shapes(candidate, reference, shapes or {})
    feed = generate_inputs(candidate.inputs, chosen, seed)
    batch = max(s[0] for s in chosen.values() if s) if chosen else 1
    report = BenchReport(Path(candidate_path).name, chosen, warmup, iterations, threads)
    report.environment = _environment(candidate)
    report.timings.append(_time_candidate(candidate, feed, warmup, iterations, batch, device))
    if reference is not None:
        _bench_torch(report, reference, candidate, feed, batch, compile_torch, device)
        report.environment["torch"] = sys.modules["torch"].__version__
    base = report.timings[0].p50_ms
    for timing in report.timings:
        timing.p50_ratio = timing.p50_ms / base if base > 0 else None
    return report


def _environment(candidate: Backend) -> dict[str, str]:
    environment = {"python": platform.python_version(), "cpu": platform.processor() or "?"}
    if isinstance(candidate, TrtBackend):
        environment["tensorrt"] = candidate.engine.tensorrt_version
        environment["gpu"] = candidate.engine.device.name
    else:
        environment["onnxruntime"] = sys.modules["onnxruntime"].__version__
    return environment


def _bench_shapes(
    candidate: Backend, reference: ReferenceModel | None, given: ShapeSet
) -> ShapeSet:
    """--shapes, else the engine's opt profile, else the checkpoint's example shapes."""
    defaults: ShapeSet = {}
    if isinstance(candidate, TrtBackend):
        defaults = {s.name: s.profile[1] for s in candidate.inputs if s.profile is not None}
    elif reference is not None:
        defaults = {
            n: tuple(s)
            for n, s in zip(reference.input_names, reference.example_shapes, strict=False)
        }
    return complete_shapes(candidate.inputs, given, defaults)


def _time_candidate(
    candidate: Backend,
    feed: dict[str, np.ndarray],
    warmup: int,
    iterations: int,
    batch: int,
    device: int,
) -> Timing:
    run = candidate.prepare(feed)
    if isinstance(candidate, TrtBackend):
        timing = summarize(
            candidate.label,
            f"cuda:{device}",
            "cuda-events",
            engine_event_ms(candidate, warmup, iterations),
            batch,
        )
        timing.memory_bytes = candidate.engine.device_memory_bytes
        return timing
    where = f"cuda:{device}" if candidate.on_gpu else "cpu"
    return summarize(candidate.label, where, "wall", wall_clock_ms(run, warmup, iterations), batch)


def _bench_torch(
    report: BenchReport,
    reference: ReferenceModel,
    candidate: Backend,
    feed: dict[str, np.ndarray],
    batch: int,
    compile_torch: bool,
    device: int,
) -> None:
    import torch

    on_gpu = candidate.on_gpu
    if on_gpu and not torch.cuda.is_available():
        report.skipped["torch"] = "this torch has no CUDA; PyTorch is not timed on the GPU"
        return
    where = f"cuda:{device}" if on_gpu else "cpu"
    if report.threads and not on_gpu:
        torch.set_num_threads(report.threads)
    model = reference.model.to(where).eval()
    variants: list[tuple[str, Any]] = [("torch-eager", model)]
    if compile_torch:
        variants.append(("torch-compile", torch.compile(model)))
    for label, module in variants:
        backend = TorchBackend(
            module, reference.input_names, reference.output_names, device=where, label=label
        )
        run = backend.prepare(feed)
        started = time.perf_counter()
        try:
            run()  # the first call compiles under torch.compile
        except Exception as exc:  # an inductor toolchain problem must not lose the other numbers
            report.skipped[label] = f"{type(exc).__name__}: {exc}".splitlines()[0]
            continue
        setup = time.perf_counter() - started
        if on_gpu:
            torch.cuda.reset_peak_memory_stats()
            times = torch_event_ms(run, report.warmup, report.iterations)
            timing = summarize(label, where, "cuda-events", times, batch)
            timing.memory_bytes = int(torch.cuda.max_memory_allocated())
        else:
            timing = summarize(
                label, where, "wall", wall_clock_ms(run, report.warmup, report.iterations), batch
            )
        timing.setup_seconds = round(setup, 3) if label == "torch-compile" else None
        report.timings.append(timing)


def render_bench(report: BenchReport, console: Console) -> None:
    title = (
        f"{report.candidate} at {format_shape_set(report.shapes)}: milliseconds over "
        f"{report.iterations} runs after {report.warmup} warm-up; ratio = p50 / "
        f"{report.timings[0].label}'s p50"
    )
    table = Table(title=escape(title), title_justify="left")
    for column in ("backend", "device", "clock"):
        table.add_column(column)
    for column in ("p50", "p90", "p99", "mean", "samples/s", "memory", "ratio"):
        table.add_column(column, justify="right")
    for t in report.timings:
        table.add_row(
            t.label,
            t.device,
            t.clock,
            f"{t.p50_ms:.3f}",
            f"{t.p90_ms:.3f}",
            f"{t.p99_ms:.3f}",
            f"{t.mean_ms:.3f}",
            f"{t.throughput:.1f}",
            f"{t.memory_bytes / 2**20:.1f} MiB" if t.memory_bytes is not None else "-",
            f"{t.p50_ratio:.2f}x" if t.p50_ratio is not None else "-",
        )
    console.print(table)
    for label, reason in report.skipped.items():
        console.print(f"[yellow]skipped[/] {escape(f'{label}: {reason}')}")
