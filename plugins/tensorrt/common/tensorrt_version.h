/*
 * The TensorRT version of the headers the library is compiled against, for code that names an
 * API younger than the oldest supported headers (TensorRT 10.3, JetPack 6 on Jetson Orin; the
 * tested range is in plugins/tensorrt/CMakeLists.txt).
 */
#ifndef DLU_TRT_TENSORRT_VERSION_H
#define DLU_TRT_TENSORRT_VERSION_H

#include "NvInferVersion.h"

//! True when the headers are TensorRT major.minor or newer.
#define DLU_TRT_AT_LEAST(major, minor)                                                                              \
    (NV_TENSORRT_MAJOR > (major) || (NV_TENSORRT_MAJOR == (major) && NV_TENSORRT_MINOR >= (minor)))

#endif // DLU_TRT_TENSORRT_VERSION_H
