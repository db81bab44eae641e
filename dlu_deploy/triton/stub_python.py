"""Make PyTriton's Python-backend stub embed the same Python as the one serving.

tritonserver runs PyTriton's proxy model in `triton_python_backend_stub`, a program linked
against `libpython3.X.so.1.0` that takes its standard library from the serving interpreter's
prefix (PyTriton puts that interpreter first on PATH). The dynamic loader finds the libpython
by soname, usually the system's (Debian's 3.11.2 in /usr/lib), so under another 3.11 build
(pyenv's 3.11.7) the stub runs a 3.11.2 core with a 3.11.7 `threading.py` and dies with
`'_thread.RLock' object has no attribute '_recursion_count'` (PyTriton issue #51).

The fix is to put this interpreter's own shared libpython first on LD_LIBRARY_PATH (tritonserver
and the stub inherit the environment), then check with `ldd` which libpython the stub loads and
that its version is this interpreter's. An interpreter without a shared libpython of its own
version (a static build, and no matching system library) cannot host the stub: that is refused
with a clear error instead of a model that never loads.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from dlu_deploy.errors import UserError

LOG = logging.getLogger(__name__)


def own_libpython_dir() -> Path | None:
    """The directory of this interpreter's shared libpython, or None for a static build."""
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        return None
    libdir = sysconfig.get_config_var("LIBDIR")
    soname = sysconfig.get_config_var("INSTSONAME") or sysconfig.get_config_var("LDLIBRARY")
    if not libdir or not soname or not (Path(libdir) / soname).is_file():
        return None
    return Path(libdir)


def stub_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """`environ` (default: os.environ) with this interpreter's libpython directory first on
    LD_LIBRARY_PATH."""
    env = dict(os.environ if environ is None else environ)
    libdir = own_libpython_dir()
    if libdir is not None:
        rest = [p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p and p != str(libdir)]
        env["LD_LIBRARY_PATH"] = ":".join([str(libdir), *rest])
    return env


def stub_path() -> Path:
    """PyTriton's stub for this interpreter's Python version."""
    from pytriton.utils.distribution import get_stub_path

    return Path(get_stub_path(f"{sys.version_info.major}.{sys.version_info.minor}"))


def resolved_libpython(stub: Path, env: dict[str, str]) -> Path | None:
    """The libpython the dynamic loader gives `stub` under `env` (via ldd), or None."""
    try:
        listing = subprocess.run(
            ["ldd", str(stub)], env=env, capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"libpython[\d.]+\.so[\d.]*\s*=>\s*(\S+)", listing)
    return Path(match.group(1)) if match and match.group(1) != "not" else None


def libpython_version(library: Path) -> str | None:
    """Py_GetVersion() of `library`, read in a child process (the library is loaded beside the
    child's own libpython, so that process is thrown away)."""
    code = (
        "import ctypes, sys; f = ctypes.CDLL(sys.argv[1]).Py_GetVersion; "
        "f.restype = ctypes.c_char_p; print(f().decode().split()[0])"
    )
    try:
        result = subprocess.run(
            [sys.executable, "-c", code, str(library)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None


def check_stub_python(env: dict[str, str]) -> None:
    """UserError unless the stub, started with `env`, embeds this interpreter's Python version."""
    stub = stub_path()
    if not stub.is_file():
        raise UserError(
            f"PyTriton has no Python-backend stub for Python {platform.python_version()} "
            f"({stub} is missing).",
            "Use a Python version PyTriton supports (3.8 to 3.13 for PyTriton 0.7).",
        )
    if shutil.which("ldd") is None:
        LOG.warning("ldd is not available: cannot check which libpython PyTriton's stub loads")
        return
    library = resolved_libpython(stub, env)
    wanted = platform.python_version()
    found = libpython_version(library) if library is not None else None
    if found == wanted:
        return
    where = f"{library} (Python {found or 'unknown'})" if library else "no libpython at all"
    raise UserError(
        f"PyTriton's Python-backend stub would load {where}, but this Python "
        f"({sys.executable}) is {wanted} and has no shared libpython of its own; the stub "
        "would mix the two and fail to load the model (PyTriton issue #51).",
        "Serve with a Python that has a shared libpython of its own version: most do (Debian/"
        "Ubuntu's python3, python.org Docker images, conda, uv); for pyenv build it with "
        "PYTHON_CONFIGURE_OPTS=--enable-shared. scripts/setup-triton-env makes a venv from "
        "such a Python (docs/serving.md).",
    )
