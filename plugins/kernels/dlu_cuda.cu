// Fused DLU on CUDA (docs/ops.md#dlu): each thread samples its children's kernels from the
// low-res kernel space (bilinear, border clamp) into registers (fast path) or shared memory
// (generic path) and reassembles directly; the full-resolution kernel tensor is never written.
#include "dlu_math.h"
#include "reassembly_cuda.cuh"

namespace dlu_kernels {
namespace cuda {
namespace {

template <typename T>
struct DluKappa {
    const T* kernels;
    const T* offsets;
    int64_t h, w;
    int k, group, scale;

    /* Where child (oy, ox) of parent (py, px) reads the kernel space of group g. */
    __device__ __forceinline__ DluSample child(int64_t n, int64_t g, int64_t px, int64_t py, int64_t oy,
                                               int64_t ox) const
    {
        const int64_t hw = h * w;
        const int s = scale, j = static_cast<int>(oy % s) * s + static_cast<int>(ox % s);
        const T* off = offsets + n * group * 2 * s * s * hw + py * w + px;
        const float u = load(off + dlu_offset_channel(g, 0, s, j) * hw);
        const float v = load(off + dlu_offset_channel(g, 1, s, j) * hw);
        return dlu_sample(u, v, px, py, h, w);
    }

    /* kappa[t] of that child. */
    __device__ __forceinline__ float tap(int64_t n, int64_t g, int t, const DluSample& smp) const
    {
        const T* plane = kernels + (n * group * k * k + tap_channel(g, k, t)) * h * w;
        return dlu_kappa(smp, load(plane + smp.i00), load(plane + smp.i01), load(plane + smp.i10),
                         load(plane + smp.i11));
    }
};

template <typename T>
DluStatus launch(const DluParams& p, const void* x, const void* kernels, const void* offsets, void* out, void* stream)
{
    const DluKappa<T> src{static_cast<const T*>(kernels), static_cast<const T*>(offsets), p.h, p.w, p.kernel_size,
                          p.group, p.scale};
    return launch_reassembly("DLU", p.n, p.c, p.h, p.w, p.kernel_size, p.group, p.scale, static_cast<const T*>(x),
                             static_cast<T*>(out), src, stream);
}

}  // namespace
}  // namespace cuda

DluStatus dlu_forward_cuda(DluDType dtype, const DluParams& p, const void* x, const void* kernels, const void* offsets,
                           void* out, void* stream)
{
    return dtype == DLU_DTYPE_FLOAT32 ? cuda::launch<float>(p, x, kernels, offsets, out, stream)
                                      : cuda::launch<__half>(p, x, kernels, offsets, out, stream);
}

}  // namespace dlu_kernels
