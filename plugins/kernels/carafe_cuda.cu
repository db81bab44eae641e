// CARAFE on CUDA (docs/ops.md#carafe): the shared reassembly with each output pixel's kernel
// read from the full-resolution masks (coalesced: neighbouring threads read neighbouring pixels).
#include "reassembly_cuda.cuh"

namespace dlu_kernels {
namespace cuda {
namespace {

template <typename T>
struct CarafeKappa {
    const T* masks;
    int64_t h, w;
    int k, group, scale;

    struct Child {
        int64_t oy, ox;
    };

    __device__ __forceinline__ Child child(int64_t, int64_t, int64_t, int64_t, int64_t oy, int64_t ox) const
    {
        return Child{oy, ox};
    }

    /* kappa[t] of output pixel (oy, ox): its mask value. */
    __device__ __forceinline__ float tap(int64_t n, int64_t g, int t, const Child& at) const
    {
        const int64_t out_h = h * scale, out_w = w * scale;
        return load(masks + ((n * group * k * k + tap_channel(g, k, t)) * out_h + at.oy) * out_w + at.ox);
    }
};

template <typename T>
DluStatus launch(const CarafeParams& p, const void* x, const void* masks, void* out, void* stream)
{
    const CarafeKappa<T> src{static_cast<const T*>(masks), p.h, p.w, p.kernel_size, p.group, p.scale};
    return launch_reassembly("CARAFE", p.n, p.c, p.h, p.w, p.kernel_size, p.group, p.scale, static_cast<const T*>(x),
                             static_cast<T*>(out), src, stream);
}

}  // namespace
}  // namespace cuda

DluStatus carafe_forward_cuda(DluDType dtype, const CarafeParams& p, const void* x, const void* masks, void* out,
                              void* stream)
{
    return dtype == DLU_DTYPE_FLOAT32 ? cuda::launch<float>(p, x, masks, out, stream)
                                      : cuda::launch<__half>(p, x, masks, out, stream);
}

}  // namespace dlu_kernels
