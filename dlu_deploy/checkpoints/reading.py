"""Reading checkpoint files: weights_only by default, containers and prefixes unwrapped.

Understood layouts:
- a bare state_dict (`{name: tensor}`);
- a container with the weights under `state_dict` (mmdetection / mmengine, with `meta`),
  `model` or `module`;
- a whole pickled `nn.Module` (only with trust_pickle=True, since unpickling runs code).
A `module.` (DataParallel) or `model.` prefix on every key is removed.

Training checkpoints (mmengine's `message_hub`, `optimizer`, `param_schedulers`; mmcv-runner's
`meta`) load without trust: foreign objects are read as inert data and a pickle that would run
code is refused (dlu_deploy.checkpoints.unpickling). Only the weights and the plain data of
`meta` (config text, class names, dataset_meta) are kept.
"""

from __future__ import annotations

import os
import pickle
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dlu_deploy.checkpoints import unpickling
from dlu_deploy.checkpoints.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
)

StateDict = dict[str, torch.Tensor]

CONTAINER_KEYS = ("state_dict", "model", "module")
WRAPPER_PREFIXES = ("module.", "model.")
# Config text saved by mmengine (`cfg`) and mmcv/mmdetection 2.x (`config`).
CONFIG_TEXT_KEYS = ("cfg", "config")


@dataclass
class Checkpoint:
    """What a checkpoint file holds, unwrapped."""

    path: Path
    state_dict: StateDict
    meta: Mapping[str, Any] = field(default_factory=dict)
    module: nn.Module | None = None  # set for a whole pickled module (trusted loads only)
    notes: list[str] = field(default_factory=list)

    @property
    def config_text(self) -> str | None:
        """The training config saved in `meta`, if it is plain text."""
        for key in CONFIG_TEXT_KEYS:
            text = self.meta.get(key)
            if isinstance(text, str):
                return text
        return None


