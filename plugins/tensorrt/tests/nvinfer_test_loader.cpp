/*
 * Stand-ins for TensorRT's IPluginRegistry::loadLibrary: open the plugin library (dlopen,
 * setLoggerFinder, getCreators) from code inside a TensorRT runtime library, as the plugin
 * library recognises one:
 *  - libnvinfer_test_loader.so: by its file name (libnvinfer*);
 *  - libruntime_copy_test_loader.so (DEFINE_GET_PLUGIN_REGISTRY): by defining getPluginRegistry,
 *    like the lean runtime TensorRT loads from a temporary file for version-compatible engines.
 */
#include "NvInferRuntime.h"

#include <cstdint>
#include <dlfcn.h>

#if defined(DEFINE_GET_PLUGIN_REGISTRY)
//! Forwards to the test process's registry (the harness executable's, in the global scope; this
//! library is loaded RTLD_LOCAL, so the lookup does not find itself).
extern "C" __attribute__((visibility("default"))) nvinfer1::IPluginRegistry* getPluginRegistry() noexcept
{
    auto forward
        = reinterpret_cast<nvinfer1::IPluginRegistry* (*)() noexcept>(dlsym(RTLD_DEFAULT, "getPluginRegistry"));
    return forward != nullptr ? forward() : nullptr;
}
#endif

extern "C" __attribute__((visibility("default"))) int32_t dlu_test_load_plugins(
    char const* path, nvinfer1::ILoggerFinder* finder, nvinfer1::IPluginCreatorInterface* const** creators)
{
    void* handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr)
    {
        return -1;
    }
    auto setLoggerFinder = reinterpret_cast<void (*)(nvinfer1::ILoggerFinder*)>(dlsym(handle, "setLoggerFinder"));
    auto getCreators
        = reinterpret_cast<nvinfer1::IPluginCreatorInterface* const* (*)(int32_t&)>(dlsym(handle, "getCreators"));
    if (setLoggerFinder == nullptr || getCreators == nullptr)
    {
        return -1;
    }
    setLoggerFinder(finder);
    int32_t count = 0;
    *creators = getCreators(count);
    return count;
}
