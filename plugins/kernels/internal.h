/*
 * Internal interface between the C ABI glue (c_api.cpp), the parameter checks and the
 * per-op CPU/CUDA implementations. Parameters reaching the *_forward_* functions are
 * already validated.
 */
#ifndef DLU_INTERNAL_H
#define DLU_INTERNAL_H

#include <string>

#include "dlu_common.h"
#include "dlu_kernels.h"

namespace dlu_kernels {

/* Records why the current call failed (thread-local; read by dlu_kernels_last_error). */
void set_last_error(const std::string& message);
void clear_last_error();

/* Validation of the parameter structs (docs/ops.md limits + 64-bit element counts). */
DluStatus check_dlu(const DluParams* p);
DluStatus check_carafe(const CarafeParams* p);
DluStatus check_ddf(const DdfParams* p);

/* CPU kernels, fp32 (float) and fp16 (Half) storage. */
template <typename T>
void dlu_forward_cpu(const DluParams& p, const T* x, const T* kernels, const T* offsets, T* out, int num_threads);
template <typename T>
void carafe_forward_cpu(const CarafeParams& p, const T* x, const T* masks, T* out, int num_threads);
template <typename T>
void ddf_forward_cpu(const DdfParams& p, const T* x, const T* channel_filter, const T* spatial_filter, T* out,
                     int num_threads);

#if defined(DLU_KERNELS_WITH_CUDA)
/* CUDA launchers: enqueue on `stream`; return DLU_STATUS_CUDA_ERROR (message set) on failure. */
DluStatus dlu_forward_cuda(DluDType dtype, const DluParams& p, const void* x, const void* kernels,
                           const void* offsets, void* out, void* stream);
DluStatus carafe_forward_cuda(DluDType dtype, const CarafeParams& p, const void* x, const void* masks, void* out,
                              void* stream);
int cuda_device_count();
DluStatus ddf_forward_cuda(DluDType dtype, const DdfParams& p, const void* x, const void* channel_filter,
                           const void* spatial_filter, void* out, void* stream);
#endif

}  // namespace dlu_kernels

#endif  // DLU_INTERNAL_H