def read_checkpoint(path: str | os.PathLike[str], *, trust_pickle: bool = False) -> Checkpoint:
    """Load a checkpoint file on the CPU and unwrap it (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointNotFoundError(
            f"Checkpoint '{path}' does not exist.",
            "Check the path (it is relative to the current directory).",
        )
    if not path.is_file():
        raise CheckpointNotFoundError(
            f"Checkpoint '{path}' is not a file.", "Pass the path of a .pth/.pt file."
        )
    loaded, inert = _load(path, trust_pickle)
    checkpoint = _unwrap(path, loaded)
    if inert:
        checkpoint.notes.append(
            f"read {', '.join(inert)} as inert data (never imported or run; only the weights and "
            "meta's plain data are used)"
        )
    return checkpoint


def _load(path: Path, trust_pickle: bool) -> tuple[Any, list[str]]:
    """The unpickled object and the globals read as inert data."""
    try:
        if trust_pickle:
            # Classes of the file run, but a global that only attacks use stops the load first
            # (the scan) or where the unpickler meets it (a stream the scan cannot read).
            unpickling.refuse_attacks(path, unpickling.unsafe_globals(path) or [])
            trusted = torch.load(
                path, map_location="cpu", weights_only=False, pickle_module=_official_class_pickle
            )
            return trusted, []
        names = unpickling.unsafe_globals(path)
        if names:
            return unpickling.load_inert(path, names)
        return torch.load(path, map_location="cpu", weights_only=True), []
    except CheckpointError:
        raise
    except unpickling.RefusedGlobal as exc:
        raise unpickling.attack_error(path, [str(exc)]) from None
    except pickle.UnpicklingError as exc:
        if not trust_pickle and "Weights only load failed" in str(exc):
            unsafe = _unsafe_globals(path)
            if unsafe or "Unsupported global" in str(exc):
                raise _unsafe_error(path, unsafe) from exc
        raise _corrupt_error(path, exc) from exc
    except ModuleNotFoundError as exc:
        raise UnsafeCheckpointError(
            f"Checkpoint '{path}' is a pickle that needs the Python module '{exc.name}', which is "
            "not installed here.",
            "Install the package that defines the pickled classes, or save only the weights "
            "(torch.save(model.state_dict(), 'weights.pth')) where the model was trained and "
            "export those.",
        ) from exc
    except Exception as exc:  # unpickling garbage raises anything (IndexError, TypeError, ...)
        raise _corrupt_error(path, exc) from exc


def _unsafe_globals(path: Path) -> list[str]:
    """Names of the classes / functions safe loading refused (empty if they cannot be listed)."""
    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a zip checkpoint: the listing is a courtesy only
        return []


def _unsafe_error(path: Path, names: list[str]) -> UnsafeCheckpointError:
    """A file the scan could not list (legacy format) whose weights-only load was refused."""
    listed = f" ({', '.join(names[:6])}{', ...' if len(names) > 6 else ''})" if names else ""
    return UnsafeCheckpointError(
        f"Checkpoint '{path}' holds Python objects{listed} that safe loading (torch.load with "
        "weights_only=True) refuses, in the legacy (pre-zip) torch.save format that cannot be "
        "scanned for inert reading. Unpickling them would run code from the file.",
        "If you trust the file, pass --trust-pickle (Python: trust_pickle=True). Otherwise save "
        "only the weights where the model was trained: torch.save(ckpt['state_dict'], "
        "'weights.pth').",
    )


def _corrupt_error(path: Path, exc: BaseException) -> CorruptCheckpointError:
    size = path.stat().st_size
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    # torch's weights_only refusal buries the actual reason (e.g. "Unsupported operand 205").
    reason = next(
        (line for line in lines if line.startswith("Unsupported")), lines[0] if lines else ""
    )
    detail = reason or type(exc).__name__
    return CorruptCheckpointError(
        f"Checkpoint '{path}' ({size} bytes) cannot be read as a PyTorch checkpoint: {detail}.",
        "The file is truncated, corrupt or not a torch.save file; download or copy it again and "
        "compare its size with the original.",
    )


def _unwrap(path: Path, loaded: Any) -> Checkpoint:
    _refuse_inert_model(path, loaded)
    if isinstance(loaded, nn.Module):
        return Checkpoint(path, _strip_wrappers(dict(loaded.state_dict())), module=loaded)
    if not isinstance(loaded, Mapping):
        raise CorruptCheckpointError(
            f"Checkpoint '{path}' holds a {type(loaded).__name__}, not a state_dict or a "
            "checkpoint dict.",
            "Save the model's weights with torch.save(model.state_dict(), path) and export that "
            "file.",
        )
    found_meta = loaded.get("meta")
    meta: Mapping[str, Any] = plain_data(found_meta) if isinstance(found_meta, Mapping) else {}
    for key in CONTAINER_KEYS:
        inner = loaded.get(key)
        if isinstance(inner, nn.Module):
            return Checkpoint(path, _strip_wrappers(dict(inner.state_dict())), meta, module=inner)
        if isinstance(inner, Mapping) and _tensor_entries(inner):
            return _from_mapping(
                path, inner, meta, f"weights read from the checkpoint's '{key}' entry"
            )
    if _tensor_entries(loaded):
        return _from_mapping(path, loaded, meta, None)
    keys = ", ".join(repr(k) for k in list(loaded)[:8])
    raise CorruptCheckpointError(
        f"Checkpoint '{path}' is a dict without weights (top-level keys: {keys}).",
        "Pass a state_dict, or a checkpoint with the weights under 'state_dict' or 'model'.",
    )


def _refuse_inert_model(path: Path, loaded: Any) -> None:
    """A whole pickled model read as inert data: building it would need its code (trust)."""
    found = loaded if unpickling.is_inert(loaded) else None
    if found is None and isinstance(loaded, Mapping) and not _tensor_entries(loaded):
        entries = [loaded.get(key) for key in CONTAINER_KEYS]
        tensors = any(isinstance(e, Mapping) and _tensor_entries(e) for e in entries)
        found = None if tensors else next((e for e in entries if unpickling.is_inert(e)), None)
    if found is not None:
        raise UnsafeCheckpointError(
            f"Checkpoint '{path}' holds a whole pickled {found.pickled_name} where the weights "
            "should be. Safe loading read it as inert data; building the model from it would run "
            "code from the file.",
            "If you trust the file, pass --trust-pickle (Python: trust_pickle=True). Otherwise "
            "save only the weights where the model was trained: "
            "torch.save(model.state_dict(), 'weights.pth').",
        )


def plain_data(value: Any, _path: tuple[int, ...] = ()) -> Any:
    """`value` without the inert objects in it, numpy scalars and arrays as Python data.

    Keeps what `meta` readers expect (dicts, lists, tuples, str, numbers); a cycle that a
    pickle can build is cut.
    """
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, Mapping | list | tuple):
        if id(value) in _path:
            return _DROPPED
        inner = (*_path, id(value))
        if isinstance(value, Mapping):
            items = (
                (k, plain_data(v, inner)) for k, v in value.items() if not unpickling.is_inert(k)
            )
            return {k: v for k, v in items if v is not _DROPPED}
        kept = [v for v in (plain_data(v, inner) for v in value) if v is not _DROPPED]
        return tuple(kept) if isinstance(value, tuple) else kept
    return _DROPPED if unpickling.is_inert(value) else value


_DROPPED = object()


def _tensor_entries(mapping: Mapping[Any, Any]) -> int:
    return sum(isinstance(v, torch.Tensor) for v in mapping.values())


def _from_mapping(
    path: Path, mapping: Mapping[Any, Any], meta: Mapping[str, Any], origin: str | None
) -> Checkpoint:
    state = {str(k): v for k, v in mapping.items() if isinstance(v, torch.Tensor)}
    notes = [origin] if origin else []
    skipped = len(mapping) - len(state)
    if skipped:
        notes.append(f"ignored {skipped} non-tensor entries of the state_dict")
    return Checkpoint(path, _strip_wrappers(state), meta, notes=notes)


def _strip_wrappers(state: StateDict) -> StateDict:
    """Remove a `module.` / `model.` prefix shared by every key (repeatedly: `module.model.`)."""
    changed = True
    while changed and state:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                changed = True
    return state


# Official upsampler classes whose defining package (mmcv with its CUDA extension, the DLU
# repository, ddfnet) is often not installable where one exports. A trusted pickle that refers
# to one of them still loads: the object becomes a parameter holder that the loader swaps for
# the reference module (dlu_deploy.checkpoints.swap).
OFFICIAL_UPSAMPLER_CLASSES = frozenset(
    {"DLUPack", "light_CARAFEPack", "CARAFEPack", "DySample", "DDFPack", "DDFUpPack", "FilterNorm"}
)


class OfficialModuleState(nn.Module):
    """Parameters and attributes of an official module whose class cannot be imported here."""

    official_name = "?"

    def forward(self, *args: Any) -> Any:
        raise RuntimeError(
            f"{self.official_name} was loaded as parameters only and must be swapped before use."
        )


class _OfficialClassUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        unpickling.guard_trusted_global(module, name)
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            if name not in OFFICIAL_UPSAMPLER_CLASSES:
                raise
            return type(name, (OfficialModuleState,), {"official_name": f"{module}.{name}"})


_official_class_pickle = types.ModuleType("dlu_deploy_official_class_pickle")
_official_class_pickle.Unpickler = _OfficialClassUnpickler  # type: ignore[attr-defined]
_official_class_pickle.load = pickle.load  # type: ignore[attr-defined]
_official_class_pickle.__dict__["UnpicklingError"] = pickle.UnpicklingError
