// DDF on the CPU (docs/ops.md#ddf). Work item = one output row (n, p). Per column tile the
// spatial filter values are converted once and reused by every channel; per channel and
// kernel tap the valid output columns are computed arithmetically, so the inner loop has no
// bounds checks and any dilation works without padding buffers.
#include <algorithm>
#include <vector>

#include "ddf_math.h"
#include "internal.h"
#include "parallel.h"

namespace dlu_kernels {
namespace {

constexpr int64_t kTile = 256;

int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

/* Columns [lo, hi] of an input row as float: fp32 rows are used in place, fp16 rows converted. */
const float* row_as_float(const float* src, int64_t, int64_t, float*) { return src; }
const float* row_as_float(const Half* src, int64_t lo, int64_t hi, float* buffer)
{
    for (int64_t i = lo; i <= hi; ++i) buffer[i] = half_to_float(src[i]);
    return buffer;
}

template <int Combine, typename T>
void ddf_cpu(const DdfParams& p, const T* x, const T* channel_filter, const T* spatial_filter, T* out,
             int num_threads)
{
    const int k = p.kernel_size, kk = k * k, r = (k - 1) / 2, s = p.stride, d = p.dilation;
    const int64_t h = p.h, w = p.w, ho = h / s, wo = w / s, C = p.c;

    parallel_for(p.n * ho, num_threads, [&](int64_t begin, int64_t end) {
        std::vector<float> spatial(static_cast<size_t>(kk * kTile));
        std::vector<float> channel(static_cast<size_t>(kk));
        std::vector<float> acc(static_cast<size_t>(kTile));
        std::vector<float> row_buffer(static_cast<size_t>(w));
        for (int64_t item = begin; item < end; ++item) {
            const int64_t n = item / ho, op = item % ho;
            for (int64_t q0 = 0; q0 < wo; q0 += kTile) {
                const int64_t tw = std::min(kTile, wo - q0);
                for (int t = 0; t < kk; ++t) {
                    const T* src = spatial_filter + ((n * kk + t) * ho + op) * wo + q0;
                    for (int64_t i = 0; i < tw; ++i) spatial[t * kTile + i] = to_float(src[i]);
                }
                // Input columns any tap of this tile can read, clipped to the row.
                const int64_t col_lo = std::max<int64_t>(0, q0 * s - int64_t{r} * d);
                const int64_t col_hi = std::min<int64_t>(w - 1, (q0 + tw - 1) * s + int64_t{r} * d);
                for (int64_t c = 0; c < C; ++c) {
                    for (int t = 0; t < kk; ++t) channel[t] = to_float(channel_filter[(n * C + c) * kk + t]);
                    std::fill(acc.begin(), acc.end(), 0.0f);
                    for (int ky = 0; ky < k; ++ky) {
                        const int64_t iy = ddf_input_coord(op, s, ky, k, d);
                        if (iy < 0 || iy >= h) continue;
                        const float* row =
                            row_as_float(x + ((n * C + c) * h + iy) * w, col_lo, col_hi, row_buffer.data());
                        for (int kx = 0; kx < k; ++kx) {
                            const int t = ky * k + kx;
                            // Output column q0 + i reads input column base + i*s.
                            const int64_t base = ddf_input_coord(q0, s, kx, k, d);
                            const int64_t i_lo = std::clamp<int64_t>(ceil_div(-base, s), 0, tw);
                            const int64_t i_hi = std::clamp<int64_t>(floor_div(w - 1 - base, s) + 1, 0, tw);
                            const float cv = channel[t];
                            const float* __restrict__ sv = spatial.data() + t * kTile;
                            float* __restrict__ a = acc.data();
                            for (int64_t i = i_lo; i < i_hi; ++i) {
                                a[i] += row[base + i * s] * ddf_filter(cv, sv[i], Combine);
                            }
                        }
                    }
                    T* dst = out + ((n * C + c) * ho + op) * wo + q0;
                    for (int64_t i = 0; i < tw; ++i) dst[i] = from_float<T>(acc[i]);
                }
            }
        }
    });
}

}  // namespace

template <typename T>
void ddf_forward_cpu(const DdfParams& p, const T* x, const T* channel_filter, const T* spatial_filter, T* out,
                     int num_threads)
{
    if (p.combine == kDdfMul) {
        ddf_cpu<kDdfMul>(p, x, channel_filter, spatial_filter, out, num_threads);
    } else {
        ddf_cpu<kDdfAdd>(p, x, channel_filter, spatial_filter, out, num_threads);
    }
}

template void ddf_forward_cpu<float>(const DdfParams&, const float*, const float*, const float*, float*, int);
template void ddf_forward_cpu<Half>(const DdfParams&, const Half*, const Half*, const Half*, Half*, int);

}  // namespace dlu_kernels
