"""`Engine`: run a TensorRT engine with numpy in and numpy out (or torch CUDA tensors, zero-copy).

Made for edge devices: needs numpy, tensorrt and pycuda (through `dlu_deploy.runtime.cuda`),
never torch. Dynamic shapes go through the execution context's input shapes, work is enqueued
on a CUDA stream (`submit` returns before the GPU finishes), and fixed shapes can be replayed
as a CUDA graph.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dlu_deploy.errors import UserError
from dlu_deploy.libraries import TRT_PLUGIN_LIBRARY, existing_plugin_paths, find_native_library
from dlu_deploy.runtime import cuda, sidecar, trt_api
from dlu_deploy.runtime.io import Shape, TensorSpec, check_feed, check_shape, name_feed

log = logging.getLogger("dlu_deploy.runtime")

Feed = Mapping[str, Any] | Sequence[Any]


class Engine:
    """A deserialized engine with one execution context, its buffers and a stream.

    One inference is in flight per Engine at a time (buffers are reused); create one Engine per
    concurrent stream of work.
    """

    def __init__(
        self,
        path: str | Path,
        plugins: Sequence[str | Path] | None = None,
        *,
        device: int = 0,
        check_compatibility: bool = True,
        cuda_graph: bool = False,
    ) -> None:
        """Load `path`. `plugins`: plugin libraries to load (None: the sidecar's, found like
        the project's own library; [] loads none). `check_compatibility=False` skips the sidecar's
        TensorRT/GPU checks. `cuda_graph` replays repeated fixed-shape calls as a CUDA graph."""
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(
                f"Engine file {self.path} does not exist.", "Build one with `dlu-deploy build`."
            )
        self.sidecar = sidecar.read_sidecar(self.path)
        if self.sidecar is not None:
            sidecar.check_engine_file(self.path, self.sidecar)
        trt = trt_api.import_tensorrt(f"to run {self.path.name}")
        self._trt = trt
        self.tensorrt_version = str(trt.__version__)
        self.device = cuda.activate(device)
        plugin_paths = self._plugin_paths(plugins)
        self.warnings: list[str] = []
        if self.sidecar is not None and check_compatibility:
            current = {
                "tensorrt": {"version": trt.__version__},
                "gpu": {
                    "name": self.device.name,
                    "compute_capability": self.device.compute_capability,
                },
                "plugins": [sidecar.file_digest(p) for p in plugin_paths],
            }
            harmless = sidecar.refuse_incompatible(
                self.path, sidecar.environment_mismatches(self.sidecar, current)
            )
            self.warnings = [m.describe() for m in harmless]
            for warning in self.warnings:
                log.warning("%s: %s", self.path.name, warning)
        trt_api.load_plugin_libraries(trt, plugin_paths)
        self._runtime = trt.Runtime(trt_api.get_logger(trt))
        with trt_api.recorded_errors(trt) as errors:
            self._engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self._engine is None:
            raise _deserialize_error(self.path, errors, plugin_paths)
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise UserError(
                f"TensorRT could not create an execution context for {self.path.name} "
                "(out of GPU memory?).",
                "Free GPU memory (other processes, larger engines) and try again.",
            )
        self.inputs, self.outputs = self._tensor_specs()
        self._stream = cuda.Stream()
        self._device_buffers: dict[str, cuda.DeviceBuffer] = {}
        self._host_outputs: dict[str, np.ndarray] = {}
        self._host_inputs: dict[str, np.ndarray] = {}
        # The input shapes that the context's shapes and tensor addresses are set for.
        self._bound_shapes: dict[str, Shape] | None = None
        self._use_graph = cuda_graph
        self._graph: cuda.CudaGraph | None = None
        self._graph_ready_shapes: dict[str, Shape] | None = None
        self._pending: PendingInference | None = None

    # ------------------------------------------------------------------ public API

    def __call__(self, feed: Feed) -> dict[str, Any]:
        """Run synchronously. numpy in -> numpy out; torch CUDA tensors in -> torch CUDA tensors
        out (enqueued on torch's current stream, zero-copy, not synchronized)."""
        if _is_torch_cuda_feed(feed):
            return self._run_torch(feed)
        return self.submit(feed).result()

    def submit(self, feed: Feed) -> PendingInference:
        """Enqueue an inference on the engine's stream and return without waiting for it."""
        if self._pending is not None:
            self._pending.result()  # buffers are reused: finish the previous inference first
        arrays = check_feed(feed, self.inputs)
        self._bind(arrays)
        for name, array in arrays.items():
            host = self._host_inputs[name][: array.size].reshape(array.shape)
            np.copyto(host, array)
            self._stream.copy_to_device(self._device_buffers[name].ptr, host)
        self._execute()
        shapes = self._output_shapes()
        for name, shape in shapes.items():
            self._stream.copy_to_host(
                self._host_output_view(name, shape), self._device_buffers[name].ptr
            )
        self._pending = PendingInference(self, shapes)
        return self._pending

    @property
    def device_memory_bytes(self) -> int:
        """Activation memory of the engine plus the I/O buffers allocated so far."""
        engine = self._engine
        if hasattr(engine, "device_memory_size_v2"):  # TensorRT >= 10.1; 11 has only this one
            activations = engine.device_memory_size_v2
        else:
            activations = engine.device_memory_size
        return int(activations) + sum(b.capacity for b in self._device_buffers.values())

    @property
    def stream(self) -> cuda.Stream:
        return self._stream

    def execute(self) -> None:
        """Enqueue one run on the already bound buffers (benchmark loops; no copies)."""
        self._execute()

    def close(self) -> None:
        if self._graph is not None:
            self._graph.close()
            self._graph = None
        for buffer in self._device_buffers.values():
            buffer.free()
        self._device_buffers.clear()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _plugin_paths(self, plugins: Sequence[str | Path] | None) -> list[Path]:
        if plugins is not None:
            return existing_plugin_paths(list(plugins))
        recorded = (self.sidecar or {}).get("plugins", [])
        found = find_native_library(TRT_PLUGIN_LIBRARY)
        if found is not None and (recorded or self.sidecar is None):
            return [found]
        existing = [Path(p["path"]) for p in recorded if Path(p.get("path", "")).is_file()]
        if recorded and not existing:
            raise UserError(
                f"{self.path.name} uses plugins from {recorded[0].get('path')}, which is not on "
                "this machine.",
                "Pass plugins=[path/to/libdlu_trt_plugins.so] (CLI: --plugins) or set "
                "DLU_DEPLOY_LIB_DIR.",
            )
        return existing

    def _tensor_specs(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        trt, engine = self._trt, self._engine
        inputs, outputs = [], []
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            if engine.is_shape_inference_io(name):
                raise UserError(
                    f"{self.path.name} has the shape tensor '{name}', which this runtime does "
                    "not feed.",
                    "Export the model without shape-tensor inputs (dlu-export does by default).",
                )
            dtype = trt_api.numpy_dtype(trt, engine.get_tensor_dtype(name), name)
            shape = tuple(int(d) for d in engine.get_tensor_shape(name))
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                low, opt, high = (
                    tuple(int(d) for d in s) for s in engine.get_tensor_profile_shape(name, 0)
                )
                inputs.append(TensorSpec(name, dtype, shape, (low, opt, high)))
            else:
                outputs.append(TensorSpec(name, dtype, shape))
        return inputs, outputs

    def _set_input_shapes(self, shapes: Mapping[str, Shape]) -> None:
        for name, shape in shapes.items():
            if not self._context.set_input_shape(name, shape):
                raise UserError(
                    f"TensorRT rejected shape {shape} for input '{name}'.",
                    "Use a shape inside the engine's optimization profile.",
                )

    def _output_shapes(self) -> dict[str, Shape]:
        shapes = {}
        for spec in self.outputs:
            shape = tuple(int(d) for d in self._context.get_tensor_shape(spec.name))
            if any(d < 0 for d in shape):
                raise UserError(
                    f"Output '{spec.name}' has a data-dependent shape {shape}, which this runtime "
                    "does not support.",
                    "Export the model with outputs whose shapes follow from the input shapes.",
                )
            shapes[spec.name] = shape
        return shapes

    def _bind(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Set input shapes and tensor addresses if the shapes changed since the last call."""
        shapes = {name: a.shape for name, a in arrays.items()}
        if shapes == self._bound_shapes:
            return
        self._set_input_shapes(shapes)
        if self._graph is not None:  # a graph is only valid for the shapes it was captured with
            self._graph.close()
            self._graph = None
        self._graph_ready_shapes = None
        sizes = {name: (a.nbytes, a.size, a.dtype) for name, a in arrays.items()}
        for spec, shape in zip(self.outputs, self._output_shapes().values(), strict=True):
            size = int(np.prod(shape, dtype=np.int64))
            sizes[spec.name] = (size * spec.dtype.itemsize, size, spec.dtype)
        for name, (nbytes, count, dtype) in sizes.items():
            buffer = self._device_buffers.setdefault(name, cuda.DeviceBuffer())
            buffer.ensure(nbytes)
            host = self._host_inputs if name in arrays else self._host_outputs
            if name not in host or host[name].size < count:
                host[name] = cuda.pinned_empty((max(count, 1),), dtype)
        for name, buffer in self._device_buffers.items():
            self._context.set_tensor_address(name, buffer.ptr)
        self._bound_shapes = shapes

    def _host_output_view(self, name: str, shape: Shape) -> np.ndarray:
        count = int(np.prod(shape, dtype=np.int64))
        return self._host_outputs[name][:count].reshape(shape)

    def _execute(self) -> None:
        if self._use_graph and self._replay_graph():
            return
        self._enqueue(self._stream.handle)

    def _enqueue(self, stream_handle: int) -> None:
        with trt_api.recorded_errors(self._trt) as errors:
            ok = self._context.execute_async_v3(stream_handle)
        if not ok:
            raise RuntimeError(
                f"TensorRT failed to enqueue {self.path.name}: {'; '.join(errors) or 'no details'}"
            )

    def _replay_graph(self) -> bool:
        """Launch the CUDA graph of the bound shapes; False means: run normally this time.

        As trtexec does, the first run with new shapes is a normal one (TensorRT does its
        shape-dependent setup there) and the second captures the graph.
        """
        if self._graph is None:
            if self._graph_ready_shapes != self._bound_shapes:
                self._graph_ready_shapes = self._bound_shapes
                return False
            self._graph = self._capture_graph()
            if self._graph is None:
                return False
        self._graph.launch(self._stream)
        return True

    def _capture_graph(self) -> cuda.CudaGraph | None:
        graph = cuda.CudaGraph()
        self._stream.synchronize()
        graph.begin_capture(self._stream)
        captured = bool(self._context.execute_async_v3(self._stream.handle))
        try:
            graph.end_capture(self._stream, keep=captured)
        except RuntimeError as exc:
            log.warning("%s: %s", self.path.name, exc)
            captured = False
        if captured:
            return graph
        # Some engines contain work that cannot be captured: run them normally from now on.
        log.warning("%s: CUDA graph capture failed; running without a graph", self.path.name)
        self._use_graph = False
        return None

    def _run_torch(self, feed: Feed) -> dict[str, Any]:
        torch = sys.modules["torch"]  # present: the caller passed torch tensors
        named = name_feed(feed, self.inputs)
        tensors = {}
        for spec in self.inputs:
            tensor = named[spec.name]
            dtype = _TORCH_TO_NUMPY.get(str(tensor.dtype))
            if dtype != spec.dtype:
                raise UserError(
                    f"Input '{spec.name}' is {tensor.dtype}, the engine expects {spec.dtype}.",
                    f"Convert it first, e.g. tensor.to(torch.{spec.dtype.name}).",
                )
            if tensor.device.index != self.device.index:
                raise UserError(
                    f"Input '{spec.name}' is on {tensor.device}, the engine runs on "
                    f"cuda:{self.device.index}.",
                    f"Move it with tensor.to('cuda:{self.device.index}').",
                )
            check_shape(spec, tuple(tensor.shape))
            tensors[spec.name] = tensor.contiguous()
        self._set_input_shapes({name: tuple(t.shape) for name, t in tensors.items()})
        device = next(iter(tensors.values())).device
        outputs = {
            name: torch.empty(shape, dtype=getattr(torch, spec.dtype.name), device=device)
            for spec, (name, shape) in zip(self.outputs, self._output_shapes().items(), strict=True)
        }
        for name, tensor in {**tensors, **outputs}.items():
            self._context.set_tensor_address(name, tensor.data_ptr())
        self._bound_shapes = None  # the numpy path must rebind its own buffers
        self._enqueue(torch.cuda.current_stream(device).cuda_stream)
        return outputs


class PendingInference:
    """An enqueued inference; `result()` waits for it and returns the outputs as numpy arrays."""

    def __init__(self, engine: Engine, shapes: dict[str, Shape]) -> None:
        self._engine = engine
        self._shapes = shapes
        self._outputs: dict[str, np.ndarray] | None = None

    def result(self) -> dict[str, np.ndarray]:
        if self._outputs is None:
            self._engine.stream.synchronize()
            self._outputs = {
                n: self._engine._host_output_view(n, s).copy() for n, s in self._shapes.items()
            }
            if self._engine._pending is self:
                self._engine._pending = None
        return self._outputs


_TORCH_TO_NUMPY = {
    f"torch.{name}": np.dtype(name)
    for name in ("float32", "float16", "int8", "int32", "int64", "uint8", "bool")
}


def _is_torch_cuda_feed(feed: Feed) -> bool:
    values = list(feed.values()) if isinstance(feed, Mapping) else list(feed)
    cuda_flags = [
        bool(getattr(v, "is_cuda", False)) for v in values if type(v).__module__.startswith("torch")
    ]
    if any(cuda_flags) and (len(cuda_flags) != len(values) or not all(cuda_flags)):
        raise UserError(
            "Some inputs are torch CUDA tensors and some are not.",
            "Pass all inputs as torch CUDA tensors (zero-copy) or all as numpy arrays.",
        )
    return bool(cuda_flags) and all(cuda_flags)


def _deserialize_error(path: Path, errors: list[str], plugins: list[Path]) -> UserError:
    detail = "; ".join(errors) or "no details from TensorRT"
    if any("plugin" in e.lower() for e in errors):
        fix = (
            "The engine uses plugins that are not registered: pass "
            "plugins=[path/to/libdlu_trt_plugins.so] "
            "(CLI: --plugins)"
            + (f" (loaded: {', '.join(map(str, plugins))})" if plugins else "")
            + "."
        )
    else:
        fix = (
            "The file is truncated or corrupt, or was built by another TensorRT version: copy it "
            "again or rebuild it on this machine with `dlu-deploy build`."
        )
    return UserError(f"TensorRT could not deserialize {path} ({detail}).", fix)
