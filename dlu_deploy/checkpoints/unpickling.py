"""Safe loading of training checkpoints: foreign objects become inert data, code is refused.

`torch.load(weights_only=True)` refuses every class it does not know, so a real training
checkpoint (mmengine's `message_hub` holds `HistoryBuffer` objects with numpy arrays) cannot be
read without mmengine and without trusting the pickle. Here the pickle's globals are listed first
(a static scan: nothing runs), any that only an attack would name is refused, and torch's own
weights-only unpickler then loads the file with these globals added:

- numpy's array, dtype and scalar reconstruction (numpy's C code filling in data);
- every other global as an `InertObject` class of the same name that keeps the pickle's
  arguments and state and never runs the original class's (or function's) code;
- `builtins.getattr` only as protocol 2 writes a method reference (`getattr(HistoryBuffer,
  'min')` in mmengine's HistoryBuffer), on an inert class and a public name; the answer is
  another inert class, never a real attribute.

The weights-only unpickler accepts only protocol-2 opcodes and calls nothing but allowlisted
globals, so a global the scan did not see is refused by torch as before.
"""

from __future__ import annotations

import importlib
import pickle
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from dlu_deploy.checkpoints.errors import CodeInCheckpointError, UnsafeCheckpointError

GETATTR = "builtins.getattr"

# Globals that only an attack names: they run a command, evaluate text, import, open files or
# sockets, or unpickle again. Refused in every load, --trust-pickle included.
ATTACK_MODULES = frozenset(
    (
        "os", "posix", "nt", "sys", "subprocess", "_posixsubprocess", "importlib", "imp", "runpy",
        "code", "codeop", "pty", "ctypes", "_ctypes", "socket", "_socket", "shutil", "webbrowser",
        "marshal", "pickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve",
        "multiprocessing", "_thread", "threading", "asyncio", "signal", "tempfile", "io", "_io",
        "timeit", "pdb", "bdb", "trace", "cProfile", "profile", "zipimport", "pkgutil", "distutils",
        "setuptools", "pip", "commands", "popen2", "platform",
    )
)  # fmt: skip
# Reached through an attribute path too (`torch.serialization.os.system`).
ATTACK_PARTS = frozenset(
    (
        "os", "posix", "nt", "sys", "subprocess", "importlib", "eval", "exec", "execfile",
        "compile", "__import__", "system", "popen", "__builtins__", "__globals__", "__code__",
        "__subclasses__", "__getattribute__", "runstring", "load_inline",
    )
)  # fmt: skip
ATTACK_PREFIXES = (
    "builtins.open", "builtins.input", "builtins.breakpoint", "builtins.globals",
    "builtins.locals", "builtins.vars", "builtins.setattr", "builtins.delattr", "torch.load",
    "torch.serialization.load", "torch.hub.", "torch.jit.", "torch.package.",
    "torch.utils.cpp_extension.", "torch._dynamo.", "torch._inductor.", "torch.compile",
    "numpy.testing.", "numpy.load", "numpy.lib.npyio.", "numpy.f2py.", "numpy.distutils.",
    "numpy.ctypeslib.",
)  # fmt: skip
# Never plain data, but a trusted pickled model may use them (a functools.partial hook):
# refused in safe loads only.
CALLING_PREFIXES = (
    "functools.", "_functools.", "operator.", "_operator.", "types.", "copyreg.", "inspect.",
    "codecs.", "torch._C.", "torch.ops.", "torch.library.",
)  # fmt: skip
# Builtins that only build plain data; every other builtin is refused in safe loads.
DATA_BUILTINS: dict[str, Any] = {f"builtins.{t.__name__}": t for t in (frozenset, slice, range)}


def attack_reason(full_name: str) -> str | None:
    """Why a pickle global is refused in every load (None when it is not)."""
    parts = full_name.split(".")
    named = [p for p in parts if p in ATTACK_PARTS]
    if parts[0] in ATTACK_MODULES or named:
        return f"{full_name} ({', '.join(named or parts[:1])})"
    if any(full_name == p.rstrip(".") or full_name.startswith(p) for p in ATTACK_PREFIXES):
        return full_name
    return None


