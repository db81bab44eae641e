/*
 * The library's entry points and its self-registration when loaded with dlopen.
 *
 * The two loading paths must not both register the creators: TensorRT's loadLibrary returns
 * nullptr if any creator it is given is registered already. Loading through loadLibrary is
 * recognised by TensorRT's own code being on the stack of the dlopen that runs this library's
 * initialisers (the registry implementation lives in a TensorRT runtime library, see
 * isTensorRtLibrary); only a dlopen issued from anywhere else (trtexec --staticPlugins, ctypes,
 * an application) registers statically.
 */
#include "dlu_trt_plugins.h"

#include "carafe_plugin.h"
#include "ddf_plugin.h"
#include "dlu_plugin.h"
#include "logging.h"
#include "mmcv_carafe_plugin.h"
#include "tensorrt_runtime.h"

#include "NvInferVersion.h"

#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <string>
#include <unwind.h>

#ifndef DLU_TRT_PLUGINS_LIBRARY_VERSION
#error "DLU_TRT_PLUGINS_LIBRARY_VERSION must be defined by the build"
#endif

namespace dlu_trt
{
namespace
{

using Severity = nvinfer1::ILogger::Severity;

struct Creators
{
    DluPluginCreator dlu;
    CarafePluginCreator carafe;
    MmcvCarafePluginCreator mmcvCarafe;
    DdfPluginCreator ddf;
    std::array<nvinfer1::IPluginCreatorInterface*, 4> list{&dlu, &carafe, &mmcvCarafe, &ddf};
};

// Registries keep pointers to the creators for the rest of the process, so they are never
// destroyed (and the library is linked with -z nodelete, so dlclose never unmaps them).
Creators& creators()
{
    static Creators* const instance = new Creators();
    return *instance;
}

std::atomic<bool> gRegisteredStatically{false};

struct StackSearch
{
    bool foundTensorRt{false};
    int32_t frames{0};
};

constexpr int32_t kMaxFrames = 256;

//! A TensorRT runtime library: named libnvinfer* (libnvinfer, _lean, _dispatch) or defining
//! getPluginRegistry itself (e.g. the lean runtime of a version-compatible engine, which TensorRT
//! loads from a temporary file).
bool isTensorRtLibrary(Dl_info const& info) noexcept
{
    char const* slash = std::strrchr(info.dli_fname, '/');
    char const* file = slash != nullptr ? slash + 1 : info.dli_fname;
    if (std::strncmp(file, "libnvinfer", std::strlen("libnvinfer")) == 0)
    {
        return true;
    }
    // The main program is not found by path this way and is never a TensorRT runtime library.
    void* handle = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (handle == nullptr)
    {
        dlerror();
        return false;
    }
    // dlsym also searches the library's dependencies: count only a definition inside it.
    void* symbol = dlsym(handle, "getPluginRegistry");
    Dl_info definition{};
    bool const defines
        = symbol != nullptr && dladdr(symbol, &definition) != 0 && definition.dli_fbase == info.dli_fbase;
    dlclose(handle);
    dlerror();
    return defines;
}

_Unwind_Reason_Code visitFrame(_Unwind_Context* context, void* argument)
{
    auto& search = *static_cast<StackSearch*>(argument);
    uintptr_t const address = _Unwind_GetIP(context);
    if (address == 0 || ++search.frames > kMaxFrames)
    {
        return _URC_END_OF_STACK;
    }
    Dl_info info{};
    // address - 1: inside the call instruction, so a call at a function's end maps correctly.
    if (dladdr(reinterpret_cast<void*>(address - 1), &info) != 0 && info.dli_fname != nullptr
        && isTensorRtLibrary(info))
    {
        search.foundTensorRt = true;
        return _URC_END_OF_STACK;
    }
    return _URC_NO_REASON;
}

//! True while TensorRT's IPluginRegistry::loadLibrary is loading this library.
bool loadedByTensorRt() noexcept
{
    StackSearch search;
    _Unwind_Backtrace(&visitFrame, &search);
    return search.foundTensorRt;
}

bool staticRegistrationSwitchedOff() noexcept
{
    char const* setting = std::getenv("DLU_TRT_PLUGINS_STATIC_REGISTRATION");
    return setting != nullptr && std::strcmp(setting, "0") == 0;
}

void registerStatically() noexcept
{
    try
    {
        if (staticRegistrationSwitchedOff() || loadedByTensorRt())
        {
            return;
        }
        TensorRtRuntime const tensorRt = loadTensorRt();
        if (tensorRt.getPluginRegistry == nullptr)
        {
            log(Severity::kWARNING,
                "libdlu_trt_plugins: no TensorRT runtime is loaded in this process and libnvinfer.so."
                    + std::to_string(NV_TENSORRT_MAJOR)
                    + " is not on the library search path, so the plugins DLU, CARAFE, MMCVCARAFE and DDF were not "
                      "registered. Load TensorRT before this library (in Python: import tensorrt first), add "
                      "TensorRT's library directory to LD_LIBRARY_PATH (pip installs: the tensorrt_libs package "
                      "directory), or load it with IPluginRegistry::loadLibrary / trtexec --dynamicPlugins.");
            return;
        }
        if (tensorRt.getInferLibMajorVersion != nullptr && tensorRt.getInferLibMajorVersion() != NV_TENSORRT_MAJOR)
        {
            reportError("libdlu_trt_plugins was built with the headers of TensorRT " + std::to_string(NV_TENSORRT_MAJOR)
                + " but this process runs TensorRT " + std::to_string(tensorRt.getInferLibMajorVersion())
                + "; the plugins were not registered. Rebuild with -DTENSORRT_INCLUDE_DIR=<include dir of the "
                  "TensorRT you run>.");
            return;
        }
        nvinfer1::IPluginRegistry* registry = tensorRt.getPluginRegistry();
        if (registry == nullptr)
        {
            reportError("libdlu_trt_plugins: getPluginRegistry() returned no registry; the plugins were not "
                        "registered.");
            return;
        }
        for (nvinfer1::IPluginCreatorInterface* creator : creators().list)
        {
            auto const* v3 = static_cast<nvinfer1::IPluginCreatorV3One const*>(creator);
            if (registry->registerCreator(*creator, ""))
            {
                gRegisteredStatically = true;
            }
            else
            {
                log(Severity::kWARNING,
                    std::string("libdlu_trt_plugins: plugin ") + v3->getPluginName() + " version "
                        + v3->getPluginVersion() + " is registered already; kept the existing one.");
            }
        }
    }
    catch (...)
    {
        reportCurrentException("libdlu_trt_plugins static registration");
    }
}

struct StaticRegistration
{
    StaticRegistration() noexcept
    {
        registerStatically();
    }
};

StaticRegistration const gStaticRegistration;

} // namespace
} // namespace dlu_trt

extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    using namespace dlu_trt;
    if (gRegisteredStatically)
    {
        log(Severity::kWARNING,
            "libdlu_trt_plugins: this library already registered its plugins when it was loaded with dlopen "
            "(e.g. trtexec --staticPlugins or ctypes); TensorRT's loadLibrary will report them as registered. "
            "Load the library one way per process.");
    }
    auto& list = creators().list;
    nbCreators = static_cast<int32_t>(list.size());
    return list.data();
}

extern "C" void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
{
    dlu_trt::setLoggerFinder(finder);
}

#define DLU_TRT_STRINGIFY_(x) #x
#define DLU_TRT_STRINGIFY(x) DLU_TRT_STRINGIFY_(x)

extern "C" char const* dlu_trt_plugins_version()
{
    return DLU_TRT_PLUGINS_LIBRARY_VERSION " (TensorRT " DLU_TRT_STRINGIFY(NV_TENSORRT_MAJOR) "." DLU_TRT_STRINGIFY(
        NV_TENSORRT_MINOR) "." DLU_TRT_STRINGIFY(NV_TENSORRT_PATCH) " headers)";
}
