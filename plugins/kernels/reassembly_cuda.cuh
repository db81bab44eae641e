/*
 * CUDA reassembly shared by CARAFE and DLU: out[n,c,oy,ox] = sum_t window_t(parent) * kappa_t.
 * The op-specific part is a "kappa source" (DluKappa samples the low-res kernel space,
 * CarafeKappa reads the masks) that yields the k*k kernel of an output pixel.
 *
 * Fast path (k = 3 or 5 with an even scale, k = 7 with any scale): a 32x8-thread block owns
 * a tile of output pixels; each thread owns CX x CY children of ONE parent (2x2 for k = 3,
 * 2x1 for k = 5, 1x1 for k = 7: what fits in 128 registers without spilling, so two blocks
 * share an SM) and keeps their kernels in registers for all channels of the block. Per step,
 * kChunk channels of the tile's low-res window rectangle (plus halo) are staged in shared
 * memory as fp32; every window value a thread reads from shared memory feeds CX*CY
 * multiply-adds, and consecutive threads write consecutive output columns (when CX = 2 and the
 * output is aligned, each pair as one 8-byte (fp32) or 4-byte (fp16) store), so stores are
 * coalesced.
 *
 * Generic path (any other k or scale): one output pixel per thread, its kernel in shared
 * memory (k*k floats per thread), windows read through the read-only cache.
 *
 * All element offsets are int64; blocks loop over (n, group, channel split) work items so the
 * grid's y dimension never exceeds its limit. No allocation, no synchronisation with the host.
 */
#ifndef DLU_REASSEMBLY_CUDA_CUH
#define DLU_REASSEMBLY_CUDA_CUH

#include "cuda_common.cuh"
#include "reassembly_math.h"