def calling_reason(full_name: str) -> str | None:
    """Why a pickle global is refused in a safe load although --trust-pickle would accept it."""
    parts = full_name.split(".")
    if parts[0] == "builtins" and full_name not in DATA_BUILTINS and full_name != GETATTR:
        return f"{full_name} (a builtin that plain data never needs)"
    if any(full_name.startswith(p) for p in CALLING_PREFIXES):
        return f"{full_name} (calls other functions)"
    if any(p.startswith("__") and p != "__main__" for p in parts):
        return f"{full_name} (a Python internal)"
    return None


class InertObject:
    """A pickled object whose class is never imported: the pickle's arguments and state as data.

    Stands for a class or a function call (the pickle does not say which). No `__dict__` and no
    `__getattr__`, so nothing in the file can reach a real attribute through it.
    """

    __slots__ = ("args", "state")
    args: tuple[Any, ...]
    state: Any
    pickled_name: ClassVar[str] = "?"

    def __new__(cls, *args: Any) -> InertObject:
        obj = super().__new__(cls)
        obj.args = args
        obj.state = None
        return obj

    def __init__(self, *args: Any) -> None:
        """REDUCE calls the class with the pickled arguments; __new__ kept them already."""

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<inert {self.pickled_name}>"


def inert_class(full_name: str) -> type[InertObject]:
    """A fresh inert stand-in class named after a pickle global (module.qualname)."""
    # Named so that no one mistakes it for the real class when printing it.
    name = f"Inert[{full_name}]"
    return type(
        name, (InertObject,), {"__slots__": (), "__qualname__": name, "pickled_name": full_name}
    )


def is_inert(value: Any) -> bool:
    """An inert object or an inert class (as a method reference leaves one)."""
    return isinstance(value, InertObject) or (
        isinstance(value, type) and issubclass(value, InertObject)
    )


def _numpy_globals() -> list[tuple[Any, str]]:
    """numpy's data constructors under the names numpy 1.x and 2.x pickle them with."""
    multiarray = importlib.import_module(
        "numpy._core.multiarray" if hasattr(np, "_core") else "numpy.core.multiarray"
    )
    found: list[tuple[Any, str]] = [(np.ndarray, "numpy.ndarray"), (np.dtype, "numpy.dtype")]
    for package in ("numpy.core", "numpy._core"):
        found.append((multiarray._reconstruct, f"{package}.multiarray._reconstruct"))
        found.append((multiarray.scalar, f"{package}.multiarray.scalar"))
    # BUILD restores a dtype's state on its concrete class (numpy.dtypes.Float64DType, ...).
    for dtype_class in {type(np.dtype(code)) for code in np.typecodes["All"]}:
        found.append((dtype_class, f"{dtype_class.__module__}.{dtype_class.__qualname__}"))
    return found


class RefusedGlobal(Exception):
    """Raised inside an unpickler: a global or getattr only attacks use (torch.load passes it
    through unwrapped; the caller turns it into an attack_error naming the file)."""


class _Session:
    """The globals of one load: inert classes by name, method references made on the way."""

    def __init__(self, names: list[str]) -> None:
        self.inert: dict[str, type[InertObject]] = {}
        self.allowed: list[Any] = [*_numpy_globals(), *((v, k) for k, v in DATA_BUILTINS.items())]
        known = {name for _, name in self.allowed}
        for name in names:
            if name == GETATTR:
                self.allowed.append((self.method_reference, GETATTR))
            elif name not in known:
                self.inert[name] = inert_class(name)
                self.allowed.append((self.inert[name], name))

    def method_reference(self, owner: Any, name: Any) -> type[InertObject]:
        """`getattr` as protocol 2 pickles `Class.method`: only on inert classes, public names."""
        if not (isinstance(owner, type) and issubclass(owner, InertObject)):
            raise RefusedGlobal(f"builtins.getattr on {_describe(owner)} for {name!r}")
        if not (isinstance(name, str) and name.isidentifier() and not name.startswith("_")):
            raise RefusedGlobal(f"builtins.getattr on {owner.pickled_name} for {name!r}")
        full_name = f"{owner.pickled_name}.{name}"
        if (reason := attack_reason(full_name)) is not None:  # inert anyway; say what it was
            raise RefusedGlobal(f"builtins.getattr for {reason}")
        if full_name not in self.inert:
            self.inert[full_name] = inert_class(full_name)
            torch.serialization.add_safe_globals([(self.inert[full_name], full_name)])
            self.allowed.append((self.inert[full_name], full_name))
        return self.inert[full_name]


