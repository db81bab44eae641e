"""The JSON sidecar written next to every engine (`model.engine.json`) and the checks that
refuse to load an engine somewhere it cannot run.

A TensorRT engine only runs with the TensorRT version and the GPU model it was built for; a
mismatch fails deep inside deserialization with an obscure message, or not at all. The sidecar
records both (plus shapes, precision, plugin library hashes and the engine's own size and hash)
so the runtime can say precisely what is wrong before touching TensorRT. Pure Python.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlu_deploy.errors import UserError

SIDECAR_FORMAT = 1


def sidecar_path(engine_path: str | Path) -> Path:
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def file_digest(path: str | Path) -> dict[str, Any]:
    """{'bytes': size, 'sha256': hex digest} of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
            size += len(chunk)
    return {"bytes": size, "sha256": digest.hexdigest()}


def write_sidecar(engine_path: str | Path, sidecar: dict[str, Any]) -> Path:
    path = sidecar_path(engine_path)
    path.write_text(json.dumps(sidecar, indent=2) + "\n")
    return path


def read_sidecar(engine_path: str | Path) -> dict[str, Any] | None:
    """The sidecar of `engine_path`, or None when there is none (e.g. built by trtexec)."""
    path = sidecar_path(engine_path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(
            f"The engine sidecar {path} is not valid JSON ({exc}).",
            "Rebuild the engine with `dlu-deploy build`, or delete the sidecar to skip the checks.",
        ) from exc
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise UserError(
            f"{path} is not a dlu-deploy engine sidecar of format {SIDECAR_FORMAT}.",
            "Rebuild the engine with `dlu-deploy build`, or delete the sidecar to skip the checks.",
        )
    return data


def check_engine_file(engine_path: str | Path, sidecar: dict[str, Any]) -> None:
    """UserError if the engine file is not the one the sidecar describes (truncated, replaced)."""
    recorded = sidecar.get("engine", {})
    actual = file_digest(engine_path)
    if recorded.get("bytes") not in (None, actual["bytes"]):
        raise UserError(
            f"{engine_path} is {actual['bytes']} bytes but its sidecar records "
            f"{recorded['bytes']}: the file is truncated or was replaced.",
            "Copy the engine again, or rebuild it with `dlu-deploy build`.",
        )
    if recorded.get("sha256") not in (None, actual["sha256"]):
        raise UserError(
            f"{engine_path} does not match the sha256 its sidecar records: the file is corrupt or "
            "was replaced.",
            "Copy the engine again, or rebuild it with `dlu-deploy build`.",
        )


@dataclass(frozen=True)
class Mismatch:
    """One difference between the build environment (sidecar) and this machine."""

    what: str
    recorded: str
    current: str
    fatal: bool

    def describe(self) -> str:
        return f"{self.what}: built with {self.recorded}, this machine has {self.current}"


def environment_mismatches(sidecar: dict[str, Any], current: dict[str, Any]) -> list[Mismatch]:
    """Compare the sidecar's `tensorrt`, `gpu` and `plugins` sections with `current`'s.

    `current` has the sidecar's layout: {'tensorrt': {'version'}, 'gpu': {'name',
    'compute_capability'}, 'plugins': [{'sha256', ...}]}. A different TensorRT version,
    compute capability or GPU model is fatal (TensorRT engines are not portable across them
    unless built version- or hardware-compatible); a different plugin library build is not.
    """
    found: list[Mismatch] = []
    version_compatible = bool(sidecar.get("tensorrt", {}).get("version_compatible"))
    hardware_compatible = sidecar.get("gpu", {}).get("hardware_compatibility", "NONE") != "NONE"

    def compare(what: str, section: str, key: str, fatal: bool) -> None:
        recorded = sidecar.get(section, {}).get(key)
        actual = current.get(section, {}).get(key)
        if recorded is not None and actual is not None and str(recorded) != str(actual):
            found.append(Mismatch(what, str(recorded), str(actual), fatal))

    compare("TensorRT version", "tensorrt", "version", not version_compatible)
    compare("GPU compute capability", "gpu", "compute_capability", not hardware_compatible)
    compare("GPU model", "gpu", "name", not hardware_compatible)
    recorded_libs = {p.get("sha256") for p in sidecar.get("plugins", []) if p.get("sha256")}
    current_libs = {p.get("sha256") for p in current.get("plugins", []) if p.get("sha256")}
    if recorded_libs and current_libs and recorded_libs != current_libs:
        found.append(
            Mismatch(
                "plugin library build",
                ", ".join(sorted(h[:12] for h in recorded_libs)),
                ", ".join(sorted(h[:12] for h in current_libs)),
                fatal=False,
            )
        )
    return found


def refuse_incompatible(engine_path: str | Path, mismatches: list[Mismatch]) -> list[Mismatch]:
    """UserError listing the fatal mismatches; returns the harmless ones (for warnings)."""
    fatal = [m for m in mismatches if m.fatal]
    if fatal:
        details = "; ".join(m.describe() for m in fatal)
        raise UserError(
            f"{engine_path} was built for another TensorRT/GPU ({details}).",
            "Rebuild the engine on this machine with `dlu-deploy build` (engines are specific "
            "to the TensorRT version and GPU model), or pass --skip-compat-check to try anyway.",
        )
    return [m for m in mismatches if not m.fatal]