namespace dlu_kernels {
namespace cuda {

constexpr int kBlockX = 32;
constexpr int kBlockY = 8;
constexpr int kChunk = 8;                // channels staged in shared memory per step
constexpr int kGenericKappaFloats = 10240;  // shared-memory budget of the generic path (40 KiB)

struct ReassemblyGeometry {
    int64_t n, c, h, w;
    int k, group, scale;
    int64_t tiles_x;             // output tiles along the width
    int64_t splits;              // channel splits per group
    int64_t channels_per_block;  // channels of one work item
    int64_t work_items;          // n * group * splits
};

struct WorkItem {
    int64_t n, g, c_begin, c_end;
};

__device__ __forceinline__ WorkItem work_item(const ReassemblyGeometry& geo, int64_t work)
{
    const int64_t split = work % geo.splits, ng = work / geo.splits;
    const int64_t g = ng % geo.group, cpg = geo.c / geo.group;
    const int64_t begin = g * cpg + split * geo.channels_per_block;
    const int64_t end = begin + geo.channels_per_block < (g + 1) * cpg ? begin + geo.channels_per_block : (g + 1) * cpg;
    return WorkItem{ng / geo.group, g, begin, end};
}

template <typename T, int K, int CX, int CY, int MinBlocks, bool Aligned, class Source>
__global__ void __launch_bounds__(kBlockX * kBlockY, MinBlocks)
    reassemble_fast(ReassemblyGeometry geo, const T* __restrict__ x, T* __restrict__ out, Source src)
{
    constexpr int R = (K - 1) / 2, KK = K * K, kThreads = kBlockX * kBlockY;
    constexpr int kTileW = kBlockX * CX, kTileH = kBlockY * CY;
    // A tile spans at most kBlockX + 1 parents per row (scale >= CX), plus the window halo.
    constexpr int kMaxW = kBlockX + 1 + 2 * R, kMaxH = kBlockY + 1 + 2 * R;
    constexpr int kWindowFloats = kChunk * kMaxH * kMaxW;
    // Kernels are computed into this buffer in slices of kStage taps per thread, then moved to
    // registers: computing them in an unrolled loop would keep hundreds of loads in flight
    // and raise register pressure far above what the reassembly loop needs.
    constexpr int kStage = kWindowFloats / kThreads < KK ? kWindowFloats / kThreads : KK;
    static_assert(kStage >= 1, "staging slice");
    __shared__ float shared[kWindowFloats];
    auto window = reinterpret_cast<float(*)[kMaxH][kMaxW]>(shared);

    const int s = geo.scale;
    const int64_t out_h = geo.h * s, out_w = geo.w * s;
    const int64_t tile_ox = static_cast<int64_t>(blockIdx.x % geo.tiles_x) * kTileW;
    const int64_t tile_oy = static_cast<int64_t>(blockIdx.x / geo.tiles_x) * kTileH;
    const int64_t px0 = tile_ox / s, py0 = tile_oy / s;
    const int64_t px_last = min(geo.w - 1, (tile_ox + kTileW - 1) / s);
    const int64_t py_last = min(geo.h - 1, (tile_oy + kTileH - 1) / s);
    const int tw = static_cast<int>(px_last - px0) + 1 + 2 * R;
    const int th = static_cast<int>(py_last - py0) + 1 + 2 * R;

    const int tid = threadIdx.y * kBlockX + threadIdx.x;
    const int64_t ox = tile_ox + threadIdx.x * CX, oy = tile_oy + threadIdx.y * CY;
    // CX and CY divide the scale, so all children of a thread share one parent.
    const bool active = ox < out_w && oy < out_h;
    const int64_t px = ox / s, py = oy / s;
    const int lx = static_cast<int>(px - px0), ly = static_cast<int>(py - py0);

    for (int64_t work = blockIdx.y; work < geo.work_items; work += gridDim.y) {
        const WorkItem item = work_item(geo, work);
        float kappa[CY][CX][KK];
        __syncthreads();  // the shared buffer is free (previous work item done)
        if (active) {
#pragma unroll
            for (int cy = 0; cy < CY; ++cy) {
#pragma unroll
                for (int cx = 0; cx < CX; ++cx) {
                    const auto child = src.child(item.n, item.g, px, py, oy + cy, ox + cx);
#pragma unroll
                    for (int t0 = 0; t0 < KK; t0 += kStage) {
#pragma unroll 1
                        for (int t = t0; t < t0 + kStage && t < KK; ++t) {
                            shared[(t - t0) * kThreads + tid] = src.tap(item.n, item.g, t, child);
                        }
#pragma unroll
                        for (int i = 0; i < kStage; ++i) {
                            if (t0 + i < KK) kappa[cy][cx][t0 + i] = shared[i * kThreads + tid];
                        }
                    }
                }
            }
        }
        for (int64_t c0 = item.c_begin; c0 < item.c_end; c0 += kChunk) {
            const int nc = static_cast<int>(min(static_cast<int64_t>(kChunk), item.c_end - c0));
            const T* planes = x + (item.n * geo.c + c0) * geo.h * geo.w;
            __syncthreads();  // staging or the previous chunk is done with the buffer
            for (int i = tid; i < nc * th * tw; i += kThreads) {
                const int cc = i / (th * tw), rest = i % (th * tw), row = rest / tw, col = rest % tw;
                const int64_t gy = py0 - R + row, gx = px0 - R + col;
                const bool inside = gy >= 0 && gy < geo.h && gx >= 0 && gx < geo.w;
                window[cc][row][col] = inside ? load(planes + (cc * geo.h + gy) * geo.w + gx) : 0.0f;
            }
            __syncthreads();
            if (!active) continue;
            for (int cc = 0; cc < nc; ++cc) {
                float acc[CY][CX] = {};
#pragma unroll
                for (int ky = 0; ky < K; ++ky) {
#pragma unroll
                    for (int kx = 0; kx < K; ++kx) {
                        const float v = window[cc][ly + ky][lx + kx];
#pragma unroll
                        for (int cy = 0; cy < CY; ++cy) {
#pragma unroll
                            for (int cx = 0; cx < CX; ++cx) {
                                acc[cy][cx] = fmaf(v, kappa[cy][cx][ky * K + kx], acc[cy][cx]);
                            }
                        }
                    }
                }
                T* dst = out + ((item.n * geo.c + c0 + cc) * out_h + oy) * out_w + ox;
#pragma unroll
                for (int cy = 0; cy < CY; ++cy) {
                    if constexpr (CX == 2) {
                        store2<Aligned>(dst + cy * out_w, acc[cy][0], acc[cy][1]);
                    } else {
                        store(dst + cy * out_w, acc[cy][0]);
                    }
                }
            }
        }
    }
}

template <typename T, class Source>
__global__ void __launch_bounds__(kBlockX * kBlockY)
    reassemble_generic(ReassemblyGeometry geo, const T* __restrict__ x, T* __restrict__ out, Source src)
{
    float* const kappa_columns = dynamic_shared_floats();  // [k*k][threads]: each thread owns one column
    const int threads = blockDim.x * blockDim.y, tid = threadIdx.y * blockDim.x + threadIdx.x;
    const int s = geo.scale, k = geo.k;
    const int64_t out_h = geo.h * s, out_w = geo.w * s;
    const int64_t ox = static_cast<int64_t>(blockIdx.x % geo.tiles_x) * blockDim.x + threadIdx.x;
    const int64_t oy = static_cast<int64_t>(blockIdx.x / geo.tiles_x) * blockDim.y + threadIdx.y;
    if (ox >= out_w || oy >= out_h) return;  // this kernel has no barriers
    const int64_t px = ox / s, py = oy / s;
    float* kappa = kappa_columns + tid;

    for (int64_t work = blockIdx.y; work < geo.work_items; work += gridDim.y) {
        const WorkItem item = work_item(geo, work);
        const auto child = src.child(item.n, item.g, px, py, oy, ox);
        for (int t = 0; t < k * k; ++t) kappa[t * threads] = src.tap(item.n, item.g, t, child);
        for (int64_t c = item.c_begin; c < item.c_end; ++c) {
            const T* plane = x + (item.n * geo.c + c) * geo.h * geo.w;
            float acc = 0.0f;
            for (int ky = 0; ky < k; ++ky) {
                const int64_t iy = window_coord(py, ky, k);
                if (iy < 0 || iy >= geo.h) continue;
                for (int kx = 0; kx < k; ++kx) {
                    const int64_t ix = window_coord(px, kx, k);
                    if (ix < 0 || ix >= geo.w) continue;
                    acc = fmaf(load(plane + iy * geo.w + ix), kappa[(ky * k + kx) * threads], acc);
                }
            }
            store(out + ((item.n * geo.c + c) * out_h + oy) * out_w + ox, acc);
        }
    }
}

/* Children per thread of the fast path, by kernel size (register budget: CX*CY*k*k floats). */
template <int K>
struct FastConfig {
    static constexpr int kCX = K <= 5 ? 2 : 1;
    static constexpr int kCY = K <= 3 ? 2 : 1;
    static constexpr int kMinBlocks = 2;
};

/* The fast path's output tile for kernel size K; false when its children would not share a
 * parent at this scale (CX and CY must divide it) or K has no fast instantiation. */
template <int K>
bool fast_tile(int scale, int* tile_w, int* tile_h)
{
    if (scale % FastConfig<K>::kCX != 0 || scale % FastConfig<K>::kCY != 0) return false;
    *tile_w = kBlockX * FastConfig<K>::kCX;
    *tile_h = kBlockY * FastConfig<K>::kCY;
    return true;
}

template <typename T, int K, class Source>
DluStatus launch_fast(const char* op, const ReassemblyGeometry& geo, dim3 grid, cudaStream_t stream, const T* x, T* out,
                      const Source& src, bool aligned)
{
    using Config = FastConfig<K>;
    // Pairs of outputs (CX = 2) start at even columns of rows of even width: the output
    // pointer's alignment decides for all of them. One child per thread stores no pairs.
    if (Config::kCX == 2 && aligned) {
        return launch_kernel(op, &reassemble_fast<T, K, Config::kCX, Config::kCY, Config::kMinBlocks, true, Source>,
                             grid, dim3(kBlockX, kBlockY), 0, stream, geo, x, out, src);
    }
    return launch_kernel(op, &reassemble_fast<T, K, Config::kCX, Config::kCY, Config::kMinBlocks, false, Source>, grid,
                         dim3(kBlockX, kBlockY), 0, stream, geo, x, out, src);
}

template <typename T, class Source>
DluStatus launch_reassembly(const char* op, int64_t n, int64_t c, int64_t h, int64_t w, int k, int group, int scale,
                            const T* x, T* out, const Source& src, void* stream_handle)
{
    int sm_count = 0;
    const DluStatus status = device_sm_count(op, &sm_count);
    if (status != DLU_STATUS_OK) return status;
    const auto stream = static_cast<cudaStream_t>(stream_handle);

    int tile_w = 0, tile_h = 0;
    const bool fast = (k == 3 && fast_tile<3>(scale, &tile_w, &tile_h)) ||
                      (k == 5 && fast_tile<5>(scale, &tile_w, &tile_h)) ||
                      (k == 7 && fast_tile<7>(scale, &tile_w, &tile_h));
    if (!fast) {  // one output pixel per thread, k*k kernel floats per thread in shared memory
        const int rows = kGenericKappaFloats / (k * k * kBlockX);
        tile_w = kBlockX;
        tile_h = rows < 1 ? 1 : (rows > kBlockY ? kBlockY : rows);
    }
    ReassemblyGeometry geo{};
    geo.n = n;
    geo.c = c;
    geo.h = h;
    geo.w = w;
    geo.k = k;
    geo.group = group;
    geo.scale = scale;
    geo.tiles_x = ceil_div(w * scale, tile_w);
    const int64_t tiles = geo.tiles_x * ceil_div(h * scale, tile_h);
    const DluStatus tiles_ok = check_tile_count(op, tiles);
    if (tiles_ok != DLU_STATUS_OK) return tiles_ok;
    const int64_t cpg = c / group;
    geo.channels_per_block = channels_per_block(cpg, tiles * n * group, sm_count, kChunk);
    geo.splits = ceil_div(cpg, geo.channels_per_block);
    geo.work_items = n * group * geo.splits;
    const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(geo.work_items < 65535 ? geo.work_items : 65535));

    if (fast) {
        const bool aligned = reinterpret_cast<uintptr_t>(out) % (2 * sizeof(T)) == 0;
        if (k == 3) return launch_fast<T, 3>(op, geo, grid, stream, x, out, src, aligned);
        if (k == 5) return launch_fast<T, 5>(op, geo, grid, stream, x, out, src, aligned);
        return launch_fast<T, 7>(op, geo, grid, stream, x, out, src, aligned);
    }
    const size_t shared = sizeof(float) * k * k * tile_w * tile_h;
    return launch_kernel(op, &reassemble_generic<T, Source>, grid, dim3(tile_w, tile_h), shared, stream, geo, x, out,
                         src);
}

}  // namespace cuda
}  // namespace dlu_kernels

#endif  // DLU_REASSEMBLY_CUDA_CUH
