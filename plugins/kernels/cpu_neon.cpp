// The NEON CPU kernels (AArch64 Advanced SIMD, fp16 conversions in hardware): 4 floats per
// vector, 32 registers. Jetson and Graviton cores; compiles to nothing on other targets.
#include "cpu_kernels.h"

#if defined(DLU_KERNELS_NEON_ISA)
#include <arm_neon.h>

#include <cstdint>
#include <cstring>

#include "ddf_math.h"
#include "dlu_math.h"
#include "reassembly_math.h"

namespace dlu_kernels {
namespace {

struct Isa {
    static constexpr int kLanes = 4;
    static constexpr int kRegisters = 32;
    using F = float32x4_t;
    static F zero() { return vdupq_n_f32(0.0f); }
    static F set1(float a) { return vdupq_n_f32(a); }
    static F load(const float* p) { return vld1q_f32(p); }
    static void store(float* p, F a) { vst1q_f32(p, a); }
    static void stream(float* p, F a) { vst1q_f32(p, a); }
    static F fma(F a, F b, F c) { return vfmaq_f32(c, a, b); }
    static F mul(F a, F b) { return vmulq_f32(a, b); }
    static F add(F a, F b) { return vaddq_f32(a, b); }
    static float half_to_float(Half h)
    {
        __fp16 v;
        std::memcpy(&v, &h.bits, sizeof v);
        return static_cast<float>(v);
    }
    static Half float_to_half(float f)
    {
        const __fp16 v = static_cast<__fp16>(f);  // round to nearest even (default FPCR)
        Half h;
        std::memcpy(&h.bits, &v, sizeof v);
        return h;
    }
    static F load_half(const Half* p)
    {
        return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(p))));
    }
    static void store_half(Half* p, F a)
    {
        vst1_u16(reinterpret_cast<uint16_t*>(p), vreinterpret_u16_f16(vcvt_f16_f32(a)));
    }
    static void stream_half(Half* p, F a) { store_half(p, a); }
    static void zip(F a, F b, F& lo, F& hi)
    {
        lo = vzip1q_f32(a, b);
        hi = vzip2q_f32(a, b);
    }
    static void unzip(F lo, F hi, F& even, F& odd)
    {
        even = vuzp1q_f32(lo, hi);
        odd = vuzp2q_f32(lo, hi);
    }
    static F keep(F a)
    {
        __asm__("" : "+w"(a));  // see keep() in reassembly_cpu.h
        return a;
    }
    static void fence() {}
};

#include "cpu_kernels_impl.h"

}  // namespace

const CpuKernelTable kCpuKernelsNeon = make_cpu_kernel_table<Isa>(DLU_CPU_ISA_NEON);

}  // namespace dlu_kernels

#endif  // DLU_KERNELS_NEON_ISA
