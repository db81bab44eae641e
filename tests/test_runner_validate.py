"""validate on CPU with onnxruntime: portable graphs at several shapes of one dynamic export,
perturbed and NaN-producing graphs, per-output tolerances, user-supplied inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dlu_deploy.errors import UserError
from dlu_deploy.validate import load_inputs, make_policy, open_candidate, validate
from tests import runner_models


@pytest.fixture(scope="module")
def reference() -> runner_models.Reference:
    return runner_models.make_reference()


@pytest.fixture(scope="module")
def onnx_path(reference: runner_models.Reference, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return runner_models.export_portable(reference.model, tmp_path_factory.mktemp("v") / "net.onnx")


def test_dynamic_export_passes_at_every_swept_shape(reference, onnx_path) -> None:
    report = validate(reference, open_candidate(onnx_path), seed=3)
    shapes = [run.shapes["image"] for run in report.runs]
    # the example, batch 2 and double height: the automatic sweep of a dynamic ONNX file
    assert shapes == [(1, 3, 16, 20), (2, 3, 16, 20), (1, 3, 32, 20)]
    assert report.passed
    for run in report.runs:
        assert [o.name for o in run.outputs] == ["seg", "feat"]
        for out in run.outputs:
            assert out.shape == (
                run.shapes["image"][0],
                out.shape[1],
                2 * run.shapes["image"][2],
                40,
            )
            assert out.max_abs <= 1e-4 and out.cosine > 0.999999 and out.mismatched == 0


def test_explicit_shape_sweep_and_identical_seeded_inputs(reference, onnx_path) -> None:
    sets = [{"image": (1, 3, 8, 8)}, {"image": (3, 3, 12, 28)}]
    first = validate(reference, open_candidate(onnx_path), shape_sets=sets, seed=7)
    again = validate(reference, open_candidate(onnx_path), shape_sets=sets, seed=7)
    assert [r.shapes["image"] for r in first.runs] == [(1, 3, 8, 8), (3, 3, 12, 28)]
    assert first.passed
    # same seed, same inputs: the statistics repeat exactly
    assert [o.max_abs for r in first.runs for o in r.outputs] == [
        o.max_abs for r in again.runs for o in r.outputs
    ]


def test_reported_error_is_the_real_difference(reference, onnx_path, tmp_path) -> None:
    """max/mean abs error and cosine equal the ones computed here from ORT and torch directly."""
    image = np.random.default_rng(0).standard_normal((1, 3, 10, 12), dtype=np.float32)
    report = validate(reference, open_candidate(onnx_path), inputs={"image": image})
    ort = runner_models.ort_outputs(onnx_path, image)
    with torch.no_grad():
        torch_out = [t.numpy().astype(np.float64) for t in reference.model(torch.from_numpy(image))]
    for out, want in zip(report.runs[0].outputs, torch_out, strict=True):
        diff = np.abs(ort[out.name].astype(np.float64) - want)
        assert out.max_abs == pytest.approx(diff.max(), rel=1e-12, abs=0)
        assert out.mean_abs == pytest.approx(diff.mean(), rel=1e-9)
        got = ort[out.name].astype(np.float64).ravel()
        cosine = got @ want.ravel() / (np.linalg.norm(got) * np.linalg.norm(want))
        assert out.cosine == pytest.approx(cosine, abs=1e-12)


def test_perturbed_weights_fail_and_per_output_tolerance_rescues(
    reference, onnx_path, tmp_path
) -> None:
    broken = runner_models.edit_initializer(
        onnx_path, tmp_path / "b.onnx", "head.weight", "scale", 1.01
    )
    report = validate(reference, open_candidate(broken), shape_sets=[{"image": (1, 3, 8, 8)}])
    seg, feat = report.runs[0].outputs
    assert not report.passed and not seg.passed and feat.passed
    assert seg.mismatched > 0 and seg.max_abs > 1e-3 and "exceed both" in seg.problem
    # the minimum tolerance reported is the one that makes it pass
    policy = make_policy("fp32", overrides=[f"seg:{seg.required_atol * 1.001}"])
    rescued = validate(
        reference, open_candidate(broken), shape_sets=[{"image": (1, 3, 8, 8)}], tolerances=policy
    )
    assert rescued.passed
    policy = make_policy("fp32", overrides=[f"seg:{seg.required_atol * 0.99}"])
    still = validate(
        reference, open_candidate(broken), shape_sets=[{"image": (1, 3, 8, 8)}], tolerances=policy
    )
    assert not still.passed


def test_nan_in_the_graph_is_detected(reference, onnx_path, tmp_path) -> None:
    poisoned = runner_models.edit_initializer(
        onnx_path, tmp_path / "n.onnx", "head.bias", "set", float("nan")
    )
    report = validate(
        reference,
        open_candidate(poisoned),
        shape_sets=[{"image": (1, 3, 8, 8)}],
        tolerances=make_policy("fp32", atol=1e9, rtol=1e9),  # no tolerance hides a NaN
    )
    seg, feat = report.runs[0].outputs
    assert not report.passed and feat.passed
    assert seg.nan == 1 * 1 * 16 * 16  # channel 0 of the 1x2x16x16 output
    assert "NaN" in seg.problem


def test_user_inputs_npz(reference, onnx_path, tmp_path) -> None:
    candidate = open_candidate(onnx_path)
    image = np.random.default_rng(1).standard_normal((2, 3, 6, 10), dtype=np.float32)
    np.savez(tmp_path / "good.npz", image=image)
    inputs = load_inputs(tmp_path / "good.npz", candidate.inputs)
    report = validate(reference, candidate, inputs=inputs)
    assert report.passed and report.seed is None
    assert report.runs[0].shapes == {"image": (2, 3, 6, 10)}


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"img": np.zeros((1, 3, 8, 8), np.float32)}, "Unknown input name(s) 'img'"),
        (
            {"image": np.zeros((1, 4, 8, 8), np.float32)},
            "has shape 1x4x8x8, the model expects ?x3x?x?",
        ),
        ({"image": np.zeros((3, 8, 8), np.float32)}, "has shape 3x8x8"),
        ({"image": np.zeros((1, 3, 8, 8), np.float64)}, "is float64, the model expects float32"),
        ({}, "Missing input(s) 'image'"),
    ],
)
def test_bad_inputs_npz_is_a_user_error(onnx_path, tmp_path, arrays, message) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(UserError) as error:
        load_inputs(tmp_path / "bad.npz", open_candidate(onnx_path).inputs)
    assert message in str(error.value)


def test_not_an_npz_is_a_user_error(onnx_path, tmp_path) -> None:
    np.save(tmp_path / "single.npy", np.zeros(3))
    for path in (tmp_path / "single.npy", tmp_path / "missing.npz"):
        with pytest.raises(UserError, match=r"not a readable \.npz"):
            load_inputs(path, open_candidate(onnx_path).inputs)


def test_mismatched_names_are_a_user_error(reference, onnx_path) -> None:
    other = runner_models.Reference(reference.model, ["x"], ["seg", "feat"], [(1, 3, 8, 8)])
    with pytest.raises(UserError, match="do not match the checkpoint"):
        validate(other, open_candidate(onnx_path))


def test_trt_backend_refuses_onnx(onnx_path) -> None:
    with pytest.raises(UserError, match="Build one first"):
        open_candidate(onnx_path, "trt")


def test_fp16_graph_gets_fp16_inputs_and_tolerances(reference, tmp_path) -> None:
    half = runner_models.export_portable(reference.model, tmp_path / "h.onnx", fp16=True)
    candidate = open_candidate(half)
    assert candidate.precision == "fp16" and candidate.inputs[0].dtype == np.float16
    report = validate(reference, candidate, shape_sets=[{"image": (1, 3, 8, 12)}])
    assert report.passed and report.precision == "fp16"
    seg = report.runs[0].outputs[0]
    assert (seg.atol, seg.rtol) == (1e-2, 1e-2) and seg.dtype == "float16"
    assert 1e-4 < seg.max_abs < 1e-2  # float16 rounding: beyond the float32 tolerance
    strict = validate(
        reference, candidate, shape_sets=[{"image": (1, 3, 8, 12)}], tolerances=make_policy("fp32")
    )
    assert not strict.passed
