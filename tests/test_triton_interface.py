"""What Triton is told about a model (names, dtypes, dims, batching) for any interface, e.g. a
whole detector's `dets` float32 [N,K,5] and `labels` int64 [N,K]; and the errors of the Triton
verbs where the serve extra is missing. Runs in the main environment (no tritonclient needed)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from dlu_deploy.cli import main
from dlu_deploy.errors import UserError
from dlu_deploy.triton.config import ServingOptions, config_text, default_max_batch_size
from dlu_deploy.triton.interface import read_interface
from tests.triton_models import detector_onnx


def test_detector_interface_and_config(tmp_path) -> None:
    import numpy as np
    import onnxruntime

    path = detector_onnx(tmp_path / "det.onnx")
    # the graph is real: onnxruntime runs it with the declared output types and shapes
    session = onnxruntime.InferenceSession(str(path))
    dets, labels = session.run(None, {"image": np.ones((2, 3, 16, 8), np.float32)})
    assert dets.shape == (2, 100, 5) and labels.dtype == np.int64 and labels.shape == (2, 100)

    interface = read_interface(path)
    assert interface.batchable and default_max_batch_size(interface) == 8
    text = config_text("det", "onnxruntime", interface, ServingOptions(max_batch_size=4))
    assert '{ name: "image" data_type: TYPE_FP32 dims: [ 3, -1, -1 ] }' in text
    assert '{ name: "dets" data_type: TYPE_FP32 dims: [ 100, 5 ] }' in text
    assert '{ name: "labels" data_type: TYPE_INT64 dims: [ 100 ] }' in text
    assert "dynamic_batching {" in text and "max_batch_size: 4" in text


def test_fixed_batch_is_not_batchable(tmp_path) -> None:
    interface = read_interface(detector_onnx(tmp_path / "det1.onnx", batch=1))
    assert not interface.batchable and default_max_batch_size(interface) == 0
    with pytest.raises(UserError, match="cannot be batched by Triton"):
        ServingOptions(max_batch_size=2).check(interface)
    text = config_text("det", "onnxruntime", interface, ServingOptions(max_batch_size=0))
    assert "dims: [ 1, 100 ]" in text and "dynamic_batching" not in text


def test_engine_interface_from_the_sidecar(tmp_path) -> None:
    engine = tmp_path / "det.engine"
    engine.write_bytes(b"plan")
    sidecar = {
        "format": 1,
        "inputs": [{"name": "image", "dtype": "DataType.HALF", "shape": [-1, 3, -1, -1]}],
        "outputs": [
            {"name": "dets", "dtype": "DataType.FLOAT", "shape": [-1, 100, 5]},
            {"name": "labels", "dtype": "DataType.INT64", "shape": [-1, 100]},
        ],
        "profiles": [
            {"image": {"min": [1, 3, 64, 64], "opt": [2, 3, 512, 512], "max": [3, 3, 800, 800]}}
        ],
    }
    (tmp_path / "det.engine.json").write_text(json.dumps(sidecar))
    interface = read_interface(engine)
    assert [(t.name, t.triton_dtype, t.dims) for t in interface.tensors()] == [
        ("image", "TYPE_FP16", (-1, 3, -1, -1)),
        ("dets", "TYPE_FP32", (-1, 100, 5)),
        ("labels", "TYPE_INT64", (-1, 100)),
    ]
    assert interface.batch_limit == 3 and default_max_batch_size(interface) == 3


def test_unknown_model_kind(tmp_path, capsys) -> None:
    other = tmp_path / "model.pt"
    other.write_bytes(b"x")
    assert main(["triton-repo", str(other), str(tmp_path / "r")]) == 2
    assert "neither an ONNX file" in capsys.readouterr().err


@pytest.mark.skipif(
    importlib.util.find_spec("pytriton") is not None, reason="PyTriton is installed here"
)
def test_serve_without_pytriton_says_how_to_get_it(tmp_path, capsys) -> None:
    assert main(["serve", str(detector_onnx(tmp_path / "det.onnx"))]) == 2
    err = capsys.readouterr().err
    assert "needs PyTriton" in err and "scripts/setup-triton-env" in err


@pytest.mark.skipif(
    importlib.util.find_spec("tritonclient") is not None, reason="tritonclient is installed here"
)
def test_triton_repo_without_tritonclient_says_how_to_get_it(tmp_path, capsys) -> None:
    assert main(["triton-repo", str(detector_onnx(tmp_path / "det.onnx")), str(tmp_path)]) == 2
    assert "dlu-deploy[serve]" in capsys.readouterr().err
