"""torch.library definitions of the custom ops (schema, fake, and device implementations).

The attribute names and order are those of the ONNX nodes and TensorRT plugin fields
(docs/ops.md). DDF's `combine` is an int here (0 = mul, 1 = add), as in the ONNX node.
"""

from __future__ import annotations

import torch

from dlu_deploy import reference

COMBINE_NAMES = {0: "mul", 1: "add"}


@torch.library.custom_op("dlu_deploy::dlu", mutates_args=())
def dlu(
    x: torch.Tensor,
    kernels: torch.Tensor,
    offsets: torch.Tensor,
    kernel_size: int,
    group: int,
    scale: int,
) -> torch.Tensor:
    return reference.dlu(x, kernels, offsets, kernel_size, group, scale)


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
def carafe(x: torch.Tensor, masks: torch.Tensor, kernel_size: int, group: int, scale: int) -> torch.Tensor:
    return reference.carafe(x, masks, kernel_size, group, scale)


@carafe.register_fake
def _carafe_fake(x: torch.Tensor, masks: torch.Tensor, kernel_size: int, group: int, scale: int) -> torch.Tensor:
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
    return reference.ddf(x, channel_filter, spatial_filter, kernel_size, dilation, stride, COMBINE_NAMES[combine])


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