def _describe(value: Any) -> str:
    if isinstance(value, type):
        return f"the class {value.__module__}.{value.__qualname__}"
    return f"a {type(value).__module__}.{type(value).__qualname__} object"


@contextmanager
def _allowed(session: _Session) -> Iterator[None]:
    # torch's safe-globals context removes exactly the list it was given: the method
    # references appended during the load go with it.
    with torch.serialization.safe_globals(session.allowed):
        yield


def unsafe_globals(path: Path) -> list[str] | None:
    """The globals weights-only loading would refuse (a static scan); None if it cannot scan."""
    try:
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # legacy (non-zip) format or opcodes beyond protocol 2: torch.load decides
        return None


def load_inert(path: Path, names: list[str]) -> tuple[Any, list[str]]:
    """Load the file with `names` (from `unsafe_globals`) refused or read as inert.

    Returns the object and the names read as inert data. A refusal (CodeInCheckpointError)
    comes before anything of the file is loaded, or, for a getattr on a real object, before
    that getattr runs.
    """
    refuse_attacks(path, names)
    calls = [r for n in names if (r := calling_reason(n)) is not None]
    if calls:
        raise CodeInCheckpointError(
            f"Checkpoint '{path}' was refused: its pickle calls functions that plain data never "
            f"needs ({_listed(calls)}). Nothing in it was executed.",
            "If you trust the file (a whole pickled model from your own training), pass "
            "--trust-pickle (Python: trust_pickle=True); otherwise do not load it.",
        )
    session = _Session(names)
    inert = sorted(session.inert)  # as scanned; method references found later are not news
    try:
        with _allowed(session):
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except RefusedGlobal as exc:
        raise attack_error(path, [str(exc)]) from None
    except pickle.UnpicklingError as exc:
        reason = _structure_reason(str(exc))
        if reason is None:  # not about the objects (a corrupt stream): the caller reports it
            raise
        raise UnsafeCheckpointError(
            f"Checkpoint '{path}' holds objects that safe loading cannot read as inert data: "
            f"{reason}. Nothing in it was executed.",
            "If you trust the file, pass --trust-pickle (Python: trust_pickle=True). Otherwise "
            "save only the weights where the model was trained: "
            "torch.save(ckpt['state_dict'], 'weights.pth').",
        ) from None
    return loaded, inert


def _structure_reason(message: str) -> str | None:
    """torch's refusal of what an inert object cannot do (a dict subclass filled by SETITEMS)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    found = next((line for line in lines if line.startswith(("Can only", "Trying to call"))), None)
    if found is None:
        return None
    return re.sub(r"<class '[\w.]*Inert\[([^\]]+)\]'>", r"an object of \1", found)


def refuse_attacks(path: Path, names: list[str]) -> None:
    """Raise before loading if any of the scanned globals is one only attacks use."""
    attacks = [r for n in names if (r := attack_reason(n)) is not None]
    if attacks:
        raise attack_error(path, attacks)


def _listed(reasons: list[str]) -> str:
    return "; ".join(reasons[:4]) + ("; ..." if len(reasons) > 4 else "")


def attack_error(path: Path | str, reasons: list[str]) -> CodeInCheckpointError:
    return CodeInCheckpointError(
        f"Checkpoint '{path}' was refused: its pickle would run code when loaded "
        f"({_listed(reasons)}). Nothing in it was executed.",
        "Do not load this file, not even with --trust-pickle: no checkpoint needs these. Get the "
        "weights from a source you trust.",
    )


def guard_trusted_global(module: str, name: str) -> None:
    """--trust-pickle runs the file's classes, but still refuses the globals only attacks use."""
    reason = attack_reason(f"{'builtins' if module == '__builtin__' else module}.{name}")
    if reason is not None:
        raise RefusedGlobal(reason)
