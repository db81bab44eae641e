"""The small TensorRT-facing helpers shared by the builder and the runtime.

Import of TensorRT with a clear error, one process-wide logger that also records errors (TensorRT
keeps the first logger it is given), dtype mapping, plugin library loading and creator lookup.
Written against the TensorRT 10 and 11 Python API; TensorRT is imported on first use only.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from dlu_deploy.errors import UserError

log = logging.getLogger("dlu_deploy.tensorrt")

_TRT_FIX = (
    "Install TensorRT 10 or 11 (`pip install tensorrt` on x86-64 with an NVIDIA driver; on "
    "Jetson it comes with JetPack) on a machine with an NVIDIA GPU."
)


def import_tensorrt(purpose: str = "to build or run engines") -> Any:
    """The `tensorrt` module (>= 10); UserError saying TensorRT is needed when it is absent."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise UserError(
            f"TensorRT is needed {purpose}, but it cannot be imported ({exc}).", _TRT_FIX
        ) from exc
    if major_version(trt) < 10:
        raise UserError(
            f"TensorRT {trt.__version__} is too old {purpose}.", "Install TensorRT 10 or 11."
        )
    return trt


def major_version(trt: Any) -> int:
    return int(str(trt.__version__).split(".")[0])


_logger: Any = None
_logger_lock = threading.Lock()


def get_logger(trt: Any) -> Any:
    """The process-wide TensorRT logger: forwards to `logging`, records errors for messages."""
    global _logger
    with _logger_lock:
        if _logger is None:
            _logger = _make_logger_class(trt)()
        return _logger


MAX_RECENT_ERRORS = 64  # errors kept by the logger outside any `recorded_errors` block


def _make_logger_class(trt: Any) -> type:
    severity = trt.ILogger.Severity
    levels = {
        severity.INTERNAL_ERROR: logging.CRITICAL,
        severity.ERROR: logging.ERROR,
        severity.WARNING: logging.WARNING,
        severity.INFO: logging.INFO,
        severity.VERBOSE: logging.DEBUG,
    }
    error_levels = (severity.INTERNAL_ERROR, severity.ERROR)

    class RecordingLogger(trt.ILogger):
        """Errors go to the `recorded_errors` blocks open on the logging thread (to all open
        blocks when the thread has none: builder worker threads) and to a bounded list of the
        most recent ones, so a long-running process does not accumulate them."""

        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.recent_errors: deque[str] = deque(maxlen=MAX_RECENT_ERRORS)
            self._collectors: dict[int, list[list[str]]] = {}  # thread id -> open blocks
            self._collectors_lock = threading.Lock()

        def log(self, sev: Any, msg: str) -> None:
            log.log(levels.get(sev, logging.INFO), "%s", msg)
            if sev not in error_levels:
                return
            self.recent_errors.append(msg)
            with self._collectors_lock:
                own = self._collectors.get(threading.get_ident())
                targets = own if own else [c for cs in self._collectors.values() for c in cs]
                for found in targets:
                    found.append(msg)

        @contextmanager
        def collecting(self) -> Iterator[list[str]]:
            found: list[str] = []
            thread = threading.get_ident()
            with self._collectors_lock:
                self._collectors.setdefault(thread, []).append(found)
            try:
                yield found
            finally:
                with self._collectors_lock:
                    blocks = self._collectors[thread]
                    blocks.remove(found)
                    if not blocks:
                        del self._collectors[thread]

    return RecordingLogger


@contextmanager
def recorded_errors(trt: Any) -> Iterator[list[str]]:
    """Collect the TensorRT error messages logged inside the block (by this thread, or by a
    thread that has no block of its own); safe with several threads logging at once."""
    with get_logger(trt).collecting() as found:
        yield found


def numpy_dtype(trt: Any, trt_dtype: Any, tensor: str) -> np.dtype:
    try:
        return np.dtype(trt.nptype(trt_dtype))
    except TypeError as exc:
        raise UserError(
            f"Tensor '{tensor}' has TensorRT type {trt_dtype}, which numpy cannot hold.",
            "Export the model with float32 or float16 inputs and outputs.",
        ) from exc


