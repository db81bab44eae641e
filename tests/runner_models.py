"""Small networks for the runner tests: reference DLU and CARAFE modules behind a conv stem,
two outputs, exported to portable ONNX with dynamic batch and spatial dims."""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from dlu_deploy.reference import CARAFEPack, DLUPack

INPUT_NAMES = ["image"]
OUTPUT_NAMES = ["seg", "feat"]
EXAMPLE_SHAPE = (1, 3, 16, 20)


class TwoHeadNet(nn.Module):
    """image -> conv -> DLU upsampling -> 1x1 head ("seg"), and -> CARAFE upsampling ("feat")."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.dlu = DLUPack(8, 2, up_kernel=3, compressed_channels=8)
        self.carafe = CARAFEPack(8, 2, up_kernel=3, compressed_channels=8)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.stem(image)
        return self.head(self.dlu(features)), self.carafe(features)


@dataclass
class Reference:
    """The fields of dlu_deploy.checkpoints.LoadedModel that validate and bench use."""

    model: nn.Module
    input_names: list[str]
    output_names: list[str]
    example_shapes: list[tuple[int, ...]]


def make_reference(seed: int = 0) -> Reference:
    torch.manual_seed(seed)
    model = TwoHeadNet().eval()
    with torch.no_grad():  # offsets away from zero so DLU's bilinear path is exercised
        model.dlu.conv_offset.weight.normal_(0.0, 0.3)
    return Reference(model, list(INPUT_NAMES), list(OUTPUT_NAMES), [EXAMPLE_SHAPE])


def export_portable(
    model: nn.Module, path: Path, *, dynamic: bool = True, fp16: bool = False
) -> Path:
    """TorchScript export (opset 17, IR 10 for onnxruntime) with dynamic N, H, W; `fp16`
    exports a float16 copy of the model (float16 inputs, weights and outputs)."""
    axes = {"image": {0: "N", 2: "H", 3: "W"}} if dynamic else None
    dtype = torch.float16 if fp16 else torch.float32
    if fp16:
        model = copy.deepcopy(model).half()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.randn(*EXAMPLE_SHAPE, dtype=dtype),),
            str(path),
            input_names=INPUT_NAMES,
            output_names=OUTPUT_NAMES,
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    proto = onnx.load(str(path))
    proto.ir_version = 10
    onnx.save(proto, str(path))
    return path


def edit_initializer(src: Path, dst: Path, name: str, change: str, value: float) -> Path:
    """Copy of an ONNX file with one initializer scaled ('scale') or one element set ('set')."""
    proto = onnx.load(str(src))
    for index, tensor in enumerate(proto.graph.initializer):
        if tensor.name == name:
            array = numpy_helper.to_array(tensor).copy()
            if change == "scale":
                array *= value
            else:
                array.flat[0] = value
            proto.graph.initializer[index].CopyFrom(numpy_helper.from_array(array, name))
            onnx.save(proto, str(dst))
            return dst
    raise KeyError(
        f"{name} is not an initializer of {src}: {[t.name for t in proto.graph.initializer]}"
    )


def ort_outputs(path: Path, image: np.ndarray) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip(OUTPUT_NAMES, session.run(OUTPUT_NAMES, {"image": image}), strict=True))


def dlu_plugin_graph(path: Path, *, fp16: bool = False) -> Path:
    """A plugin-mode graph as dlu-export writes it (docs/ops.md "ONNX nodes"): one
    dlu_deploy::DLU node, kernel_size 3, group 1, scale 2, on 8 channels."""
    elem = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    inputs = [
        helper.make_tensor_value_info("x", elem, ["N", 8, "H", "W"]),
        helper.make_tensor_value_info("kernels", elem, ["N", 9, "H", "W"]),
        helper.make_tensor_value_info("offsets", elem, ["N", 8, "H", "W"]),
    ]
    node = helper.make_node(
        "DLU",
        ["x", "kernels", "offsets"],
        ["y"],
        name="neck/dlu_up",
        domain="dlu_deploy",
        kernel_size=3,
        group=1,
        scale=2,
        plugin_version="1",
    )
    output = helper.make_tensor_value_info("y", elem, ["N", 8, "H2", "W2"])
    graph = helper.make_graph([node], "dlu", inputs, [output])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("dlu_deploy", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 10
    onnx.save(model, str(path))
    return path
