"""Where the compiled libraries are: libdlu_kernels.so (dlu_deploy.native),
libdlu_trt_plugins.so (TensorRT plugins) and libdlu_ort_ops.so (ONNX Runtime custom ops).

Search order (docs/architecture.md, "Build outputs"): `$DLU_DEPLOY_LIB_DIR` alone when it is
set, else the installed package's `dlu_deploy/_native/`, else the source tree's `build/lib/`.
"""

from __future__ import annotations

import os
from pathlib import Path

from dlu_deploy.errors import UserError

TRT_PLUGIN_LIBRARY = "libdlu_trt_plugins.so"
ORT_OPS_LIBRARY = "libdlu_ort_ops.so"
LIB_DIR_ENV = "DLU_DEPLOY_LIB_DIR"

_PACKAGE_DIR = Path(__file__).resolve().parent


def library_search_dirs() -> list[Path]:
    """The directories searched for the project's shared libraries, in order."""
    override = os.environ.get(LIB_DIR_ENV)
    if override:
        return [Path(override)]
    return [_PACKAGE_DIR / "_native", _PACKAGE_DIR.parent / "build" / "lib"]


def find_native_library(filename: str) -> Path | None:
    """The first `filename` found in `library_search_dirs()`, or None."""
    for directory in library_search_dirs():
        candidate = directory / filename
        if candidate.is_file():
            return candidate
    return None


def required_native_library(filename: str, what: str, fix: str) -> Path:
    """`find_native_library(filename)`, or a UserError naming `what` and the searched places."""
    found = find_native_library(filename)
    if found is None:
        searched = ", ".join(str(d) for d in library_search_dirs())
        raise UserError(f"The {what} {filename} was not found (searched: {searched}).", fix)
    return found


def trt_plugin_library() -> Path:
    """The project's TensorRT plugin library; UserError naming the searched places if absent."""
    return required_native_library(
        TRT_PLUGIN_LIBRARY,
        "TensorRT plugin library",
        "Pass --plugins path/to/libdlu_trt_plugins.so, set DLU_DEPLOY_LIB_DIR to its folder, "
        "or build it with `cmake -S . -B build -DTENSORRT_INCLUDE_DIR=...` and "
        "`cmake --build build`.",
    )


def ort_ops_library() -> Path:
    """The ONNX Runtime custom-op library; UserError naming the searched places if absent."""
    return required_native_library(
        ORT_OPS_LIBRARY,
        "ONNX Runtime custom-op library",
        "Build it from the repository root with `cmake -S . -B build "
        "-DONNXRUNTIME_INCLUDE_DIR=<dir with onnxruntime_c_api.h>` and `cmake --build build` "
        "(or `pip install .` with DLU_DEPLOY_CMAKE_ARGS=-DONNXRUNTIME_INCLUDE_DIR=...), or set "
        "DLU_DEPLOY_LIB_DIR to its folder.",
    )


def existing_plugin_paths(paths: list[str | Path]) -> list[Path]:
    """`paths` as Paths, each checked to be a file (UserError naming the first missing one)."""
    resolved = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.is_file():
            raise UserError(
                f"Plugin library {path} does not exist.",
                "Pass the path of the built libdlu_trt_plugins.so (e.g. "
                "build/lib/libdlu_trt_plugins.so) to --plugins, or leave --plugins out to use "
                "the project's own library.",
            )
        resolved.append(path.resolve())
    return resolved
