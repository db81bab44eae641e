/*
 * libnvinfer.so.<major> for the tests: what libdlu_trt_plugins_static.so links against in place
 * of TensorRT's runtime library (which these machines do not have). It forwards TensorRT's C
 * entry points to the harness executable, which plays TensorRT (tensorrt_doubles.cpp). Loaded
 * as a dependency of a library opened RTLD_LOCAL, its own definitions are not in the global
 * scope, so the lookups below find the harness's.
 */
#include "NvInferRuntime.h"

#include <cstdint>
#include <dlfcn.h>

namespace
{

template <typename Function> Function harnessFunction(char const* name) noexcept
{
    return reinterpret_cast<Function>(dlsym(RTLD_DEFAULT, name));
}

} // namespace

extern "C" __attribute__((visibility("default"))) nvinfer1::IPluginRegistry* getPluginRegistry() noexcept
{
    auto forward = harnessFunction<nvinfer1::IPluginRegistry* (*)() noexcept>("getPluginRegistry");
    return forward != nullptr && forward != &getPluginRegistry ? forward() : nullptr;
}

extern "C" __attribute__((visibility("default"))) nvinfer1::ILogger* getLogger() noexcept
{
    auto forward = harnessFunction<nvinfer1::ILogger* (*)() noexcept>("getLogger");
    return forward != nullptr && forward != &getLogger ? forward() : nullptr;
}
