"""The float64 noise floor of validate: PyTorch fp32 vs fp64 beside deployed vs fp64, checked
against a float64 run made here, and the rule (tolerance, then noise floor) that passed."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dlu_deploy.validate import (
    DEFAULT_NOISE_FACTOR,
    make_policy,
    noise_floor,
    open_candidate,
    validate,
)
from tests import runner_models

SHAPES = [{"image": (1, 3, 8, 12)}]
TIGHT = make_policy("fp32", atol=1e-12, rtol=1e-12)  # beyond float32: only the floor can pass


@pytest.fixture(scope="module")
def reference() -> runner_models.Reference:
    return runner_models.make_reference()


@pytest.fixture(scope="module")
def onnx_path(reference, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return runner_models.export_portable(reference.model, tmp_path_factory.mktemp("n") / "n.onnx")


def test_noise_floor_statistics_and_rule() -> None:
    exact = np.array([1.0, -2.0, 3.0])
    fp32, deployed = exact + np.array([1e-6, 0, -2e-6]), exact + np.array([0, 5e-6, 0])
    floor = noise_floor("y", exact, fp32, deployed, 3.0)
    assert (floor.reference_error, floor.candidate_error) == pytest.approx((2e-6, 5e-6))
    assert floor.passed and floor.ratio == pytest.approx(2.5)
    assert not noise_floor("y", exact, exact + 1e-6, exact + 4e-6, 3.0).passed
    assert not noise_floor("y", exact, exact + 1e-6, exact * np.nan, 1e9).passed
    assert not noise_floor("y", exact, exact, exact[:2], 1e9).passed  # shape differs
    assert noise_floor("y", exact, exact, exact, 1.0).passed  # exact and exact


def test_report_puts_fp32_and_deployed_error_beside_each_other(reference, onnx_path) -> None:
    image = np.random.default_rng(0).standard_normal((1, 3, 8, 12), dtype=np.float32)
    report = validate(reference, open_candidate(onnx_path), inputs={"image": image})
    run = report.runs[0]
    assert report.passed and report.noise_factor == DEFAULT_NOISE_FACTOR
    model64 = copy.deepcopy(reference.model).double()
    with torch.no_grad():
        exact = [t.numpy() for t in model64(torch.from_numpy(image).double())]
        fp32 = [t.numpy() for t in reference.model(torch.from_numpy(image))]
    deployed = runner_models.ort_outputs(onnx_path, image)
    for name, want, ours in zip(runner_models.OUTPUT_NAMES, exact, fp32, strict=True):
        floor = run.floors[name]
        assert exact[0].dtype == np.float64
        assert floor.reference_error == pytest.approx(np.abs(ours - want).max(), rel=1e-12)
        assert floor.candidate_error == pytest.approx(
            np.abs(deployed[name].astype(np.float64) - want).max(), rel=1e-12
        )
        # float32 rounding on both sides, of the same order
        assert 1e-9 < floor.reference_error < 1e-5 and floor.ratio < DEFAULT_NOISE_FACTOR


def test_beyond_the_tolerance_within_the_noise_floor(reference, onnx_path) -> None:
    report = validate(reference, open_candidate(onnx_path), shape_sets=SHAPES, tolerances=TIGHT)
    run = report.runs[0]
    assert report.passed
    assert [run.rule(o) for o in run.outputs] == ["noise floor", "noise floor"]
    assert all(not o.passed for o in run.outputs)  # the tolerance alone fails them
    data = report.to_json()["runs"][0]["outputs"]
    assert [o["rule"] for o in data] == ["noise floor", "noise floor"]
    assert data[0]["noise_floor"]["passed"] and data[0]["noise_floor"]["factor"] == 10.0
    # a factor below the measured ratio, or no float64 run: the tolerance decides, FAIL
    strict = validate(
        reference, open_candidate(onnx_path), shape_sets=SHAPES, tolerances=TIGHT, noise_factor=0
    )
    assert not strict.passed
    without = validate(
        reference, open_candidate(onnx_path), shape_sets=SHAPES, tolerances=TIGHT, fp64=False
    )
    assert not without.passed and without.runs[0].floors == {} and without.noise_factor is None


def test_a_wrong_weight_is_far_above_the_noise_floor(reference, onnx_path, tmp_path) -> None:
    broken = runner_models.edit_initializer(
        onnx_path, tmp_path / "b.onnx", "head.weight", "scale", 1.01
    )
    report = validate(reference, open_candidate(broken), shape_sets=SHAPES)
    seg = report.runs[0].floors["seg"]
    assert not report.passed and report.runs[0].rule(report.runs[0].outputs[0]) is None
    assert seg.ratio > 1e3
    assert report.runs[0].rule(report.runs[0].outputs[1]) == "tolerance"  # feat is untouched


class Float32Only(nn.Module):
    """A model that cannot run in float64: a float32 constant made in forward."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return image @ torch.eye(image.shape[-1], dtype=torch.float32)


def test_model_without_float64_falls_back_to_the_tolerance(tmp_path) -> None:
    path = tmp_path / "f32.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Float32Only(),
            (torch.randn(1, 3, 4, 4),),
            str(path),
            input_names=["image"],
            output_names=["out"],
            opset_version=17,
            dynamo=False,
        )
    import onnx

    proto = onnx.load(str(path))
    proto.ir_version = 10
    onnx.save(proto, str(path))
    reference = runner_models.Reference(Float32Only(), ["image"], ["out"], [(1, 3, 4, 4)])
    report = validate(reference, open_candidate(path))
    assert report.passed and report.runs[0].floors == {}
    assert len(report.notes) == 1 and "does not run in float64" in report.notes[0]
