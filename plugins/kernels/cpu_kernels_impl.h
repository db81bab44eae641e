/*
 * The CPU kernels of DLU, CARAFE and DDF over an instruction-set traits class `Isa`, and the
 * table (cpu_kernels.h) that an instruction-set translation unit exports. Included by
 * cpu_portable.cpp, cpu_avx2.cpp, cpu_avx512.cpp and cpu_neon.cpp inside their anonymous
 * namespace, after the headers listed in reassembly_cpu.h plus dlu_math.h and ddf_math.h.
 * The per-element math (DLU's sample, tap and window coordinates, DDF's filter) is that of
 * the *_math.h headers the CUDA kernels use too.
 */
#ifndef DLU_CPU_KERNELS_IMPL_H
#define DLU_CPU_KERNELS_IMPL_H

#include "reassembly_cpu.h"

/* GCC's vectoriser turns the scalar tap loop of DluFill into pairs packed with vinsertps
 * (slower than plain scalar code); keep such loops scalar. */
#if defined(__GNUC__) && !defined(__clang__)
#define DLU_SCALAR_LOOPS __attribute__((optimize("no-tree-vectorize", "no-tree-slp-vectorize")))
#else
#define DLU_SCALAR_LOOPS
#endif

template <class Isa>
inline float scalar_to_float(Half v)
{
    return Isa::half_to_float(v);
}
template <class Isa>
inline float scalar_to_float(float v)
{
    return v;
}

// ---- DLU (docs/ops.md#dlu): kappa sampled bilinearly from the low-res kernel space --------

/* The kernel space tap-minor in fp32, rows [begin, end) of n*group*H:
 * space[((n*group + g)*H + y)*W + x][t] = kernels[n, tap_channel(g, k, t), y, x], zero for the
 * padding taps. A sample then blends four runs of contiguous taps instead of reading four
 * values from each of k*k planes. */
template <class Isa, typename T>
DLU_SCALAR_LOOPS void dlu_space(const DluParams& p, const T* kernels, float* space, int64_t begin, int64_t end)
{
    const int kk = p.kernel_size * p.kernel_size;
    const int64_t w = p.w, hw = p.h * w, taps = dlu_space_taps(p.kernel_size);
    for (int64_t row = begin; row < end; ++row) {
        const int64_t ng = row / p.h, y = row % p.h;
        const T* src = kernels + ng * kk * hw + y * w;  // tap_channel(g, k, t) = g*k*k + t
        float* dst = space + row * w * taps;
        for (int64_t x = 0; x < w; ++x) {
            for (int t = 0; t < kk; ++t) dst[x * taps + t] = scalar_to_float<Isa>(src[t * hw + x]);
            for (int64_t t = kk; t < taps; ++t) dst[x * taps + t] = 0.0f;
        }
    }
}

/* Transposes the V x V matrix whose rows are the vectors: log2(V) rounds of pairing row i with
 * row i + V/2 through zip (a perfect shuffle). */
template <class Isa>
inline void transpose(typename Isa::F (&rows)[Isa::kLanes])
{
    using F = typename Isa::F;
    constexpr int V = Isa::kLanes;
#pragma GCC unroll 4
    for (int round = 1; round < V; round *= 2) {
        F next[V];
#pragma GCC unroll 8
        for (int i = 0; i < V / 2; ++i) Isa::zip(rows[i], rows[i + V / 2], next[2 * i], next[2 * i + 1]);
#pragma GCC unroll 16
        for (int i = 0; i < V; ++i) rows[i] = next[i];
    }
}

/* Fills kappa[j][t][i] of one tile. Per child and parent: the bilinear sample (dlu_sample,
 * shared with CUDA), then its four corners' runs of taps in the tap-minor space (dlu_space)
 * blended a vector of taps at a time (dlu_kappa's formula) into blended[i][t]; per child the
 * tile is then transposed in registers into kappa's tap-major layout. Measured (EPYC Zen 4,
 * 1x256x100x152, k = 5, s = 2): 11 % of DLU's time, copy included, against 16 % for scalar
 * reads of four values from each of k*k planes (AMD's vector gathers are slower still). */
template <class Isa, typename T>
struct DluFill {
    const DluParams& p;
    const float* space;  // dlu_space
    const T* offsets;

