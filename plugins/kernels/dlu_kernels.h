/*
 * dlu_kernels: C ABI of the DLU, CARAFE and DDF forward kernels (CPU and CUDA).
 *
 * The numerical contract of every function is the matching section of docs/ops.md.
 * Python calls this through ctypes on raw pointers (no dependency on torch's C++ ABI) and the
 * TensorRT plugins link the same kernels, so there is one implementation of each op.
 *
 * Conventions
 *  - All tensors are dense, contiguous NCHW; every tensor of one call has the same dtype.
 *  - Pointers are host memory for *_cpu and device memory for *_cuda.
 *  - *_cuda functions only enqueue work on `stream` (a cudaStream_t; NULL = legacy default
 *    stream), never synchronise and never allocate.
 *  - Every function validates its parameters first and returns DLU_STATUS_INVALID_ARGUMENT
 *    (writing nothing) for shapes or parameters the spec does not allow; the reason is then
 *    available from dlu_kernels_last_error() on the calling thread.
 */
#ifndef DLU_KERNELS_H
#define DLU_KERNELS_H

#include <stdint.h>

#if defined(_WIN32)
#define DLU_KERNELS_API __declspec(dllexport)
#else
#define DLU_KERNELS_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The enums' values travel as 32-bit ints (the C ABI); in C++ they get that fixed underlying
 * type, so that a caller's out-of-range value is a checked error, not undefined behaviour. */
#ifdef __cplusplus
#define DLU_KERNELS_ENUM_INT32 : int32_t
#else
#define DLU_KERNELS_ENUM_INT32
#endif

typedef enum DluDType DLU_KERNELS_ENUM_INT32 {
    DLU_DTYPE_FLOAT32 = 0,
    DLU_DTYPE_FLOAT16 = 1 /* IEEE half storage, fp32 accumulation */
} DluDType;

typedef enum DluStatus DLU_KERNELS_ENUM_INT32 {
    DLU_STATUS_OK = 0,
    DLU_STATUS_INVALID_ARGUMENT = 1,
    DLU_STATUS_CUDA_ERROR = 2,   /* a launch failed; see dlu_kernels_last_error() */
    DLU_STATUS_NOT_COMPILED = 3, /* the library was built without CUDA */
    DLU_STATUS_INTERNAL_ERROR = 4 /* host scratch memory or a CPU worker thread could not be had */
} DluStatus;

/* DLU: x [n,c,h,w], kernels [n, group*k*k, h, w], offsets [n, group*2*scale*scale, h, w]
 *      -> out [n, c, scale*h, scale*w]. */
typedef struct DluParams {
    int64_t n, c, h, w;
    int32_t kernel_size, group, scale;
} DluParams;

/* CARAFE: x [n,c,h,w], masks [n, group*k*k, scale*h, scale*w] -> out [n, c, scale*h, scale*w]. */
typedef struct CarafeParams {
    int64_t n, c, h, w;
    int32_t kernel_size, group, scale;
} CarafeParams;

/* DDF: x [n,c,h,w], channel_filter [n,c,k,k], spatial_filter [n,k*k,h/stride,w/stride]
 *      -> out [n, c, h/stride, w/stride] (floor division). combine: 0 = mul, 1 = add. */
typedef struct DdfParams {
    int64_t n, c, h, w;
    int32_t kernel_size, dilation, stride, combine;
} DdfParams;

/* Parameter checks alone (what every forward does first). */
DLU_KERNELS_API DluStatus dlu_kernels_dlu_check(const DluParams* p);
DLU_KERNELS_API DluStatus dlu_kernels_carafe_check(const CarafeParams* p);
DLU_KERNELS_API DluStatus dlu_kernels_ddf_check(const DdfParams* p);

/* CPU kernels; num_threads <= 0 uses every core the process may run on (its affinity mask). */
DLU_KERNELS_API DluStatus dlu_kernels_dlu_forward_cpu(DluDType dtype, const DluParams* p, const void* x,
                                                      const void* kernels, const void* offsets, void* out,
                                                      int32_t num_threads);
