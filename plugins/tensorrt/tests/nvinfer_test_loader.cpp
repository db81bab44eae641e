/*
 * libnvinfer_test_loader.so: opens the plugin library the way IPluginRegistry::loadLibrary does
 * (dlopen, setLoggerFinder, getCreators) from code inside a library whose file name starts with
 * "libnvinfer", which is how the plugin library recognises TensorRT's loader.
 */
#include "NvInferRuntime.h"

#include <cstdint>
#include <dlfcn.h>

extern "C" __attribute__((visibility("default"))) int32_t dlu_test_load_plugins(
    char const* path, nvinfer1::ILoggerFinder* finder, nvinfer1::IPluginCreatorInterface* const** creators)
{
    void* handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr)
    {
        return -1;
    }
    auto setLoggerFinder = reinterpret_cast<void (*)(nvinfer1::ILoggerFinder*)>(dlsym(handle, "setLoggerFinder"));
    auto getCreators = reinterpret_cast<nvinfer1::IPluginCreatorInterface* const* (*) (int32_t&)>(
        dlsym(handle, "getCreators"));
    if (setLoggerFinder == nullptr || getCreators == nullptr)
    {
        return -1;
    }
    setLoggerFinder(finder);
    int32_t count = 0;
    *creators = getCreators(count);
    return count;
}
