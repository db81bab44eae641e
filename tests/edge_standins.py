"""Stand-ins for pycuda and TensorRT that keep the rules the edge runtime depends on, so the
Engine's own logic (contexts, binding, allocation, shutdown) runs in CI without a GPU.

They are not mocks of the Engine: they are small models of the two libraries, written from
their source and headers, that record every rule the real ones break on silently or by
crashing (`CudaState.problems`), and compute real outputs from the bytes in "device" memory.

pycuda (inducer/pycuda src/cpp/cuda.hpp, src/wrapper/wrap_cudadrv.cpp):
- the context stack is per thread (`thread_specific_ptr<context_stack>`); allocations, streams,
  events and page-locked host memory take the thread's current context as their ward and fail
  without one ("explicit_context_dependent failed: invalid device context - no currently
  active context?");
- a thread that exits with a non-empty stack aborts the process (`~context_stack`);
- freeing while the ward context object is not on top of the stack pushes it, which is
  refused outside the thread that created the context object: the free is skipped with the
  warning "... in out-of-thread context could not be cleaned up" (`scoped_context_activation`,
  `CUDAPP_CATCH_CLEANUP_ON_DEAD_CONTEXT`);
- `retain_primary_context()` returns a new context object (created by the calling thread)
  each time; CUDA_ERROR_OUT_OF_MEMORY raises `pycuda.driver.MemoryError`.

TensorRT (NvInferRuntime.h of 10.3, 10.16 and 11.1; python/src/infer/pyCore.cpp):
- `setInputShape` returns false for a rank or fixed-dim mismatch or a shape outside the
  optimization profile; `inferShapes` returns -1 for shapes that contradict each other and
  the Python binding raises RuntimeError("infer_shapes error code: -1");
- `getTensorShape` of an output has -1 for data-dependent dims once all inputs are set;
- `setTensorAddress` returns false for an unknown name or an address not 256-byte aligned;
- `enqueueV3` needs an address for every input and, for each output, an address or an
  IOutputAllocator; it calls `reallocateOutputAsync` (bytes needed, alignment) and then
  `notifyShape`; the binding calls `reallocate_output_async` if the Python subclass defines
  it, else `reallocate_output`, and turns an exception or a non-int result into nullptr;
- the engine works on the CUDA context current when it was deserialized; enqueuing under
  another device's context is an error (recorded here).
"""

from __future__ import annotations

import enum
import json
import threading
import types
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ALIGNMENT = 512  # cuMemAlloc's alignment on current GPUs (TensorRT needs 256)


@dataclass
class Block:
    device: int
    nbytes: int
    data: bytearray
    live: bool = True


