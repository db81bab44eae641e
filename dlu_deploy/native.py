"""ctypes binding of the compiled kernels, libdlu_kernels.so (C ABI: plugins/kernels/dlu_kernels.h).

Needs neither torch nor TensorRT: callers pass raw data pointers (host memory for the CPU
kernels, device memory plus a cudaStream_t for the CUDA kernels). The library is looked up in
`$DLU_DEPLOY_LIB_DIR` when set, else in the installed package (`dlu_deploy/_native/`), else in
the source tree's CMake output (`build/lib/`), so an editable checkout works after building.
"""

from __future__ import annotations

import ctypes
import enum
import functools
from pathlib import Path

from dlu_deploy import __version__
from dlu_deploy.errors import OpArgumentError, UserError
from dlu_deploy.libraries import LIB_DIR_ENV, library_search_dirs

LIBRARY_NAME = "libdlu_kernels.so"
BUILD_COMMAND = "cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j"


class DType(enum.IntEnum):
    FLOAT32 = 0
    FLOAT16 = 1


class Status(enum.IntEnum):
    OK = 0
    INVALID_ARGUMENT = 1
    CUDA_ERROR = 2
    NOT_COMPILED = 3
    INTERNAL_ERROR = 4


class NativeLibraryMissing(UserError):
    """libdlu_kernels.so is not built or cannot be loaded."""


class NativeKernelError(UserError):
    """A kernel could not run (CUDA error, no CUDA support, out of host memory)."""


class DluParams(ctypes.Structure):
    _fields_ = [
        ("n", ctypes.c_int64),
        ("c", ctypes.c_int64),
        ("h", ctypes.c_int64),
        ("w", ctypes.c_int64),
        ("kernel_size", ctypes.c_int32),
        ("group", ctypes.c_int32),
        ("scale", ctypes.c_int32),
    ]


class CarafeParams(DluParams):
    """Same layout as DluParams (dlu_kernels.h)."""


class DdfParams(ctypes.Structure):
    _fields_ = [
        ("n", ctypes.c_int64),
        ("c", ctypes.c_int64),
        ("h", ctypes.c_int64),
        ("w", ctypes.c_int64),
        ("kernel_size", ctypes.c_int32),
        ("dilation", ctypes.c_int32),
        ("stride", ctypes.c_int32),
        ("combine", ctypes.c_int32),
    ]


def library_candidates() -> list[Path]:
    """Where the library is looked for, in order."""
    return [directory / LIBRARY_NAME for directory in library_search_dirs()]


_PTR = ctypes.c_void_p
_I32 = ctypes.c_int32
_SIGNATURES: dict[str, tuple[object, list[object]]] = {
    "dlu_kernels_dlu_check": (_I32, [ctypes.POINTER(DluParams)]),
    "dlu_kernels_carafe_check": (_I32, [ctypes.POINTER(CarafeParams)]),
    "dlu_kernels_ddf_check": (_I32, [ctypes.POINTER(DdfParams)]),
    "dlu_kernels_dlu_forward_cpu": (
        _I32,
        [_I32, ctypes.POINTER(DluParams), _PTR, _PTR, _PTR, _PTR, _I32],
    ),
    "dlu_kernels_carafe_forward_cpu": (
        _I32,
        [_I32, ctypes.POINTER(CarafeParams), _PTR, _PTR, _PTR, _I32],
    ),
    "dlu_kernels_ddf_forward_cpu": (
        _I32,
        [_I32, ctypes.POINTER(DdfParams), _PTR, _PTR, _PTR, _PTR, _I32],
    ),
    "dlu_kernels_dlu_forward_cuda": (
        _I32,
        [_I32, ctypes.POINTER(DluParams), _PTR, _PTR, _PTR, _PTR, _PTR],
    ),
    "dlu_kernels_carafe_forward_cuda": (
        _I32,
        [_I32, ctypes.POINTER(CarafeParams), _PTR, _PTR, _PTR, _PTR],
    ),
    "dlu_kernels_ddf_forward_cuda": (
        _I32,
        [_I32, ctypes.POINTER(DdfParams), _PTR, _PTR, _PTR, _PTR, _PTR],
    ),
    "dlu_kernels_has_cuda": (_I32, []),
    "dlu_kernels_cuda_device_count": (_I32, []),
    "dlu_kernels_last_error": (ctypes.c_char_p, []),
    "dlu_kernels_version": (ctypes.c_char_p, []),
}


