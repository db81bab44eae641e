/*
 * libdlu_trt_plugins.so: TensorRT IPluginV3 plugins DLU, CARAFE, MMCVCARAFE and DDF (version
 * "1", empty namespace). These three functions are all the library exports.
 *
 * Two ways to make the plugins known to TensorRT (plugins/README.md):
 *  - IPluginRegistry::loadLibrary(path) (trtexec --dynamicPlugins, Python
 *    registry.load_library, engines with the library embedded via --setPluginsToSerialize):
 *    TensorRT calls setLoggerFinder() and getCreators() below.
 *  - dlopen / ctypes.CDLL (trtexec --staticPlugins, Polygraphy --plugins): loading the library
 *    registers the creators with getPluginRegistry() of the TensorRT runtime in the process
 *    (or, when none is loaded yet, of libnvinfer.so.<major> from the library search path).
 *    Set DLU_TRT_PLUGINS_STATIC_REGISTRATION=0 to switch this off.
 * Use one of the two per process: TensorRT's loadLibrary refuses creators that are registered.
 */
#ifndef DLU_TRT_PLUGINS_H
#define DLU_TRT_PLUGINS_H

#include "NvInferRuntime.h"

#include <cstdint>

#define DLU_TRT_EXPORT __attribute__((visibility("default")))

//! The plugin creators, for IPluginRegistry::loadLibrary.
extern "C" DLU_TRT_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);

//! Where the plugins find the logger of the TensorRT object calling them (loadLibrary path).
extern "C" DLU_TRT_EXPORT void setLoggerFinder(nvinfer1::ILoggerFinder* finder);

//! "<library version> (TensorRT <major>.<minor>.<patch> headers)".
extern "C" DLU_TRT_EXPORT char const* dlu_trt_plugins_version();

#endif // DLU_TRT_PLUGINS_H
