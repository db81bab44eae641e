// The portable CPU kernels: plain C++ on 4-float arrays (the compiler vectorises what it can
// for the baseline target). Every build has them; they are the reference for the SIMD paths.
#include <cstdint>
#include <cstring>

#include "cpu_kernels.h"
#include "ddf_math.h"
#include "dlu_math.h"
#include "reassembly_math.h"

namespace dlu_kernels {
namespace {

struct Isa {
    static constexpr int kLanes = 4;
    static constexpr int kRegisters = 16;
    struct F {
        float v[kLanes];
    };
    static F zero() { return F{}; }
    static F set1(float a)
    {
        F r;
        for (int i = 0; i < kLanes; ++i) r.v[i] = a;
        return r;
    }
    static F load(const float* p)
    {
        F r;
        std::memcpy(r.v, p, sizeof r.v);
        return r;
    }
    static void store(float* p, F a) { std::memcpy(p, a.v, sizeof a.v); }
    static void stream(float* p, F a) { store(p, a); }
    static F keep(F a) { return a; }
    static F fma(F a, F b, F c)
    {
        for (int i = 0; i < kLanes; ++i) c.v[i] += a.v[i] * b.v[i];
        return c;
    }
    static F mul(F a, F b)
    {
        for (int i = 0; i < kLanes; ++i) a.v[i] *= b.v[i];
        return a;
    }
    static F add(F a, F b)
    {
        for (int i = 0; i < kLanes; ++i) a.v[i] += b.v[i];
        return a;
    }
    static float half_to_float(Half h) { return dlu_kernels::half_to_float(h); }
    static Half float_to_half(float f) { return dlu_kernels::float_to_half(f); }
    static F load_half(const Half* p)
    {
        F r;
        for (int i = 0; i < kLanes; ++i) r.v[i] = half_to_float(p[i]);
        return r;
    }
    static void store_half(Half* p, F a)
    {
        for (int i = 0; i < kLanes; ++i) p[i] = float_to_half(a.v[i]);
    }
    static void stream_half(Half* p, F a) { store_half(p, a); }
    /* lo = a0 b0 a1 b1, hi = a2 b2 a3 b3 */
    static void zip(F a, F b, F& lo, F& hi)
    {
        for (int i = 0; i < kLanes / 2; ++i) {
            lo.v[2 * i] = a.v[i];
            lo.v[2 * i + 1] = b.v[i];
            hi.v[2 * i] = a.v[kLanes / 2 + i];
            hi.v[2 * i + 1] = b.v[kLanes / 2 + i];
        }
    }
    /* even = lo0 lo2 hi0 hi2, odd = lo1 lo3 hi1 hi3 */
    static void unzip(F lo, F hi, F& even, F& odd)
    {
        for (int i = 0; i < kLanes / 2; ++i) {
            even.v[i] = lo.v[2 * i];
            odd.v[i] = lo.v[2 * i + 1];
            even.v[kLanes / 2 + i] = hi.v[2 * i];
            odd.v[kLanes / 2 + i] = hi.v[2 * i + 1];
        }
    }
    static void fence() {}
};

#include "cpu_kernels_impl.h"

}  // namespace

const CpuKernelTable kCpuKernelsPortable = make_cpu_kernel_table<Isa>(DLU_CPU_ISA_PORTABLE);

}  // namespace dlu_kernels
