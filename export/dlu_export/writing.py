"""Atomic output: the model goes to a temporary file in the target directory, then is renamed.

A failure at any point leaves no partial file behind (and an older file at the path intact).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import onnx

from .errors import OptionError

PROTOBUF_LIMIT = 2**31 - 1


def check_output_path(path: Path, source: Path | None = None) -> None:
    """Reject outputs that cannot be written or would overwrite the checkpoint."""
    if path.is_dir():
        raise OptionError(f"Output '{path}' is a directory.", "Give a file name, e.g. model.onnx.")
    if not path.parent.is_dir():
        raise OptionError(
            f"Output directory '{path.parent}' does not exist.",
            "Create it first or choose another output path.",
        )
    if source is not None and path.exists() and path.resolve() == source.resolve():
        raise OptionError(
            f"Output '{path}' is the checkpoint itself.",
            "Choose another output path, e.g. with the .onnx suffix.",
        )


def save_atomically(model: onnx.ModelProto, path: Path) -> int:
    """Write the model to `path` atomically; returns its size in bytes."""
    if model.ByteSize() > PROTOBUF_LIMIT:
        raise OptionError(
            f"The exported model is {model.ByteSize() / 2**30:.1f} GiB, over protobuf's 2 GiB "
            "limit for one file.",
            "Export a smaller model; weights in external data files are not supported by "
            "dlu-export.",
        )
    try:
        handle, temporary = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".partial", dir=path.parent
        )
    except OSError as exc:
        raise OptionError(
            f"Cannot write in '{path.parent}': {exc.strerror}.", "Choose a writable directory."
        ) from exc
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(model.SerializeToString())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path.stat().st_size


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
