"""`dlu-deploy triton-repo`: a Triton model repository for an engine or an ONNX file.

    REPO/
      NAME/config.pbtxt            checked against Triton's ModelConfig protobuf
      NAME/1/model.plan            TensorRT backend (+ model.plan.json, the engine's sidecar)
      NAME/1/model.onnx            onnxruntime backend
      plugins/libdlu_trt_plugins.so, plugins/libdlu_ort_ops.so   when the model needs them
      launch_tritonserver.sh       tritonserver with the plugin library, as Triton documents it

TensorRT plugins: the TensorRT backend loads the libraries named in
`--backend-config=tensorrt,plugins="a.so;b.so"` after TensorRT itself, and the project's
library registers its creators on load (plugins/README.md). onnxruntime custom ops: the model's
`model_operations { op_library_filename: ... }` makes the onnxruntime backend register the
library with the session (an absolute path, so `--server-repo` says where the server sees REPO).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dlu_deploy.errors import UserError
from dlu_deploy.triton.config import (
    ServingOptions,
    check_config,
    config_text,
    parse_config,
)
from dlu_deploy.triton.interface import ModelInterface, read_interface

LAUNCH_SCRIPT = "launch_tritonserver.sh"
PLUGIN_DIR = "plugins"
VERSION = "1"


@dataclass(frozen=True)
class RepositoryResult:
    repository: Path
    model_dir: Path
    backend: str
    config_path: Path
    model_path: Path
    libraries: tuple[Path, ...]
    launch_script: Path
    interface: ModelInterface


def write_repository(
    model: str | Path,
    repository: str | Path,
    *,
    name: str | None = None,
    options: ServingOptions | None = None,
    plugins: Sequence[str | Path] | None = None,
    op_library: str | Path | None = None,
    server_repository: str | None = None,
    force: bool = False,
) -> RepositoryResult:
    """Write the repository of `model` (engine -> tensorrt backend, .onnx -> onnxruntime)."""
    interface = read_interface(model)
    options = options or ServingOptions()
    options.check(interface)
    name = name or interface.path.stem
    _check_name(name)
    backend = "tensorrt" if interface.kind == "engine" else "onnxruntime"
    repository = Path(repository)
    model_dir = repository / name
    if model_dir.exists() and not force:
        raise UserError(
            f"{model_dir} exists already.", "Pass --force to replace it, or another --name."
        )
    if interface.kind == "engine":
        _check_engine(interface.path)

    libraries = _libraries(interface, plugins, op_library)
    seen_root = (server_repository or str(repository.resolve())).rstrip("/") or "/"
    op_paths = [f"{seen_root}/{PLUGIN_DIR}/{lib.name}" for lib in libraries]
    text = config_text(
        name, backend, interface, options, op_paths if backend == "onnxruntime" else ()
    )
    check_config(parse_config(text, f"{name}/config.pbtxt"), interface, options, backend)

    if model_dir.exists():
        shutil.rmtree(model_dir)
    (model_dir / VERSION).mkdir(parents=True)
    model_path = model_dir / VERSION / ("model.plan" if backend == "tensorrt" else "model.onnx")
    shutil.copyfile(interface.path, model_path)
    if backend == "tensorrt":
        from dlu_deploy.runtime.sidecar import sidecar_path

        shutil.copyfile(sidecar_path(interface.path), sidecar_path(model_path))
    copied = []
    for library in libraries:
        (repository / PLUGIN_DIR).mkdir(exist_ok=True)
        target = repository / PLUGIN_DIR / library.name
        shutil.copyfile(library, target)
        copied.append(target)
    config_path = model_dir / "config.pbtxt"
    config_path.write_text(text)
    launch = repository / LAUNCH_SCRIPT
    launch.write_text(launch_script(copied if backend == "tensorrt" else []))
    launch.chmod(0o755)
    return RepositoryResult(
        repository, model_dir, backend, config_path, model_path, tuple(copied), launch, interface
    )


def launch_script(trt_plugins: Sequence[Path]) -> str:
    """A shell script that starts tritonserver on the repository it lies in."""
    lines = [
        "#!/usr/bin/env bash",
        "# Start Triton Inference Server on this model repository (dlu-deploy triton-repo).",
        "# Extra arguments go to tritonserver; TRITONSERVER overrides the binary.",
        "set -euo pipefail",
        'REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"',
    ]
    command = 'exec "${TRITONSERVER:-tritonserver}" --model-repository="$REPO"'
    if trt_plugins:
        lines.append(
            "# The TensorRT backend loads these after TensorRT; each registers its plugins."
        )
        joined = ";".join(f"$REPO/{PLUGIN_DIR}/{p.name}" for p in trt_plugins)
        command += f' \\\n    --backend-config=tensorrt,plugins="{joined}"'
    lines.append(command + ' "$@"')
    return "\n".join(lines) + "\n"


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or name.startswith("."):
        raise UserError(
            f"{name!r} is not a usable Triton model name (a directory of the repository).",
            "Pass --name with letters, digits, '_' or '-'.",
        )


def _check_engine(path: Path) -> None:
    from dlu_deploy.runtime.sidecar import check_engine_file, read_sidecar

    sidecar = read_sidecar(path)
    assert sidecar is not None  # read_interface refused engines without one
    check_engine_file(path, sidecar)


def _libraries(
    interface: ModelInterface,
    plugins: Sequence[str | Path] | None,
    op_library: str | Path | None,
) -> list[Path]:
    from dlu_deploy.libraries import existing_plugin_paths, trt_plugin_library

    if interface.kind == "engine":
        if plugins:
            return existing_plugin_paths(list(plugins))
        return [trt_plugin_library()] if interface.has_custom_nodes else []
    if op_library is not None:
        path = Path(op_library)
        if not path.is_file():
            raise UserError(
                f"The onnxruntime op library {path} does not exist.",
                "Pass the path of the built libdlu_ort_ops.so to --op-library.",
            )
        return [path.resolve()]
    return [ort_op_library()] if interface.has_custom_nodes else []


def ort_op_library() -> Path:
    """The native onnxruntime custom-op library (libdlu_ort_ops.so) of this dlu-deploy."""
    try:
        from dlu_deploy.ort import custom_ops_library  # type: ignore[attr-defined,unused-ignore]
    except ImportError as exc:
        raise UserError(
            "The model has custom nodes (plugin mode), and this dlu-deploy has no native "
            "onnxruntime op library (libdlu_ort_ops.so), which Triton's onnxruntime backend "
            "needs to run them.",
            "Pass --op-library path/to/libdlu_ort_ops.so, or export the model with "
            "`dlu-export --mode portable` (standard ops only: no library needed).",
        ) from exc
    return Path(custom_ops_library()).resolve()
