// DLU on the CPU (docs/ops.md#dlu): threads, scratch memory and the selected instruction set's
// kernel (cpu_kernels_impl.h). First the low-res kernel space is copied tap-minor in fp32
// (n*group*H*W*dlu_space_taps floats, ~1.3x the kernels input), then per tile every child's
// kernel is sampled from it once and the shared reassembly runs. The full-resolution kernel
// tensor is never formed; only one tile of kernels lives in scratch memory.
#include "cpu_kernels.h"
#include "cpu_scratch.h"
#include "internal.h"
#include "large_output.h"
#include "parallel.h"

namespace dlu_kernels {
namespace {

void tap_minor(const CpuKernelTable& t, const DluParams& p, const float* kernels, float* space, int64_t begin,
               int64_t end)
{
    t.dlu_space_f32(p, kernels, space, begin, end);
}
void tap_minor(const CpuKernelTable& t, const DluParams& p, const Half* kernels, float* space, int64_t begin,
               int64_t end)
{
    t.dlu_space_f16(p, kernels, space, begin, end);
}

void run(const CpuKernelTable& t, const DluParams& p, const float* x, const float* space, const float* offsets,
         float* out, const CpuSpan& span)
{
    t.dlu_f32(p, x, space, offsets, out, span);
}
void run(const CpuKernelTable& t, const DluParams& p, const Half* x, const float* space, const Half* offsets,
         Half* out, const CpuSpan& span)
{
    t.dlu_f16(p, x, space, offsets, out, span);
}

}  // namespace

template <typename T>
void dlu_forward_cpu(const DluParams& p, const T* x, const T* kernels, const T* offsets, T* out, int num_threads)
{
    const CpuKernelTable& table = cpu_kernels();
    const size_t scratch = table.dlu_scratch_floats(p);
    const int64_t out_elements = p.n * p.c * p.h * p.scale * p.w * p.scale;
    const bool stream = prepare_large_output(out, out_elements * static_cast<int64_t>(sizeof(T)));
    // Every element is written by tap_minor.
    const CpuScratch space(static_cast<size_t>(p.n * p.group * p.h * p.w * dlu_space_taps(p.kernel_size)),
                           CpuScratch::Init::uninitialised);
    parallel_for(p.n * p.group * p.h, num_threads,
                 [&](int64_t begin, int64_t end) { tap_minor(table, p, kernels, space.data(), begin, end); });
    parallel_for(p.n * p.h, num_threads, [&](int64_t begin, int64_t end) {
        const CpuScratch buffer(scratch);
        run(table, p, x, space.data(), offsets, out, CpuSpan{begin, end, buffer.data(), stream});
    });
}

template void dlu_forward_cpu<float>(const DluParams&, const float*, const float*, const float*, float*, int);
template void dlu_forward_cpu<Half>(const DluParams&, const Half*, const Half*, const Half*, Half*, int);

}  // namespace dlu_kernels
