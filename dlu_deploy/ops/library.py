"""torch.library definitions of the custom ops (schema, fake, and device implementations).

The attribute names and order are those of the ONNX nodes and TensorRT plugin fields
(docs/ops.md). DDF's `combine` is an int here (0 = mul, 1 = add), as in the ONNX node.

The implementations run the compiled kernels of libdlu_kernels (dlu_deploy.native) on CPU
tensors (torch's intra-op thread count) and CUDA tensors (the current stream of the tensors'
device). Without the library they raise a UserError saying how to build it; the pure-PyTorch
ops stay available in dlu_deploy.reference.
"""

from __future__ import annotations

import torch

from dlu_deploy import native
from dlu_deploy.errors import OpArgumentError
from dlu_deploy.reference.carafe import check_carafe_args
from dlu_deploy.reference.ddf import check_ddf_args
from dlu_deploy.reference.dlu import check_dlu_args

COMBINE_NAMES = {0: "mul", 1: "add"}
_DTYPES = {torch.float32: native.DType.FLOAT32, torch.float16: native.DType.FLOAT16}


def _launch_args(op: str, *tensors: torch.Tensor) -> dict[str, int]:
    """Keyword arguments sending a native call to the tensors' device (CPU threads, CUDA stream)."""
    device = tensors[0].device
    for t in tensors[1:]:
        if t.device != device:
            raise OpArgumentError(
                f"{op}: inputs are on {device} and {t.device}.",
                "Move all inputs of the op to one device.",
            )
    if device.type == "cpu":
        return {"num_threads": torch.get_num_threads()}
    if device.type == "cuda":
        return {"cuda_stream": torch.cuda.current_stream(device).cuda_stream}
    raise OpArgumentError(
        f"{op}: tensors on {device.type} are not supported by the compiled kernels.",
        "Use CPU or CUDA tensors, or the pure-PyTorch op in dlu_deploy.reference.",
    )


def _run_on_device(device: torch.device, call: object) -> None:
    if device.type == "cuda":
        with torch.cuda.device(device):
            call()  # type: ignore[operator]
    else:
        call()  # type: ignore[operator]


@torch.library.custom_op("dlu_deploy::dlu", mutates_args=())
def dlu(
    x: torch.Tensor,
    kernels: torch.Tensor,
    offsets: torch.Tensor,
    kernel_size: int,
    group: int,
    scale: int,
) -> torch.Tensor:
    check_dlu_args(x, kernels, offsets, kernel_size, group, scale)
    lib = native.load()
    launch = _launch_args("DLU", x, kernels, offsets)
    x, kernels, offsets = x.contiguous(), kernels.contiguous(), offsets.contiguous()
    n, c, h, w = x.shape
    out = x.new_empty((n, c, h * scale, w * scale))
    params = native.DluParams(n, c, h, w, kernel_size, group, scale)
    _run_on_device(
        x.device,
        lambda: lib.dlu(
            _DTYPES[x.dtype],
            params,
            x.data_ptr(),
            kernels.data_ptr(),
            offsets.data_ptr(),
            out.data_ptr(),
            **launch,
        ),
    )
    return out


@dlu.register_fake
def _dlu_fake(
    x: torch.Tensor,
    kernels: torch.Tensor,
    offsets: torch.Tensor,
    kernel_size: int,
    group: int,
    scale: int,
) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.new_empty((n, c, h * scale, w * scale))


@torch.library.custom_op("dlu_deploy::carafe", mutates_args=())
def carafe(
    x: torch.Tensor, masks: torch.Tensor, kernel_size: int, group: int, scale: int
) -> torch.Tensor:
    check_carafe_args(x, masks, kernel_size, group, scale)
    lib = native.load()
    launch = _launch_args("CARAFE", x, masks)
    x, masks = x.contiguous(), masks.contiguous()
    n, c, h, w = x.shape
    out = x.new_empty((n, c, h * scale, w * scale))
    params = native.CarafeParams(n, c, h, w, kernel_size, group, scale)
    _run_on_device(
        x.device,
        lambda: lib.carafe(
            _DTYPES[x.dtype], params, x.data_ptr(), masks.data_ptr(), out.data_ptr(), **launch
        ),
    )
    return out


@carafe.register_fake
def _carafe_fake(
    x: torch.Tensor, masks: torch.Tensor, kernel_size: int, group: int, scale: int
) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.new_empty((n, c, h * scale, w * scale))


@torch.library.custom_op("dlu_deploy::ddf", mutates_args=())
def ddf(
    x: torch.Tensor,
    channel_filter: torch.Tensor,
    spatial_filter: torch.Tensor,
    kernel_size: int,
    dilation: int,
    stride: int,
    combine: int,
) -> torch.Tensor:
    if combine not in COMBINE_NAMES:
        raise OpArgumentError(f"DDF: combine={combine!r} is not known.", "Use 0 (mul) or 1 (add).")
    check_ddf_args(
        x, channel_filter, spatial_filter, kernel_size, dilation, stride, COMBINE_NAMES[combine]
    )
    lib = native.load()
    launch = _launch_args("DDF", x, channel_filter, spatial_filter)
    x, channel_filter, spatial_filter = (
        x.contiguous(),
        channel_filter.contiguous(),
        spatial_filter.contiguous(),
    )
    n, c, h, w = x.shape
    out = x.new_empty((n, c, h // stride, w // stride))
    params = native.DdfParams(n, c, h, w, kernel_size, dilation, stride, combine)
    _run_on_device(
        x.device,
        lambda: lib.ddf(
            _DTYPES[x.dtype],
            params,
            x.data_ptr(),
            channel_filter.data_ptr(),
            spatial_filter.data_ptr(),
            out.data_ptr(),
            **launch,
        ),
    )
    return out


@ddf.register_fake
def _ddf_fake(
    x: torch.Tensor,
    channel_filter: torch.Tensor,
    spatial_filter: torch.Tensor,
    kernel_size: int,
    dilation: int,
    stride: int,
    combine: int,
) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.new_empty((n, c, h // stride, w // stride))
