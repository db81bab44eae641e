/*
 * TensorRT's C entry points, found in the running process instead of linked.
 *
 * The plugin library does not link libnvinfer: TensorRT's loadLibrary path needs no link, and a
 * library without a fixed dependency loads next to any TensorRT of the major version it was
 * compiled for (tar, deb, pip wheel, JetPack). initLibDluTrtPlugins() needs
 * `getPluginRegistry()`; it is looked up
 *  1. in the global symbol scope (applications linked against libnvinfer, e.g. trtexec);
 *  2. in an already loaded libnvinfer that is not in the global scope (Python's `tensorrt`
 *     loads it with RTLD_LOCAL): dlopen(<soname>, RTLD_NOLOAD), which never loads a copy;
 *  3. only by loadTensorRt(): by loading libnvinfer.so.<major> through the normal library search
 *     path, which is what the DT_NEEDED entry of a linked plugin library would do (a ctypes user
 *     may call initLibDluTrtPlugins before importing tensorrt).
 * Symbols from the global scope are used only when they come from the same object as
 * `getPluginRegistry`, so an unrelated `getLogger` elsewhere in the process is never picked.
 */
#ifndef DLU_TRT_TENSORRT_RUNTIME_H
#define DLU_TRT_TENSORRT_RUNTIME_H

#include "NvInferRuntime.h"

#include <cstdint>

namespace dlu_trt
{

struct TensorRtRuntime
{
    nvinfer1::IPluginRegistry* (*getPluginRegistry)() noexcept {nullptr};
    nvinfer1::ILogger* (*getLogger)() noexcept {nullptr};
    int32_t (*getInferLibMajorVersion)() noexcept {nullptr};
};

//! The TensorRT runtime already loaded in this process; all members null when there is none.
//! Looks again on every call until one is found, then keeps it.
TensorRtRuntime findLoadedTensorRt() noexcept;

//! findLoadedTensorRt(), else libnvinfer.so.<major> loaded from the library search path (kept
//! loaded for the life of the process); all members null when neither works.
TensorRtRuntime loadTensorRt() noexcept;

} // namespace dlu_trt

#endif // DLU_TRT_TENSORRT_RUNTIME_H