    DLU_SCALAR_LOOPS void operator()(int64_t n, int64_t g, int64_t py, int64_t px0, int64_t tw, int64_t tile,
                                     float* kappa, float* blended) const
    {
        using F = typename Isa::F;
        constexpr int V = Isa::kLanes;
        const int k = p.kernel_size, kk = k * k, s = p.scale, ss = s * s;
        const int64_t h = p.h, w = p.w, hw = h * w, taps = dlu_space_taps(p.kernel_size);
        const float* plane = space + (n * p.group + g) * hw * taps;
        const T* off = offsets + n * p.group * 2 * ss * hw + py * w + px0;
        // The next tile's offsets and the kernel space two rows below it (where small offsets
        // sample): 2*s*s short rows in different planes, more streams than the hardware
        // prefetchers track.
        if (px0 + tile < w || py + 1 < h) {
            const int64_t next = px0 + tile < w ? py * w + px0 + tile : (py + 1) * w;
            const int64_t below = imin(h - 1, next / w + 2) * w + next % w;
            const T* off_plane = offsets + n * p.group * 2 * ss * hw + next;
            for (int c = 0; c < 2 * ss; ++c) prefetch_span(off_plane + dlu_offset_channel(g, 0, s, 0) * hw + c * hw, tile);
            prefetch_span(plane + below * taps, tile * taps);
        }
        for (int j = 0; j < ss; ++j) {
            const T* us = off + dlu_offset_channel(g, 0, s, j) * hw;
            const T* vs = off + dlu_offset_channel(g, 1, s, j) * hw;
            for (int64_t i = 0; i < tw; ++i) {
                const DluSample smp =
                    dlu_sample(scalar_to_float<Isa>(us[i]), scalar_to_float<Isa>(vs[i]), px0 + i, py, h, w);
                const float* c00 = plane + smp.i00 * taps;
                const float* c01 = plane + smp.i01 * taps;
                const float* c10 = plane + smp.i10 * taps;
                const float* c11 = plane + smp.i11 * taps;
                const F w00 = Isa::set1(smp.w00), w01 = Isa::set1(smp.w01);
                const F w10 = Isa::set1(smp.w10), w11 = Isa::set1(smp.w11);
                float* dst = blended + i * taps;
                for (int64_t t = 0; t < kk; t += V) {
                    // dlu_kappa: w00*k00 + w01*k01 + w10*k10 + w11*k11
                    F v = Isa::mul(w00, Isa::load(c00 + t));
                    v = Isa::fma(w01, Isa::load(c01 + t), v);
                    v = Isa::fma(w10, Isa::load(c10 + t), v);
                    v = Isa::fma(w11, Isa::load(c11 + t), v);
                    Isa::store(dst + t, v);
                }
            }
            // To the tap-major tile, V x V blocks at a time (the padding parents' zeros too).
            for (int64_t i = tw; i < round_up(tw, V); ++i) fill_zero<Isa>(blended + i * taps, taps);
            float* dst = kappa + int64_t{j} * kk * tile;
            for (int64_t i0 = 0; i0 < tw; i0 += V) {
                for (int t0 = 0; t0 < kk; t0 += V) {
                    F block[V];
#pragma GCC unroll 16
                    for (int l = 0; l < V; ++l) block[l] = Isa::load(blended + (i0 + l) * taps + t0);
                    transpose<Isa>(block);
                    for (int l = 0; l < V && t0 + l < kk; ++l) Isa::store(dst + (t0 + l) * tile + i0, block[l]);
                }
            }
        }
    }
};

template <class Isa, typename T>
void dlu_rows(const DluParams& p, const T* x, const float* space, const T* offsets, T* out, const CpuSpan& span)
{
    const ReassemblyShape shape{p.n, p.c, p.h, p.w, p.kernel_size, p.group, p.scale};
    reassemble_rows<Isa>(shape, x, out, span, DluFill<Isa, T>{p, space, offsets});
}

template <class Isa>
size_t dlu_scratch(const DluParams& p)
{
    const ReassemblyShape shape{p.n, p.c, p.h, p.w, p.kernel_size, p.group, p.scale};
    const int64_t blended = reassembly_tile<Isa>(shape) * dlu_space_taps(p.kernel_size);  // DluFill's work
    return reassembly_scratch_floats<Isa>(shape) + static_cast<size_t>(blended);
}

// ---- CARAFE (docs/ops.md#carafe): kappa read from the full-resolution masks ---------------

template <class Isa, typename T>
struct CarafeFill {
    const CarafeParams& p;
    const T* masks;

    void operator()(int64_t n, int64_t g, int64_t py, int64_t px0, int64_t tw, int64_t tile, float* kappa,
                    float* /*work*/) const
    {
        using F = typename Isa::F;
        constexpr int V = Isa::kLanes;
        const int k = p.kernel_size, kk = k * k, s = p.scale;
        const int64_t out_w = p.w * s, out_hw = p.h * s * out_w;
        for (int t = 0; t < kk; ++t) {
            const T* plane = masks + (n * p.group * kk + tap_channel(g, k, t)) * out_hw;
            for (int sy = 0; sy < s; ++sy) {
                const T* src = plane + (py * s + sy) * out_w + px0 * s;
                // The next tile's part of this mask row (the next row's at the last tile): one
                // of k*k*s rows read in parallel, more streams than the hardware prefetchers track.
                if (px0 + tile < p.w || py + 1 < p.h) {
                    prefetch_span(px0 + tile < p.w ? src + tile * s : src + s * out_w - px0 * s, tile * s);
                }
                float* dst = kappa + (int64_t{sy} * s * kk + t) * tile;  // child j = sy*s (+ sx)
                const int64_t child_stride = int64_t{kk} * tile;
                int64_t i = 0;
                if (s == 1) {
                    copy_to_float<Isa>(dst, src, tw);
                    continue;
                }
                if (s == 2) {  // even columns are child sx = 0, odd ones sx = 1
                    for (; i + V <= tw; i += V) {
                        F even, odd;
                        Isa::unzip(load_float<Isa>(src + 2 * i), load_float<Isa>(src + 2 * i + V), even, odd);
                        Isa::store(dst + i, even);
                        Isa::store(dst + child_stride + i, odd);
                    }
                }
                for (; i < tw; ++i) {
                    for (int sx = 0; sx < s; ++sx) dst[sx * child_stride + i] = scalar_to_float<Isa>(src[i * s + sx]);
                }
            }
        }
    }
};

