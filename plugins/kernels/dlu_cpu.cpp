// DLU on the CPU (docs/ops.md#dlu): per tile, sample every child's kernel from the low-res
// kernel space once, then run the shared reassembly. The full-resolution kernel tensor is
// never formed; only one tile of kernels lives in scratch memory.
#include "dlu_math.h"
#include "internal.h"
#include "reassembly_cpu.h"

namespace dlu_kernels {

template <typename T>
void dlu_forward_cpu(const DluParams& p, const T* x, const T* kernels, const T* offsets, T* out, int num_threads)
{
    const ReassemblyShape shape{p.n, p.c, p.h, p.w, p.kernel_size, p.group, p.scale};
    const int k = p.kernel_size, kk = k * k, s = p.scale, ss = s * s;
    const int64_t h = p.h, w = p.w, hw = h * w, G = p.group;

    auto fill_kappa = [&](int64_t n, int64_t g, int64_t py, int64_t px0, int64_t tw, int64_t tile, float* kappa) {
        const T* space = kernels + (n * G * kk + tap_channel(g, k, 0)) * hw;
        const T* off = offsets + n * G * 2 * ss * hw;
        for (int64_t i = 0; i < tw; ++i) {
            const int64_t px = px0 + i, pixel = py * w + px;
            for (int j = 0; j < ss; ++j) {
                const float u = to_float(off[dlu_offset_channel(g, 0, s, j) * hw + pixel]);
                const float v = to_float(off[dlu_offset_channel(g, 1, s, j) * hw + pixel]);
                const DluSample smp = dlu_sample(u, v, px, py, h, w);
                float* dst = kappa + int64_t{j} * kk * tile + i;
                for (int t = 0; t < kk; ++t) {
                    const T* plane = space + t * hw;
                    dst[t * tile] = dlu_kappa(smp, to_float(plane[smp.i00]), to_float(plane[smp.i01]),
                                              to_float(plane[smp.i10]), to_float(plane[smp.i11]));
                }
            }
        }
    };
    reassemble_cpu(shape, x, out, num_threads, fill_kappa);
}

template void dlu_forward_cpu<float>(const DluParams&, const float*, const float*, const float*, float*, int);
template void dlu_forward_cpu<Half>(const DluParams&, const Half*, const Half*, const Half*, Half*, int);

}  // namespace dlu_kernels