@dataclass
class CudaState:
    """What the stand-in "GPUs" hold and every rule broken so far."""

    capacities: list[int]
    used: list[int] = field(default_factory=list)
    blocks: dict[int, Block] = field(default_factory=dict)  # ptr -> block (freed ones too)
    problems: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_ptr: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.used = [0] * len(self.capacities)
        self.next_ptr = [(0x7F00 + 0x100 * i) << 32 for i in range(len(self.capacities))]
        self.tls = threading.local()
        self.streams: dict[int, int] = {}  # stream handle -> device

    # ---- per-thread context stack
    def stack(self) -> list[Any]:
        guard = getattr(self.tls, "guard", None)
        if guard is None:
            guard = self.tls.guard = _StackGuard(self)
        return guard.stack

    def current(self) -> Any:
        stack = self.stack()
        return stack[-1] if stack else None

    # ---- device memory
    def alloc(self, device: int, nbytes: int) -> int:
        with self.lock:
            if self.used[device] + nbytes > self.capacities[device]:
                return 0
            ptr = self.next_ptr[device]
            self.next_ptr[device] += -(-max(nbytes, 1) // ALIGNMENT) * ALIGNMENT
            self.blocks[ptr] = Block(device, nbytes, bytearray(nbytes))
            self.used[device] += nbytes
            return ptr

    def release(self, ptr: int) -> None:
        with self.lock:
            block = self.blocks[ptr]
            block.live = False
            self.used[block.device] -= block.nbytes

    def _block(self, ptr: int, nbytes: int, device: int, what: str) -> Block | None:
        for start, block in self.blocks.items():
            if start <= ptr < start + max(block.nbytes, 1):
                if not block.live:
                    self.problems.append(f"{what}: freed memory at {ptr:#x}")
                    return None
                if ptr + nbytes > start + block.nbytes:
                    self.problems.append(
                        f"{what}: {nbytes} bytes at {ptr:#x} overrun a {block.nbytes}-byte buffer"
                    )
                    return None
                if block.device != device:
                    self.problems.append(f"{what}: device {block.device} memory used on {device}")
                    return None
                return block
        self.problems.append(f"{what}: {ptr:#x} is not device memory")
        return None

    def read(self, ptr: int, nbytes: int, device: int, what: str) -> bytes:
        block = self._block(ptr, nbytes, device, what)
        if block is None:
            return bytes(nbytes)  # what a real GPU gives: garbage, silently
        start = ptr - next(s for s, b in self.blocks.items() if b is block)
        return bytes(block.data[start : start + nbytes])

    def write(self, ptr: int, data: bytes, device: int, what: str) -> None:
        block = self._block(ptr, len(data), device, what)
        if block is not None:
            start = ptr - next(s for s, b in self.blocks.items() if b is block)
            block.data[start : start + len(data)] = data


class _StackGuard:
    """Lives in a thread's local storage: pycuda aborts when a thread ends with contexts on
    its stack; the stand-in records it."""

    def __init__(self, state: CudaState) -> None:
        self.state = state
        self.stack: list[Any] = []

    def __del__(self) -> None:
        if self.stack:
            self.state.problems.append(
                "abort: a thread exited with a context on its pycuda context stack"
            )


def make_pycuda(state: CudaState) -> tuple[types.ModuleType, types.ModuleType]:
    """(`pycuda`, `pycuda.driver`) modules over `state`."""
    driver = types.ModuleType("pycuda.driver")

    class Error(Exception):
        pass

    class MemoryError_(Error):
        pass

    class LogicError(Error):
        pass

    def ward(what: str) -> Any:
        context = state.current()
        if context is None:
            raise LogicError(
                f"{what}: explicit_context_dependent failed: invalid device context - "
                "no currently active context?"
            )
        return context

    def may_clean_up(context: Any, what: str) -> bool:
        """scoped_context_activation: fine when `context` is on top of this thread's stack,
        or when this thread created it (pushes it for the call); else warn and leak."""
        if state.current() is context or threading.get_ident() == context.thread:
            return True
        warnings.warn(f"{what} in out-of-thread context could not be cleaned up", stacklevel=3)
        state.leaks.append(what)
        return False

    class Context:
        def __init__(self, device: int) -> None:
            self.device = device
            self.handle = 0xC0 + device  # the device's primary CUcontext
            self.thread = threading.get_ident()

        def push(self) -> None:
            state.stack().append(self)

        @staticmethod
        def pop() -> None:
            stack = state.stack()
            if not stack:
                raise LogicError("context::pop failed: cannot pop non-current context")
            stack.pop()

        @staticmethod
        def get_current() -> Any:
            return state.current()

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Context) and other.handle == self.handle

        def __hash__(self) -> int:
            return self.handle

    class Device:
        def __init__(self, index: int) -> None:
            self.index = index

        @staticmethod
        def count() -> int:
            return len(state.capacities)

        def name(self) -> str:
            return f"Stand-in GPU {self.index}"

        def compute_capability(self) -> tuple[int, int]:
            return (8, 7)

        def total_memory(self) -> int:
            return state.capacities[self.index]

        def retain_primary_context(self) -> Context:
            return Context(self.index)

    class DeviceAllocation:
        def __init__(self, ptr: int, context: Context) -> None:
            self.ptr, self.context, self.valid = ptr, context, True

        def __int__(self) -> int:
            return self.ptr

        def free(self) -> None:
            if not self.valid:
                raise Error("device_allocation::free failed: invalid resource handle")
            if may_clean_up(self.context, "device_allocation"):
                state.release(self.ptr)
            self.valid = False

        def __del__(self) -> None:
            if self.valid:
                self.free()

    def mem_alloc(nbytes: int) -> DeviceAllocation:
        context = ward("mem_alloc")
        ptr = state.alloc(context.device, int(nbytes))
        if not ptr:
            raise MemoryError_("cuMemAlloc failed: out of memory")
        return DeviceAllocation(ptr, context)

    class PinnedMemory:
        """Page-locked host memory: the base object of the arrays pagelocked_empty returns."""

        def __init__(self, nbytes: int) -> None:
            self.context = ward("pagelocked_empty")
            self._raw = np.zeros(max(nbytes, 1), np.uint8)
            self.__array_interface__ = {
                "shape": (nbytes,),
                "typestr": "|u1",
                "data": (self._raw.ctypes.data, False),
                "version": 3,
            }

        def __del__(self) -> None:
            may_clean_up(self.context, "host_allocation")

    def pagelocked_empty(shape: Any, dtype: Any) -> np.ndarray:
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        return np.asarray(PinnedMemory(nbytes)).view(dtype).reshape(shape)

    handles = iter(range(0x5000, 1 << 30))

    class Stream:
        def __init__(self) -> None:
            self.context = ward("stream")
            with state.lock:
                self.handle = next(handles)
            state.streams[self.handle] = self.context.device

        def synchronize(self) -> None:
            pass  # the stand-in runs copies and engines at enqueue time

        def __del__(self) -> None:
            may_clean_up(self.context, "stream")

    class Event:
        def __init__(self) -> None:
            self.context = ward("event")

        def record(self, stream: Any = None) -> None:
            pass

        def synchronize(self) -> None:
            pass

        def time_since(self, other: Any) -> float:
            return 0.0

        def __del__(self) -> None:
            may_clean_up(self.context, "event")

    def memcpy_htod_async(dst: int, src: np.ndarray, stream: Any) -> None:
        context = ward("memcpy_htod_async")
        state.write(int(dst), np.ascontiguousarray(src).tobytes(), context.device, "htod copy")

    def memcpy_dtoh_async(dst: np.ndarray, src: int, stream: Any) -> None:
        context = ward("memcpy_dtoh_async")
        data = state.read(int(src), dst.nbytes, context.device, "dtoh copy")
        dst.reshape(-1).view(np.uint8)[:] = np.frombuffer(data, np.uint8)

    def mem_get_info() -> tuple[int, int]:
        device = ward("mem_get_info").device
        return state.capacities[device] - state.used[device], state.capacities[device]

    driver.Error = Error  # type: ignore[attr-defined]
    driver.MemoryError = MemoryError_  # type: ignore[attr-defined]
    driver.LogicError = LogicError  # type: ignore[attr-defined]
    driver.Context = Context  # type: ignore[attr-defined]
    driver.Device = Device  # type: ignore[attr-defined]
    driver.Stream = Stream  # type: ignore[attr-defined]
    driver.Event = Event  # type: ignore[attr-defined]
    driver.mem_alloc = mem_alloc  # type: ignore[attr-defined]
    driver.pagelocked_empty = pagelocked_empty  # type: ignore[attr-defined]
    driver.memcpy_htod_async = memcpy_htod_async  # type: ignore[attr-defined]
    driver.memcpy_dtoh_async = memcpy_dtoh_async  # type: ignore[attr-defined]
    driver.mem_get_info = mem_get_info  # type: ignore[attr-defined]
    driver.init = lambda flags=0: None  # type: ignore[attr-defined]
    driver.get_driver_version = lambda: 12060  # type: ignore[attr-defined]
    package = types.ModuleType("pycuda")
    package.driver = driver  # type: ignore[attr-defined]
    return package, driver


