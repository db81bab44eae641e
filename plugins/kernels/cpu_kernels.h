/*
 * The CPU kernels of one instruction set, as a table of functions (cpu_<isa>.cpp build one
 * each from the same templates), and the run-time choice between them (cpu_isa.cpp).
 *
 * A table function computes the work items [begin, end) of one call (reassembly: low-res rows
 * n*H; DDF: ddf_items(params), output rows or row bands x channel blocks) into `out`, using
 * `scratch` (at least *_scratch_floats(params) floats, owned by the calling thread). Threads
 * and scratch memory are the caller's (dlu_cpu.cpp, carafe_cpu.cpp, ddf_cpu.cpp): the
 * instruction-set translation units instantiate no standard-library templates, so no code
 * compiled for a wider instruction set can be shared with (and run by) another path through
 * the linker's merging of inline code.
 */
#ifndef DLU_CPU_KERNELS_H
#define DLU_CPU_KERNELS_H

#include <cstddef>
#include <cstdint>

#include "dlu_common.h"
#include "dlu_kernels.h"

/* Which instruction-set translation units have code on this target (the others compile empty). */
#if defined(__x86_64__) && defined(__GNUC__)
#define DLU_KERNELS_X86_ISAS 1
#endif
#if defined(__aarch64__)
#define DLU_KERNELS_NEON_ISA 1
#endif

namespace dlu_kernels {

struct CpuSpan {
    int64_t begin, end;  // work items
    float* scratch;
    bool stream;  // non-temporal stores for the output (it is larger than the caches)
};

struct CpuKernelTable {
    DluCpuIsa isa;
    size_t (*dlu_scratch_floats)(const DluParams&);
    // rows [begin, end) of n*group*H of the tap-minor fp32 kernel space (dlu_space_taps)
    void (*dlu_space_f32)(const DluParams&, const float* kernels, float* space, int64_t begin, int64_t end);
    void (*dlu_space_f16)(const DluParams&, const Half* kernels, float* space, int64_t begin, int64_t end);
    // x, that space, offsets, out
    void (*dlu_f32)(const DluParams&, const float*, const float*, const float*, float*, const CpuSpan&);
    void (*dlu_f16)(const DluParams&, const Half*, const float*, const Half*, Half*, const CpuSpan&);
    size_t (*carafe_scratch_floats)(const CarafeParams&);
    void (*carafe_f32)(const CarafeParams&, const float*, const float*, float*, const CpuSpan&);
    void (*carafe_f16)(const CarafeParams&, const Half*, const Half*, Half*, const CpuSpan&);
    size_t (*ddf_scratch_floats)(const DdfParams&);
    int64_t (*ddf_items)(const DdfParams&);
    void (*ddf_f32)(const DdfParams&, const float*, const float*, const float*, float*, const CpuSpan&);
    void (*ddf_f16)(const DdfParams&, const Half*, const Half*, const Half*, Half*, const CpuSpan&);
};

/* Floats per kernel-space pixel in DLU's tap-minor copy of its kernel space: k*k taps padded to
 * whole vectors of every instruction set. */
constexpr int64_t dlu_space_taps(int kernel_size)
{
    return (int64_t{kernel_size} * kernel_size + 15) / 16 * 16;
}

/* One per instruction set compiled into this build (cpu_portable.cpp, cpu_avx2.cpp, ...). */
extern const CpuKernelTable kCpuKernelsPortable;
#if defined(DLU_KERNELS_X86_ISAS)
extern const CpuKernelTable kCpuKernelsAvx2;
extern const CpuKernelTable kCpuKernelsAvx512;
#endif
#if defined(DLU_KERNELS_NEON_ISA)
extern const CpuKernelTable kCpuKernelsNeon;
#endif

bool cpu_isa_supported(DluCpuIsa isa);
const char* cpu_isa_name(DluCpuIsa isa);
/* The selected instruction set; DLU_CPU_ISA_AUTO when DLU_KERNELS_CPU_ISA names a bad one. */
DluCpuIsa selected_cpu_isa();
DluStatus select_cpu_isa(DluCpuIsa isa);
/* DLU_STATUS_OK, or INVALID_ARGUMENT (message set) when no usable instruction set is selected. */
DluStatus check_cpu_isa(const char* op);
/* The table of the selected instruction set (after check_cpu_isa succeeded). */
const CpuKernelTable& cpu_kernels();

}  // namespace dlu_kernels

#endif  // DLU_CPU_KERNELS_H
