/*
 * Host-side CUDA emulator (see cuda_runtime.h): __half and __half2 on the compiler's IEEE
 * binary16 type, so conversions round to nearest even exactly as the device intrinsics do and
 * share no code with the library's own host conversion (dlu_common.h) that they are compared
 * against.
 */
#ifndef DLU_CUDA_EMULATOR_FP16_H
#define DLU_CUDA_EMULATOR_FP16_H

struct __half {
    _Float16 value;
};
struct alignas(4) __half2 {
    __half x, y;
};

inline float __half2float(__half h) { return static_cast<float>(h.value); }
inline __half __float2half_rn(float f) { return __half{static_cast<_Float16>(f)}; }
inline __half2 __floats2half2_rn(float a, float b) { return __half2{__float2half_rn(a), __float2half_rn(b)}; }

#endif  // DLU_CUDA_EMULATOR_FP16_H
