// CARAFE on the CPU (docs/ops.md#carafe): the shared reassembly with each child's kernel read
// from the full-resolution masks.
#include "internal.h"
#include "reassembly_cpu.h"

namespace dlu_kernels {

template <typename T>
void carafe_forward_cpu(const CarafeParams& p, const T* x, const T* masks, T* out, int num_threads)
{
    const ReassemblyShape shape{p.n, p.c, p.h, p.w, p.kernel_size, p.group, p.scale};
    const int k = p.kernel_size, kk = k * k, s = p.scale, ss = s * s;
    const int64_t out_h = p.h * s, out_w = p.w * s, G = p.group;

    auto fill_kappa = [&](int64_t n, int64_t g, int64_t py, int64_t px0, int64_t tw, int64_t tile, float* kappa) {
        for (int t = 0; t < kk; ++t) {
            const T* plane = masks + (n * G * kk + tap_channel(g, k, t)) * out_h * out_w;
            for (int j = 0; j < ss; ++j) {
                const int sy = j / s, sx = j % s;
                const T* src = plane + (py * s + sy) * out_w + px0 * s + sx;
                float* dst = kappa + (int64_t{j} * kk + t) * tile;
                for (int64_t i = 0; i < tw; ++i) dst[i] = to_float(src[i * s]);
            }
        }
    };
    reassemble_cpu(shape, x, out, num_threads, fill_kappa);
}

template void carafe_forward_cpu<float>(const CarafeParams&, const float*, const float*, float*, int);
template void carafe_forward_cpu<Half>(const CarafeParams&, const Half*, const Half*, Half*, int);

}  // namespace dlu_kernels
