// DDF on the CPU (docs/ops.md#ddf): threads, scratch memory and the selected instruction set's
// kernel (cpu_kernels_impl.h). Work items: the table's ddf_items (output rows, or bands x
// channel blocks on the stride-1 path).

#include "cpu_kernels.h"
#include "cpu_scratch.h"
#include "internal.h"
#include "large_output.h"
#include "parallel.h"

namespace dlu_kernels {
namespace {

void run(const CpuKernelTable& t, const DdfParams& p, const float* x, const float* channel_filter,
         const float* spatial_filter, float* out, const CpuSpan& span)
{
    t.ddf_f32(p, x, channel_filter, spatial_filter, out, span);
}
void run(const CpuKernelTable& t, const DdfParams& p, const Half* x, const Half* channel_filter,
         const Half* spatial_filter, Half* out, const CpuSpan& span)
{
    t.ddf_f16(p, x, channel_filter, spatial_filter, out, span);
}

}  // namespace

template <typename T>
void ddf_forward_cpu(const DdfParams& p, const T* x, const T* channel_filter, const T* spatial_filter, T* out,
                     int num_threads)
{
    const CpuKernelTable& table = cpu_kernels();
    const size_t scratch = table.ddf_scratch_floats(p);
    const int64_t ho = p.h / p.stride, wo = p.w / p.stride, out_elements = p.n * p.c * ho * wo;
    const bool stream = prepare_large_output(out, out_elements * static_cast<int64_t>(sizeof(T)));
    parallel_for(table.ddf_items(p), num_threads, [&](int64_t begin, int64_t end) {
        const CpuScratch buffer(scratch);
        run(table, p, x, channel_filter, spatial_filter, out, CpuSpan{begin, end, buffer.data(), stream});
    });
}

template void ddf_forward_cpu<float>(const DdfParams&, const float*, const float*, const float*, float*, int);
template void ddf_forward_cpu<Half>(const DdfParams&, const Half*, const Half*, const Half*, Half*, int);

}  // namespace dlu_kernels