# ------------------------------------------------------------------------------ TensorRT


class Severity(enum.IntEnum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class DataType(enum.Enum):
    FLOAT = np.float32
    HALF = np.float16
    INT32 = np.int32
    INT64 = np.int64


class TensorIOMode(enum.Enum):
    INPUT = 1
    OUTPUT = 2


class TensorLocation(enum.Enum):
    DEVICE = 0
    HOST = 1


class Dims(tuple):  # trt.Dims iterates like a tuple of ints
    pass


@dataclass(frozen=True)
class Tensor:
    dtype: DataType
    shape: tuple[int, ...]
    profile: tuple[tuple[int, ...], ...] | None = None  # inputs: (min, opt, max)
    location: TensorLocation = TensorLocation.DEVICE


# Two networks, identified by the JSON "engine file":
# "add":     y = a + 2 b, a and b (n, 4) float32 with the same n (inferShapes checks it);
# "nonzero": y = 3 x, and idx = ONNX NonZero(x > 0): int64 (2, k), k data-dependent.
NETWORKS: dict[str, dict[str, Tensor]] = {
    "add": {
        "a": Tensor(DataType.FLOAT, (-1, 4), ((1, 4), (2, 4), (4096, 4))),
        "b": Tensor(DataType.FLOAT, (-1, 4), ((1, 4), (2, 4), (4096, 4))),
        "y": Tensor(DataType.FLOAT, (-1, 4)),
    },
    "nonzero": {
        "x": Tensor(DataType.FLOAT, (-1, 4), ((1, 4), (2, 4), (64, 4))),
        "y": Tensor(DataType.FLOAT, (-1, 4)),
        "idx": Tensor(DataType.INT64, (2, -1)),
    },
    # an output TensorRT keeps in host memory (getTensorLocation: kHOST), e.g. a shape output
    "host_output": {
        "x": Tensor(DataType.FLOAT, (-1, 4), ((1, 4), (2, 4), (64, 4))),
        "y": Tensor(DataType.INT32, (2,), location=TensorLocation.HOST),
    },
}


def engine_bytes(network: str, *, activation_bytes: int = 4096, plugins: tuple = ()) -> bytes:
    return json.dumps(
        {"network": network, "activation_bytes": activation_bytes, "plugins": list(plugins)}
    ).encode()


def make_tensorrt(state: CudaState, version: str = "10.3.0.30") -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version  # type: ignore[attr-defined]
    registered: set[str] = set()
    refusals: dict[str, str] = {}  # library path -> error load_library logs

    class ILogger:
        Severity = Severity

        def __init__(self) -> None:
            pass

    class IOutputAllocator:
        def __init__(self) -> None:
            pass

    class Registry:
        def load_library(self, path: str) -> Any:
            if path in refusals:
                logger_of[0].log(Severity.ERROR, refusals[path])
                return None
            registered.add("DLU")
            return object()

    logger_of: list[Any] = [None]

    def init_libnvinfer_plugins(logger: Any, namespace: str) -> bool:
        logger_of[0] = logger
        return True

    class Runtime:
        def __init__(self, logger: Any) -> None:
            self.logger = logger
            logger_of[0] = logger

        def deserialize_cuda_engine(self, data: bytes) -> Any:
            try:
                spec = json.loads(data)
            except ValueError:
                self.logger.log(Severity.ERROR, "IRuntime::deserializeCudaEngine: magic tag")
                return None
            for plugin in spec["plugins"]:
                if plugin not in registered:
                    self.logger.log(
                        Severity.ERROR,
                        f"getPluginCreator could not find plugin {plugin} version 1",
                    )
                    return None
            context = state.current()
            return CudaEngine(spec, context.device if context else 0, self.logger)

    class CudaEngine:
        def __init__(self, spec: dict, device: int, logger: Any) -> None:
            self.network = spec["network"]
            self.tensors = NETWORKS[self.network]
            self.names = list(self.tensors)
            self.device = device
            self.logger = logger
            self.device_memory_size_v2 = spec["activation_bytes"]

        @property
        def num_io_tensors(self) -> int:
            return len(self.names)

        def get_tensor_name(self, index: int) -> str:
            return self.names[index]

        def is_shape_inference_io(self, name: str) -> bool:
            return False

        def get_tensor_location(self, name: str) -> TensorLocation:
            return self.tensors[name].location

        def get_tensor_dtype(self, name: str) -> DataType:
            return self.tensors[name].dtype

        def get_tensor_shape(self, name: str) -> Dims:
            return Dims(self.tensors[name].shape)

        def get_tensor_mode(self, name: str) -> TensorIOMode:
            is_input = self.tensors[name].profile is not None
            return TensorIOMode.INPUT if is_input else TensorIOMode.OUTPUT

        def get_tensor_profile_shape(self, name: str, profile: int) -> tuple:
            return self.tensors[name].profile

        def create_execution_context(self) -> Any:
            context = state.current()
            device = context.device if context else 0
            ptr = state.alloc(device, self.device_memory_size_v2)
            if not ptr:
                self.logger.log(Severity.ERROR, "Requested amount of GPU memory unavailable")
                return None
            return ExecutionContext(self, ptr)

    class ExecutionContext:
        def __init__(self, engine: CudaEngine, activations: int) -> None:
            self.engine = engine
            self.activations = activations
            self.shapes: dict[str, tuple[int, ...]] = {}
            self.addresses: dict[str, int] = {}
            self.allocators: dict[str, Any] = {}

        def __del__(self) -> None:
            state.release(self.activations)

        def _error(self, message: str) -> None:
            self.engine.logger.log(Severity.ERROR, message)

        def _inputs(self) -> list[str]:
            return [n for n, t in self.engine.tensors.items() if t.profile is not None]

        def set_input_shape(self, name: str, shape: Any) -> bool:
            tensor = self.engine.tensors.get(name)
            shape = tuple(int(d) for d in shape)
            if tensor is None or tensor.profile is None:
                self._error(f"setInputShape: {name} is not an input")
                return False
            low, _, high = tensor.profile
            if len(shape) != len(tensor.shape) or any(
                d >= 0 and d != s for d, s in zip(tensor.shape, shape, strict=True)
            ):
                self._error(f"setInputShape: {name} {shape} does not match {tensor.shape}")
                return False
            if any(not lo <= s <= hi for s, lo, hi in zip(shape, low, high, strict=True)):
                self._error(f"setInputShape: {name} {shape} is out of the profile's bounds")
                return False
            self.shapes[name] = shape
            return True

        def _inferred(self) -> dict[str, tuple[int, ...]] | None:
            """Output shapes; None (error logged) if the input shapes contradict each other."""
            shapes = self.shapes
            if self.engine.network == "add":
                if shapes["a"][0] != shapes["b"][0]:
                    self._error(
                        "IElementWiseLayer add: broadcast dimensions must be conformable "
                        f"(a {shapes['a']} vs b {shapes['b']})"
                    )
                    return None
                return {"y": shapes["a"]}
            return {"y": shapes["x"], "idx": (2, -1)}

        def infer_shapes(self) -> list[str]:
            missing = [n for n in self._inputs() if n not in self.shapes]
            if missing:
                return missing
            if self._inferred() is None:
                raise RuntimeError("infer_shapes error code: -1")
            return []

        def get_tensor_shape(self, name: str) -> Dims:
            tensor = self.engine.tensors[name]
            if tensor.profile is not None:
                return Dims(self.shapes.get(name, tensor.shape))
            if any(n not in self.shapes for n in self._inputs()):
                return Dims(tensor.shape)
            inferred = self._inferred()
            return Dims(inferred[name] if inferred is not None else tensor.shape)

        def set_tensor_address(self, name: str, ptr: int) -> bool:
            if name not in self.engine.tensors:
                self._error(f"setTensorAddress: no tensor {name}")
                return False
            if int(ptr) % 256:
                self._error(f"setTensorAddress: {name} address {int(ptr):#x} is misaligned")
                return False
            self.addresses[name] = int(ptr)
            return True

        def get_tensor_address(self, name: str) -> int:
            return self.addresses.get(name, 0)

        def set_output_allocator(self, name: str, allocator: Any) -> bool:
            self.allocators[name] = allocator
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            device = self.engine.device
            context = state.current()
            if context is None or context.device != device:
                state.problems.append(
                    f"enqueueV3 of a device-{device} engine under "
                    f"{'no context' if context is None else f'device {context.device}'}"
                )
                return False
            if state.streams.get(int(stream_handle), device) != device:
                state.problems.append("enqueueV3 on another device's stream")
                return False
            missing = [n for n in self._inputs() if n not in self.shapes]
            inferred = None if missing else self._inferred()
            if inferred is None:
                self._error("enqueueV3: input shapes are not all set or not consistent")
                return False
            values = {}
            for name in self._inputs():
                dtype = np.dtype(self.engine.tensors[name].dtype.value)
                count = int(np.prod(self.shapes[name]))
                if not self.addresses.get(name):
                    self._error(f"enqueueV3: input {name} has no address")
                    return False
                data = state.read(self.addresses[name], count * dtype.itemsize, device, name)
                values[name] = np.frombuffer(data, dtype).reshape(self.shapes[name])
            if self.engine.network == "add":
                results = {"y": values["a"] + 2 * values["b"]}
            else:
                x = values["x"]
                results = {"y": 3 * x, "idx": np.stack(np.nonzero(x > 0)).astype(np.int64)}
            for name, value in results.items():
                data = np.ascontiguousarray(value, self.engine.tensors[name].dtype.value).tobytes()
                if any(d < 0 for d in inferred[name]):
                    ptr = self._reallocate(name, max(len(data), 1), stream_handle)
                    if not ptr:
                        self._error(f"enqueueV3: no memory for the output {name}")
                        return False
                    state.write(ptr, data, device, name)
                    self.allocators[name].notify_shape(name, Dims(value.shape))
                else:
                    if not self.addresses.get(name):
                        self._error(f"enqueueV3: output {name} has no address")
                        return False
                    state.write(self.addresses[name], data, device, name)
            return True

        def _reallocate(self, name: str, size: int, stream: int) -> int:
            """PyOutputAllocator::reallocateOutputAsync (pyCore.cpp)."""
            allocator = self.allocators.get(name)
            if allocator is None:
                self._error(f"Neither address nor allocator is set for output tensor {name}")
                return 0
            current = self.addresses.get(name, 0)
            try:
                if "reallocate_output_async" in type(allocator).__dict__:
                    ptr = allocator.reallocate_output_async(name, current, size, 256, stream)
                else:
                    ptr = allocator.reallocate_output(name, current, size, 256)
            except Exception:  # the binding prints and returns nullptr
                return 0
            if not isinstance(ptr, int) or not ptr or ptr % 256:
                return 0
            self.addresses[name] = ptr
            return ptr

    trt.ILogger = ILogger  # type: ignore[attr-defined]
    trt.IOutputAllocator = IOutputAllocator  # type: ignore[attr-defined]
    trt.Runtime = Runtime  # type: ignore[attr-defined]
    trt.DataType = DataType  # type: ignore[attr-defined]
    trt.TensorIOMode = TensorIOMode  # type: ignore[attr-defined]
    trt.TensorLocation = TensorLocation  # type: ignore[attr-defined]
    trt.nptype = lambda dtype: dtype.value  # type: ignore[attr-defined]
    trt.get_plugin_registry = Registry  # type: ignore[attr-defined]
    trt.init_libnvinfer_plugins = init_libnvinfer_plugins  # type: ignore[attr-defined]
    trt.refusals = refusals  # type: ignore[attr-defined]  # for tests: libraries to refuse
    return trt
