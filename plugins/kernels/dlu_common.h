/*
 * Definitions shared by the CPU and CUDA kernels: the host/device function qualifier and
 * IEEE half <-> float conversion on the host (the CUDA side uses cuda_fp16.h intrinsics).
 * Internal to the library; not part of the C ABI.
 */
#ifndef DLU_COMMON_H
#define DLU_COMMON_H

#include <cstdint>
#include <cstring>
#include <cmath>
#include <math.h>

#if defined(__CUDACC__)
#define DLU_HD __host__ __device__ __forceinline__
#else
#define DLU_HD inline
#endif

namespace dlu_kernels {

/* Host storage type of an IEEE binary16 value (bit pattern). */
struct Half {
    uint16_t bits;
};

inline float half_to_float(Half h)
{
    const uint32_t sign = static_cast<uint32_t>(h.bits & 0x8000u) << 16;
    const uint32_t exponent = (h.bits >> 10) & 0x1fu;
    const uint32_t mantissa = h.bits & 0x3ffu;
    uint32_t bits;
    if (exponent == 0) {
        // Zero or subnormal: mantissa * 2^-24, exact in float.
        const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-08f;
        return sign ? -magnitude : magnitude;
    }
    if (exponent == 31) {
        bits = sign | 0x7f800000u | (mantissa << 13);  // inf or NaN (payload kept)
    } else {
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    }
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

/* Round to nearest, ties to even (what __float2half_rn and torch's .half() do). */
inline Half float_to_half(float f)
{
    uint32_t x;
    std::memcpy(&x, &f, sizeof x);
    const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
    const uint32_t magnitude = x & 0x7fffffffu;
    if (magnitude >= 0x7f800000u) {  // inf stays inf, NaN becomes a quiet NaN
        return Half{static_cast<uint16_t>(sign | (magnitude > 0x7f800000u ? 0x7e00u : 0x7c00u))};
    }
    if (magnitude >= 0x477ff000u) {  // >= 65520 rounds to infinity
        return Half{static_cast<uint16_t>(sign | 0x7c00u)};
    }
    if (magnitude < 0x38800000u) {  // below 2^-14: subnormal half (or zero)
        float scaled;
        std::memcpy(&scaled, &magnitude, sizeof scaled);
        // |f| * 2^24 is exact; nearbyint rounds half to even in the default FP environment.
        const auto units = static_cast<uint16_t>(std::nearbyint(scaled * 16777216.0f));
        return Half{static_cast<uint16_t>(sign | units)};
    }
    // Normal: rebias the exponent and round the 13 dropped mantissa bits to nearest even.
    const uint32_t rounded = magnitude + 0xfffu + ((magnitude >> 13) & 1u);
    return Half{static_cast<uint16_t>(sign | ((rounded - 0x38000000u) >> 13))};
}

inline float to_float(float v) { return v; }
inline float to_float(Half v) { return half_to_float(v); }

template <typename T>
inline T from_float(float v);
template <>
inline float from_float<float>(float v) { return v; }
template <>
inline Half from_float<Half>(float v) { return float_to_half(v); }

}  // namespace dlu_kernels

#endif  // DLU_COMMON_H
