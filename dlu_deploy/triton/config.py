"""`config.pbtxt` for Triton's TensorRT and onnxruntime backends, checked by parsing it into
Triton's own `inference.ModelConfig` protobuf.

The protobuf comes from tritonclient (`tritonclient/grpc/model_config_pb2.py`, generated from
Triton's `common/protobuf/model_config.proto`). It is loaded from its file: importing the
`tritonclient.grpc` package would also need grpcio, which checking a text file does not.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from dlu_deploy.errors import UserError
from dlu_deploy.triton.interface import ModelInterface, Tensor

BACKENDS = {"tensorrt": "model.plan", "onnxruntime": "model.onnx"}
INSTANCE_KINDS = {"cpu": "KIND_CPU", "gpu": "KIND_GPU"}
_PB2_MODULE = "dlu_deploy_triton_model_config_pb2"


@dataclass(frozen=True)
class ServingOptions:
    """What Triton does with the model: batching, queueing, instances."""

    max_batch_size: int = 0  # 0: no batching by Triton (requests carry their own batch dim)
    dynamic_batching: bool = True  # only with max_batch_size > 0
    max_queue_delay_us: int = 1000
    preferred_batch_sizes: tuple[int, ...] = ()
    instance_count: int = 1
    instance_kind: str = "cpu"
    gpus: tuple[int, ...] = field(default_factory=tuple)

    def check(self, interface: ModelInterface) -> None:
        if self.max_batch_size < 0:
            raise UserError(
                f"--max-batch-size {self.max_batch_size} is negative.",
                "Pass 0 (no batching by Triton) or a positive batch size.",
            )
        if self.max_batch_size > 0 and not interface.batchable:
            fixed = [t.describe() for t in interface.tensors() if not t.dims or t.dims[0] != -1]
            raise UserError(
                f"{interface.path.name} cannot be batched by Triton: the first dim of "
                f"{', '.join(fixed)} is not variable.",
                "Export with `dlu-export --dynamic` (symbolic batch dim N), or pass "
                "--max-batch-size 0.",
            )
        limit = interface.batch_limit
        if limit is not None and self.max_batch_size > limit:
            raise UserError(
                f"--max-batch-size {self.max_batch_size} is larger than the batch the engine's "
                f"optimization profile allows ({limit}).",
                f"Pass --max-batch-size {limit} or less, or rebuild the engine with a larger "
                "--max batch.",
            )
        bad = [b for b in self.preferred_batch_sizes if not 1 <= b <= self.max_batch_size]
        if bad:
            raise UserError(
                f"Preferred batch size(s) {bad} are not in [1, --max-batch-size "
                f"{self.max_batch_size}].",
                "Pass preferred sizes between 1 and the maximum batch size.",
            )
        if self.max_queue_delay_us < 0:
            raise UserError(
                f"--max-queue-delay-us {self.max_queue_delay_us} is negative.",
                "Pass the delay in microseconds, 0 or more.",
            )
        if self.instance_count < 1:
            raise UserError(
                f"--instances {self.instance_count} is less than 1.",
                "Pass the number of model instances, 1 or more.",
            )
        if self.instance_kind not in INSTANCE_KINDS:
            raise UserError(f"Unknown instance kind {self.instance_kind!r}.", "Use cpu or gpu.")

    @property
    def batching(self) -> bool:
        return self.max_batch_size > 0 and self.dynamic_batching


def default_max_batch_size(interface: ModelInterface) -> int:
    """8, or the engine profile's max batch if smaller; 0 when the model cannot be batched."""
    if not interface.batchable:
        return 0
    return min(8, interface.batch_limit) if interface.batch_limit else 8


def config_text(
    name: str,
    backend: str,
    interface: ModelInterface,
    options: ServingOptions,
    op_libraries: Sequence[str] = (),
) -> str:
    """The config.pbtxt of `interface` served by `backend` ('tensorrt' or 'onnxruntime')."""
    if backend not in BACKENDS:
        raise UserError(f"Unknown Triton backend {backend!r}.", "Use tensorrt or onnxruntime.")
    batched = options.max_batch_size > 0
    lines = [
        f"# Written by dlu-deploy triton-repo from {interface.path.name}.",
        f'name: "{name}"',
        f'backend: "{backend}"',
        f'default_model_filename: "{BACKENDS[backend]}"',
        f"max_batch_size: {options.max_batch_size}",
        "input [",
        _tensor_entries(interface.inputs, batched),
        "]",
        "output [",
        _tensor_entries(interface.outputs, batched),
        "]",
    ]
    if options.batching:
        lines.append("dynamic_batching {")
        if options.preferred_batch_sizes:
            sizes = ", ".join(str(b) for b in options.preferred_batch_sizes)
            lines.append(f"  preferred_batch_size: [ {sizes} ]")
        lines.append(f"  max_queue_delay_microseconds: {options.max_queue_delay_us}")
        lines.append("}")
    group = [f"count: {options.instance_count}", f"kind: {INSTANCE_KINDS[options.instance_kind]}"]
    if options.instance_kind == "gpu" and options.gpus:
        group.append(f"gpus: [ {', '.join(str(g) for g in options.gpus)} ]")
    lines.append(f"instance_group [ {{ {' '.join(group)} }} ]")
    if op_libraries:
        lines.append("model_operations {")
        lines.extend(f'  op_library_filename: "{library}"' for library in op_libraries)
        lines.append("}")
    return "\n".join(lines) + "\n"