class NativeLibrary:
    """The loaded library: typed entry points that raise instead of returning status codes."""

    def __init__(self, path: Path) -> None:
        try:
            self._lib = ctypes.CDLL(str(path))
        except OSError as e:
            raise NativeLibraryMissing(
                f"{path} exists but cannot be loaded ({e}).",
                f"Rebuild it from the repository root: {BUILD_COMMAND}",
            ) from e
        for name, (restype, argtypes) in _SIGNATURES.items():
            try:
                function = getattr(self._lib, name)
            except AttributeError as e:
                raise NativeLibraryMissing(
                    f"{path} lacks the function {name}: it is older than this dlu_deploy.",
                    f"Rebuild it from the repository root: {BUILD_COMMAND}",
                ) from e
            function.restype = restype
            function.argtypes = argtypes
        self.path = path
        self.version = self._lib.dlu_kernels_version().decode()
        if self.version != __version__:
            raise NativeLibraryMissing(
                f"{path} is version {self.version}, but dlu_deploy is {__version__}.",
                f"Rebuild it from the repository root: {BUILD_COMMAND}",
            )

    @property
    def has_cuda(self) -> bool:
        return bool(self._lib.dlu_kernels_has_cuda())

    @property
    def cuda_device_count(self) -> int:
        return int(self._lib.dlu_kernels_cuda_device_count())

    def _check(self, op: str, status: int) -> None:
        if status == Status.OK:
            return
        message = (self._lib.dlu_kernels_last_error() or b"").decode() or f"{op}: status {status}"
        if status == Status.INVALID_ARGUMENT:
            raise OpArgumentError(
                message + ".", "Fix the parameters or shapes named above (limits: docs/ops.md)."
            )
        if status == Status.NOT_COMPILED:
            raise NativeKernelError(
                message + ".", f"Install a CUDA toolkit and rebuild: {BUILD_COMMAND}"
            )
        if status == Status.CUDA_ERROR:
            raise NativeKernelError(
                message + ".", "Check that the tensors are on a working CUDA device."
            )
        raise NativeKernelError(message + ".", "Free host memory or use fewer threads.")

    # The forward calls take integer addresses (tensor.data_ptr(), ndarray.ctypes.data).

    def dlu(
        self,
        dtype: DType,
        params: DluParams,
        x: int,
        kernels: int,
        offsets: int,
        out: int,
        *,
        cuda_stream: int | None = None,
        num_threads: int = 0,
    ) -> None:
        if cuda_stream is None:
            status = self._lib.dlu_kernels_dlu_forward_cpu(
                dtype, params, x, kernels, offsets, out, num_threads
            )
        else:
            status = self._lib.dlu_kernels_dlu_forward_cuda(
                dtype, params, x, kernels, offsets, out, cuda_stream
            )
        self._check("DLU", status)

    def carafe(
        self,
        dtype: DType,
        params: CarafeParams,
        x: int,
        masks: int,
        out: int,
        *,
        cuda_stream: int | None = None,
        num_threads: int = 0,
    ) -> None:
        if cuda_stream is None:
            status = self._lib.dlu_kernels_carafe_forward_cpu(
                dtype, params, x, masks, out, num_threads
            )
        else:
            status = self._lib.dlu_kernels_carafe_forward_cuda(
                dtype, params, x, masks, out, cuda_stream
            )
        self._check("CARAFE", status)

    def ddf(
        self,
        dtype: DType,
        params: DdfParams,
        x: int,
        channel_filter: int,
        spatial_filter: int,
        out: int,
        *,
        cuda_stream: int | None = None,
        num_threads: int = 0,
    ) -> None:
        if cuda_stream is None:
            status = self._lib.dlu_kernels_ddf_forward_cpu(
                dtype, params, x, channel_filter, spatial_filter, out, num_threads
            )
        else:
            status = self._lib.dlu_kernels_ddf_forward_cuda(
                dtype, params, x, channel_filter, spatial_filter, out, cuda_stream
            )
        self._check("DDF", status)


@functools.lru_cache(maxsize=1)
def load() -> NativeLibrary:
    """The library, loaded once; NativeLibraryMissing says how to build it when absent."""
    candidates = library_candidates()
    for path in candidates:
        if path.is_file():
            return NativeLibrary(path)
    looked = ", ".join(str(p) for p in candidates)
    raise NativeLibraryMissing(
        f"The compiled kernels ({LIBRARY_NAME}) were not found (looked in: {looked}).",
        f"Build them from the repository root with `{BUILD_COMMAND}` (or `pip install .`), "
        "or point "
        f"{LIB_DIR_ENV} at the directory holding {LIBRARY_NAME}. The pure-PyTorch ops in "
        "dlu_deploy.reference need no build.",
    )


def available() -> bool:
    """True when the library can be loaded."""
    try:
        load()
    except NativeLibraryMissing:
        return False
    return True
