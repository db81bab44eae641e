"""The Python helper's explicit registration of libdlu_trt_plugins.so, without TensorRT.

Loading the library registers nothing; outside `IPluginRegistry.load_library` the helper calls
its `initLibDluTrtPlugins` (plugins/README.md#loading-the-plugins). Without a TensorRT runtime
that call must fail with the library's explanation, turned into a UserError. Uses a plugin
library built by CMake (build/lib, or the builds against the CI header sets).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _built_library() -> Path | None:
    candidates = [ROOT / "build" / "lib" / "libdlu_trt_plugins.so"]
    candidates += sorted(
        (ROOT / "build" / "plugins" / "tensorrt").glob("trt*/libdlu_trt_plugins.so")
    )
    return next((path for path in candidates if path.is_file()), None)


def test_registration_without_tensorrt_is_a_user_error() -> None:
    library = _built_library()
    if library is None:
        pytest.skip("libdlu_trt_plugins.so is not built (needs TensorRT headers)")
    if ctypes.util.find_library("nvinfer") is not None:
        pytest.skip("TensorRT is installed here: initLibDluTrtPlugins would find it")
    # A fresh process: the library stays loaded for the life of the process that opens it.
    code = textwrap.dedent(
        """
        import ctypes, sys
        from pathlib import Path
        from dlu_deploy.errors import UserError
        from dlu_deploy.runtime.trt_api import _register_explicitly
        path = Path(sys.argv[1])
        library = ctypes.CDLL(str(path))
        print(library.initLibDluTrtPlugins is not None)
        try:
            _register_explicitly(library, path, [])
        except UserError as error:
            print("UserError:", error)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(library)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "True"
    assert lines[1].startswith("UserError:") and "could not register its plugins" in lines[1]
    # The library's own explanation, on stderr (no TensorRT logger in this process).
    assert "no TensorRT runtime is loaded in this process" in result.stderr
    assert "LD_LIBRARY_PATH" in result.stderr