def _tensor_entries(tensors: Sequence[Tensor], batched: bool) -> str:
    entries = []
    for tensor in tensors:
        dims = tensor.dims[1:] if batched else tensor.dims
        entries.append(
            f'  {{ name: "{tensor.name}" data_type: {tensor.triton_dtype} '
            f"dims: [ {', '.join(str(d) for d in dims)} ] }}"
        )
    return ",\n".join(entries)


def model_config_pb2() -> ModuleType:
    """Triton's model_config_pb2 module (from tritonclient); UserError if tritonclient is absent."""
    if _PB2_MODULE in sys.modules:
        return sys.modules[_PB2_MODULE]
    spec = importlib.util.find_spec("tritonclient")
    locations = list(spec.submodule_search_locations or []) if spec else []
    candidates = [Path(p) / "grpc" / "model_config_pb2.py" for p in locations]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise UserError(
            "Checking config.pbtxt needs Triton's ModelConfig protobuf, which comes with the "
            "tritonclient package, and this Python has no tritonclient "
            f"({sys.executable}).",
            "pip install 'dlu-deploy[serve]' (or just `pip install tritonclient`).",
        )
    module_spec = importlib.util.spec_from_file_location(_PB2_MODULE, found)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[_PB2_MODULE] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:  # protobuf runtime/gencode mismatch and the like
        del sys.modules[_PB2_MODULE]
        raise UserError(
            f"Triton's ModelConfig protobuf ({found}) does not load with this protobuf "
            f"({type(exc).__name__}: {exc}).",
            "Install a tritonclient and protobuf that fit each other "
            "(pip install -U tritonclient protobuf).",
        ) from exc
    return module


def parse_config(text: str, source: str = "config.pbtxt") -> Any:
    """`text` parsed into Triton's ModelConfig; UserError naming the line of a syntax error."""
    from google.protobuf import text_format

    config = model_config_pb2().ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise UserError(
            f"{source} is not a valid Triton model configuration: {exc}.",
            "Fix the file by hand or write it again with `dlu-deploy triton-repo`.",
        ) from exc
    return config


def check_config(
    config: Any, interface: ModelInterface, options: ServingOptions, backend: str
) -> None:
    """UserError unless the parsed `config` describes `interface` served with `options`.

    Reads the protobuf's fields, not the text, so it checks what Triton will read.
    """
    pb2 = model_config_pb2()
    batched = config.max_batch_size > 0
    problems = []
    if config.backend != backend:
        problems.append(f"backend is {config.backend!r}, expected {backend!r}")
    if config.max_batch_size != options.max_batch_size:
        problems.append(f"max_batch_size is {config.max_batch_size}")
    for what, declared, tensors in (
        ("input", config.input, interface.inputs),
        ("output", config.output, interface.outputs),
    ):
        expected = {
            t.name: (t.triton_dtype, list(t.dims[1:] if batched else t.dims)) for t in tensors
        }
        found = {d.name: (pb2.DataType.Name(d.data_type), list(d.dims)) for d in declared}
        if found != expected:
            problems.append(f"{what}s are {found}, the model has {expected}")
    if config.HasField("dynamic_batching") != options.batching:
        problems.append("dynamic_batching does not match the options")
    if options.batching and not batched:
        problems.append("dynamic_batching needs max_batch_size > 0")
    groups = list(config.instance_group)
    if len(groups) != 1 or groups[0].count != options.instance_count:
        problems.append(f"instance_group is {[str(g).strip() for g in groups]}")
    if problems:
        raise UserError(
            f"The Triton configuration of {interface.path.name} is inconsistent: "
            + "; ".join(problems)
            + ".",
            "This is a bug in dlu-deploy triton-repo; please report it with the model.",
        )
