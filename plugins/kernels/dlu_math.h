/*
 * DLU's per-output-pixel kernel sampling (docs/ops.md#dlu), shared by the CPU and CUDA
 * kernels so both read the low-res kernel space the same way.
 */
#ifndef DLU_DLU_MATH_H
#define DLU_DLU_MATH_H

#include "dlu_common.h"

namespace dlu_kernels {

/* Channel of offset component comp (0 = x/column, 1 = y/row) of sub-pixel j of group g. */
DLU_HD int64_t dlu_offset_channel(int64_t g, int comp, int scale, int j)
{
    return (2 * g + comp) * scale * scale + j;
}

/* The four kernel-space pixels (indices into one H*W plane) and their bilinear weights. */
struct DluSample {
    int64_t i00, i01, i10, i11;
    float w00, w01, w10, w11;
};

/*
 * Bilinear read position of a child of parent (py, px) with offset (u, v) in low-res pixels:
 * NaN counts as 0, the position is clamped to [0, W-1] x [0, H-1] (so +-inf land on the
 * border), and the corner indices are clamped again as integers so that no rounding of a
 * float coordinate can ever address outside the plane.
 */
DLU_HD DluSample dlu_sample(float u, float v, int64_t px, int64_t py, int64_t h, int64_t w)
{
    if (u != u) u = 0.0f;
    if (v != v) v = 0.0f;
    // No NaN past this point, so plain comparisons clamp like fminf/fmaxf (which GCC calls
    // out of line on the CPU, once per child and parent).
    float xs = static_cast<float>(px) + u;
    float ys = static_cast<float>(py) + v;
    xs = xs < 0.0f ? 0.0f : (xs > static_cast<float>(w - 1) ? static_cast<float>(w - 1) : xs);
    ys = ys < 0.0f ? 0.0f : (ys > static_cast<float>(h - 1) ? static_cast<float>(h - 1) : ys);
    // xs, ys >= 0, so truncation is floor.
    int64_t x0 = static_cast<int64_t>(xs);
    int64_t y0 = static_cast<int64_t>(ys);
    x0 = x0 < w - 1 ? x0 : w - 1;
    y0 = y0 < h - 1 ? y0 : h - 1;
    const int64_t x1 = x0 + 1 < w ? x0 + 1 : w - 1;
    const int64_t y1 = y0 + 1 < h ? y0 + 1 : h - 1;
    const float ax = xs - static_cast<float>(x0);
    const float ay = ys - static_cast<float>(y0);
    DluSample s;
    s.i00 = y0 * w + x0;
    s.i01 = y0 * w + x1;
    s.i10 = y1 * w + x0;
    s.i11 = y1 * w + x1;
    s.w00 = (1.0f - ay) * (1.0f - ax);
    s.w01 = (1.0f - ay) * ax;
    s.w10 = ay * (1.0f - ax);
    s.w11 = ay * ax;
    return s;
}

/* kappa[t] from the four kernel-space values of tap t at the sample's corners. */
DLU_HD float dlu_kappa(const DluSample& s, float k00, float k01, float k10, float k11)
{
    return s.w00 * k00 + s.w01 * k01 + s.w10 * k10 + s.w11 * k11;
}

}  // namespace dlu_kernels

#endif  // DLU_DLU_MATH_H
