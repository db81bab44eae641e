"""Models for the Triton tests: the shipped default DLU checkpoint exported once per session
and kind (test_serve.py and test_triton_repo.py share the plugin-mode export), and a small graph
with a whole detector's interface."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import onnx
from onnx import TensorProto, helper


@functools.cache
def default_onnx(mode: str, dynamic: bool) -> Path:
    """dlu_default exported in `mode` (plugin/portable); `dynamic`: symbolic N, H, W."""
    from dlu_export import ExportOptions, export_model
    from dlu_export.default import default_checkpoint

    from dlu_deploy.checkpoints import load_model

    folder = Path(tempfile.mkdtemp(prefix=f"dlu-triton-{mode}-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / f"dlu_{mode}.onnx"
    options = ExportOptions(mode=mode, dynamic=dynamic, input_shapes=[(1, 256, 8, 8)])
    export_model(load_model(default_checkpoint()), path, options)
    return path


def detector_onnx(path: Path, batch: str | int = "N") -> Path:
    """image [N,3,H,W] -> dets [N,100,5] float32, labels [N,100] int64 (a runnable graph)."""
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, "H", "W"])
    dets = helper.make_tensor_value_info("dets", TensorProto.FLOAT, [batch, 100, 5])
    labels = helper.make_tensor_value_info("labels", TensorProto.INT64, [batch, 100])
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["pooled"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Unsqueeze", ["pooled", "axes12"], ["pooled3"]),
        helper.make_node("Expand", ["pooled3", "dets_shape"], ["dets_n"]),
        helper.make_node("Shape", ["image"], ["image_shape"], end=1),
        helper.make_node("Concat", ["image_shape", "dets_tail"], ["dets_shape"], axis=0),
        helper.make_node("Identity", ["dets_n"], ["dets"]),
        helper.make_node("ReduceMax", ["dets_n"], ["top"], axes=[2], keepdims=0),
        helper.make_node("Cast", ["top"], ["labels"], to=TensorProto.INT64),
    ]
    constants = [
        helper.make_tensor("axes12", TensorProto.INT64, [2], [1, 2]),
        helper.make_tensor("dets_tail", TensorProto.INT64, [2], [100, 5]),
    ]
    graph = helper.make_graph(nodes, "detector", [image], [dets, labels], constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    onnx.save(model, str(path))
    return path
