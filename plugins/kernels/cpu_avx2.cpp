// The AVX2 CPU kernels (with FMA and F16C): 8 floats per vector, 16 registers. Picked at run
// time on x86-64 CPUs that have them (cpu_isa.cpp); compiles to nothing on other targets.
#include "cpu_kernels.h"

#if defined(DLU_KERNELS_X86_ISAS)
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "ddf_math.h"
#include "dlu_math.h"
#include "reassembly_math.h"

// Every function defined from here on is compiled for this instruction set; nothing included
// above is (standard and project headers come first), so only this file's own code, all in an
// anonymous namespace, can contain these instructions.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

namespace dlu_kernels {
namespace {

struct Isa {
    static constexpr int kLanes = 8;
    static constexpr int kRegisters = 16;
    using F = __m256;
    static F zero() { return _mm256_setzero_ps(); }
    static F set1(float a) { return _mm256_set1_ps(a); }
    static F load(const float* p) { return _mm256_loadu_ps(p); }
    static void store(float* p, F a) { _mm256_storeu_ps(p, a); }
    static void stream(float* p, F a) { _mm256_stream_ps(p, a); }
    static F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
    static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
    static F add(F a, F b) { return _mm256_add_ps(a, b); }
    static float half_to_float(Half h) { return _cvtsh_ss(h.bits); }
    static Half float_to_half(float f) { return Half{static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT))}; }
    static F load_half(const Half* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
    static void store_half(Half* p, F a)
    {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(a, _MM_FROUND_TO_NEAREST_INT));
    }
    static void stream_half(Half* p, F a)
    {
        _mm_stream_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(a, _MM_FROUND_TO_NEAREST_INT));
    }
    static void zip(F a, F b, F& lo, F& hi)
    {
        const F l = _mm256_unpacklo_ps(a, b), h = _mm256_unpackhi_ps(a, b);  // a0 b0 a1 b1 | a4 b4 a5 b5, ...
        lo = _mm256_permute2f128_ps(l, h, 0x20);
        hi = _mm256_permute2f128_ps(l, h, 0x31);
    }
    static void unzip(F lo, F hi, F& even, F& odd)
    {
        // x0 x2 x8 x10 | x4 x6 x12 x14, then the 64-bit lanes reordered 0 2 1 3.
        even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0x88)), 0xd8));
        odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0xdd)), 0xd8));
    }
    static F keep(F a)
    {
        __asm__("" : "+v"(a));  // see keep() in reassembly_cpu.h
        return a;
    }
    static void fence() { _mm_sfence(); }
};

#include "cpu_kernels_impl.h"

}  // namespace

const CpuKernelTable kCpuKernelsAvx2 = make_cpu_kernel_table<Isa>(DLU_CPU_ISA_AVX2);

}  // namespace dlu_kernels

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif  // DLU_KERNELS_X86_ISAS
