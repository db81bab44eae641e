"""make_session: a ready onnxruntime session for portable and plugin-mode graphs."""

from __future__ import annotations

import ctypes
import functools
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import onnx
import onnxruntime

from dlu_deploy import ONNX_DOMAIN, __version__
from dlu_deploy.errors import OpArgumentError, UserError
from dlu_deploy.libraries import ORT_OPS_LIBRARY, ort_ops_library

MMCV_DOMAIN = "mmcv"
# How the library's messages begin (plugins/onnxruntime/common/node.h): the node, then the problem.
_NODE_MESSAGE = re.compile(
    r"((?:dlu_deploy|mmcv)::\w+ node (?:\"[^\"]*\"|\(unnamed\)): .*?)\s*$", re.DOTALL
)


@functools.lru_cache(maxsize=1)
def custom_ops_library() -> Path:
    """Path of libdlu_ort_ops.so, for `SessionOptions.register_custom_ops_library` (or any
    other ONNX Runtime API). UserError when it is not built or is of another dlu_deploy version."""
    path = ort_ops_library()
    try:
        library = ctypes.CDLL(str(path))
        library.dlu_ort_ops_version.restype = ctypes.c_char_p
        version = library.dlu_ort_ops_version().decode()
    except (OSError, AttributeError) as e:
        raise UserError(
            f"{path} is not a loadable {ORT_OPS_LIBRARY} ({e}).",
            "Rebuild it (cmake --build build) or point DLU_DEPLOY_LIB_DIR at a good build.",
        ) from e
    if version != __version__:
        raise UserError(
            f"{path} is version {version}, but dlu_deploy is {__version__}.",
            "Rebuild the library from this checkout (cmake --build build).",
        )
    return path


def _nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from _nodes(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for sub in attribute.graphs:
                    yield from _nodes(sub)


def has_custom_nodes(model: onnx.ModelProto) -> bool:
    """True when the graph (or a subgraph) holds a node the custom-op library serves."""
    return any(n.domain in (ONNX_DOMAIN, MMCV_DOMAIN) for n in _nodes(model.graph))


def _load(model: str | os.PathLike[str] | onnx.ModelProto) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    path = os.fspath(model)
    if not os.path.isfile(path):
        raise UserError(f"The ONNX file {path} does not exist.", "Check the path.")
    try:
        return onnx.load(path, load_external_data=False)
    except Exception as e:  # any parse failure means the same to the user
        raise UserError(
            f"{path} is not a readable ONNX model ({e}).", "Re-export the model."
        ) from e


def _user_error(error: Exception) -> UserError | None:
    """The library's own message (bad attributes, mixed dtypes) as an OpArgumentError."""
    match = _NODE_MESSAGE.search(str(error))
    if match is None:
        return None
    text = match.group(1)
    context_end = text.index(": ") + 2
    split = text.find(". ", context_end)
    if split < 0:
        return OpArgumentError(text, "")
    return OpArgumentError(text[: split + 1], text[split + 2 :])


def make_session(
    model: str | os.PathLike[str] | onnx.ModelProto,
    *,
    providers: Sequence[str | tuple[str, dict]] = ("CPUExecutionProvider",),
    intra_op_threads: int | None = None,
) -> onnxruntime.InferenceSession:
    """A ready onnxruntime session for `model` (a path or an onnx.ModelProto, not modified).

    Portable graphs run as they are. For plugin-mode graphs (nodes `dlu_deploy::DLU`, `::CARAFE`,
    `::DDF`, mmcv's `mmcv::MMCVCARAFE`) the session options register the project's custom-op
    library (`custom_ops_library()`): the custom nodes run natively on the compiled kernels, on
    the CPU execution provider or, with `providers` starting with the CUDA execution provider and
    a library built with CUDA, on the GPU. `intra_op_threads` sets onnxruntime's intra-op threads,
    which the CPU kernels share (None: onnxruntime's default, one per core). Raises UserError for
    a missing library and OpArgumentError (a UserError) for custom nodes with bad attributes or
    mixed dtypes; shapes that do not fit a node's attributes fail in `run` with onnxruntime's
    error, whose text names the node and the fix.
    """
    threads = 0 if intra_op_threads is None else int(intra_op_threads)
    if threads < 0:
        raise UserError(
            f"intra_op_threads={intra_op_threads} is negative.",
            "Pass None (all cores) or a count >= 1.",
        )
    proto = _load(model)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    if has_custom_nodes(proto):
        options.register_custom_ops_library(str(custom_ops_library()))
    source = proto.SerializeToString() if isinstance(model, onnx.ModelProto) else os.fspath(model)
    try:
        return onnxruntime.InferenceSession(source, sess_options=options, providers=list(providers))
    except Exception as e:  # onnxruntime's own exception types are not importable by name
        error = _user_error(e)
        if error is not None:
            raise error from e
        raise