_loaded_libraries: dict[Path, Any] = {}  # realpath -> handle, kept alive for the process
# realpath -> what `load_library` said before the ctypes fallback opened the library anyway.
_load_library_errors: dict[Path, list[str]] = {}


def load_plugin_libraries(trt: Any, paths: Iterable[Path]) -> None:
    """Register the plugin creators of each library with TensorRT's global plugin registry.

    `IPluginRegistry.load_library` (needs the library's exported getCreators) is tried first;
    otherwise the library is opened with ctypes and registered by its exported
    `initLibDluTrtPlugins` (libdlu_trt_plugins.so) or, lacking one, by its own static
    initialisers. Each library is loaded once per process.
    """
    registry = trt.get_plugin_registry()
    trt.init_libnvinfer_plugins(get_logger(trt), "")
    for path in paths:
        real = Path(path).resolve()
        if real in _loaded_libraries:
            continue
        with recorded_errors(trt) as errors:
            try:
                handle = registry.load_library(str(real))
            except RuntimeError as exc:  # bindings may raise instead of returning None
                errors.append(str(exc))
                handle = None
        if handle is None:
            try:
                handle = ctypes.CDLL(str(real), mode=ctypes.RTLD_GLOBAL)
                if errors:
                    # dlopen succeeding says nothing about registration: keep TensorRT's reason
                    # (e.g. a library built for another TensorRT major) for later messages.
                    _load_library_errors[real] = list(errors)
                    log.warning(
                        "TensorRT's load_library refused %s (%s); opened it with ctypes instead",
                        real,
                        "; ".join(errors),
                    )
            except OSError as exc:
                detail = "; ".join(errors) or str(exc)
                raise UserError(
                    f"The plugin library {real} could not be loaded ({detail}).",
                    "Check that it was built for this TensorRT and CUDA version (`ldd` lists "
                    "missing dependencies), or rebuild it with CMake.",
                ) from exc
            _register_explicitly(handle, real, errors)
        _loaded_libraries[real] = handle


def plugin_load_errors(paths: Iterable[Path]) -> list[str]:
    """What TensorRT said when it refused to load these libraries (ctypes opened them anyway)."""
    return [
        f"{real}: {error}"
        for real in (Path(p).resolve() for p in paths)
        for error in _load_library_errors.get(real, [])
    ]


def _register_explicitly(library: ctypes.CDLL, path: Path, errors: list[str]) -> None:
    """Call the library's initLibNvInferPlugins-style entry point, if it has one.

    libdlu_trt_plugins.so registers nothing while loading (plugins/README.md#loading-the-plugins):
    outside `load_library` its plugins are registered by calling `initLibDluTrtPlugins`.
    """
    init = getattr(library, "initLibDluTrtPlugins", None)
    if init is None:
        return
    init.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    init.restype = ctypes.c_bool
    if not init(None, b""):
        detail = "; ".join(errors) or "see the messages above"
        raise UserError(
            f"The plugin library {path} could not register its plugins ({detail}).",
            "Check that it was built with the headers of the TensorRT version you run "
            "(plugins/README.md#loading-the-plugins).",
        )


def has_plugin_creator(trt: Any, name: str, version: str, namespace: str = "") -> bool:
    registry = trt.get_plugin_registry()
    if hasattr(registry, "get_creator"):  # TensorRT >= 10: V2 and V3 creators
        return registry.get_creator(name, version, namespace) is not None
    return registry.get_plugin_creator(name, version, namespace) is not None


def plugin_library_version(path: Path) -> str | None:
    """The library's `dlu_trt_plugins_version()` string, if it exports one.

    Call after `load_plugin_libraries`: opening an already loaded library again only returns
    its handle; libdlu_trt_plugins.so runs no registration code while loading.
    """
    try:
        library = ctypes.CDLL(str(Path(path).resolve()))
        function = library.dlu_trt_plugins_version
    except (OSError, AttributeError):
        return None
    function.restype = ctypes.c_char_p
    value = function()
    return value.decode() if value else None
