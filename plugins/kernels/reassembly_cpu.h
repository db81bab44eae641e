/*
 * CPU reassembly shared by CARAFE and DLU: out[n,c,py*s+sy,px*s+sx] = sum_t window_t * kappa_t.
 *
 * Work item = one low-res row (n, py). Columns are processed in tiles of `tile` parents; for
 * each group the op-specific `fill_kappa` writes the s*s children's k*k kernels of the tile
 * into kappa[(j*k*k + t)*tile + i] (child j = sy*s + sx, parent i). Then for every channel of
 * the group each k*k window row is loaded once (zero-padded, as float) and reused by all s*s
 * children: the inner loop is a contiguous multiply-add over the tile's parents, which the
 * compiler vectorises.
 */
#ifndef DLU_REASSEMBLY_CPU_H
#define DLU_REASSEMBLY_CPU_H

#include <algorithm>
#include <cstdint>
#include <vector>

#include "dlu_common.h"
#include "parallel.h"
#include "reassembly_math.h"

namespace dlu_kernels {

struct ReassemblyShape {
    int64_t n, c, h, w;
    int k, group, scale;
};

/* Parents per column tile: keeps the kappa tile (s*s*k*k*tile floats) near 64 KiB. */
inline int64_t reassembly_tile(const ReassemblyShape& sh)
{
    const int64_t per_parent = int64_t{sh.scale} * sh.scale * sh.k * sh.k;
    return std::max<int64_t>(8, std::min<int64_t>(64, 16384 / per_parent));
}

template <typename T, class FillKappa>
void reassemble_cpu(const ReassemblyShape& sh, const T* x, T* out, int num_threads, FillKappa fill_kappa)
{
    const int k = sh.k, s = sh.scale, kk = k * k, ss = s * s, r = (k - 1) / 2;
    const int64_t h = sh.h, w = sh.w, channels_per_group = sh.c / sh.group;
    const int64_t tile = reassembly_tile(sh);
    const int64_t out_h = h * s, out_w = w * s;

    parallel_for(sh.n * h, num_threads, [&](int64_t begin, int64_t end) {
        std::vector<float> kappa(static_cast<size_t>(ss * kk * tile));
        std::vector<float> acc(static_cast<size_t>(ss * tile));
        std::vector<float> row(static_cast<size_t>(tile + 2 * r));
        for (int64_t item = begin; item < end; ++item) {
            const int64_t n = item / h, py = item % h;
            for (int64_t px0 = 0; px0 < w; px0 += tile) {
                const int64_t tw = std::min(tile, w - px0);
                for (int64_t g = 0; g < sh.group; ++g) {
                    fill_kappa(n, g, py, px0, tw, tile, kappa.data());
                    for (int64_t c = g * channels_per_group; c < (g + 1) * channels_per_group; ++c) {
                        const T* plane = x + (n * sh.c + c) * h * w;
                        std::fill(acc.begin(), acc.end(), 0.0f);
                        for (int ky = 0; ky < k; ++ky) {
                            const int64_t iy = window_coord(py, ky, k);
                            if (iy < 0 || iy >= h) continue;
                            // Window row for the tile: columns px0 - r .. px0 + tw - 1 + r, zero outside.
                            const T* src = plane + iy * w;
                            for (int64_t i = 0; i < tw + 2 * r; ++i) {
                                const int64_t ix = px0 - r + i;
                                row[i] = (ix >= 0 && ix < w) ? to_float(src[ix]) : 0.0f;
                            }
                            for (int kx = 0; kx < k; ++kx) {
                                const float* __restrict__ xs = row.data() + kx;
                                const int t = ky * k + kx;
                                for (int j = 0; j < ss; ++j) {
                                    float* __restrict__ a = acc.data() + j * tile;
                                    const float* __restrict__ kp = kappa.data() + (int64_t{j} * kk + t) * tile;
                                    for (int64_t i = 0; i < tw; ++i) a[i] += xs[i] * kp[i];
                                }
                            }
                        }
                        T* dst = out + (n * sh.c + c) * out_h * out_w;
                        for (int j = 0; j < ss; ++j) {
                            const int sy = j / s, sx = j % s;
                            T* dst_row = dst + (py * s + sy) * out_w + px0 * s + sx;
                            const float* a = acc.data() + j * tile;
                            for (int64_t i = 0; i < tw; ++i) dst_row[i * s] = from_float<T>(a[i]);
                        }
                    }
                }
            }
        }
    });
}

}  // namespace dlu_kernels

#endif  // DLU_REASSEMBLY_CPU_H
