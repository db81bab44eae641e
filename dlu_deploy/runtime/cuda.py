"""The runtime's one CUDA binding: pycuda for device memory, streams and events, plus the
driver's stream-capture API (which pycuda does not wrap) through ctypes for CUDA graphs.

Everything CUDA in dlu_deploy goes through this module, so replacing pycuda (e.g. by
cuda-python) means rewriting this file only. pycuda is imported on first use: importing the
runtime on a machine without CUDA works, running an engine there raises a UserError.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from dlu_deploy.errors import UserError

_PYCUDA_FIX = (
    "Install pycuda (`pip install pycuda`, which needs the CUDA toolkit's nvcc on PATH; on Jetson "
    "use JetPack's CUDA) on a machine with an NVIDIA GPU and driver."
)


def _driver() -> Any:
    try:
        import pycuda.driver as driver
    except ImportError as exc:  # no pycuda, or no libcuda.so (no driver)
        raise UserError(f"pycuda is needed to run TensorRT engines ({exc}).", _PYCUDA_FIX) from exc
    return driver


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    compute_capability: str  # "8.7"
    total_memory: int  # bytes
    driver_version: int  # e.g. 13000 for CUDA 13.0


class Device:
    """One GPU's primary context (the one TensorRT and torch use), made current on the calling
    thread only for the duration of each `with device.active():` block.

    Why scoped, per call (pycuda src/cpp/cuda.hpp):
    - the context stack is per thread (`boost::thread_specific_ptr<context_stack>`): a context
      pushed in one thread is not current in another, where every allocation then fails with
      "explicit_context_dependent failed ... no currently active context?";
    - a thread that exits with a context still on its stack aborts the process
      (`context_stack::~context_stack`: "The context stack was not empty ... aborted now");
    - freeing memory, streams, events or pinned host memory from a thread where the owning
      context object is not on top of the stack "activates" it, which is refused outside the
      thread that created the context object (`scoped_context_activation`: "cannot activate
      out-of-thread context"); the free is then skipped with a warning and the memory leaks.
    So every runtime call pushes this device's context on entry and pops it on exit, and all
    CUDA objects are created and freed inside such a block: any thread may use any Engine,
    nothing stays pushed when a thread exits, and with several GPUs each Engine runs under
    its own device's context whatever was current before.
    """

    def __init__(self, info: DeviceInfo, context: Any) -> None:
        self.info = info
        self._context = context

    @property
    def index(self) -> int:
        return self.info.index

    @contextlib.contextmanager
    def active(self) -> Iterator[DeviceInfo]:
        """Make the context current on this thread for the block (nesting is fine)."""
        driver = _driver()
        # Always push, even when the same CUcontext looks current: pycuda compares context
        # *objects* when freeing, so ours must be on top of this thread's stack.
        self._context.push()
        try:
            yield self.info
        finally:
            driver.Context.pop()


_devices: dict[int, Device] = {}  # device index -> Device, one per process
_devices_lock = threading.Lock()


def device(index: int = 0) -> Device:
    """Device `index` (its primary context retained once per process, pushed by nobody)."""
    with _devices_lock:
        found = _devices.get(index)
        if found is None:
            found = _devices[index] = _open_device(index)
        return found


def _open_device(index: int) -> Device:
    driver = _driver()
    try:
        driver.init()
        count = driver.Device.count()
    except driver.Error as exc:
        raise UserError(f"CUDA could not be initialised ({exc}).", _PYCUDA_FIX) from exc
    if not 0 <= index < count:
        raise UserError(
            f"CUDA device {index} does not exist ({count} found).",
            f"Pick a device in 0..{count - 1}.",
        )
    handle = driver.Device(index)
    context = handle.retain_primary_context()  # retained, not pushed
    major, minor = handle.compute_capability()
    info = DeviceInfo(
        index, handle.name(), f"{major}.{minor}", handle.total_memory(), driver.get_driver_version()
    )
    return Device(info, context)


def memory_info() -> tuple[int, int]:
    """(free, total) bytes of the current device (call inside `Device.active()`)."""
    free, total = _driver().mem_get_info()
    return int(free), int(total)


def is_out_of_memory(error: BaseException) -> bool:
    """Whether `error` is pycuda's out-of-memory error (CUDA_ERROR_OUT_OF_MEMORY maps to
    `pycuda.driver.MemoryError`, src/wrapper/wrap_cudadrv.cpp)."""
    driver = _driver()
    return isinstance(error, driver.MemoryError)


class DeviceBuffer:
    """Device memory that grows on demand (reallocated only when a larger size is needed)."""

    def __init__(self) -> None:
        self._allocation: Any = None
        self.capacity = 0

    @property
    def ptr(self) -> int:
        return int(self._allocation) if self._allocation is not None else 0

    def ensure(self, nbytes: int) -> None:
        """Make room for `nbytes` (the address changes when it has to grow)."""
        if nbytes <= self.capacity and self._allocation is not None:
            return
        self.free()
        self._allocation = _driver().mem_alloc(max(nbytes, 1))
        self.capacity = nbytes

    def free(self) -> None:
        if self._allocation is not None:
            self._allocation.free()
            self._allocation = None
            self.capacity = 0


def pinned_empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A page-locked host array (fast, truly asynchronous copies)."""
    return _driver().pagelocked_empty(shape, dtype)


