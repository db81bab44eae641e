"""bench on CPU: onnxruntime against the PyTorch model in the same run. Numbers and JSON are
checked for consistency, never for speed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlu_deploy.bench import bench, summarize
from dlu_deploy.errors import UserError
from tests import runner_models


@pytest.fixture(scope="module")
def reference() -> runner_models.Reference:
    return runner_models.make_reference()


@pytest.fixture(scope="module")
def onnx_path(reference: runner_models.Reference, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return runner_models.export_portable(
        reference.model, tmp_path_factory.mktemp("bench") / "net.onnx"
    )


def test_percentiles_and_throughput() -> None:
    timing = summarize("x", "cpu", "wall", [float(v) for v in range(1, 101)], batch=4)
    assert (timing.p50_ms, timing.p90_ms, timing.p99_ms) == pytest.approx((50.5, 90.1, 99.01))
    assert timing.mean_ms == 50.5 and timing.min_ms == 1.0
    assert timing.throughput == pytest.approx(4 * 1000 / 50.5)


def _check_timing(timing: dict, iterations: int) -> None:
    assert (
        timing["iterations"] == iterations
        and timing["clock"] == "wall"
        and timing["device"] == "cpu"
    )
    assert 0 < timing["min_ms"] <= timing["p50_ms"] <= timing["p90_ms"] <= timing["p99_ms"]
    assert timing["throughput"] == pytest.approx(2 * 1000 / timing["mean_ms"])


def test_bench_onnxruntime_against_torch_eager(reference, onnx_path, tmp_path) -> None:
    report = bench(
        onnx_path,
        reference=reference,
        shapes={"image": (2, 3, 16, 16)},
        warmup=2,
        iterations=15,
        compile_torch=False,
        threads=1,
    )
    report.write_json(tmp_path / "bench.json")
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["shapes"] == {"image": [2, 3, 16, 16]} and data["threads"] == 1
    assert set(data["environment"]) == {"python", "cpu", "onnxruntime", "torch"}
    labels = [t["label"] for t in data["timings"]]
    assert labels == ["onnxruntime-cpu", "torch-eager"]
    for timing in data["timings"]:
        _check_timing(timing, 15)
    ort_p50 = data["timings"][0]["p50_ms"]
    assert data["timings"][0]["p50_ratio"] == 1.0
    assert data["timings"][1]["p50_ratio"] == pytest.approx(data["timings"][1]["p50_ms"] / ort_p50)


@pytest.mark.slow
def test_bench_includes_torch_compile(reference, onnx_path) -> None:
    report = bench(onnx_path, reference=reference, warmup=1, iterations=5, threads=1)
    labels = [t.label for t in report.timings] + list(report.skipped)
    assert labels == ["onnxruntime-cpu", "torch-eager", "torch-compile"]
    compiled = report.timings[-1] if report.timings[-1].label == "torch-compile" else None
    if compiled is not None:  # compiled only where inductor's C++ toolchain works
        assert compiled.setup_seconds is not None and compiled.setup_seconds > 0
        assert report.shapes == {"image": runner_models.EXAMPLE_SHAPE}  # the checkpoint's example


def test_bench_needs_shapes_for_dynamic_onnx_without_checkpoint(onnx_path) -> None:
    with pytest.raises(UserError, match="No shape is known for the dynamic input"):
        bench(onnx_path, iterations=1)
    with pytest.raises(UserError, match="--iterations >= 1"):
        bench(onnx_path, iterations=0)
