/*
 * The library's entry points (library/dlu_trt_plugins.h). Loading the library runs no code of
 * its own: TensorRT's loadLibrary asks for the creators, every other loader registers them by
 * calling initLibDluTrtPlugins() explicitly (directly, or through libdlu_trt_plugins_static.so).
 * Nothing depends on who is on the call stack or on the order of library initialisers.
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
#include <mutex>
#include <string>

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
    MmcvCarafePluginCreator mmcvCarafe{kMmcvCarafe};
    MmcvCarafePluginCreator mmcvCarafeNaive{kMmcvCarafeNaive};
    DdfPluginCreator ddf;
    std::array<nvinfer1::IPluginCreatorV3One*, 5> list{&dlu, &carafe, &mmcvCarafe, &mmcvCarafeNaive, &ddf};
    std::array<nvinfer1::IPluginCreatorInterface*, 5> interfaces{&dlu, &carafe, &mmcvCarafe, &mmcvCarafeNaive, &ddf};
};

// Registries keep pointers to the creators for the rest of the process, so they are never
// destroyed (and the library is linked with -z nodelete, so dlclose never unmaps them).
Creators& creators()
{
    static Creators* const instance = new Creators();
    return *instance;
}

std::atomic<bool> gRegisteredByInit{false};
std::mutex gInitMutex;
nvinfer1::IPluginRegistry* gRegisteredWith{nullptr}; // guarded by gInitMutex

std::string const kLoadingHelp = " (plugins/README.md#loading-the-plugins)";

//! Messages of one initLibDluTrtPlugins() call: to the caller's logger when it gave one.
class InitMessages
{
public:
    explicit InitMessages(nvinfer1::ILogger* logger) noexcept
        : mLogger(logger)
    {
    }

    void send(Severity severity, std::string const& message) const noexcept
    {
        std::string const text = "initLibDluTrtPlugins: " + message;
        if (mLogger == nullptr)
        {
            log(severity, text);
            return;
        }
        try
        {
            mLogger->log(severity, text.c_str());
        }
        catch (...)
        {
            log(severity, text);
        }
    }

private:
    nvinfer1::ILogger* mLogger;
};

bool registerAll(InitMessages const& messages, char const* libNamespace)
{
    if (libNamespace != nullptr && libNamespace[0] != '\0')
    {
        messages.send(Severity::kERROR,
            std::string("namespace \"") + libNamespace
                + "\" is not supported: the plugins are registered in the empty namespace, where TensorRT's ONNX "
                  "parser looks them up. Pass \"\" (or nullptr).");
        return false;
    }
    TensorRtRuntime const tensorRt = loadTensorRt();
    if (tensorRt.getPluginRegistry == nullptr)
    {
        messages.send(Severity::kERROR,
            "no TensorRT runtime is loaded in this process and libnvinfer.so." + std::to_string(NV_TENSORRT_MAJOR)
                + " is not on the library search path, so the plugins DLU, CARAFE, MMCVCARAFE, MMCVCARAFENaive and DDF "
                  "were not registered. Load TensorRT first (in Python: import tensorrt first), add TensorRT's library "
                  "directory to LD_LIBRARY_PATH (pip installs: the tensorrt_libs package directory), or load the "
                  "library with IPluginRegistry::loadLibrary / trtexec --dynamicPlugins"
                + kLoadingHelp + ".");
        return false;
    }
    if (tensorRt.getInferLibMajorVersion != nullptr && tensorRt.getInferLibMajorVersion() != NV_TENSORRT_MAJOR)
    {
        messages.send(Severity::kERROR,
            "libdlu_trt_plugins was built with the headers of TensorRT " + std::to_string(NV_TENSORRT_MAJOR)
                + " but this process runs TensorRT " + std::to_string(tensorRt.getInferLibMajorVersion())
                + "; the plugins were not registered. Rebuild with -DTENSORRT_INCLUDE_DIR=<include dir of the "
                  "TensorRT you run>.");
        return false;
    }
    nvinfer1::IPluginRegistry* registry = tensorRt.getPluginRegistry();
    if (registry == nullptr)
    {
        messages.send(Severity::kERROR, "getPluginRegistry() returned no registry; the plugins were not registered.");
        return false;
    }
    if (registry == gRegisteredWith)
    {
        return true; // an earlier call registered them
    }
    bool all = true;
    for (nvinfer1::IPluginCreatorV3One* creator : creators().list)
    {
        char const* name = creator->getPluginName();
        char const* version = creator->getPluginVersion();
        // Registering first: TensorRT's registry logs an error when getCreator finds nothing.
        if (!registry->registerCreator(*creator, "") && registry->getCreator(name, version, "") != creator)
        {
            messages.send(Severity::kERROR,
                std::string("plugin ") + name + " version " + version
                    + " is registered already by another library (or by loading this library a second way); "
                      "kept the existing one. Load the library one way per process"
                    + kLoadingHelp + ".");
            all = false;
        }
    }
    gRegisteredByInit = true;
    if (all)
    {
        gRegisteredWith = registry;
    }
    return all;
}

} // namespace
} // namespace dlu_trt

extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    using namespace dlu_trt;
    if (gRegisteredByInit)
    {
        log(Severity::kWARNING,
            "libdlu_trt_plugins: initLibDluTrtPlugins() (called by the application, the Python helper or "
            "libdlu_trt_plugins_static.so) registered the plugins already; TensorRT's loadLibrary will report them as "
            "registered. Load the library one way per process"
                + kLoadingHelp + ".");
    }
    auto& list = creators().interfaces;
    nbCreators = static_cast<int32_t>(list.size());
    return list.data();
}

extern "C" void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
{
    dlu_trt::setLoggerFinder(finder);
}

extern "C" bool initLibDluTrtPlugins(void* logger, char const* libNamespace)
{
    using namespace dlu_trt;
    InitMessages const messages(static_cast<nvinfer1::ILogger*>(logger));
    try
    {
        std::lock_guard<std::mutex> lock(gInitMutex);
        return registerAll(messages, libNamespace);
    }
    catch (std::exception const& error)
    {
        messages.send(Severity::kERROR, error.what());
    }
    catch (...)
    {
        messages.send(Severity::kERROR, "unknown exception");
    }
    return false;
}

#define DLU_TRT_STRINGIFY_(x) #x
#define DLU_TRT_STRINGIFY(x) DLU_TRT_STRINGIFY_(x)

extern "C" char const* dlu_trt_plugins_version()
{
    return DLU_TRT_PLUGINS_LIBRARY_VERSION " (TensorRT " DLU_TRT_STRINGIFY(NV_TENSORRT_MAJOR) "." DLU_TRT_STRINGIFY(
        NV_TENSORRT_MINOR) "." DLU_TRT_STRINGIFY(NV_TENSORRT_PATCH) " headers)";
}
