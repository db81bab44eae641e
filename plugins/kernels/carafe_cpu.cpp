// CARAFE on the CPU (docs/ops.md#carafe): threads, scratch memory and the selected instruction
// set's kernel (cpu_kernels_impl.h: the shared reassembly with each child's kernel read from
// the full-resolution masks).

#include "cpu_kernels.h"
#include "cpu_scratch.h"
#include "internal.h"
#include "large_output.h"
#include "parallel.h"

namespace dlu_kernels {
namespace {

void run(const CpuKernelTable& t, const CarafeParams& p, const float* x, const float* masks, float* out,
         const CpuSpan& span)
{
    t.carafe_f32(p, x, masks, out, span);
}
void run(const CpuKernelTable& t, const CarafeParams& p, const Half* x, const Half* masks, Half* out,
         const CpuSpan& span)
{
    t.carafe_f16(p, x, masks, out, span);
}

}  // namespace

template <typename T>
void carafe_forward_cpu(const CarafeParams& p, const T* x, const T* masks, T* out, int num_threads)
{
    const CpuKernelTable& table = cpu_kernels();
    const size_t scratch = table.carafe_scratch_floats(p);
    const int64_t out_elements = p.n * p.c * p.h * p.scale * p.w * p.scale;
    const bool stream = prepare_large_output(out, out_elements * static_cast<int64_t>(sizeof(T)));
    parallel_for(p.n * p.h, num_threads, [&](int64_t begin, int64_t end) {
        const CpuScratch buffer(scratch);
        run(table, p, x, masks, out, CpuSpan{begin, end, buffer.data(), stream});
    });
}

template void carafe_forward_cpu<float>(const CarafeParams&, const float*, const float*, float*, int);
template void carafe_forward_cpu<Half>(const CarafeParams&, const Half*, const Half*, Half*, int);

}  // namespace dlu_kernels
