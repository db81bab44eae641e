/*
 * libdlu_ort_ops: the ONNX Runtime custom ops of dlu_deploy (docs/kernels.md#onnx-runtime).
 *
 * RegisterCustomOps adds the domains `dlu_deploy` (DLU, CARAFE, DDF) and `mmcv` (MMCVCARAFE)
 * to the session options, each op for float32 and float16 on the CPU execution provider and,
 * where the library was built with CUDA, on the CUDA execution provider. ONNX Runtime calls it
 * when an application loads the library:
 *   C:      OrtApi::RegisterCustomOpsLibrary_V2(options, "libdlu_ort_ops.so")
 *   C++:    Ort::SessionOptions::RegisterCustomOpsLibrary("libdlu_ort_ops.so")
 *   Python: onnxruntime.SessionOptions().register_custom_ops_library(path)
 * It needs ONNX Runtime 1.16 or newer (API version 16); older runtimes get an error status.
 */
#ifndef DLU_ORT_OPS_H
#define DLU_ORT_OPS_H

#include "onnxruntime_c_api.h"

#if defined(_WIN32)
#define DLU_ORT_OPS_API __declspec(dllexport)
#else
#define DLU_ORT_OPS_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

DLU_ORT_OPS_API OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api);

/* Library version, e.g. "0.1.0" (the project's version, as dlu_kernels_version()). */
DLU_ORT_OPS_API const char* dlu_ort_ops_version(void);

#ifdef __cplusplus
}
#endif

#endif /* DLU_ORT_OPS_H */
