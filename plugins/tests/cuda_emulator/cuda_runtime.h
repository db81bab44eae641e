/*
 * Host-side CUDA emulator: the subset of cuda_runtime.h that plugins/kernels and the CUDA
 * driver test use, so that the unmodified .cu sources compile with the host C++ compiler and
 * their kernels run on the CPU (docs/kernels.md#cuda-emulator). Only for tests: it checks the
 * kernels' index math, tiling, shared-memory staging, barrier placement and launch geometry
 * (with AddressSanitizer and UBSan it stands in for compute-sanitizer memcheck on machines
 * without a GPU). It says nothing about speed, the memory model or real hardware.
 *
 * Model: a launch runs its blocks one after another on the calling thread; the threads of a
 * block are fibers (ucontext) that switch only at __syncthreads(), so a block's shared memory
 * is a function-local `static` array. A barrier reached from different call sites, or by some
 * threads after others have exited, is reported as a failed launch (what synccheck flags).
 */
#ifndef DLU_CUDA_EMULATOR_RUNTIME_H
#define DLU_CUDA_EMULATOR_RUNTIME_H

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <utility>

#include "cuda_fp16.h"

#define DLU_CUDA_EMULATOR 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};
struct alignas(8) float2 {
    float x, y;
};
inline float2 make_float2(float x, float y) { return float2{x, y}; }

/* The built-in variables of the thread the emulator is running. */
extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

void __syncthreads();

template <typename T>
inline T __ldg(const T* p)
{
    return *p;
}

/* Store with the default cache policy; checks the alignment a vector store requires. */
template <typename T>
inline void __stwb(T* p, T v)
{
    if (reinterpret_cast<uintptr_t>(p) % alignof(T) != 0) {
        std::fprintf(stderr, "cuda emulator: misaligned %zu-byte vector store at %p\n", sizeof(T), static_cast<void*>(p));
        std::abort();
    }
    *p = v;
}

/* CUDA's integer min/max overloads (the kernels compare int64 values). */
inline long min(long a, long b) { return a < b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline int min(int a, int b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
using std::fmaf;

enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorLaunchFailure = 719,
};
using cudaError = cudaError_t;

struct CUstream_st;
using cudaStream_t = CUstream_st*;
struct CUevent_st;
using cudaEvent_t = CUevent_st*;  // named by TensorRT's headers; the emulator has no events
constexpr unsigned cudaStreamNonBlocking = 1;

enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 };

struct cudaLaunchConfig_t {
    dim3 gridDim;
    dim3 blockDim;
    size_t dynamicSmemBytes;
    cudaStream_t stream;
    void* attrs;
    unsigned numAttrs;
};

cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorName(cudaError_t error);
const char* cudaGetErrorString(cudaError_t error);
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
cudaError_t cudaMalloc(void** ptr, size_t bytes);
cudaError_t cudaFree(void* ptr);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemset(void* ptr, int value, size_t bytes);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaDeviceSynchronize();

namespace dlu_cuda_emulator {

/* Runs `thread_body` for every thread of every block of the launch (see the model above). */
cudaError_t run_grid(const cudaLaunchConfig_t& config, const std::function<void()>& thread_body);

/* The running launch's dynamic shared memory (what `extern __shared__` names on a GPU). */
void* dynamic_shared_memory();

}  // namespace dlu_cuda_emulator

/* cuda_common.cuh's accessor of dynamic shared memory, which it leaves to the emulator. */
inline float* dynamic_shared_floats() { return static_cast<float*>(dlu_cuda_emulator::dynamic_shared_memory()); }

/* The typed launch API; arguments are converted to the kernel's parameter types once, as the
 * real runtime copies them into the launch's parameter buffer. */
template <typename... Params, typename... Args>
cudaError_t cudaLaunchKernelEx(const cudaLaunchConfig_t* config, void (*kernel)(Params...), Args&&... args)
{
    return [&](Params... copied) {
        return dlu_cuda_emulator::run_grid(*config, [&] { kernel(copied...); });
    }(std::forward<Args>(args)...);
}

#endif  // DLU_CUDA_EMULATOR_RUNTIME_H
