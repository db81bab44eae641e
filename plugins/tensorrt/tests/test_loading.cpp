/*
 * The two ways TensorRT meets the library, each checked in a fresh process (a library's
 * initialisers run once per process):
 *  - dlopen from an application (trtexec --staticPlugins, ctypes): the library registers its
 *    creators with the process's getPluginRegistry() — here the harness's test registry;
 *  - dlopen from inside a libnvinfer* library (IPluginRegistry::loadLibrary): it must not, as
 *    TensorRT then registers what getCreators() returns and refuses duplicates.
 */
#include "harness.h"
#include "suites.h"
#include "tensorrt_doubles.h"

#include "NvInferVersion.h"

#include <dlfcn.h>
#include <set>

namespace harness
{
namespace
{

using Severity = nvinfer1::ILogger::Severity;
using LoadThroughTensorRt
    = int32_t (*)(char const*, nvinfer1::ILoggerFinder*, nvinfer1::IPluginCreatorInterface* const**);

struct Loaded
{
    std::vector<nvinfer1::IPluginCreatorInterface*> creators;
    PluginLibrary library;
};

CapturingLogger& finderLogger()
{
    static CapturingLogger logger;
    return logger;
}

Loaded load(std::string const& path, std::string const& loader)
{
    Loaded loaded;
    static TestLoggerFinder finder(finderLogger());
    nvinfer1::IPluginCreatorInterface* const* creators = nullptr;
    int32_t count = 0;
    if (loader == "dlopen")
    {
        loaded.library = openPluginLibrary(path);
        loaded.library.setLoggerFinder(&finder);
        creators = loaded.library.getCreators(count);
    }
    else
    {
        void* handle = dlopen(loader.c_str(), RTLD_NOW | RTLD_LOCAL);
        EXPECT(handle != nullptr, "open " + loader);
        auto loadThroughTensorRt = reinterpret_cast<LoadThroughTensorRt>(dlsym(handle, "dlu_test_load_plugins"));
        EXPECT(loadThroughTensorRt != nullptr, "dlu_test_load_plugins in " + loader);
        count = loadThroughTensorRt(path.c_str(), &finder, &creators);
        // The library is loaded now; opening it again only looks its functions up.
        loaded.library = openPluginLibrary(path);
    }
    for (int32_t i = 0; i < count; ++i)
    {
        loaded.creators.push_back(creators[i]);
    }
    return loaded;
}

std::set<std::string> const kAllPlugins = {"DLU/1/", "CARAFE/1/", "MMCVCARAFE/1/", "DDF/1/"};

} // namespace

int runLoadingSuite(std::string const& libraryPath, std::string const& loader, std::string const& expectation)
{
    static std::string path;
    static std::string loaderName;
    static std::string expected;
    static Loaded loaded;
    path = libraryPath;
    loaderName = loader;
    expected = expectation;
    return runTests(("loading/" + loader.substr(loader.rfind('/') + 1) + "/" + expectation).c_str(),
        {
            {"library_loads_and_lists_four_creators",
                [] {
                    loaded = load(path, loaderName);
                    EXPECT(loaded.creators.size() == 4, "getCreators lists 4 creators");
                }},
            {"static_registration_matches_the_loading_path",
                [] {
                    std::vector<std::string> const keys = registeredPlugins();
                    std::set<std::string> const registered(keys.begin(), keys.end());
                    if (expected == "registered")
                    {
                        EXPECT(registered == kAllPlugins && keys.size() == 4,
                            "the four creators are registered once, with empty namespace");
                        int32_t count = 0;
                        nvinfer1::IPluginCreatorInterface* const* all = registry().getAllCreators(&count);
                        std::set<nvinfer1::IPluginCreatorInterface*> const fromRegistry(all, all + count);
                        std::set<nvinfer1::IPluginCreatorInterface*> const fromLibrary(
                            loaded.creators.begin(), loaded.creators.end());
                        EXPECT(fromRegistry == fromLibrary, "the registry holds the creators getCreators returns");
                        EXPECT(!globalLogger().contains(Severity::kWARNING, {""}),
                            "registration logs no warning or error, log:\n" + globalLogger().dump());
                    }
                    else
                    {
                        EXPECT(registered.empty(), "nothing is registered statically");
                    }
                }},
            {"messages_explain_the_outcome",
                [] {
                    std::string const mixed = "already registered its plugins when it was loaded with dlopen";
                    if (expected == "registered")
                    {
                        // Asking for the creators after registering statically means both paths are in use.
                        int32_t count = 0;
                        loaded.library.getCreators(count);
                        EXPECT(finderLogger().contains(Severity::kWARNING, {mixed}),
                            "getCreators warns about using both loading paths, log:\n" + finderLogger().dump());
                    }
                    else if (expected == "version-mismatch")
                    {
                        std::string const built
                            = "built with the headers of TensorRT " + std::to_string(NV_TENSORRT_MAJOR);
                        std::string const runs = "runs TensorRT " + std::to_string(NV_TENSORRT_MAJOR + 1);
                        EXPECT(globalLogger().contains(Severity::kERROR, {built, runs, "-DTENSORRT_INCLUDE_DIR"}),
                            "a version mismatch is an error naming both versions, log:\n" + globalLogger().dump());
                    }
                    else
                    {
                        EXPECT(!finderLogger().contains(Severity::kWARNING, {mixed}),
                            "no warning about both paths, log:\n" + finderLogger().dump());
                        EXPECT(!globalLogger().contains(Severity::kWARNING, {""}),
                            "nothing logged, log:\n" + globalLogger().dump());
                    }
                }},
        });
}

} // namespace harness