DLU_KERNELS_API DluStatus dlu_kernels_carafe_forward_cpu(DluDType dtype, const CarafeParams* p, const void* x,
                                                         const void* masks, void* out, int32_t num_threads);
DLU_KERNELS_API DluStatus dlu_kernels_ddf_forward_cpu(DluDType dtype, const DdfParams* p, const void* x,
                                                      const void* channel_filter, const void* spatial_filter,
                                                      void* out, int32_t num_threads);

/* CUDA kernels, enqueued on `stream` (cudaStream_t). */
DLU_KERNELS_API DluStatus dlu_kernels_dlu_forward_cuda(DluDType dtype, const DluParams* p, const void* x,
                                                       const void* kernels, const void* offsets, void* out,
                                                       void* stream);
DLU_KERNELS_API DluStatus dlu_kernels_carafe_forward_cuda(DluDType dtype, const CarafeParams* p, const void* x,
                                                          const void* masks, void* out, void* stream);
DLU_KERNELS_API DluStatus dlu_kernels_ddf_forward_cuda(DluDType dtype, const DdfParams* p, const void* x,
                                                       const void* channel_filter, const void* spatial_filter,
                                                       void* out, void* stream);

/* Instruction set of the CPU kernels. Every build has the portable one; x86-64 builds add AVX2
 * (with FMA and F16C) and AVX-512 (F, BW, VL, DQ), aarch64 builds NEON. By default (AUTO) the
 * best one the CPU supports is used; the environment variable DLU_KERNELS_CPU_ISA
 * (auto|portable|avx2|avx512|neon), read at the first CPU call, or dlu_kernels_set_cpu_isa()
 * selects one, e.g. to test or benchmark each path. Results of all paths agree within fp32
 * rounding (docs/ops.md tolerances), not bit for bit. */
typedef enum DluCpuIsa DLU_KERNELS_ENUM_INT32 {
    DLU_CPU_ISA_AUTO = 0,
    DLU_CPU_ISA_PORTABLE = 1,
    DLU_CPU_ISA_AVX2 = 2,
    DLU_CPU_ISA_AVX512 = 3,
    DLU_CPU_ISA_NEON = 4
} DluCpuIsa;

/* Selects the CPU kernels' instruction set for the whole process (AUTO = the best supported).
 * DLU_STATUS_INVALID_ARGUMENT (message set, selection unchanged) for an unknown value or one
 * this build or CPU cannot run. Calls already running finish on the set they started with. */
DLU_KERNELS_API DluStatus dlu_kernels_set_cpu_isa(DluCpuIsa isa);
/* The instruction set the next CPU call uses; AUTO only while DLU_KERNELS_CPU_ISA names one
 * that is unknown or unsupported (CPU calls then fail with DLU_STATUS_INVALID_ARGUMENT). */
DLU_KERNELS_API DluCpuIsa dlu_kernels_cpu_isa(void);
/* 1 when this build and CPU can run `isa` (AUTO: always 1), else 0. */
DLU_KERNELS_API int32_t dlu_kernels_cpu_isa_supported(DluCpuIsa isa);
/* "auto", "portable", "avx2", "avx512", "neon"; "unknown" for other values. */
DLU_KERNELS_API const char* dlu_kernels_cpu_isa_name(DluCpuIsa isa);

/* 1 when the library holds the CUDA kernels, else 0. */
DLU_KERNELS_API int32_t dlu_kernels_has_cuda(void);
/* Number of CUDA devices the kernels can run on: 0 without CUDA support, driver or GPU. */
DLU_KERNELS_API int32_t dlu_kernels_cuda_device_count(void);
/* Why the last call on this thread failed ("" after a success). */
DLU_KERNELS_API const char* dlu_kernels_last_error(void);
/* Library version, e.g. "0.1.0". */
DLU_KERNELS_API const char* dlu_kernels_version(void);

#ifdef __cplusplus
}
#endif

#endif /* DLU_KERNELS_H */
