/*
 * libdlu_trt_plugins.so: TensorRT IPluginV3 plugins DLU, CARAFE, MMCVCARAFE, MMCVCARAFENaive and
 * DDF (version "1", empty namespace). These four functions are all the library exports; loading it runs no
 * registration code (plugins/README.md#loading-the-plugins).
 *
 *  - IPluginRegistry::loadLibrary(path) (trtexec --dynamicPlugins, Python
 *    registry.load_library, engines with the library embedded via --setPluginsToSerialize):
 *    TensorRT calls setLoggerFinder() and getCreators() and registers the creators itself.
 *  - Everything else (ctypes, an application linking or dlopen-ing the library) calls
 *    initLibDluTrtPlugins() once TensorRT is loaded, as TensorRT's own initLibNvInferPlugins().
 *  - Loaders that only dlopen and expect the library to register itself (trtexec
 *    --staticPlugins, Polygraphy --plugins) load libdlu_trt_plugins_static.so instead: it links
 *    libnvinfer and this library and calls initLibDluTrtPlugins() from its initialiser
 *    (REGISTER_TENSORRT_PLUGIN semantics; its dependencies are initialised first).
 * Use one way per process: TensorRT's loadLibrary refuses creators that are registered already.
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

//! Registers the five creators with the plugin registry of the TensorRT runtime in this process
//! (getPluginRegistry() of the process's global scope, else of the loaded libnvinfer.so.<major>,
//! else of libnvinfer.so.<major> loaded from the library search path). Same contract as
//! TensorRT's initLibNvInferPlugins: `logger` (an nvinfer1::ILogger*, may be null) receives the
//! messages, `libNamespace` must be null or "" (the ONNX parser looks plugins up there).
//! Returns true when the five creators are registered (also when this call found them
//! registered by an earlier one); false, with the reason logged, otherwise.
extern "C" DLU_TRT_EXPORT bool initLibDluTrtPlugins(void* logger, char const* libNamespace);

//! "<library version> (TensorRT <major>.<minor>.<patch> headers)".
extern "C" DLU_TRT_EXPORT char const* dlu_trt_plugins_version();

#endif // DLU_TRT_PLUGINS_H
