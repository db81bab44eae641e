/*
 * DDF's per-element math (docs/ops.md#ddf), shared by the CPU and CUDA kernels.
 */
#ifndef DLU_DDF_MATH_H
#define DLU_DDF_MATH_H

#include "dlu_common.h"

namespace dlu_kernels {

enum DdfCombine { kDdfMul = 0, kDdfAdd = 1 };

/* The filter tap K[t] from the channel and spatial filter values. */
DLU_HD float ddf_filter(float channel_value, float spatial_value, int combine)
{
    return combine == kDdfMul ? channel_value * spatial_value : channel_value + spatial_value;
}

/* Input row (column) read by tap ky (kx) for output row p (column q). */
DLU_HD int64_t ddf_input_coord(int64_t out, int stride, int tap, int kernel_size, int dilation)
{
    return out * stride + static_cast<int64_t>(tap - (kernel_size - 1) / 2) * dilation;
}

}  // namespace dlu_kernels

#endif  // DLU_DDF_MATH_H
