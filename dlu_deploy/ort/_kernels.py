"""The Python custom ops that onnxruntime-extensions calls for the rewritten custom nodes.

Each op runs the compiled CPU kernel of libdlu_kernels on the float32 numpy arrays ORT passes
in (float16 nodes get Casts around them, see _graph.py; the kernels compute fp16 the same way:
fp32 math, one rounding). An exception escaping a Python custom op aborts the process inside
onnxruntime-extensions, so every failure is caught here, recorded for the session that owns the
node (attribute `session_id`) and raised by that session's run() (see session.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
from onnxruntime_extensions import PyCustomOpDef, onnx_op

from dlu_deploy import native
from dlu_deploy.errors import OpArgumentError

PRIVATE_DOMAIN = "dlu_deploy.ort"
# Attributes added by the rewrite: which session ran the node, and how many threads it may use.
SESSION_ATTRIBUTE = "session_id"
THREADS_ATTRIBUTE = "num_threads"

_errors: dict[int, BaseException] = {}
_errors_lock = threading.Lock()


def take_error(session_id: int) -> BaseException | None:
    """The first error a node of this session hit since the last call, if any."""
    with _errors_lock:
        return _errors.pop(session_id, None)


class _Result(np.ndarray):
    """An op result that onnxruntime-extensions hands back to ORT without a Python list.

    Its Python-op bridge converts results with `result.flatten().tolist()` before copying them
    into the output tensor, which turns a 15M-element output into 15M Python floats (seconds).
    The bridge accepts any array there, so this view flattens without copying and "lists" as
    itself; it is never seen outside this module.
    """

    def flatten(self, order: str = "C") -> np.ndarray:  # type: ignore[override]
        return self.reshape(-1)

    def tolist(self) -> np.ndarray:  # type: ignore[override]
        return self.view(np.ndarray)


def _guarded(op: str, body: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    def run(*inputs: np.ndarray, **attrs: int) -> np.ndarray:
        session_id = attrs.pop(SESSION_ATTRIBUTE)
        try:
            return body(*(np.ascontiguousarray(a) for a in inputs), **attrs).view(_Result)
        except BaseException as e:  # anything: it must not reach onnxruntime-extensions
            with _errors_lock:
                _errors.setdefault(session_id, e)
            return np.zeros((0,), np.float32)

    run.__name__ = op
    return run


def _expect_shape(
    op: str, name: str, array: np.ndarray, expected: tuple[int, ...], meaning: str
) -> None:
    if array.shape != expected:
        raise OpArgumentError(
            f"{op}: {name} has shape {array.shape}, expected {expected} ({meaning}).",
            "Check that the node's attributes match the tensors the model feeds it.",
        )


def _features(op: str, x: np.ndarray, group: int = 1) -> tuple[int, int, int, int]:
    if x.ndim != 4:
        raise OpArgumentError(
            f"{op}: features have shape {x.shape}, expected 4 dimensions (N, C, H, W).",
            "Pass NCHW tensors.",
        )
    n, c, h, w = (int(d) for d in x.shape)
    if group < 1 or c % group:
        raise OpArgumentError(
            f"{op}: {c} channels cannot be split into group={group} equal groups.",
            "Use a group count >= 1 that divides the channel count.",
        )
    return n, c, h, w


def _dlu(
    x: np.ndarray,
    kernels: np.ndarray,
    offsets: np.ndarray,
    *,
    kernel_size: int,
    group: int,
    scale: int,
    num_threads: int,
) -> np.ndarray:
    n, c, h, w = _features("DLU", x, group)
    k, s = kernel_size, scale
    _expect_shape(
        "DLU", "kernels", kernels, (n, group * k * k, h, w), "N, group*kernel_size^2, H, W"
    )
    _expect_shape(
        "DLU", "offsets", offsets, (n, group * 2 * s * s, h, w), "N, group*2*scale^2, H, W"
    )
    out = np.empty((n, c, h * s, w * s), np.float32)
    native.load().dlu(
        native.DType.FLOAT32,
        native.DluParams(n, c, h, w, k, group, s),
        x.ctypes.data,
        kernels.ctypes.data,
        offsets.ctypes.data,
        out.ctypes.data,
        num_threads=num_threads,
    )
    return out


def _carafe(
    x: np.ndarray, masks: np.ndarray, *, kernel_size: int, group: int, scale: int, num_threads: int
) -> np.ndarray:
    n, c, h, w = _features("CARAFE", x, group)
    k, s = kernel_size, scale
    _expect_shape(
        "CARAFE",
        "masks",
        masks,
        (n, group * k * k, h * s, w * s),
        "N, group*kernel_size^2, scale*H, scale*W",
    )
    out = np.empty((n, c, h * s, w * s), np.float32)
    native.load().carafe(
        native.DType.FLOAT32,
        native.CarafeParams(n, c, h, w, k, group, s),
        x.ctypes.data,
        masks.ctypes.data,
        out.ctypes.data,
        num_threads=num_threads,
    )
    return out


def _ddf(
    x: np.ndarray,
    channel_filter: np.ndarray,
    spatial_filter: np.ndarray,
    *,
    kernel_size: int,
    dilation: int,
    stride: int,
    combine: int,
    num_threads: int,
) -> np.ndarray:
    n, c, h, w = _features("DDF", x)
    k = kernel_size
    if h < stride or w < stride:
        raise OpArgumentError(
            f"DDF: a {h}x{w} input gives an empty output at stride {stride}.",
            "Use inputs at least stride pixels high and wide.",
        )
    ho, wo = h // stride, w // stride
    _expect_shape("DDF", "channel_filter", channel_filter, (n, c, k, k), "N, C, k, k")
    _expect_shape(
        "DDF", "spatial_filter", spatial_filter, (n, k * k, ho, wo), "N, k*k, H//stride, W//stride"
    )
    out = np.empty((n, c, ho, wo), np.float32)
    native.load().ddf(
        native.DType.FLOAT32,
        native.DdfParams(n, c, h, w, k, dilation, stride, combine),
        x.ctypes.data,
        channel_filter.ctypes.data,
        spatial_filter.ctypes.data,
        out.ctypes.data,
        num_threads=num_threads,
    )
    return out


_INT = PyCustomOpDef.dt_int64
_FLOAT = PyCustomOpDef.dt_float
_EXTRA = {SESSION_ATTRIBUTE: _INT, THREADS_ATTRIBUTE: _INT}

onnx_op(
    op_type=f"{PRIVATE_DOMAIN}::DLU",
    inputs=[_FLOAT] * 3,
    outputs=[_FLOAT],
    attrs={"kernel_size": _INT, "group": _INT, "scale": _INT, **_EXTRA},
)(_guarded("DLU", _dlu))
onnx_op(
    op_type=f"{PRIVATE_DOMAIN}::CARAFE",
    inputs=[_FLOAT] * 2,
    outputs=[_FLOAT],
    attrs={"kernel_size": _INT, "group": _INT, "scale": _INT, **_EXTRA},
)(_guarded("CARAFE", _carafe))
onnx_op(
    op_type=f"{PRIVATE_DOMAIN}::DDF",
    inputs=[_FLOAT] * 3,
    outputs=[_FLOAT],
    attrs={"kernel_size": _INT, "dilation": _INT, "stride": _INT, "combine": _INT, **_EXTRA},
)(_guarded("DDF", _ddf))
