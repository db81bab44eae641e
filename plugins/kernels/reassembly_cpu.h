/*
 * CPU reassembly shared by CARAFE and DLU: out[n,c,py*s+sy,px*s+sx] = sum_t window_t * kappa_t.
 *
 * Work item = one low-res row (n, py). Columns are processed in tiles of `tile` parents; for
 * each group the op-specific `fill_kappa` writes the s*s children's k*k kernels of the tile
 * into kappa[(j*k*k + t)*tile + i] (child j = sy*s + sx, parent i). Then, per channel of the
 * group, the k window rows of the tile are converted to zero-padded float rows once, and
 * blocks of V parents are reassembled with all s*s children's sums held in registers: every
 * window value loaded feeds s*s multiply-adds (the children share the parent's window).
 * On x86-64 the block loop is also compiled for AVX2+FMA and picked at run time.
 */
#ifndef DLU_REASSEMBLY_CPU_H
#define DLU_REASSEMBLY_CPU_H

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "dlu_common.h"
#include "parallel.h"
#include "reassembly_math.h"

namespace dlu_kernels {

struct ReassemblyShape {
    int64_t n, c, h, w;
    int k, group, scale;
};

constexpr int64_t kBlock = 8;  // parents per register block; tiles are multiples of it

/* Parents per column tile: keeps the kappa tile (s*s*k*k*tile floats) near 64 KiB. */
inline int64_t reassembly_tile(const ReassemblyShape& sh)
{
    const int64_t per_parent = int64_t{sh.scale} * sh.scale * sh.k * sh.k;
    const int64_t tile = std::max<int64_t>(kBlock, std::min<int64_t>(64, 16384 / per_parent));
    return tile / kBlock * kBlock;
}

/* Window rows of one channel: rows[ky * stride + i] = x[py + ky - r][px0 - r + i] (0 outside). */
struct WindowRows {
    const float* data;
    int64_t stride;
    int ky_begin, ky_end;  // rows inside the image
};

/* V floats as one GCC/Clang vector: SSE or AVX registers depending on the target. */
template <int V>
struct FloatVec {
    typedef float type __attribute__((vector_size(V * sizeof(float))));
};

/* Children j < SS, parents i0 .. i0+V-1 of one channel: sums over the window in registers. */
template <int SS, int V, typename T>
__attribute__((always_inline)) inline void reassemble_block(const WindowRows& rows, int k, int s,
                                                            const float* kappa, int64_t tile, int64_t i0,
                                                            int64_t count, T* dst, int64_t out_w)
{
    using Vec = typename FloatVec<V>::type;
    const int64_t child_stride = int64_t{k} * k * tile;
    Vec acc[SS];
#pragma GCC unroll 16
    for (int j = 0; j < SS; ++j) acc[j] = Vec{};
    for (int ky = rows.ky_begin; ky < rows.ky_end; ++ky) {
        for (int kx = 0; kx < k; ++kx) {
            Vec xs, kv;  // unaligned loads (memcpy compiles to one vector load)
            std::memcpy(&xs, rows.data + ky * rows.stride + kx + i0, sizeof xs);
            const float* kp = kappa + int64_t{ky * k + kx} * tile + i0;
#pragma GCC unroll 16
            for (int j = 0; j < SS; ++j) {
                std::memcpy(&kv, kp + j * child_stride, sizeof kv);
                acc[j] += xs * kv;
            }
        }
    }
#pragma GCC unroll 16
    for (int j = 0; j < SS; ++j) {
        T* out = dst + (j / s) * out_w + (i0 * s + j % s);
        for (int64_t v = 0; v < count; ++v) out[v * s] = from_float<T>(acc[j][v]);
    }
}

template <int SS, int V, typename T>
__attribute__((always_inline)) inline void reassemble_channel_fixed(const WindowRows& rows, int k, int s,
                                                                    const float* kappa, int64_t tile, int64_t tw,
                                                                    T* dst, int64_t out_w)
{
    for (int64_t i0 = 0; i0 < tw; i0 += V) {
        reassemble_block<SS, V>(rows, k, s, kappa, tile, i0, std::min<int64_t>(V, tw - i0), dst, out_w);
    }
}

/* Children counts beyond 16 (scale > 4): sums kept in a small array, 4 parents at a time. */
template <typename T>
void reassemble_channel_any(const WindowRows& rows, int k, int s, const float* kappa, int64_t tile, int64_t tw,
                            T* dst, int64_t out_w)
{
    const int ss = s * s, kk = k * k;
    constexpr int V = 4;
    float acc[64][V];
    for (int64_t i0 = 0; i0 < tw; i0 += V) {
        for (int j = 0; j < ss; ++j)
            for (int v = 0; v < V; ++v) acc[j][v] = 0.0f;
        for (int ky = rows.ky_begin; ky < rows.ky_end; ++ky) {
            for (int kx = 0; kx < k; ++kx) {
                const float* xs = rows.data + ky * rows.stride + kx + i0;
                const int t = ky * k + kx;
                for (int j = 0; j < ss; ++j) {
                    const float* kp = kappa + (int64_t{j} * kk + t) * tile + i0;
                    for (int v = 0; v < V; ++v) acc[j][v] += xs[v] * kp[v];
                }
            }
        }
        const int64_t count = std::min<int64_t>(V, tw - i0);
        for (int j = 0; j < ss; ++j) {
            T* out = dst + (j / s) * out_w + (i0 * s + j % s);
            for (int64_t v = 0; v < count; ++v) out[v * s] = from_float<T>(acc[j][v]);
        }
    }
}

/* One channel of one tile: dst points at out[n, c, py*s, px0*s]. */
template <typename T>
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
void reassemble_channel(const WindowRows& rows, int k, int s, const float* kappa, int64_t tile, int64_t tw, T* dst,
                        int64_t out_w)
{
    switch (s) {
        case 1: reassemble_channel_fixed<1, 8>(rows, k, s, kappa, tile, tw, dst, out_w); break;
        case 2: reassemble_channel_fixed<4, 8>(rows, k, s, kappa, tile, tw, dst, out_w); break;
        case 3: reassemble_channel_fixed<9, 4>(rows, k, s, kappa, tile, tw, dst, out_w); break;
        case 4: reassemble_channel_fixed<16, 4>(rows, k, s, kappa, tile, tw, dst, out_w); break;
        default: reassemble_channel_any(rows, k, s, kappa, tile, tw, dst, out_w); break;
    }
}

template <typename T, class FillKappa>
void reassemble_cpu(const ReassemblyShape& sh, const T* x, T* out, int num_threads, FillKappa fill_kappa)
{
    const int k = sh.k, s = sh.scale, kk = k * k, ss = s * s, r = (k - 1) / 2;
    const int64_t h = sh.h, w = sh.w, channels_per_group = sh.c / sh.group;
    const int64_t tile = reassembly_tile(sh);
    const int64_t out_h = h * s, out_w = w * s, row_stride = tile + 2 * r;

    parallel_for(sh.n * h, num_threads, [&](int64_t begin, int64_t end) {
        std::vector<float> kappa(static_cast<size_t>(ss * kk * tile), 0.0f);
        std::vector<float> rows(static_cast<size_t>(k * row_stride), 0.0f);
        for (int64_t item = begin; item < end; ++item) {
            const int64_t n = item / h, py = item % h;
            WindowRows window{rows.data(), row_stride, 0, k};
            window.ky_begin = static_cast<int>(std::max<int64_t>(0, r - py));
            window.ky_end = static_cast<int>(std::min<int64_t>(k, h - py + r));
            for (int64_t px0 = 0; px0 < w; px0 += tile) {
                const int64_t tw = std::min(tile, w - px0);
                for (int64_t g = 0; g < sh.group; ++g) {
                    fill_kappa(n, g, py, px0, tw, tile, kappa.data());
                    for (int64_t c = g * channels_per_group; c < (g + 1) * channels_per_group; ++c) {
                        const T* plane = x + (n * sh.c + c) * h * w;
                        for (int ky = window.ky_begin; ky < window.ky_end; ++ky) {
                            const T* src = plane + window_coord(py, ky, k) * w;
                            float* row = rows.data() + ky * row_stride;
                            for (int64_t i = 0; i < row_stride; ++i) {
                                const int64_t ix = px0 - r + i;
                                row[i] = (i < tw + 2 * r && ix >= 0 && ix < w) ? to_float(src[ix]) : 0.0f;
                            }
                        }
                        T* dst = out + ((n * sh.c + c) * out_h + py * s) * out_w + px0 * s;
                        reassemble_channel(window, k, s, kappa.data(), tile, tw, dst, out_w);
                    }
                }
            }
        }
    });
}

}  // namespace dlu_kernels

#endif  // DLU_REASSEMBLY_CPU_H
