/*
 * CPU reassembly shared by CARAFE and DLU: out[n,c,py*s+sy,px*s+sx] = sum_t window_t * kappa_t,
 * written once over an instruction-set traits class `Isa` (cpu_<isa>.cpp: lanes, registers,
 * loads, stores, fma, zip/unzip, fp16 conversion) and compiled once per instruction set.
 * Included only by the cpu_<isa>.cpp translation units, inside their anonymous namespace.
 *
 * Work item = one low-res row (n, py); a thread runs its rows in order. A ring holds the k
 * window rows of every channel as full-width, zero-padded fp32 rows (C * k * (W + 2r) floats,
 * in L2): moving to the next row stages only the image row entering the window (branch-free:
 * zero prefix, converted copy, zero suffix), which the previous row's work prefetched, so every
 * input value is read from memory, converted and copied once. Columns go in tiles of `tile`
 * parents (a multiple of the vector lanes V); per tile and group the op fills
 * kappa[child j][tap t][parent i] (j = sy*s + sx; at most ~16 KiB, so it stays in L1 while
 * every channel of the group reuses it). For every V parents and CB channels the micro-kernel
 * keeps RB*s children x CB channels of sums in registers (8-24 accumulators): per tap it loads
 * CB window vectors and RB*s kappa vectors for RB*s*CB FMAs. Sums are interleaved in registers
 * into contiguous output rows (zip for s = 2 and 4) and written with full-vector, optionally
 * non-temporal stores; other scales and the last partial vector go through a small buffer.
 */
#ifndef DLU_REASSEMBLY_CPU_H
#define DLU_REASSEMBLY_CPU_H

// No includes and no namespace here: an instruction-set translation unit includes this inside
// its own anonymous namespace, after <cstdint>, <cstring>, cpu_kernels.h and reassembly_math.h.

struct ReassemblyShape {
    int64_t n, c, h, w;
    int k, group, scale;
};

inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }
inline int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }
inline int64_t ceil_div_i(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Parents per column tile: the kappa tile (s*s*k*k*tile floats) at most ~16 KiB, so that it,
 * the staged rows and the output lines in flight share the 32 KiB L1 data cache; tiles of equal
 * width (fewer partial vectors), a multiple of the lanes. */
template <class Isa>
int64_t reassembly_tile(const ReassemblyShape& sh)
{
    constexpr int V = Isa::kLanes;
    const int64_t per_parent = int64_t{sh.scale} * sh.scale * sh.k * sh.k;
    const int64_t max_tile = imax(V, imin(64, 4096 / per_parent) / V * V);
    const int64_t tiles = ceil_div_i(sh.w, max_tile);
    return round_up(ceil_div_i(sh.w, tiles), V);
}

/* Register blocking: RB output rows of s children each, CB channels; RB*s*CB accumulators plus
 * CB window vectors and one kappa vector must fit the register file. */
template <class Isa>
constexpr int rows_per_block(int s)
{
    return s == 2 && Isa::kRegisters >= 16 ? 2 : 1;
}
template <class Isa>
constexpr int channels_per_block(int s)
{
    const int children = rows_per_block<Isa>(s) * s;
    const int cb = (Isa::kRegisters - 1) / (children + 1);
    return cb < 1 ? 1 : (cb > 6 ? 6 : cb);
}

/* The ring of staged window rows: min(k, h) full-width row slots (image row iy in slot
 * iy % slots; W rounded up to whole vectors, so that the last tile's partial vector reads
 * zeros) per channel. It holds every channel (each image row is then staged once) unless
 * that exceeds kRingFloats (very many channels on wide images): then it holds a chunk of
 * channels, whose k window rows are staged again for every row. */
constexpr int64_t kRingFloats = int64_t{1} << 21;  // 8 MiB per thread

struct RingGeometry {
    int64_t slots, row_stride, channel_stride, channels;
    bool all_channels;
};

template <class Isa>
RingGeometry ring_geometry(const ReassemblyShape& sh, int channel_block)
{
    RingGeometry g{};
    g.slots = imin(sh.k, sh.h);
    g.row_stride = round_up(sh.w, Isa::kLanes) + 2 * ((sh.k - 1) / 2);
    g.channel_stride = g.slots * g.row_stride;
    g.all_channels = sh.c * g.channel_stride <= kRingFloats;
    g.channels = g.all_channels ? sh.c : imax(channel_block, kRingFloats / g.channel_stride);
    return g;
}

template <class Isa>
size_t reassembly_scratch_floats(const ReassemblyShape& sh)
{
    constexpr int V = Isa::kLanes;
    const int64_t tile = reassembly_tile<Isa>(sh);
    const int64_t kappa = round_up(int64_t{sh.scale} * sh.scale * sh.k * sh.k * tile, 16);
    const RingGeometry ring = ring_geometry<Isa>(sh, channels_per_block<Isa>(sh.scale));
    const int64_t buffer = int64_t{8} * V;
    return static_cast<size_t>(kappa + round_up(ring.channels * ring.channel_stride, 16) + buffer + 16);
}

/* dst[0, count) = float(src[0, count)) and dst[0, count) = 0, vectorised (inline loops: these
 * rows are short, a libc call per row costs more than the copy). */
template <class Isa>
inline void copy_to_float(float* dst, const float* src, int64_t count)
{
    constexpr int V = Isa::kLanes;
    int64_t i = 0;
    for (; i + V <= count; i += V) Isa::store(dst + i, Isa::load(src + i));
    for (; i < count; ++i) dst[i] = src[i];
}
template <class Isa>
inline void fill_zero(float* dst, int64_t count)
{
    constexpr int V = Isa::kLanes;
    int64_t i = 0;
    for (; i + V <= count; i += V) Isa::store(dst + i, Isa::zero());
    for (; i < count; ++i) dst[i] = 0.0f;
}
template <class Isa>
inline void copy_to_float(float* dst, const Half* src, int64_t count)
{
    constexpr int V = Isa::kLanes;
    int64_t i = 0;
    for (; i + V <= count; i += V) Isa::store(dst + i, Isa::load_half(src + i));
    for (; i < count; ++i) dst[i] = Isa::half_to_float(src[i]);
}

template <class Isa>
inline typename Isa::F load_float(const float* p)
{
    return Isa::load(p);
}
template <class Isa>
inline typename Isa::F load_float(const Half* p)
{
    return Isa::load_half(p);
}

/* Writes `count` vectors to dst (contiguous); non-temporal when asked and aligned. */
template <class Isa>
inline void put_vectors(float* dst, const typename Isa::F* v, int count, bool stream)
{
    constexpr int V = Isa::kLanes;
    if (stream && reinterpret_cast<uintptr_t>(dst) % (V * sizeof(float)) == 0) {
        for (int i = 0; i < count; ++i) Isa::stream(dst + i * V, v[i]);
    } else {
        for (int i = 0; i < count; ++i) Isa::store(dst + i * V, v[i]);
    }
}
template <class Isa>
inline void put_vectors(Half* dst, const typename Isa::F* v, int count, bool stream)
{
    constexpr int V = Isa::kLanes;
    if (stream && reinterpret_cast<uintptr_t>(dst) % (V * sizeof(Half)) == 0) {
        for (int i = 0; i < count; ++i) Isa::stream_half(dst + i * V, v[i]);
    } else {
        for (int i = 0; i < count; ++i) Isa::store_half(dst + i * V, v[i]);
    }
}

/* The first `valid` elements of the `count` vectors v, through `buffer` (count*V floats). */
template <class Isa, typename T>
inline void put_partial(T* dst, const typename Isa::F* v, int count, int64_t valid, float* buffer)
{
    constexpr int V = Isa::kLanes;
    for (int i = 0; i < count; ++i) Isa::store(buffer + i * V, v[i]);
    for (int64_t i = 0; i < valid; ++i) {
        if constexpr (sizeof(T) == sizeof(float)) {
            dst[i] = buffer[i];
        } else {
            dst[i] = Isa::float_to_half(buffer[i]);
        }
    }
}

/* One full vector to dst, non-temporal when asked. By value: a caller's vector whose address
 * is taken is spilled to the stack, and that plain store waits in the store queue behind the
 * non-temporal ones, stalling the FMA loop instead of overlapping with it. */
template <class Isa>
inline void put_vector(float* dst, typename Isa::F v, bool stream)
{
    if (stream) {
        Isa::stream(dst, v);
    } else {
        Isa::store(dst, v);
    }
}
template <class Isa>
inline void put_vector(Half* dst, typename Isa::F v, bool stream)
{
    if (stream) {
        Isa::stream_half(dst, v);
    } else {
        Isa::store_half(dst, v);
    }
}

/* One output row's S children sums (parents i0 .. i0+V-1) interleaved into dst[0, valid). */
template <class Isa, int S, typename T>
inline void put_children(T* dst, const typename Isa::F* child, int64_t valid, bool stream, float* buffer)
{
    using F = typename Isa::F;
    constexpr int V = Isa::kLanes;
    if constexpr (S == 1 || S == 2 || S == 4) {
        F v[S];
        if constexpr (S == 1) {
            v[0] = child[0];
        } else if constexpr (S == 2) {
            Isa::zip(child[0], child[1], v[0], v[1]);
        } else {
            F lo02, hi02, lo13, hi13;
            Isa::zip(child[0], child[2], lo02, hi02);
            Isa::zip(child[1], child[3], lo13, hi13);
            Isa::zip(lo02, lo13, v[0], v[1]);
            Isa::zip(hi02, hi13, v[2], v[3]);
        }
        // Whole vectors of a partial block stream too: a line written by plain stores next to
        // non-temporal ones costs a read for ownership and a flush.
        const bool nt = stream && reinterpret_cast<uintptr_t>(dst) % (V * sizeof(T)) == 0;
#pragma GCC unroll 4
        for (int q = 0; q < S; ++q) {
            const int64_t left = valid - int64_t{q} * V;
            if (left >= V) {
                put_vector<Isa>(dst + q * V, v[q], nt);
            } else if (left > 0) {
                F rest[1] = {v[q]};
                put_partial<Isa>(dst + q * V, rest, 1, left, buffer);
            }
        }
    } else {  // other scales: transpose through the buffer
        for (int sx = 0; sx < S; ++sx) Isa::store(buffer + sx * V, child[sx]);
        for (int64_t e = 0; e < valid; ++e) {
            const float value = buffer[(e % S) * V + e / S];
            if constexpr (sizeof(T) == sizeof(float)) {
                dst[e] = value;
            } else {
                dst[e] = Isa::float_to_half(value);
            }
        }
    }
}

/* Sums of JB children (kappa rows j0 ..) x CB channels over the window taps, for V parents;
 * rows[ky] + i0 is window row ky of the first channel, the others follow at channel_stride. */
template <class Isa, int JB, int CB>
inline void reassemble_vector(typename Isa::F (&acc)[JB][CB], const float* const* rows, int64_t i0,
                              int64_t channel_stride, const float* kappa, int64_t tap_stride, int64_t child_stride,
                              int k, int ky_begin, int ky_end)
{
    using F = typename Isa::F;
#pragma GCC unroll 16
    for (int j = 0; j < JB; ++j)
#pragma GCC unroll 8
        for (int cc = 0; cc < CB; ++cc) acc[j][cc] = Isa::zero();
    for (int ky = ky_begin; ky < ky_end; ++ky) {
        const float* xr = rows[ky] + i0;
        const float* kr = kappa + int64_t{ky} * k * tap_stride;
        for (int kx = 0; kx < k; ++kx) {
            F xv[CB];
#pragma GCC unroll 8
            for (int cc = 0; cc < CB; ++cc) xv[cc] = Isa::keep(Isa::load(xr + cc * channel_stride + kx));
            const float* kp = kr + kx * tap_stride;
#pragma GCC unroll 16
            for (int j = 0; j < JB; ++j) {
                const F kv = Isa::keep(Isa::load(kp + j * child_stride));
#pragma GCC unroll 8
                for (int cc = 0; cc < CB; ++cc) acc[j][cc] = Isa::fma(xv[cc], kv, acc[j][cc]);
            }
        }
    }
}

struct TileContext {
    int64_t n, c0, py, px0, tw, tile, out_h, out_w, channels;
    int k, ky_begin, ky_end;
    const float* kappa;
    const float* const* rows;  // [k]: window row ky of channel c0 at column px0 - r
    int64_t channel_stride;
    float* buffer;
    bool stream;
};

/* Every vector of parents of the tile, for CB staged channels starting at ctx.c0. */
template <class Isa, int S, int CB, typename T>
void reassemble_channels(const TileContext& ctx, T* out)
{
    using F = typename Isa::F;
    constexpr int V = Isa::kLanes, RB = rows_per_block<Isa>(S), JB = RB * S;
    const int64_t kk = int64_t{ctx.k} * ctx.k, child_stride = kk * ctx.tile;
    for (int64_t i0 = 0; i0 < ctx.tw; i0 += V) {
        const int64_t valid = imin(V, ctx.tw - i0) * S;
        for (int sy0 = 0; sy0 < S; sy0 += RB) {
            F acc[JB][CB];
            reassemble_vector<Isa, JB, CB>(acc, ctx.rows, i0, ctx.channel_stride,
                                           ctx.kappa + sy0 * S * child_stride + i0, ctx.tile, child_stride, ctx.k,
                                           ctx.ky_begin, ctx.ky_end);
#pragma GCC unroll 8
            for (int cc = 0; cc < CB; ++cc) {
                T* plane = out + (ctx.n * ctx.channels + ctx.c0 + cc) * ctx.out_h * ctx.out_w;
#pragma GCC unroll 4
                for (int rb = 0; rb < RB; ++rb) {
                    F child[S];
#pragma GCC unroll 8
                    for (int sx = 0; sx < S; ++sx) child[sx] = acc[rb * S + sx][cc];
                    T* dst = plane + (ctx.py * S + sy0 + rb) * ctx.out_w + (ctx.px0 + i0) * S;
                    put_children<Isa, S>(dst, child, valid, ctx.stream, ctx.buffer);
                }
            }
        }
    }
}

/* Prefetches the cache lines of p[0, count) (Locality 3: into L1, 2: into L2). A hint, so the
 * span may run past an object: its addresses are formed as integers, never as pointers. */
template <int Locality = 3, typename T>
inline void prefetch_span(const T* p, int64_t count)
{
    const uintptr_t begin = reinterpret_cast<uintptr_t>(p), end = begin + static_cast<uintptr_t>(count) * sizeof(T);
    for (uintptr_t line = begin & ~uintptr_t{63}; line < end; line += 64) {
        __builtin_prefetch(reinterpret_cast<const void*>(line), 0, Locality);
    }
}

/* Prefetches x[n, c, iy, col_begin .. col_end) of channels [c_begin, c_end) into L2: short rows
 * in different planes are not something the hardware prefetchers follow. */
template <typename T>
inline void prefetch_rows(const ReassemblyShape& sh, const T* x, int64_t n, int64_t c_begin, int64_t c_end,
                          int64_t iy, int64_t col_begin, int64_t col_end)
{
    col_begin = imax(0, col_begin);
    col_end = imin(sh.w, col_end);
    if (iy < 0 || iy >= sh.h || col_begin >= col_end) return;
    const T* row = x + ((n * sh.c + c_begin) * sh.h + iy) * sh.w;
    for (int64_t c = c_begin; c < c_end; ++c, row += sh.h * sh.w) prefetch_span<2>(row + col_begin, col_end - col_begin);
}

/* Stages image row iy of channels [c_begin, c_end) into the ring of window rows (full width,
 * fp32, zero-padded: zero prefix, converted copy, zero suffix; no branch per element), also
 * prefetching channels ahead (for the rows no earlier row prefetched).
 * ring[c - c_begin][iy % slots][i] = x[n, c, iy, i - r]. */
template <class Isa, typename T>
void stage_ring_row(const ReassemblyShape& sh, const T* x, int64_t n, int64_t c_begin, int64_t c_end, int64_t iy,
                    float* ring, const RingGeometry& geo)
{
    const int r = (sh.k - 1) / 2;
    const T* src = x + ((n * sh.c + c_begin) * sh.h + iy) * sh.w;
    float* row = ring + (iy % geo.slots) * geo.row_stride;
    constexpr int kAhead = 8;
    for (int64_t c = c_begin; c < c_end; ++c, src += sh.h * sh.w, row += geo.channel_stride) {
        if (c + kAhead < c_end) prefetch_rows(sh, x, n, c + kAhead, c + kAhead + 1, iy, 0, sh.w);
        fill_zero<Isa>(row, r);
        copy_to_float<Isa>(row + r, src, sh.w);
        fill_zero<Isa>(row + r + sh.w, geo.row_stride - r - sh.w);
    }
}

/* The reassembly of work items [span.begin, span.end); fill(n, g, py, px0, tw, tile, kappa,
 * work) writes the tile's kappa[j][t][i] for i < tw, and may use the scratch past
 * reassembly_scratch_floats (`work`) for itself. */
template <class Isa, int S, typename T, class Fill>
void reassemble_rows_scale(const ReassemblyShape& sh, const T* x, T* out, const CpuSpan& span, const Fill& fill)
{
    constexpr int CB = channels_per_block<Isa>(S);
    const int k = sh.k, r = (k - 1) / 2;
    const int64_t h = sh.h, w = sh.w, cpg = sh.c / sh.group, tile = reassembly_tile<Isa>(sh);
    const RingGeometry geo = ring_geometry<Isa>(sh, CB);
    float* kappa = span.scratch;
    float* ring = kappa + round_up(int64_t{S} * S * k * k * tile, 16);
    float* buffer = ring + round_up(geo.channels * geo.channel_stride, 16);
    float* work = span.scratch + reassembly_scratch_floats<Isa>(sh);
    const float* row_ptrs[16];

    TileContext ctx{};
    ctx.tile = tile;
    ctx.out_h = h * S;
    ctx.out_w = w * S;
    ctx.channels = sh.c;
    ctx.k = k;
    ctx.kappa = kappa;
    ctx.rows = row_ptrs;
    ctx.channel_stride = geo.channel_stride;
    ctx.buffer = buffer;
    ctx.stream = span.stream;
    int64_t ring_n = -1, ring_py = -1;  // the ring holds the window rows of this row
    for (int64_t item = span.begin; item < span.end; ++item) {
        ctx.n = item / h;
        ctx.py = item % h;
        ctx.ky_begin = static_cast<int>(imax(0, r - ctx.py));
        ctx.ky_end = static_cast<int>(imin(k, h - ctx.py + r));
        const int64_t iy_begin = ctx.py + ctx.ky_begin - r, iy_end = ctx.py + ctx.ky_end - r;
        // Consecutive rows share k-1 of their k window rows: with every channel in the ring,
        // only the row entering the window is staged (all of them after a jump).
        const bool next_row = geo.all_channels && ring_n == ctx.n && ring_py + 1 == ctx.py;
        ring_n = ctx.n;
        ring_py = ctx.py;
        const int64_t iy_next = ctx.py + r + 1;  // enters the window at the next row: prefetched
        int64_t slot_offsets[16];  // of window row ky in a channel's ring (once per row: a division)
        for (int ky = ctx.ky_begin; ky < ctx.ky_end; ++ky) {
            slot_offsets[ky] = window_coord(ctx.py, ky, k) % geo.slots * geo.row_stride;
        }
        for (int64_t cs = 0; cs < sh.c; cs += geo.channels) {
            const int64_t ce = imin(sh.c, cs + geo.channels);
            for (int64_t iy = next_row ? iy_end - 1 : iy_begin; iy < iy_end; ++iy) {
                stage_ring_row<Isa>(sh, x, ctx.n, cs, ce, iy, ring, geo);
            }
            for (ctx.px0 = 0; ctx.px0 < w; ctx.px0 += tile) {
                ctx.tw = imin(tile, w - ctx.px0);
                for (int64_t g = cs / cpg; g * cpg < ce; ++g) {
                    fill(ctx.n, g, ctx.py, ctx.px0, ctx.tw, tile, kappa, work);
                    const int64_t c_end = imin(ce, (g + 1) * cpg);
                    for (int64_t c0 = imax(cs, g * cpg); c0 < c_end; c0 += CB) {
                        const int cb = static_cast<int>(imin(CB, c_end - c0));
                        for (int ky = ctx.ky_begin; ky < ctx.ky_end; ++ky) {
                            row_ptrs[ky] = ring + (c0 - cs) * geo.channel_stride + slot_offsets[ky] + ctx.px0;
                        }
                        TileContext block = ctx;
                        block.c0 = c0;
                        if (cb == CB) {
                            reassemble_channels<Isa, S, CB>(block, out);
                        } else {
                            // The last channels: a block of CB/2 when they fill one, then singly.
                            const int half = CB / 2 > 1 && cb >= CB / 2 ? CB / 2 : 0;
                            for (int cc = 0; cc < cb; cc += cc < half ? half : 1) {
                                const float* part_rows[16];
                                for (int ky = ctx.ky_begin; ky < ctx.ky_end; ++ky) {
                                    part_rows[ky] = row_ptrs[ky] + cc * geo.channel_stride;
                                }
                                TileContext part = block;
                                part.c0 = c0 + cc;
                                part.rows = part_rows;
                                if (cc < half) {
                                    reassemble_channels<Isa, S, (CB / 2 > 1 ? CB / 2 : 1)>(part, out);
                                } else {
                                    reassemble_channels<Isa, S, 1>(part, out);
                                }
                            }
                        }
                        if (geo.all_channels) {
                            prefetch_rows(sh, x, ctx.n, c0, c0 + cb, iy_next, ctx.px0 - r, ctx.px0 + ctx.tw + r);
                        }
                    }
                }
            }
        }
    }
    Isa::fence();  // non-temporal stores are visible before the caller joins this thread
}

template <class Isa, typename T, class Fill>
void reassemble_rows(const ReassemblyShape& sh, const T* x, T* out, const CpuSpan& span, const Fill& fill)
{
    switch (sh.scale) {
        case 1: reassemble_rows_scale<Isa, 1>(sh, x, out, span, fill); break;
        case 2: reassemble_rows_scale<Isa, 2>(sh, x, out, span, fill); break;
        case 3: reassemble_rows_scale<Isa, 3>(sh, x, out, span, fill); break;
        case 4: reassemble_rows_scale<Isa, 4>(sh, x, out, span, fill); break;
        case 5: reassemble_rows_scale<Isa, 5>(sh, x, out, span, fill); break;
        case 6: reassemble_rows_scale<Isa, 6>(sh, x, out, span, fill); break;
        case 7: reassemble_rows_scale<Isa, 7>(sh, x, out, span, fill); break;
        default: reassemble_rows_scale<Isa, 8>(sh, x, out, span, fill); break;
    }
}

#endif  // DLU_REASSEMBLY_CPU_H
