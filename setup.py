"""Builds libdlu_kernels (and libdlu_ort_ops, the ONNX Runtime custom ops, where CMake finds
ONNX Runtime's C API header) with CMake during `pip install` (metadata lives in pyproject.toml).

- `pip install .` (a wheel): configures and builds in a temporary directory and ships the
  libraries as dlu_deploy/_native/libdlu_kernels.so and libdlu_ort_ops.so (a platform wheel).
- `pip install -e .` (editable): builds in the checkout's build/ (the directory scripts/test
  and `cmake -S . -B build` use), where dlu_deploy.native finds it, so a later rebuild there is
  always the library Python loads (no stale copy inside the package).
CUDA kernels are included when CMake finds nvcc. Extra CMake arguments: DLU_DEPLOY_CMAKE_ARGS
(e.g. -DONNXRUNTIME_INCLUDE_DIR=<dir with onnxruntime_c_api.h> for the custom-op library).
Without cmake on PATH the package installs without the library (the PyTorch reference ops
work; the compiled ops raise an error saying how to build it).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
LIBRARY = "libdlu_kernels.so"
# Built and shipped when the configured build has them (CMake skips them without the headers).
OPTIONAL_LIBRARIES = {"dlu_ort_ops": "libdlu_ort_ops.so"}


def build_libraries(build_dir: Path) -> list[Path]:
    if shutil.which("cmake") is None:
        print(f"warning: cmake not found, {LIBRARY} is not built", file=sys.stderr)
        return []
    configure = ["cmake", "-S", str(ROOT), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release"]
    configure += shlex.split(os.environ.get("DLU_DEPLOY_CMAKE_ARGS", ""))
    subprocess.run(configure, check=True)
    targets = subprocess.run(
        ["cmake", "--build", str(build_dir), "--target", "help"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    wanted = {"dlu_kernels": LIBRARY} | {
        target: name
        for target, name in OPTIONAL_LIBRARIES.items()
        if any(target in line.split() for line in targets.splitlines())
    }
    jobs = str(os.cpu_count() or 1)
    subprocess.run(
        ["cmake", "--build", str(build_dir), "-j", jobs, "--target", *wanted], check=True
    )
    return [build_dir / "lib" / name for name in wanted.values()]


class BuildWithKernels(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            build_libraries(ROOT / "build")
            return
        for library in build_libraries(Path(self.build_lib).resolve().parent / "cmake-build"):
            target = Path(self.build_lib) / "dlu_deploy" / "_native" / library.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(library, target)


class PlatformDistribution(Distribution):
    """The wheel holds a native library: tag it for the platform, not as pure Python."""

    def has_ext_modules(self) -> bool:
        return True


setup(cmdclass={"build_py": BuildWithKernels}, distclass=PlatformDistribution)
