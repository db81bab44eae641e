"""A model's inputs and outputs as Triton sees them, read from the ONNX file or the engine's
sidecar (no onnxruntime, no TensorRT).

Triton wants, per tensor, a name, a data type and the dims without the batch dim when
`max_batch_size > 0`; -1 marks a variable dim. A model can be batched by Triton when the first
dim of every input and output is variable (dlu-export --dynamic makes it symbolic `N`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlu_deploy.errors import UserError

# numpy dtype name -> Triton's DataType (model_config.proto).
TRITON_DTYPES = {
    "bool": "TYPE_BOOL",
    "uint8": "TYPE_UINT8",
    "uint16": "TYPE_UINT16",
    "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64",
    "int8": "TYPE_INT8",
    "int16": "TYPE_INT16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "float16": "TYPE_FP16",
    "float32": "TYPE_FP32",
    "float64": "TYPE_FP64",
}

# The sidecar records TensorRT's DataType as str(trt.DataType.X).
_TRT_DTYPES = {
    "DataType.FLOAT": "float32",
    "DataType.HALF": "float16",
    "DataType.INT8": "int8",
    "DataType.INT32": "int32",
    "DataType.INT64": "int64",
    "DataType.BOOL": "bool",
    "DataType.UINT8": "uint8",
}

ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: np.dtype
    dims: tuple[int, ...]  # full dims, -1 = variable

    @property
    def triton_dtype(self) -> str:
        return TRITON_DTYPES[self.dtype.name]

    def describe(self) -> str:
        dims = "x".join("?" if d < 0 else str(d) for d in self.dims)
        return f"{self.name} ({self.dtype}, {dims})"


@dataclass(frozen=True)
class ModelInterface:
    path: Path
    kind: str  # "onnx" or "engine"
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    # Largest batch the model accepts (engine: its profile's max batch; ONNX: None = any).
    batch_limit: int | None
    has_custom_nodes: bool

    @property
    def batchable(self) -> bool:
        """Whether Triton may batch requests: every tensor's first dim is variable."""
        return all(t.dims and t.dims[0] == -1 for t in (*self.inputs, *self.outputs))

    def tensors(self) -> tuple[Tensor, ...]:
        return (*self.inputs, *self.outputs)


def is_engine(path: str | Path) -> bool:
    return Path(path).suffix.lower() in ENGINE_SUFFIXES


def read_interface(path: str | Path) -> ModelInterface:
    """The interface of an ONNX file or of a TensorRT engine (from its sidecar)."""
    path = Path(path)
    if is_engine(path):
        return _engine_interface(path)
    if path.suffix.lower() != ".onnx":
        raise UserError(
            f"{path} is neither an ONNX file (.onnx) nor a TensorRT engine "
            f"({', '.join(ENGINE_SUFFIXES)}).",
            "Pass the model exported by dlu-export or the engine built by dlu-deploy build.",
        )
    return _onnx_interface(path)


def _onnx_interface(path: Path) -> ModelInterface:
    from dlu_deploy.onnx_info import TensorInfo, inspect_onnx

    info = inspect_onnx(path)

    def tensor(t: TensorInfo) -> Tensor:
        dims = tuple(d if isinstance(d, int) else -1 for d in t.dims)
        return _checked(Tensor(t.name, np.dtype(t.dtype), dims), path)

    return ModelInterface(
        path=path,
        kind="onnx",
        inputs=tuple(tensor(t) for t in info.inputs),
        outputs=tuple(tensor(t) for t in info.outputs),
        batch_limit=None,
        has_custom_nodes=bool(info.custom_nodes),
    )


def _engine_interface(path: Path) -> ModelInterface:
    from dlu_deploy.runtime.sidecar import read_sidecar, sidecar_path

    if not path.is_file():
        raise UserError(f"Engine {path} does not exist.", "Check the path.")
    sidecar = read_sidecar(path)
    if sidecar is None:
        raise UserError(
            f"{path} has no sidecar ({sidecar_path(path).name}), so its inputs and outputs are "
            "unknown here (reading them from the engine needs TensorRT and a GPU).",
            "Build the engine with `dlu-deploy build`, which writes the sidecar, or write the "
            "repository from the ONNX file on the machine that has TensorRT.",
        )

    def tensor(record: dict[str, object]) -> Tensor:
        dtype = _TRT_DTYPES.get(str(record.get("dtype")))
        if dtype is None:
            raise UserError(
                f"{sidecar_path(path)}: tensor {record.get('name')!r} has the data type "
                f"{record.get('dtype')!r}, which Triton's TensorRT backend cannot carry here.",
                "Export the model with float32/float16/int32/int64 inputs and outputs.",
            )
        shape = record.get("shape")
        assert isinstance(shape, list)
        return _checked(Tensor(str(record["name"]), np.dtype(dtype), tuple(shape)), path)

    inputs = tuple(tensor(r) for r in sidecar.get("inputs", []))
    outputs = tuple(tensor(r) for r in sidecar.get("outputs", []))
    if not inputs or not outputs:
        raise UserError(
            f"The sidecar of {path} lists no inputs or no outputs.",
            "Rebuild the engine with `dlu-deploy build`.",
        )
    return ModelInterface(
        path=path,
        kind="engine",
        inputs=inputs,
        outputs=outputs,
        batch_limit=_profile_batch_limit(sidecar, inputs),
        has_custom_nodes=bool(sidecar.get("plugin_nodes") or sidecar.get("plugins")),
    )


def _profile_batch_limit(sidecar: dict[str, object], inputs: tuple[Tensor, ...]) -> int | None:
    """The largest batch every profile allows for every input with a variable batch dim."""
    limits = []
    profiles = sidecar.get("profiles") or []
    assert isinstance(profiles, list)
    for profile in profiles:
        for tensor in inputs:
            entry = profile.get(tensor.name)
            if tensor.dims and tensor.dims[0] == -1 and entry:
                limits.append(int(entry["max"][0]))
    return min(limits) if limits else None


def _checked(tensor: Tensor, path: Path) -> Tensor:
    if tensor.dtype.name not in TRITON_DTYPES:
        raise UserError(
            f"{path}: tensor {tensor.name!r} has the data type {tensor.dtype}, which has no "
            "Triton equivalent here.",
            "Export the model with float32/float16/int32/int64 inputs and outputs.",
        )
    return tensor