template <class Isa, typename T>
void carafe_rows(const CarafeParams& p, const T* x, const T* masks, T* out, const CpuSpan& span)
{
    const ReassemblyShape shape{p.n, p.c, p.h, p.w, p.kernel_size, p.group, p.scale};
    reassemble_rows<Isa>(shape, x, out, span, CarafeFill<Isa, T>{p, masks});
}

template <class Isa>
size_t carafe_scratch(const CarafeParams& p)
{
    return reassembly_scratch_floats<Isa>(ReassemblyShape{p.n, p.c, p.h, p.w, p.kernel_size, p.group, p.scale});
}

// ---- DDF (docs/ops.md#ddf) -------------------------------------------------------------------
//
// Three paths (ddf_rows_combine): stride 1 takes the plane path below (DdfPlaneGeometry; work
// items are bands x channel blocks, see ddf_items). Otherwise the work item is one output row
// (n, p), columns in tiles of kDdfTile. Phase path (stride <= 4 and the widest tap offset r*d
// within kDdfMaxPad*stride columns): per block of CB channels, each input row the taps read is
// staged once as `stride` zero-padded phase rows,
// phase[ph][m] = x[row, stride*(q0 - P + m) + ph], so that every tap reads a contiguous vector
// (tap offset o = kx*d - r*d: phase o mod stride, shift floor(o / stride)). Per V outputs the CB
// channels' sums stay in registers over all taps; the spatial filter of the tile is converted
// once and shared by every channel. Other strides and dilations take the generic path: per
// tap the range of outputs whose input column is inside the row is computed arithmetically.

constexpr int64_t kDdfTile = 256;
constexpr int64_t kDdfMaxPad = 64;
constexpr int kDdfChannels = 4;

