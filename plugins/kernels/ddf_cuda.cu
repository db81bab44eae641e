// DDF on CUDA (docs/ops.md#ddf). One output pixel per thread and up to kChannels channels at a
// time: the spatial filter value of a tap is loaded once and used for all of them, the
// channel filters of the block's channels sit in a small shared array (kChannels*k*k floats,
// at most 7.2 KiB for k = 15), and input pixels come through the read-only cache. Shared
// memory therefore does not grow with the dilation or the image, and no kernel size falls
// off a cliff.
#include "cuda_common.cuh"
#include "ddf_math.h"

namespace dlu_kernels {
namespace cuda {
namespace {

constexpr int kBlockX = 32, kBlockY = 8;
constexpr int kChannels = 8;
constexpr int kMaxTaps = 15 * 15;

struct DdfGeometry {
    int64_t n, c, h, w, ho, wo;
    int k, dilation, stride;
    int64_t tiles_x, splits, channels_per_block, work_items;
};

template <typename T, int Combine>
__global__ void __launch_bounds__(kBlockX * kBlockY)
    ddf_kernel(DdfGeometry geo, const T* __restrict__ x, const T* __restrict__ channel_filter,
               const T* __restrict__ spatial_filter, T* __restrict__ out)
{
    __shared__ float channel_taps[kChannels * kMaxTaps];
    const int k = geo.k, kk = k * k, tid = threadIdx.y * kBlockX + threadIdx.x;
    const int64_t q = static_cast<int64_t>(blockIdx.x % geo.tiles_x) * kBlockX + threadIdx.x;
    const int64_t p = static_cast<int64_t>(blockIdx.x / geo.tiles_x) * kBlockY + threadIdx.y;
    const bool active = q < geo.wo && p < geo.ho;
    const int64_t hw = geo.h * geo.w;

    for (int64_t work = blockIdx.y; work < geo.work_items; work += gridDim.y) {
        const int64_t n = work / geo.splits, c_begin = (work % geo.splits) * geo.channels_per_block;
        const int64_t c_end = min(c_begin + geo.channels_per_block, geo.c);
        for (int64_t c0 = c_begin; c0 < c_end; c0 += kChannels) {
            const int nc = static_cast<int>(min(static_cast<int64_t>(kChannels), c_end - c0));
            __syncthreads();  // the previous channels' filters have been used
            for (int i = tid; i < nc * kk; i += kBlockX * kBlockY) {
                channel_taps[i] = load(channel_filter + (n * geo.c + c0) * kk + i);
            }
            __syncthreads();
            if (!active) continue;
            float acc[kChannels] = {};
            const T* planes = x + (n * geo.c + c0) * hw;
            for (int ky = 0; ky < k; ++ky) {
                const int64_t iy = ddf_input_coord(p, geo.stride, ky, k, geo.dilation);
                if (iy < 0 || iy >= geo.h) continue;
                for (int kx = 0; kx < k; ++kx) {
                    const int64_t ix = ddf_input_coord(q, geo.stride, kx, k, geo.dilation);
                    if (ix < 0 || ix >= geo.w) continue;
                    const int t = ky * k + kx;
                    const float spatial = load(spatial_filter + ((n * kk + t) * geo.ho + p) * geo.wo + q);
                    const T* pixel = planes + iy * geo.w + ix;
#pragma unroll
                    for (int cc = 0; cc < kChannels; ++cc) {
                        if (cc < nc) {
                            const float filter = ddf_filter(channel_taps[cc * kk + t], spatial, Combine);
                            acc[cc] = fmaf(load(pixel + cc * hw), filter, acc[cc]);
                        }
                    }
                }
            }
            T* dst = out + ((n * geo.c + c0) * geo.ho + p) * geo.wo + q;
#pragma unroll
            for (int cc = 0; cc < kChannels; ++cc) {
                if (cc < nc) store(dst + cc * geo.ho * geo.wo, acc[cc]);
            }
        }
    }
}

template <typename T>
DluStatus launch(const DdfParams& p, const void* x, const void* channel_filter, const void* spatial_filter, void* out,
                 void* stream_handle)
{
    int sm_count = 0;
    const DluStatus status = device_sm_count("DDF", &sm_count);
    if (status != DLU_STATUS_OK) return status;
    DdfGeometry geo{};
    geo.n = p.n;
    geo.c = p.c;
    geo.h = p.h;
    geo.w = p.w;
    geo.ho = p.h / p.stride;
    geo.wo = p.w / p.stride;
    geo.k = p.kernel_size;
    geo.dilation = p.dilation;
    geo.stride = p.stride;
    geo.tiles_x = ceil_div(geo.wo, kBlockX);
    const int64_t tiles = geo.tiles_x * ceil_div(geo.ho, kBlockY);
    const DluStatus tiles_ok = check_tile_count("DDF", tiles);
    if (tiles_ok != DLU_STATUS_OK) return tiles_ok;
    geo.channels_per_block = channels_per_block(geo.c, tiles * geo.n, sm_count, kChannels);
    geo.splits = ceil_div(geo.c, geo.channels_per_block);
    geo.work_items = geo.n * geo.splits;
    const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(geo.work_items < 65535 ? geo.work_items : 65535));
    const dim3 block(kBlockX, kBlockY);
    const auto stream = static_cast<cudaStream_t>(stream_handle);
    const auto* xt = static_cast<const T*>(x);
    const auto* cf = static_cast<const T*>(channel_filter);
    const auto* sf = static_cast<const T*>(spatial_filter);
    auto* o = static_cast<T*>(out);
    const auto kernel = p.combine == kDdfMul ? &ddf_kernel<T, kDdfMul> : &ddf_kernel<T, kDdfAdd>;
    return launch_kernel("DDF", kernel, grid, block, 0, stream, geo, xt, cf, sf, o);
}

}  // namespace
}  // namespace cuda

DluStatus ddf_forward_cuda(DluDType dtype, const DdfParams& p, const void* x, const void* channel_filter,
                           const void* spatial_filter, void* out, void* stream)
{
    return dtype == DLU_DTYPE_FLOAT32 ? cuda::launch<float>(p, x, channel_filter, spatial_filter, out, stream)
                                      : cuda::launch<__half>(p, x, channel_filter, spatial_filter, out, stream);
}

}  // namespace dlu_kernels
