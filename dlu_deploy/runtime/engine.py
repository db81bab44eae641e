"""`Engine`: run a TensorRT engine with numpy in and numpy out (or torch CUDA tensors, zero-copy).

Made for edge devices: needs numpy, tensorrt and pycuda (through `dlu_deploy.runtime.cuda`),
never torch. Dynamic shapes go through the execution context's input shapes, work is enqueued
on a CUDA stream (`submit` returns before the GPU finishes), and fixed shapes can be replayed
as a CUDA graph.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
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

    One inference is in flight per Engine at a time (buffers are reused): calls from several
    threads are serialised by the Engine's lock. For concurrent streams of work create one
    Engine per thread (TensorRT: one execution context per stream). Any thread may create,
    call or close an Engine: its device's CUDA context is made current for each call only.
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
        self._closed = True  # until construction has finished: close() and __del__ do nothing
        self._lock = threading.RLock()
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
        self._gpu = cuda.device(device)
        self.device = self._gpu.info
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
        with self._gpu.active():
            self._load(plugin_paths)
        self._use_graph = cuda_graph
        self._closed = False

    def _load(self, plugin_paths: list[Path]) -> None:
        trt = self._trt
        trt_api.load_plugin_libraries(trt, plugin_paths)
        self._runtime = trt.Runtime(trt_api.get_logger(trt))
        with trt_api.recorded_errors(trt) as errors:
            self._engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self._engine is None:
            raise _deserialize_error(self.path, errors, plugin_paths)
        with trt_api.recorded_errors(trt) as errors:
            self._context = self._engine.create_execution_context()
        if self._context is None:
            raise UserError(
                f"TensorRT could not create an execution context for {self.path.name} "
                f"({'; '.join(errors) or 'out of GPU memory?'}).",
                "Free GPU memory (other processes, larger engines) and try again.",
            )
        self.inputs, self.outputs = self._tensor_specs()
        self._stream = cuda.Stream()
        self._device_buffers: dict[str, cuda.DeviceBuffer] = {}
        self._host_outputs: dict[str, np.ndarray] = {}
        self._host_inputs: dict[str, np.ndarray] = {}
        # The input shapes that the context's shapes and tensor addresses are set for; None
        # whenever a bind failed half-way, so that the next call sets everything again.
        self._bound_shapes: dict[str, Shape] | None = None
        self._output_allocator: OutputAllocator | None = None  # data-dependent outputs
        self._static_output_shapes: dict[str, Shape] = {}
        self._graph: cuda.CudaGraph | None = None
        self._graph_ready_shapes: dict[str, Shape] | None = None
        self._pending: PendingInference | None = None

    # ------------------------------------------------------------------ public API

    def __call__(self, feed: Feed) -> dict[str, Any]:
        """Run synchronously. numpy in -> numpy out; torch CUDA tensors in -> torch CUDA tensors
        out (run on the engine's stream, ordered after and before torch's current stream, so
        torch work on that stream sees the outputs without the host waiting)."""
        if _is_torch_cuda_feed(feed):
            return self._run_torch(feed)
        with self._lock:
            return self.submit(feed).result()

    def submit(self, feed: Feed) -> PendingInference:
        """Enqueue an inference on the engine's stream and return without waiting for it."""
        with self._lock, self._gpu.active():
            self._check_open()
            self._finish_pending()  # buffers are reused: finish the previous inference first
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
                    self._host_output_view(name, shape), self._output_ptr(name)
                )
            self._pending = PendingInference(self, shapes)
            return self._pending

    @property
    def device_memory_bytes(self) -> int:
        """Activation memory of the engine plus the I/O buffers allocated so far."""
        self._check_open()
        engine = self._engine
        if hasattr(engine, "device_memory_size_v2"):  # TensorRT >= 10.1; 11 has only this one
            activations = engine.device_memory_size_v2
        else:
            activations = engine.device_memory_size
        buffers = sum(b.capacity for b in self._device_buffers.values())
        if self._output_allocator is not None:
            buffers += self._output_allocator.capacity
        return int(activations) + buffers

    @property
    def stream(self) -> cuda.Stream:
        self._check_open()
        return self._stream

    @contextmanager
    def activated(self) -> Iterator[cuda.DeviceInfo]:
        """The engine's CUDA context current on this thread, for CUDA objects made alongside
        the engine (e.g. `cuda.Event` in a benchmark loop): create and drop them inside."""
        with self._gpu.active() as info:
            yield info

    def execute(self) -> None:
        """Enqueue one run on the already bound buffers (benchmark loops; no copies)."""
        with self._lock, self._gpu.active():
            self._check_open()
            if self._bound_shapes is None:
                raise UserError(
                    f"{self.path.name}: no inputs are bound (no successful call yet, or the "
                    "last one failed or used torch tensors).",
                    "Call the engine (or submit) once with inputs of the shapes to run first.",
                )
            self._execute()

    def close(self) -> None:
        """Wait for the inference in flight, then release the execution context, the engine
        and all memory. Later calls raise a UserError; close() again does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with self._gpu.active():
                try:
                    if self._pending is not None:
                        self._pending._collect()  # its outputs stay readable after close
                finally:
                    self._release()

    def _release(self) -> None:
        """Drop TensorRT's objects before the memory they point at (the context holds our
        buffers' addresses), in reverse order of creation (context, engine, runtime)."""
        if self._graph is not None:
            self._graph.close()
            self._graph = None
        self._bound_shapes = None
        self._context = None
        self._engine = None
        self._runtime = None
        for buffer in self._device_buffers.values():
            buffer.free()
        self._device_buffers.clear()
        if self._output_allocator is not None:
            self._output_allocator.free()
            self._output_allocator = None
        self._host_inputs.clear()  # pinned memory: freed here, while the context is current
        self._host_outputs.clear()
        self._stream = None  # type: ignore[assignment]

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # An Engine dropped without close() (any thread, e.g. the GC's) still frees its memory
        # under its own context; at interpreter shutdown CUDA may already be gone.
        if not getattr(self, "_closed", True) and not sys.is_finalizing():
            with contextlib.suppress(Exception):
                self.close()

    # ------------------------------------------------------------------ internals

    def _check_open(self) -> None:
        if self._closed:
            raise UserError(
                f"The engine {self.path.name} is closed.",
                "Create a new Engine to run it again (close() releases its GPU memory).",
            )

    def _finish_pending(self) -> None:
        if self._pending is not None:
            self._pending._collect()

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
            # getTensorLocation: kHOST tensors need host pointers; this runtime binds device
            # memory only (NvInferRuntime.h, ICudaEngine::getTensorLocation).
            if engine.get_tensor_location(name) != trt.TensorLocation.DEVICE:
                raise UserError(
                    f"{self.path.name}: tensor '{name}' lives in host memory, which this "
                    "runtime does not bind.",
                    "Export the model so that its inputs and outputs are ordinary device tensors.",
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
        """Set every input shape, then let TensorRT check them together (inferShapes)."""
        for name, shape in shapes.items():
            with trt_api.recorded_errors(self._trt) as errors:
                accepted = self._context.set_input_shape(name, shape)
            if not accepted:
                raise UserError(
                    f"TensorRT rejected shape {shape} for input '{name}'"
                    f"{': ' + '; '.join(errors) if errors else ''}.",
                    "Use a shape inside the engine's optimization profile.",
                )
        # IExecutionContext::inferShapes (Python: infer_shapes) raises when shapes that are each
        # inside the profile contradict each other, and lists inputs whose shape is missing.
        with trt_api.recorded_errors(self._trt) as errors:
            try:
                missing = self._context.infer_shapes()
            except RuntimeError as exc:
                described = ", ".join(f"{n} {'x'.join(map(str, s))}" for n, s in shapes.items())
                raise UserError(
                    f"{self.path.name}: the input shapes ({described}) do not fit together: "
                    f"{'; '.join(errors) or exc}.",
                    "Give inputs whose shapes agree as the model requires (e.g. the same batch "
                    "and spatial size wherever the model combines them).",
                ) from exc
        if missing:
            raise RuntimeError(f"TensorRT still needs the shapes of {', '.join(missing)}")

    def _query_output_shapes(self) -> dict[str, Shape | None]:
        """Each output's shape from the context; None for a data-dependent one (-1 dims after
        all input shapes are set: NvInferRuntime.h, IExecutionContext::getTensorShape)."""
        shapes: dict[str, Shape | None] = {}
        for spec in self.outputs:
            shape = tuple(int(d) for d in self._context.get_tensor_shape(spec.name))
            shapes[spec.name] = None if any(d < 0 for d in shape) else shape
        return shapes

    def _output_shapes(self) -> dict[str, Shape]:
        """The shapes of the last run's outputs (data-dependent ones as TensorRT notified)."""
        shapes = {}
        for spec in self.outputs:
            if spec.name in self._static_output_shapes:
                shapes[spec.name] = self._static_output_shapes[spec.name]
            else:
                assert self._output_allocator is not None
                shapes[spec.name] = self._output_allocator.shape(spec.name)
        return shapes

    def _output_ptr(self, name: str) -> int:
        if name in self._static_output_shapes:
            return self._device_buffers[name].ptr
        assert self._output_allocator is not None
        return self._output_allocator.ptr(name)

    def _bind(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Set input shapes and tensor addresses if the shapes changed since the last call.

        All or nothing: `_bound_shapes` is cleared first and set only when every shape,
        buffer and address is in place, so after any failure (a rejected or inconsistent
        shape, out of memory) the next call, whatever its shapes, binds everything again
        instead of running on addresses of freed or too small buffers.
        """
        shapes = {name: a.shape for name, a in arrays.items()}
        if shapes == self._bound_shapes:
            return
        self._bound_shapes = None
        if self._graph is not None:  # a graph is only valid for the shapes it was captured with
            self._graph.close()
            self._graph = None
        self._graph_ready_shapes = None
        self._set_input_shapes(shapes)
        output_shapes = self._query_output_shapes()
        self._static_output_shapes = {n: s for n, s in output_shapes.items() if s is not None}
        sizes = {name: (a.nbytes, a.size, a.dtype) for name, a in arrays.items()}
        for spec in self.outputs:
            if (shape := self._static_output_shapes.get(spec.name)) is not None:
                size = int(np.prod(shape, dtype=np.int64))
                sizes[spec.name] = (size * spec.dtype.itemsize, size, spec.dtype)
        for name, (nbytes, count, dtype) in sizes.items():
            buffer = self._device_buffers.setdefault(name, cuda.DeviceBuffer())
            self._allocate(name, shapes, lambda b=buffer, n=nbytes: b.ensure(n), nbytes)
            host = self._host_inputs if name in arrays else self._host_outputs
            if name not in host or host[name].size < count:
                host.pop(name, None)
                host[name] = self._allocate(
                    name, shapes, lambda c=count, d=dtype: cuda.pinned_empty((max(c, 1),), d), 0
                )
        for name in sizes:
            self._set_address(name, self._device_buffers[name].ptr)
        dynamic = [n for n, s in output_shapes.items() if s is None]
        if dynamic:
            self._attach_output_allocator(dynamic)
        self._bound_shapes = shapes

    def _allocate(self, name: str, shapes: Mapping[str, Shape], make: Any, nbytes: int) -> Any:
        try:
            return make()
        except Exception as exc:
            if not cuda.is_out_of_memory(exc):
                raise
            described = ", ".join(f"{n} {'x'.join(map(str, s))}" for n, s in shapes.items())
            memory = (
                f"GPU memory for '{name}' ({nbytes} bytes)"
                if nbytes
                else (f"page-locked host memory for '{name}'")
            )
            raise UserError(
                f"Out of {memory} at input shapes {described}.",
                "Use smaller inputs (batch or size), or free GPU memory; the engine stays usable "
                "at shapes that fit.",
            ) from exc

    def _set_address(self, name: str, ptr: int) -> None:
        # setTensorAddress returns false for an unknown name or an address that is not
        # 256-byte aligned (NvInferRuntime.h, IExecutionContext::setTensorAddress).
        if not self._context.set_tensor_address(name, ptr):
            raise RuntimeError(
                f"TensorRT refused the address {ptr:#x} for '{name}' (not 256-byte aligned?)"
            )

    def _attach_output_allocator(self, names: list[str]) -> None:
        if self._output_allocator is None:
            self._output_allocator = OutputAllocator(self._trt)
        for name in names:
            if name not in self._output_allocator.names:
                if not self._context.set_output_allocator(name, self._output_allocator.impl):
                    raise RuntimeError(f"TensorRT refused an output allocator for '{name}'")
                self._output_allocator.names.add(name)
                self._host_outputs.pop(name, None)

    def _host_output_view(self, name: str, shape: Shape) -> np.ndarray:
        count = int(np.prod(shape, dtype=np.int64))
        host = self._host_outputs.get(name)
        if host is None or host.size < count:  # data-dependent outputs: sized after the run
            self._host_outputs.pop(name, None)
            spec = next(s for s in self.outputs if s.name == name)
            bound = self._bound_shapes or {}
            host = self._allocate(
                name, bound, lambda: cuda.pinned_empty((max(count, 1),), spec.dtype), 0
            )
            self._host_outputs[name] = host
        return host[:count].reshape(shape)

    def _execute(self) -> None:
        if self._use_graph and self._output_allocator is not None:
            # TensorRT learns data-dependent output sizes on the host during enqueueV3 (it calls
            # the output allocator and notifyShape), which a replayed graph cannot repeat.
            log.warning(
                "%s: outputs with data-dependent shapes; running without a CUDA graph",
                self.path.name,
            )
            self._use_graph = False
        if self._use_graph and self._replay_graph():
            return
        self._enqueue(self._stream.handle)

    def _enqueue(self, stream_handle: int) -> None:
        if self._output_allocator is not None:
            self._output_allocator.start_run()
        with trt_api.recorded_errors(self._trt) as errors:
            ok = self._context.execute_async_v3(stream_handle)
        if self._output_allocator is not None:
            failure = self._output_allocator.failure()
            if failure is not None:
                raise UserError(
                    f"{self.path.name}: {failure}.",
                    "Use smaller inputs, or free GPU memory; the engine stays usable.",
                )
        if not ok:
            raise RuntimeError(
                f"TensorRT failed to enqueue {self.path.name}: {'; '.join(errors) or 'no details'}"
            )
        if self._output_allocator is not None:
            self._output_allocator.check_notified()

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
        with self._lock, self._gpu.active():
            self._check_open()
            self._finish_pending()  # one execution context: never two enqueues in flight
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
                tensors[spec.name] = bindable_tensor(torch, tensor)
            self._bound_shapes = None  # the context is about to point at torch's memory
            if self._graph is not None:
                self._graph.close()
                self._graph = None
            self._set_input_shapes({name: tuple(t.shape) for name, t in tensors.items()})
            shapes = self._query_output_shapes()
            dynamic = [n for n, s in shapes.items() if s is None]
            if dynamic:
                raise UserError(
                    f"{self.path.name}: output(s) {', '.join(dynamic)} have data-dependent "
                    "shapes, which the torch zero-copy path does not allocate.",
                    "Pass numpy arrays (the engine then sizes those outputs itself).",
                )
            device = next(iter(tensors.values())).device
            outputs = {
                name: empty_bindable(torch, shape, spec.dtype, device)
                for spec in self.outputs
                if (shape := shapes[(name := spec.name)]) is not None
            }
            for name, tensor in {**tensors, **outputs}.items():
                self._set_address(name, tensor.data_ptr())
            # Run on the engine's own (non-default) stream, after whatever torch queued on its
            # current stream and before whatever it queues next: enqueueV3 on the legacy
            # default stream makes TensorRT synchronize the device (NvInferRuntime.h, enqueueV3).
            caller = torch.cuda.current_stream(device)
            engine_stream = torch.cuda.ExternalStream(self._stream.handle, device=device)
            engine_stream.wait_stream(caller)
            self._enqueue(self._stream.handle)
            caller.wait_stream(engine_stream)
            return outputs


TENSOR_ALIGNMENT = 256  # bytes; IExecutionContext::setTensorAddress: "at least 256-byte alignment"


def empty_bindable(torch: Any, shape: Shape, dtype: np.dtype, device: Any) -> Any:
    """An uninitialised torch tensor whose data starts on a TENSOR_ALIGNMENT boundary."""
    count = int(np.prod(shape, dtype=np.int64))
    raw = torch.empty(count * dtype.itemsize + TENSOR_ALIGNMENT, dtype=torch.uint8, device=device)
    start = -raw.data_ptr() % TENSOR_ALIGNMENT
    flat = raw[start : start + count * dtype.itemsize]
    return flat.view(getattr(torch, dtype.name)).view(shape)


def bindable_tensor(torch: Any, tensor: Any) -> Any:
    """`tensor` itself when contiguous and aligned for TensorRT, else an aligned copy (views
    such as x[1:] start inside their storage, at any offset)."""
    tensor = tensor.contiguous()
    if tensor.data_ptr() % TENSOR_ALIGNMENT == 0:
        return tensor
    dtype = _TORCH_TO_NUMPY[str(tensor.dtype)]
    copy = empty_bindable(torch, tuple(tensor.shape), dtype, tensor.device)
    copy.copy_(tensor)
    return copy


class OutputAllocator:
    """Device memory for outputs with data-dependent shapes (NonZero, NonMaxSuppression).

    TensorRT calls it during enqueueV3 (NvInferRuntime.h, IOutputAllocator): first
    reallocateOutputAsync (10.x and 11; its default calls the deprecated reallocateOutput,
    which 11 no longer forwards anywhere useful) with the bytes it needs and the required
    alignment, then notifyShape with the real dims before enqueueV3 returns. The Python
    bindings call `reallocate_output_async` when the subclass defines it, else
    `reallocate_output`; an exception or a return value that is not an int becomes a null
    pointer (python/src/infer/pyCore.cpp, PyOutputAllocator), so failures are kept here and
    reported by the Engine rather than raised inside the callback.
    """

    def __init__(self, trt: Any) -> None:
        base = trt.IOutputAllocator
        self._impl = _make_trt_allocator(base, self)
        self.names: set[str] = set()
        self._buffers: dict[str, cuda.DeviceBuffer] = {}
        self._shapes: dict[str, Shape] = {}
        self._failure: str | None = None

    @property
    def impl(self) -> Any:
        return self._impl

    @property
    def capacity(self) -> int:
        return sum(b.capacity for b in self._buffers.values())

    def start_run(self) -> None:
        self._shapes.clear()
        self._failure = None

    def reallocate(self, name: str, size: int, alignment: int) -> int:
        buffer = self._buffers.setdefault(name, cuda.DeviceBuffer())
        try:
            buffer.ensure(int(size))
        except Exception as exc:
            self._failure = (
                f"out of GPU memory for the data-dependent output '{name}' ({size} bytes)"
                if cuda.is_out_of_memory(exc)
                else f"allocating the data-dependent output '{name}' failed: {exc}"
            )
            return 0  # nullptr: TensorRT fails the enqueue
        if alignment and buffer.ptr % int(alignment):
            self._failure = f"memory for '{name}' is not {alignment}-byte aligned"
            return 0
        return buffer.ptr

    def notify(self, name: str, dims: Any) -> None:
        self._shapes[name] = tuple(int(d) for d in dims)

    def failure(self) -> str | None:
        return self._failure

    def check_notified(self) -> None:
        missing = sorted(self.names - set(self._shapes))
        if missing:
            raise RuntimeError(f"TensorRT did not report the shape of {', '.join(missing)}")

    def shape(self, name: str) -> Shape:
        return self._shapes[name]

    def ptr(self, name: str) -> int:
        return self._buffers[name].ptr

    def free(self) -> None:
        for buffer in self._buffers.values():
            buffer.free()
        self._buffers.clear()


def _make_trt_allocator(base: Any, owner: OutputAllocator) -> Any:
    class TrtOutputAllocator(base):
        def __init__(self) -> None:
            base.__init__(self)  # pybind11 trampolines need the base initialised explicitly

        def reallocate_output(
            self, tensor_name: str, memory: int, size: int, alignment: int
        ) -> int:
            return owner.reallocate(tensor_name, size, alignment)

        def reallocate_output_async(
            self, tensor_name: str, memory: int, size: int, alignment: int, stream: int
        ) -> int:
            return owner.reallocate(tensor_name, size, alignment)

        def notify_shape(self, tensor_name: str, shape: Any) -> None:
            owner.notify(tensor_name, shape)

    return TrtOutputAllocator()


class PendingInference:
    """An enqueued inference; `result()` waits for it and returns the outputs as numpy arrays."""

    def __init__(self, engine: Engine, shapes: dict[str, Shape]) -> None:
        self._engine = engine
        self._shapes = shapes
        self._outputs: dict[str, np.ndarray] | None = None

    def result(self) -> dict[str, np.ndarray]:
        if self._outputs is None:
            engine = self._engine
            with engine._lock:
                if self._outputs is None:  # close() collects an inference still in flight
                    with engine._gpu.active():
                        self._collect()
        assert self._outputs is not None
        return self._outputs

    def _collect(self) -> None:
        """Wait for the stream and copy the outputs out of the staging buffers (the caller
        holds the engine's lock and its context is current)."""
        engine = self._engine
        engine._stream.synchronize()
        self._outputs = {n: engine._host_output_view(n, s).copy() for n, s in self._shapes.items()}
        if engine._pending is self:
            engine._pending = None


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
    refused = trt_api.plugin_load_errors(plugins)  # opened with ctypes, not registered by TRT
    if refused:
        detail += f"; TensorRT's load_library refused: {'; '.join(refused)}"
    if refused or any("plugin" in e.lower() for e in errors):
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
