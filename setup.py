"""Builds libdlu_kernels with CMake during `pip install` (metadata lives in pyproject.toml).

- `pip install .` (a wheel): configures and builds in a temporary directory and ships the
  library as dlu_deploy/_native/libdlu_kernels.so (a platform wheel).
- `pip install -e .` (editable): builds in the checkout's build/ (the directory scripts/test
  and `cmake -S . -B build` use), where dlu_deploy.native finds it, so a later rebuild there is
  always the library Python loads (no stale copy inside the package).
CUDA kernels are included when CMake finds nvcc. Extra CMake arguments: DLU_DEPLOY_CMAKE_ARGS.
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


def build_library(build_dir: Path) -> Path | None:
    if shutil.which("cmake") is None:
        print(f"warning: cmake not found, {LIBRARY} is not built", file=sys.stderr)
        return None
    configure = ["cmake", "-S", str(ROOT), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release"]
    configure += shlex.split(os.environ.get("DLU_DEPLOY_CMAKE_ARGS", ""))
    subprocess.run(configure, check=True)
    jobs = str(os.cpu_count() or 1)
    subprocess.run(
        ["cmake", "--build", str(build_dir), "-j", jobs, "--target", "dlu_kernels"], check=True
    )
    return build_dir / "lib" / LIBRARY


class BuildWithKernels(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            build_library(ROOT / "build")
            return
        library = build_library(Path(self.build_lib).resolve().parent / "cmake-build")
        if library is not None:
            target = Path(self.build_lib) / "dlu_deploy" / "_native" / LIBRARY
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(library, target)


class PlatformDistribution(Distribution):
    """The wheel holds a native library: tag it for the platform, not as pure Python."""

    def has_ext_modules(self) -> bool:
        return True


setup(cmdclass={"build_py": BuildWithKernels}, distclass=PlatformDistribution)
