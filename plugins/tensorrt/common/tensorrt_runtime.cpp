#include "tensorrt_runtime.h"

#include "NvInferVersion.h"

#include <dlfcn.h>
#include <mutex>

namespace dlu_trt
{
namespace
{

#define DLU_TRT_STRINGIFY_(x) #x
#define DLU_TRT_STRINGIFY(x) DLU_TRT_STRINGIFY_(x)

// Sonames of the TensorRT libraries that hold a plugin registry, for the major version the
// headers describe (the registry's virtual table differs between majors).
char const* const kTensorRtSonames[] = {
    "libnvinfer.so." DLU_TRT_STRINGIFY(NV_TENSORRT_MAJOR),
    "libnvinfer_lean.so." DLU_TRT_STRINGIFY(NV_TENSORRT_MAJOR),
};

template <typename Function> Function symbolAs(void* symbol) noexcept
{
    return reinterpret_cast<Function>(symbol);
}

TensorRtRuntime resolve(void* handle) noexcept
{
    TensorRtRuntime api;
    api.getPluginRegistry = symbolAs<decltype(api.getPluginRegistry)>(dlsym(handle, "getPluginRegistry"));
    api.getLogger = symbolAs<decltype(api.getLogger)>(dlsym(handle, "getLogger"));
    api.getInferLibMajorVersion
        = symbolAs<decltype(api.getInferLibMajorVersion)>(dlsym(handle, "getInferLibMajorVersion"));
    return api;
}

bool sameObject(void const* a, void const* b) noexcept
{
    Dl_info infoA{};
    Dl_info infoB{};
    return a != nullptr && b != nullptr && dladdr(a, &infoA) != 0 && dladdr(b, &infoB) != 0
        && infoA.dli_fbase == infoB.dli_fbase;
}

TensorRtRuntime fromGlobalScope() noexcept
{
    TensorRtRuntime api = resolve(RTLD_DEFAULT);
    if (api.getPluginRegistry == nullptr)
    {
        return {};
    }
    auto const registryAddress = reinterpret_cast<void const*>(api.getPluginRegistry);
    if (!sameObject(registryAddress, reinterpret_cast<void const*>(api.getLogger)))
    {
        api.getLogger = nullptr;
    }
    if (!sameObject(registryAddress, reinterpret_cast<void const*>(api.getInferLibMajorVersion)))
    {
        api.getInferLibMajorVersion = nullptr;
    }
    return api;
}

TensorRtRuntime fromLoadedLibrary() noexcept
{
    for (char const* soname : kTensorRtSonames)
    {
        // RTLD_NOLOAD: only a library that is already loaded; never loads one.
        void* handle = dlopen(soname, RTLD_LAZY | RTLD_NOLOAD);
        if (handle == nullptr)
        {
            continue;
        }
        TensorRtRuntime const api = resolve(handle);
        // The process keeps the library loaded; this only drops the reference taken above.
        dlclose(handle);
        if (api.getPluginRegistry != nullptr)
        {
            return api;
        }
    }
    return {};
}

std::mutex gMutex;
TensorRtRuntime gFound;

TensorRtRuntime findLocked() noexcept
{
    if (gFound.getPluginRegistry == nullptr)
    {
        gFound = fromGlobalScope();
        if (gFound.getPluginRegistry == nullptr)
        {
            gFound = fromLoadedLibrary();
        }
        dlerror(); // clear the failed lookups so they do not surface in the application's dlerror()
    }
    return gFound;
}

} // namespace

TensorRtRuntime findLoadedTensorRt() noexcept
{
    std::lock_guard<std::mutex> lock(gMutex);
    return findLocked();
}

TensorRtRuntime loadTensorRt() noexcept
{
    std::lock_guard<std::mutex> lock(gMutex);
    if (findLocked().getPluginRegistry == nullptr)
    {
        // Never closed: the creators registered with it must stay reachable.
        if (void* handle = dlopen(kTensorRtSonames[0], RTLD_LAZY | RTLD_LOCAL))
        {
            gFound = resolve(handle);
        }
        dlerror();
    }
    return gFound;
}

} // namespace dlu_trt