inline int64_t floor_div_i(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

inline int64_t ddf_pad(const DdfParams& p)
{
    return ceil_div_i(int64_t{(p.kernel_size - 1) / 2} * p.dilation, p.stride);
}

inline bool ddf_fast(const DdfParams& p) { return p.stride <= 4 && ddf_pad(p) <= kDdfMaxPad; }

template <class Isa>
size_t ddf_scratch(const DdfParams& p)
{
    const int64_t kk = int64_t{p.kernel_size} * p.kernel_size;
    const int64_t spatial = kk * kDdfTile, channel = int64_t{kDdfChannels} * kk;
    const int64_t phases = int64_t{kDdfChannels} * p.kernel_size * p.stride * (kDdfTile + 2 * ddf_pad(p));
    const int64_t fast = spatial + channel + (ddf_fast(p) ? phases : 0) + 2 * Isa::kLanes;
    const int64_t generic = spatial + kk + kDdfTile + p.w;
    return static_cast<size_t>(imax(fast, generic) + 64);
}

template <int Combine, class Isa>
inline typename Isa::F ddf_combine(typename Isa::F channel_value, typename Isa::F spatial_value)
{
    return Combine == kDdfMul ? Isa::mul(channel_value, spatial_value) : Isa::add(channel_value, spatial_value);
}

/* phase[ph][m] = x_row[stride*(q0 - pad + m) + ph] for m < length, 0 outside the row. */
template <class Isa, typename T>
void ddf_stage_phases(const T* x_row, int64_t w, int stride, int64_t q0, int64_t pad, int64_t length, float* phases)
{
    using F = typename Isa::F;
    constexpr int V = Isa::kLanes;
    const int64_t first = q0 - pad;  // phase index of m = 0
    for (int ph = 0; ph < stride; ++ph) {
        float* dst = phases + ph * length;
        const int64_t count = ph < w ? (w - 1 - ph) / stride + 1 : 0;  // phase indices in the row
        const int64_t lo = imin(length, imax(0, -first)), hi = imax(lo, imin(length, count - first));
        fill_zero<Isa>(dst, lo);
        fill_zero<Isa>(dst + hi, length - hi);
        const T* src = x_row + ph + stride * (first + lo);
        int64_t m = lo;
        if (stride == 1) {
            copy_to_float<Isa>(dst + lo, src, hi - lo);
            continue;
        }
        if (stride == 2) {  // the last vector pair may not cover a whole phase; stop a vector early
            for (; m + V < hi; m += V, src += 2 * V) {
                F even, odd;
                Isa::unzip(load_float<Isa>(src), load_float<Isa>(src + V), even, odd);
                Isa::store(dst + m, even);
            }
        }
        for (; m < hi; ++m, src += stride) dst[m] = scalar_to_float<Isa>(*src);
    }
}

/* Offset in one channel's staged phase rows of tap (ky, kx) for output column 0 of the tile:
 * tap column offset o = (kx - r)*d reads phase o mod stride, shifted by floor(o / stride). */
inline int64_t ddf_tap_offset(const DdfParams& p, int ky, int kx, int64_t length)
{
    const int s = p.stride, r = (p.kernel_size - 1) / 2;
    const int64_t o = int64_t{kx - r} * p.dilation, shift = floor_div_i(o, s), ph = o - shift * s;
    return (int64_t{ky} * s + ph) * length + ddf_pad(p) + shift;
}

template <class Isa, int Combine, int CB, typename T>
void ddf_channels_fast(const DdfParams& p, const float* phases, int64_t length, const float* spatial,
                       const float* channel, int64_t n, int64_t c0, int64_t op, int64_t q0, int64_t tq,
                       const int* rows_valid, const int64_t* tap_offsets, T* out, bool stream, float* buffer)
{
    using F = typename Isa::F;
    constexpr int V = Isa::kLanes;
    const int k = p.kernel_size, kk = k * k, s = p.stride;
    const int64_t ho = p.h / s, wo = p.w / s;
    const int64_t channel_stride = int64_t{k} * s * length;
    for (int64_t i0 = 0; i0 < tq; i0 += V) {
        F acc[CB];
#pragma GCC unroll 8
        for (int cc = 0; cc < CB; ++cc) acc[cc] = Isa::zero();
        for (int ky = 0; ky < k; ++ky) {
            if (!rows_valid[ky]) continue;
            for (int kx = 0; kx < k; ++kx) {
                const int t = ky * k + kx;
                const float* xp = phases + tap_offsets[t] + i0;
                const F sv = Isa::load(spatial + t * kDdfTile + i0);
#pragma GCC unroll 8
                for (int cc = 0; cc < CB; ++cc) {
                    const F filter = ddf_combine<Combine, Isa>(Isa::set1(channel[cc * kk + t]), sv);
                    acc[cc] = Isa::fma(Isa::load(xp + cc * channel_stride), filter, acc[cc]);
                }
            }
        }
        const int64_t valid = imin(V, tq - i0);
#pragma GCC unroll 8
        for (int cc = 0; cc < CB; ++cc) {
            T* dst = out + ((n * p.c + c0 + cc) * ho + op) * wo + q0 + i0;
            if (valid == V) {
                put_vectors<Isa>(dst, &acc[cc], 1, stream);
            } else {
                put_partial<Isa>(dst, &acc[cc], 1, valid, buffer);
            }
        }
    }
}

template <class Isa, int Combine, typename T>
void ddf_rows_fast(const DdfParams& p, const T* x, const T* channel_filter, const T* spatial_filter, T* out,
                   const CpuSpan& span)
{
    const int k = p.kernel_size, kk = k * k, s = p.stride;
    const int64_t h = p.h, w = p.w, ho = h / s, wo = w / s, pad = ddf_pad(p), length = kDdfTile + 2 * pad;
    float* spatial = span.scratch;
    float* channel = spatial + kk * kDdfTile;
    float* phases = channel + kDdfChannels * kk;
    float* buffer = phases + int64_t{kDdfChannels} * k * s * length;
    int rows_valid[16];
    int64_t tap_offsets[16 * 16];
    for (int ky = 0; ky < k; ++ky)
        for (int kx = 0; kx < k; ++kx) tap_offsets[ky * k + kx] = ddf_tap_offset(p, ky, kx, length);
    for (int64_t item = span.begin; item < span.end; ++item) {
        const int64_t n = item / ho, op = item % ho;
        for (int ky = 0; ky < k; ++ky) {
            const int64_t iy = ddf_input_coord(op, s, ky, k, p.dilation);
            rows_valid[ky] = iy >= 0 && iy < h;
        }
        for (int64_t q0 = 0; q0 < wo; q0 += kDdfTile) {
            const int64_t tq = imin(kDdfTile, wo - q0);
            for (int t = 0; t < kk; ++t) {
                copy_to_float<Isa>(spatial + t * kDdfTile, spatial_filter + ((n * kk + t) * ho + op) * wo + q0, tq);
            }
            for (int64_t c0 = 0; c0 < p.c; c0 += kDdfChannels) {
                const int cb = static_cast<int>(imin(kDdfChannels, p.c - c0));
                for (int cc = 0; cc < cb; ++cc) {
                    const int64_t c = c0 + cc;
                    for (int t = 0; t < kk; ++t) channel[cc * kk + t] = scalar_to_float<Isa>(channel_filter[(n * p.c + c) * kk + t]);
                    for (int ky = 0; ky < k; ++ky) {
                        if (!rows_valid[ky]) continue;
                        const T* row = x + ((n * p.c + c) * h + ddf_input_coord(op, s, ky, k, p.dilation)) * w;
                        ddf_stage_phases<Isa>(row, w, s, q0, pad, length,
                                              phases + (int64_t{cc} * k + ky) * s * length);
                    }
                }
                // The next block's input rows: short rows in other planes, which the hardware
                // prefetchers do not follow (the row entering the window is new to the caches).
                const int64_t col_lo = imax(0, s * (q0 - pad)), col_hi = imin(w, s * (q0 + tq + pad));
                for (int64_t c = c0 + cb; c < imin(p.c, c0 + cb + kDdfChannels); ++c) {
                    for (int ky = 0; ky < k; ++ky) {
                        if (!rows_valid[ky]) continue;
                        const T* row = x + ((n * p.c + c) * h + ddf_input_coord(op, s, ky, k, p.dilation)) * w;
                        prefetch_span(row + col_lo, col_hi - col_lo);
                    }
                }
                if (cb == kDdfChannels) {
                    ddf_channels_fast<Isa, Combine, kDdfChannels>(p, phases, length, spatial, channel, n, c0, op, q0,
                                                                  tq, rows_valid, tap_offsets, out, span.stream,
                                                                  buffer);
                } else {
                    for (int cc = 0; cc < cb; ++cc) {
                        ddf_channels_fast<Isa, Combine, 1>(p, phases + int64_t{cc} * k * s * length, length, spatial,
                                                           channel + cc * kk, n, c0 + cc, op, q0, tq, rows_valid,
                                                           tap_offsets, out, span.stream, buffer);
                    }
                }
            }
        }
    }
    Isa::fence();
}

// ---- DDF, stride 1: the plane path ----
// Work item = (n, band of output rows, block of CB channels), bands outermost: a thread runs
// the channel blocks of a band in turn, so the band's spatial filter (staged once per band and
// thread as fp32 rows padded with zeros to whole vectors; at most kDdfBandFloats, L2-resident)
// serves every channel, and each channel's input and output rows are walked in order. Per
// channel a ring of `span` = (k-1)*d + 2 zero-padded fp32 rows (L1) holds the window plus the
// next row: input row op+1+r*d is staged (read and converted once per band) while row op is
// computed, because the window's unaligned loads straddle two staging stores and would wait
// for them (no store forwarding). Input rows kDdfPrefetchRows ahead are prefetched in software
// (the next channel block's first rows at the end of a band). The micro-kernel keeps RB vectors
// x CB channels of sums in registers (4 x 4 on AVX-512: 2 mul/add + FMA per tap, channel and
// vector); per tap it loads RB spatial vectors and one channel value per channel, pinned with
// Isa::keep so that GCC does not fold them into every use as memory operands; the window
// vectors (one use each) stay memory operands. The tap loop is not unrolled: unrolled, GCC
// hoists every tap's pinned loads to the top and spills. Measured (EPYC Zen 4, 1x256x100x152,
// k = 3, one thread): compute alone ~1.7 ms, 1.2 ms FMA-port floor; non-temporal stores were
// 2x slower (rows of 608 bytes are half misaligned), so the output policy is left as is.

constexpr int64_t kDdfBandFloats = int64_t{128} << 10;  // spatial filter rows of a band: half of a 1 MiB L2
constexpr int64_t kDdfRingFloats = int64_t{1} << 18;    // the window rings of CB channels
constexpr int64_t kDdfPrefetchRows = 3;                  // input rows prefetched ahead

template <class Isa>
constexpr int ddf_vectors_per_block()
{
    return Isa::kRegisters >= 32 ? 4 : 2;  // RB*CB sums + RB filter vectors + 2 must fit
}

struct DdfPlaneGeometry {
    int64_t width, pad, row_stride, span, band, bands, blocks;  // width: Wo rounded up to vectors
};

template <class Isa>
DdfPlaneGeometry ddf_plane_geometry(const DdfParams& p)
{
    DdfPlaneGeometry g{};
    const int64_t kk = int64_t{p.kernel_size} * p.kernel_size;
    g.width = round_up(p.w, Isa::kLanes);
    g.pad = int64_t{(p.kernel_size - 1) / 2} * p.dilation;
    g.row_stride = round_up(g.width + 2 * g.pad, Isa::kLanes);
    g.span = int64_t{p.kernel_size - 1} * p.dilation + 2;  // the window and the row staged ahead
    const int64_t max_band = imin(p.h, imax(1, kDdfBandFloats / (kk * g.width)));
    g.bands = ceil_div_i(p.h, max_band);
    g.band = ceil_div_i(p.h, g.bands);
    g.blocks = ceil_div_i(p.c, kDdfChannels);
    return g;
}

template <class Isa>
bool ddf_plane(const DdfParams& p)
{
    if (p.stride != 1 || ddf_pad(p) > kDdfMaxPad) return false;
    const DdfPlaneGeometry g = ddf_plane_geometry<Isa>(p);
    return kDdfChannels * g.span * g.row_stride <= kDdfRingFloats;
}

template <class Isa>
size_t ddf_plane_scratch(const DdfParams& p)
{
    const DdfPlaneGeometry g = ddf_plane_geometry<Isa>(p);
    const int64_t kk = int64_t{p.kernel_size} * p.kernel_size;
    return static_cast<size_t>(kk * g.band * g.width + kDdfChannels * (g.span * g.row_stride + kk) +
                               int64_t{ddf_vectors_per_block<Isa>()} * Isa::kLanes + 64);
}

/* dst[0, count) = float(src[0, count)); the last vector overlaps the previous one. */
template <class Isa, typename T>
inline void ddf_stage_row(float* dst, const T* src, int64_t count)
{
    constexpr int V = Isa::kLanes;
    if (count < V) {
        for (int64_t i = 0; i < count; ++i) dst[i] = scalar_to_float<Isa>(src[i]);
        return;
    }
    for (int64_t i = 0; i + V < count; i += V) Isa::store(dst + i, load_float<Isa>(src + i));
    Isa::store(dst + count - V, load_float<Isa>(src + count - V));
}

template <typename T>
struct DdfRowContext {
    const float* rows[16];  // window row ky of channel c0 at output column 0; channels follow
    int64_t channel_stride;
    const float* spatial;  // tap 0 of the output row at column 0; taps follow at tap_stride
    int64_t tap_stride;
    const float* channel;  // [cc * k*k + t]
    T* out;                // output row of channel c0; channels follow at out_stride
    int64_t out_stride, wo;
    int k, dilation;
    bool stream;
    float* buffer;
};

/* Outputs [q, q + RB*V) of CB channels. */
template <class Isa, int Combine, int K, int RB, int CB, typename T>
inline void ddf_plane_vectors(const DdfRowContext<T>& c, int64_t q)
{
    using F = typename Isa::F;
    constexpr int V = Isa::kLanes;
    const int k = K > 0 ? K : c.k, kk = k * k, r = (k - 1) / 2;
    F acc[RB][CB];
#pragma GCC unroll 4
    for (int j = 0; j < RB; ++j)
#pragma GCC unroll 4
        for (int cc = 0; cc < CB; ++cc) acc[j][cc] = Isa::zero();
    for (int ky = 0; ky < k; ++ky) {
        const float* xr = c.rows[ky] + q;
#pragma GCC unroll 1
        for (int kx = 0; kx < k; ++kx) {
            const int t = ky * k + kx;
            const float* xp = xr + int64_t{kx - r} * c.dilation;
            const float* sp = c.spatial + t * c.tap_stride + q;
            F sv[RB];
#pragma GCC unroll 4
            for (int j = 0; j < RB; ++j) sv[j] = Isa::keep(Isa::load(sp + j * V));
#pragma GCC unroll 4
            for (int cc = 0; cc < CB; ++cc) {
                const F cv = Isa::keep(Isa::set1(c.channel[cc * kk + t]));
#pragma GCC unroll 4
                for (int j = 0; j < RB; ++j) {
                    acc[j][cc] = Isa::fma(Isa::load(xp + cc * c.channel_stride + j * V),
                                          ddf_combine<Combine, Isa>(cv, sv[j]), acc[j][cc]);
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int cc = 0; cc < CB; ++cc) {
        T* dst = c.out + cc * c.out_stride + q;
#pragma GCC unroll 4
        for (int j = 0; j < RB; ++j) {
            const int64_t valid = c.wo - q - j * V;
            if (valid >= V) {
                put_vectors<Isa>(dst + j * V, &acc[j][cc], 1, c.stream);
            } else if (valid > 0) {
                put_partial<Isa>(dst + j * V, &acc[j][cc], 1, valid, c.buffer);
            }
        }
    }
}

/* The whole padded row: blocks of RB vectors, then halving blocks for the rest. */
template <class Isa, int Combine, int K, int RB, int CB, typename T>
inline void ddf_plane_row(const DdfRowContext<T>& c, int64_t q, int64_t width)
{
    constexpr int V = Isa::kLanes;
    for (; q + RB * V <= width; q += RB * V) ddf_plane_vectors<Isa, Combine, K, RB, CB, T>(c, q);
    if constexpr (RB > 1) {
        if (q < width) ddf_plane_row<Isa, Combine, K, RB / 2, CB, T>(c, q, width);
    }
}

template <class Isa, int Combine, int K, typename T>
void ddf_rows_plane(const DdfParams& p, const T* x, const T* channel_filter, const T* spatial_filter, T* out,
                    const CpuSpan& span)
{
    constexpr int RB = ddf_vectors_per_block<Isa>(), CB = kDdfChannels;
    const DdfPlaneGeometry g = ddf_plane_geometry<Isa>(p);
    const int k = K > 0 ? K : p.kernel_size, kk = k * k, d = p.dilation;
    const int64_t h = p.h, w = p.w, hw = h * w, r = (k - 1) / 2;
    float* spatial = span.scratch;  // [t][row in band][width]
    float* ring = spatial + kk * g.band * g.width;  // [cc][slot][row_stride]
    float* channel = ring + CB * g.span * g.row_stride;
    float* buffer = channel + CB * kk;
    fill_zero<Isa>(ring, CB * g.span * g.row_stride);  // the pads stay zero
    int64_t staged_band = -1;
    for (int64_t item = span.begin; item < span.end; ++item) {
        const int64_t block = item % g.blocks, nb = item / g.blocks, n = nb / g.bands, b = nb % g.bands;
        const int64_t row0 = b * g.band, row1 = imin(h, row0 + g.band), c0 = block * CB;
        const int cb = static_cast<int>(imin(CB, p.c - c0));
        if (nb != staged_band) {
            for (int t = 0; t < kk; ++t) {
                for (int64_t op = row0; op < row1; ++op) {
                    float* dst = spatial + (t * g.band + op - row0) * g.width;
                    ddf_stage_row<Isa>(dst, spatial_filter + ((n * kk + t) * h + op) * w, w);
                    fill_zero<Isa>(dst + w, g.width - w);
                }
            }
            staged_band = nb;
        }
        for (int cc = 0; cc < cb; ++cc) {
            for (int t = 0; t < kk; ++t) {
                channel[cc * kk + t] = scalar_to_float<Isa>(channel_filter[(n * p.c + c0 + cc) * kk + t]);
            }
        }
        // Input row iy of channel cc lives in ring slot iy mod span, at column -pad.
        auto slot = [&](int cc, int64_t iy) {
            return ring + (cc * g.span + (iy % g.span + g.span) % g.span) * g.row_stride + g.pad;
        };
        // The row kDdfPrefetchRows after the one staged (past the band: the next block's first
        // rows): four short streams per item and the jump to the next block outrun the
        // hardware prefetchers.
        const int64_t ahead_end = imin(h, row1 + r * d), next_c0 = c0 + CB;
        auto stage = [&](int64_t iy) {
            {
                int64_t ay = iy + kDdfPrefetchRows, c = c0, end = c0 + cb;
                if (ay >= ahead_end) {
                    ay = imax(0, row0 - r * d) + (ay - ahead_end);
                    c = next_c0;
                    end = imin(p.c, next_c0 + CB);
                }
                if (ay >= 0 && ay < h) {
                    for (; c < end; ++c) prefetch_span(x + (n * p.c + c) * hw + ay * w, w);
                }
            }
            for (int cc = 0; cc < cb; ++cc) {
                float* dst = slot(cc, iy);
                if (iy >= 0 && iy < h) {
                    ddf_stage_row<Isa>(dst, x + (n * p.c + c0 + cc) * hw + iy * w, w);
                } else {
                    fill_zero<Isa>(dst, w);
                }
            }
        };
        // Rows are staged a row ahead: read right after being written, the window's unaligned
        // loads would wait on the staging stores (they straddle two, no store forwarding).
        for (int64_t iy = row0 - r * d; iy <= row0 + r * d; ++iy) stage(iy);
        DdfRowContext<T> ctx{};
        ctx.channel_stride = g.span * g.row_stride;
        ctx.tap_stride = g.band * g.width;
        ctx.out_stride = hw;
        ctx.wo = w;
        ctx.k = k;
        ctx.dilation = d;
        ctx.stream = span.stream;
        ctx.buffer = buffer;
        for (int64_t op = row0; op < row1; ++op) {
            if (op + 1 < row1) stage(op + 1 + r * d);
            for (int ky = 0; ky < k; ++ky) ctx.rows[ky] = slot(0, op + (ky - r) * d);
            ctx.spatial = spatial + (op - row0) * g.width;
            ctx.out = out + (n * p.c + c0) * hw + op * w;
            if (cb == CB) {
                ctx.channel = channel;
                ddf_plane_row<Isa, Combine, K, RB, CB, T>(ctx, 0, g.width);
            } else {
                for (int cc = 0; cc < cb; ++cc) {
                    for (int ky = 0; ky < k; ++ky) ctx.rows[ky] = slot(cc, op + (ky - r) * d);
                    ctx.channel = channel + cc * kk;
                    ctx.out = out + (n * p.c + c0 + cc) * hw + op * w;
                    ddf_plane_row<Isa, Combine, K, RB, 1, T>(ctx, 0, g.width);
                }
            }
        }
    }
    Isa::fence();
}

template <class Isa, int Combine, typename T>
void ddf_rows_generic(const DdfParams& p, const T* x, const T* channel_filter, const T* spatial_filter, T* out,
                      const CpuSpan& span)
{
    const int k = p.kernel_size, kk = k * k, s = p.stride, d = p.dilation;
    const int64_t h = p.h, w = p.w, ho = h / s, wo = w / s, C = p.c;
    float* spatial = span.scratch;
    float* channel = spatial + kk * kDdfTile;
    float* acc = channel + kk;
    float* row = acc + kDdfTile;
    for (int64_t item = span.begin; item < span.end; ++item) {
        const int64_t n = item / ho, op = item % ho;
        for (int64_t q0 = 0; q0 < wo; q0 += kDdfTile) {
            const int64_t tw = imin(kDdfTile, wo - q0);
            for (int t = 0; t < kk; ++t) {
                copy_to_float<Isa>(spatial + t * kDdfTile, spatial_filter + ((n * kk + t) * ho + op) * wo + q0, tw);
            }
            for (int64_t c = 0; c < C; ++c) {
                for (int t = 0; t < kk; ++t) channel[t] = scalar_to_float<Isa>(channel_filter[(n * C + c) * kk + t]);
                for (int64_t i = 0; i < tw; ++i) acc[i] = 0.0f;
                for (int ky = 0; ky < k; ++ky) {
                    const int64_t iy = ddf_input_coord(op, s, ky, k, d);
                    if (iy < 0 || iy >= h) continue;
                    copy_to_float<Isa>(row, x + ((n * C + c) * h + iy) * w, w);
                    for (int kx = 0; kx < k; ++kx) {
                        const int t = ky * k + kx;
                        // Output column q0 + i reads input column base + i*s.
                        const int64_t base = ddf_input_coord(q0, s, kx, k, d);
                        const int64_t i_lo = imin(tw, imax(0, -floor_div_i(base, s)));
                        const int64_t i_hi = imin(tw, imax(0, floor_div_i(w - 1 - base, s) + 1));
                        const float cv = channel[t];
                        const float* sv = spatial + t * kDdfTile;
                        for (int64_t i = i_lo; i < i_hi; ++i) acc[i] += row[base + i * s] * ddf_filter(cv, sv[i], Combine);
                    }
                }
                T* dst = out + ((n * C + c) * ho + op) * wo + q0;
                for (int64_t i = 0; i < tw; ++i) {
                    if constexpr (sizeof(T) == sizeof(float)) {
                        dst[i] = acc[i];
                    } else {
                        dst[i] = Isa::float_to_half(acc[i]);
                    }
                }
            }
        }
    }
}

template <class Isa>
size_t ddf_scratch_floats(const DdfParams& p)
{
    return ddf_plane<Isa>(p) ? ddf_plane_scratch<Isa>(p) : ddf_scratch<Isa>(p);
}

/* Work items of one call: (n, band, channel block) on the stride-1 path, else output rows. */
template <class Isa>
int64_t ddf_items(const DdfParams& p)
{
    if (!ddf_plane<Isa>(p)) return p.n * (p.h / p.stride);
    const DdfPlaneGeometry g = ddf_plane_geometry<Isa>(p);
    return p.n * g.bands * g.blocks;
}

template <class Isa, int Combine, typename T>
void ddf_rows_combine(const DdfParams& p, const T* x, const T* channel_filter, const T* spatial_filter, T* out,
                      const CpuSpan& span)
{
    if (ddf_plane<Isa>(p)) {
        (p.kernel_size == 3 ? ddf_rows_plane<Isa, Combine, 3, T> : ddf_rows_plane<Isa, Combine, 0, T>)(
            p, x, channel_filter, spatial_filter, out, span);
    } else if (ddf_fast(p)) {
        ddf_rows_fast<Isa, Combine, T>(p, x, channel_filter, spatial_filter, out, span);
    } else {
        ddf_rows_generic<Isa, Combine, T>(p, x, channel_filter, spatial_filter, out, span);
    }
}

template <class Isa, typename T>
void ddf_rows(const DdfParams& p, const T* x, const T* channel_filter, const T* spatial_filter, T* out,
              const CpuSpan& span)
{
    (p.combine == kDdfMul ? ddf_rows_combine<Isa, kDdfMul, T> : ddf_rows_combine<Isa, kDdfAdd, T>)(
        p, x, channel_filter, spatial_filter, out, span);
}

template <class Isa>
constexpr CpuKernelTable make_cpu_kernel_table(DluCpuIsa isa)
{
    return CpuKernelTable{isa,
                          &dlu_scratch<Isa>,
                          &dlu_space<Isa, float>,
                          &dlu_space<Isa, Half>,
                          &dlu_rows<Isa, float>,
                          &dlu_rows<Isa, Half>,
                          &carafe_scratch<Isa>,
                          &carafe_rows<Isa, float>,
                          &carafe_rows<Isa, Half>,
                          &ddf_scratch_floats<Isa>,
                          &ddf_items<Isa>,
                          &ddf_rows<Isa, float>,
                          &ddf_rows<Isa, Half>};
}

#endif  // DLU_CPU_KERNELS_IMPL_H
