"""The shipped default DLU checkpoint exported for the Triton tests, once per session and kind
(test_serve.py and test_triton_repo.py share the plugin-mode export)."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path


@functools.cache
def default_onnx(mode: str, dynamic: bool) -> Path:
    """dlu_default exported in `mode` (plugin/portable); `dynamic`: symbolic N, H, W."""
    from dlu_export import ExportOptions, export_model
    from dlu_export.default import default_checkpoint

    from dlu_deploy.checkpoints import load_model

    folder = Path(tempfile.mkdtemp(prefix=f"dlu-triton-{mode}-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / f"dlu_{mode}.onnx"
    options = ExportOptions(mode=mode, dynamic=dynamic, input_shapes=[(1, 256, 8, 8)])
    export_model(load_model(default_checkpoint()), path, options)
    return path
