"""dlu_deploy.native: finding and checking the library, and status codes turned into errors."""

from __future__ import annotations

import numpy as np
import pytest

from dlu_deploy import __version__, native
from dlu_deploy.errors import OpArgumentError

pytestmark = pytest.mark.skipif(
    not native.available(), reason="libdlu_kernels is not built (cmake --build build)"
)


def test_library_metadata() -> None:
    lib = native.load()
    assert lib.path in native.library_candidates()
    assert lib.version == __version__
    assert lib.cuda_device_count >= 0
    assert lib.has_cuda or lib.cuda_device_count == 0


def test_invalid_parameters_raise_the_library_message() -> None:
    lib = native.load()
    x = np.zeros((1, 2, 3, 3), np.float32)
    out = np.full((1, 2, 6, 6), 7.0, np.float32)
    params = native.CarafeParams(1, 2, 3, 3, 4, 1, 2)  # even kernel size
    with pytest.raises(OpArgumentError, match="CARAFE: kernel_size=4 is not allowed"):
        lib.carafe(native.DType.FLOAT32, params, x.ctypes.data, x.ctypes.data, out.ctypes.data)
    assert (out == 7.0).all()  # nothing written
    with pytest.raises(OpArgumentError, match="DDF: x is NULL"):
        lib.ddf(native.DType.FLOAT32, native.DdfParams(1, 2, 3, 3, 3, 1, 1, 0), 0, 1, 1, 1)


def test_cuda_call_without_a_gpu_is_an_error_not_a_crash() -> None:
    lib = native.load()
    if lib.cuda_device_count > 0:
        pytest.skip("a CUDA device is present (tests/test_kernels_gpu.py runs the CUDA kernels)")
    x = np.zeros((1, 2, 3, 3), np.float32)
    out = np.zeros((1, 2, 6, 6), np.float32)
    params = native.CarafeParams(1, 2, 3, 3, 1, 1, 2)
    expected = "CUDA error" if lib.has_cuda else "built without CUDA"
    with pytest.raises(native.NativeKernelError, match=expected):
        lib.carafe(
            native.DType.FLOAT32,
            params,
            x.ctypes.data,
            x.ctypes.data,
            out.ctypes.data,
            cuda_stream=0,
        )
