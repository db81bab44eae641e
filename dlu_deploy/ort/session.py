"""make_session: a ready onnxruntime session for portable and plugin-mode graphs."""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from typing import Any

import onnx
import onnxruntime

from dlu_deploy.errors import UserError
from dlu_deploy.ort import _graph, _kernels

_session_ids = itertools.count(1)


class PluginSession(onnxruntime.InferenceSession):
    """An InferenceSession that raises the errors of its custom nodes (see _kernels.py).

    A Python custom op cannot fail inside onnxruntime-extensions without aborting the process,
    so the ops record their error and return an empty tensor; run() then raises that error
    (a UserError naming the node's problem) instead of returning or of whatever failure the
    empty tensor causes downstream.
    """

    def __init__(self, model: bytes, session_id: int, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self._session_id = session_id

    def _checked(self, run: Any, *args: Any, **kwargs: Any) -> Any:
        _kernels.take_error(self._session_id)  # forget errors of an earlier, aborted run
        try:
            result = run(*args, **kwargs)
        except Exception as e:
            error = _kernels.take_error(self._session_id)
            if error is not None:
                raise error from e
            raise
        error = _kernels.take_error(self._session_id)
        if error is not None:
            raise error
        return result

    def run(self, *args: Any, **kwargs: Any) -> Any:
        return self._checked(super().run, *args, **kwargs)

    def run_with_ort_values(self, *args: Any, **kwargs: Any) -> Any:
        return self._checked(super().run_with_ort_values, *args, **kwargs)

    def run_with_iobinding(self, *args: Any, **kwargs: Any) -> Any:
        return self._checked(super().run_with_iobinding, *args, **kwargs)


def _load(model: str | os.PathLike[str] | onnx.ModelProto) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    path = os.fspath(model)
    if not os.path.isfile(path):
        raise UserError(f"The ONNX file {path} does not exist.", "Check the path.")
    try:
        return onnx.load(path)
    except Exception as e:  # any parse failure means the same to the user
        raise UserError(
            f"{path} is not a readable ONNX model ({e}).", "Re-export the model."
        ) from e


def make_session(
    model: str | os.PathLike[str] | onnx.ModelProto,
    *,
    providers: Sequence[str] = ("CPUExecutionProvider",),
    intra_op_threads: int | None = None,
) -> onnxruntime.InferenceSession:
    """A ready onnxruntime session for `model` (a path or an onnx.ModelProto, not modified).

    Portable graphs run as they are. Plugin-mode graphs (custom nodes `dlu_deploy::DLU`,
    `::CARAFE`, `::DDF`, and mmcv's `mmcv::MMCVCARAFE`) run their custom nodes on the compiled
    CPU kernels of libdlu_kernels through onnxruntime-extensions' Python custom ops; every other
    node runs on `providers` as usual. `intra_op_threads` sets ORT's intra-op threads and the
    kernels' threads (None: all cores). Raises UserError for unknown custom ops, bad attributes,
    untyped inputs, or a missing native library (with the command that builds it).
    """
    proto = _load(model)
    options = onnxruntime.SessionOptions()
    threads = 0 if intra_op_threads is None else int(intra_op_threads)
    if threads < 0:
        raise UserError(
            f"intra_op_threads={intra_op_threads} is negative.",
            "Pass None (all cores) or a count >= 1.",
        )
    options.intra_op_num_threads = threads
    if not _graph.has_custom_nodes(proto):
        source = (
            proto.SerializeToString() if isinstance(model, onnx.ModelProto) else os.fspath(model)
        )
        return onnxruntime.InferenceSession(source, sess_options=options, providers=list(providers))

    from onnxruntime_extensions import get_library_path

    from dlu_deploy import native

    native.load()  # fail here, with the build command, rather than inside a node
    session_id = next(_session_ids)
    rewritten = _graph.prepare(proto, session_id, threads)
    options.register_custom_ops_library(get_library_path())
    return PluginSession(
        rewritten.SerializeToString(), session_id, sess_options=options, providers=list(providers)
    )