class Stream:
    def __init__(self) -> None:
        self._stream = _driver().Stream()

    @property
    def handle(self) -> int:
        return int(self._stream.handle)

    def synchronize(self) -> None:
        self._stream.synchronize()

    def copy_to_device(self, dst_ptr: int, host: np.ndarray) -> None:
        _driver().memcpy_htod_async(dst_ptr, np.ascontiguousarray(host), self._stream)

    def copy_to_host(self, host: np.ndarray, src_ptr: int) -> None:
        _driver().memcpy_dtoh_async(host, src_ptr, self._stream)

    @property
    def pycuda_stream(self) -> Any:
        return self._stream


class Event:
    def __init__(self) -> None:
        self._event = _driver().Event()

    def record(self, stream: Stream | None = None) -> None:
        self._event.record(stream.pycuda_stream if stream is not None else None)

    def synchronize(self) -> None:
        self._event.synchronize()

    def milliseconds_since(self, start: Event) -> float:
        """GPU time between `start` and this event (both recorded and this one complete)."""
        return float(self._event.time_since(start._event))


# CUDA graphs: driver entry points (cuda.h), exported by libcuda under these exact names.
_CAPTURE_MODE_THREAD_LOCAL = 1  # CU_STREAM_CAPTURE_MODE_THREAD_LOCAL, as trtexec captures


def _libcuda() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        raise UserError(
            f"The CUDA driver library could not be loaded ({exc}).", _PYCUDA_FIX
        ) from exc
    vp, c_int = ctypes.c_void_p, ctypes.c_int
    lib.cuStreamBeginCapture_v2.argtypes = [vp, c_int]
    lib.cuStreamEndCapture.argtypes = [vp, ctypes.POINTER(vp)]
    lib.cuGraphInstantiateWithFlags.argtypes = [ctypes.POINTER(vp), vp, ctypes.c_ulonglong]
    lib.cuGraphLaunch.argtypes = [vp, vp]
    lib.cuGraphExecDestroy.argtypes = [vp]
    lib.cuGraphDestroy.argtypes = [vp]
    lib.cuGetErrorName.argtypes = [c_int, ctypes.POINTER(ctypes.c_char_p)]
    return lib


def _check(lib: ctypes.CDLL, status: int, call: str) -> None:
    if status != 0:
        name = ctypes.c_char_p()
        lib.cuGetErrorName(status, ctypes.byref(name))
        raise RuntimeError(f"{call} failed: {(name.value or b'CUDA error').decode()} ({status})")


class CudaGraph:
    """A captured, instantiated CUDA graph replayed on a stream (fixed shapes and addresses)."""

    def __init__(self) -> None:
        self._lib = _libcuda()
        self._exec = ctypes.c_void_p()

    def begin_capture(self, stream: Stream) -> None:
        status = self._lib.cuStreamBeginCapture_v2(stream.handle, _CAPTURE_MODE_THREAD_LOCAL)
        _check(self._lib, status, "cuStreamBeginCapture")

    def end_capture(self, stream: Stream, *, keep: bool = True) -> None:
        """Finish capturing and instantiate the graph; keep=False just abandons the capture."""
        graph = ctypes.c_void_p()
        status = self._lib.cuStreamEndCapture(stream.handle, ctypes.byref(graph))
        try:
            if keep:
                _check(self._lib, status, "cuStreamEndCapture")
                status = self._lib.cuGraphInstantiateWithFlags(ctypes.byref(self._exec), graph, 0)
                _check(self._lib, status, "cuGraphInstantiate")
        finally:
            if graph.value:
                self._lib.cuGraphDestroy(graph)

    def launch(self, stream: Stream) -> None:
        _check(self._lib, self._lib.cuGraphLaunch(self._exec, stream.handle), "cuGraphLaunch")

    def close(self) -> None:
        if self._exec.value:
            self._lib.cuGraphExecDestroy(self._exec)
            self._exec = ctypes.c_void_p()
