/*
 * CUDA helpers shared by the kernels: fp32/fp16 loads and stores (fp16 is storage only, math
 * is fp32), the device query every launcher does, and launch-error reporting.
 */
#ifndef DLU_CUDA_COMMON_CUH
#define DLU_CUDA_COMMON_CUH

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <utility>

#include "internal.h"

namespace dlu_kernels {
namespace cuda {

__device__ __forceinline__ float load(const float* p) { return __ldg(p); }
__device__ __forceinline__ float load(const __half* p) { return __half2float(__ldg(p)); }

__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(__half* p, float v) { *p = __float2half_rn(v); }

/*
 * Two adjacent outputs. Aligned (p is 2*sizeof(T)-aligned): one 8-byte (fp32) or 4-byte (fp16)
 * store. The fp32 pair goes through __stwb (st.global.wb.v2.f32, the default cache policy):
 * a plain float2 assignment was split by the compiler into two st.global.f32 in the reassembly
 * kernels (CUDA 13.0, sm_90), halving the store width. plugins/tests/check_cuda_stores.py reads
 * the SASS of the built kernels so that this cannot come back unnoticed.
 */
template <bool Aligned>
__device__ __forceinline__ void store2(float* p, float a, float b)
{
    if constexpr (Aligned) {
        __stwb(reinterpret_cast<float2*>(p), make_float2(a, b));
    } else {
        p[0] = a;
        p[1] = b;
    }
}
template <bool Aligned>
__device__ __forceinline__ void store2(__half* p, float a, float b)
{
    if constexpr (Aligned) {
        *reinterpret_cast<__half2*>(p) = __floats2half2_rn(a, b);
    } else {
        p[0] = __float2half_rn(a);
        p[1] = __float2half_rn(b);
    }
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

inline DluStatus cuda_failure(const char* op, const char* what, cudaError_t error)
{
    set_last_error(std::string(op) + ": CUDA error in " + what + ": " + cudaGetErrorName(error) + " (" +
                   cudaGetErrorString(error) + ")");
    return DLU_STATUS_CUDA_ERROR;
}

/* Multiprocessor count of the current device (sizes the grid); fails cleanly without a GPU. */
inline DluStatus device_sm_count(const char* op, int* sm_count)
{
    int device = 0;
    cudaError_t error = cudaGetDevice(&device);
    if (error != cudaSuccess) return cuda_failure(op, "cudaGetDevice", error);
    error = cudaDeviceGetAttribute(sm_count, cudaDevAttrMultiProcessorCount, device);
    if (error != cudaSuccess) return cuda_failure(op, "cudaDeviceGetAttribute", error);
    return DLU_STATUS_OK;
}

/*
 * kernel<<<grid, block, shared_bytes, stream>>>(args...) through the typed launch API, which
 * reports the launch's own error (and not one left over from earlier work on the device).
 * Written without <<<>>> so that the host-side emulator (plugins/tests/cuda_emulator) can
 * compile and run these kernels in CI.
 */
template <typename... Params, typename... Args>
DluStatus launch_kernel(const char* op, void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
                        cudaStream_t stream, Args&&... args)
{
    cudaLaunchConfig_t config{};
    config.gridDim = grid;
    config.blockDim = block;
    config.dynamicSmemBytes = shared_bytes;
    config.stream = stream;
    const cudaError_t error = cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
    if (error == cudaSuccess) return DLU_STATUS_OK;
    cudaGetLastError();  // the error is reported here; do not leave it to the caller's next check
    return cuda_failure(op, "the kernel launch", error);
}

#if !defined(DLU_CUDA_EMULATOR)  // the emulator provides its own
/* The block's dynamic shared memory, sized at launch. */
__device__ __forceinline__ float* dynamic_shared_floats()
{
    extern __shared__ float dynamic_shared[];
    return dynamic_shared;
}
#endif

/* Grids put spatial tiles on x (< 2^31) and loop over the remaining work on y. */
inline DluStatus check_tile_count(const char* op, int64_t tiles)
{
    if (tiles > INT32_MAX) {
        set_last_error(std::string(op) + ": the output needs " + std::to_string(tiles) +
                       " thread blocks, more than one launch can have: split the batch or the image");
        return DLU_STATUS_INVALID_ARGUMENT;
    }
    return DLU_STATUS_OK;
}

/*
 * Channel splitting: enough blocks to fill the GPU (about `blocks_per_sm` per SM) while each
 * block keeps as many channels as possible, since per-block setup (kernels, offsets) is
 * amortised over its channels. Returns channels per block, a multiple of `chunk`.
 */
inline int64_t channels_per_block(int64_t channels, int64_t blocks_without_split, int sm_count, int64_t chunk)
{
    const int64_t target = int64_t{4} * sm_count;
    int64_t splits = ceil_div(target, blocks_without_split);
    splits = splits < 1 ? 1 : splits;
    const int64_t max_splits = ceil_div(channels, chunk);
    splits = splits > max_splits ? max_splits : splits;
    return ceil_div(ceil_div(channels, splits), chunk) * chunk;
}

}  // namespace cuda
}  // namespace dlu_kernels

#endif  // DLU_CUDA_COMMON_CUH
