// The AVX-512 CPU kernels (F, BW, VL, DQ, with F16C conversions): 16 floats per vector, 32
// registers. Picked at run time on x86-64 CPUs that have them (cpu_isa.cpp); compiles to
// nothing on other targets.
#include "cpu_kernels.h"

#if defined(DLU_KERNELS_X86_ISAS)
#include <immintrin.h>

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
// GCC 12's _mm512_cvtph_ps / _mm512_cvtps_ph use _mm512_undefined_*, which -Wmaybe-uninitialized
// flags wrongly (GCC bug 105593, fixed in 13).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <cstdint>
#include <cstring>

#include "ddf_math.h"
#include "dlu_math.h"
#include "reassembly_math.h"

// Every function defined from here on is compiled for this instruction set; nothing included
// above is (standard and project headers come first), so only this file's own code, all in an
// anonymous namespace, can contain these instructions.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")
#endif

namespace dlu_kernels {
namespace {

struct Isa {
    static constexpr int kLanes = 16;
    static constexpr int kRegisters = 32;
    using F = __m512;
    static F zero() { return _mm512_setzero_ps(); }
    static F set1(float a) { return _mm512_set1_ps(a); }
    static F load(const float* p) { return _mm512_loadu_ps(p); }
    static void store(float* p, F a) { _mm512_storeu_ps(p, a); }
    static void stream(float* p, F a) { _mm512_stream_ps(p, a); }
    static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
    static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
    static F add(F a, F b) { return _mm512_add_ps(a, b); }
    static float half_to_float(Half h) { return _cvtsh_ss(h.bits); }
    static Half float_to_half(float f) { return Half{static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT))}; }
    static F load_half(const Half* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
    static void store_half(Half* p, F a)
    {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(p),
                            _mm512_cvtps_ph(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    static void stream_half(Half* p, F a)
    {
        _mm256_stream_si256(reinterpret_cast<__m256i*>(p),
                            _mm512_cvtps_ph(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    static void zip(F a, F b, F& lo, F& hi)
    {
        const __m512i lo_index = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        const __m512i hi_index = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        lo = _mm512_permutex2var_ps(a, lo_index, b);
        hi = _mm512_permutex2var_ps(a, hi_index, b);
    }
    static void unzip(F lo, F hi, F& even, F& odd)
    {
        const __m512i even_index = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        const __m512i odd_index = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        even = _mm512_permutex2var_ps(lo, even_index, hi);
        odd = _mm512_permutex2var_ps(lo, odd_index, hi);
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

const CpuKernelTable kCpuKernelsAvx512 = make_cpu_kernel_table<Isa>(DLU_CPU_ISA_AVX512);

}  // namespace dlu_kernels

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif  // DLU_KERNELS_X86_ISAS
