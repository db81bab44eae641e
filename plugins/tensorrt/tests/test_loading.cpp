/*
 * The ways an application meets the library (plugins/README.md#loading-the-plugins), each in a
 * fresh process so that nothing registered by one path hides another:
 *  - loadlibrary: what IPluginRegistry::loadLibrary does (dlopen, setLoggerFinder, getCreators);
 *    loading registers nothing, TensorRT registers what getCreators() returns;
 *  - init: dlopen, then initLibDluTrtPlugins() (ctypes, the Python helper, an application);
 *  - <path of libdlu_trt_plugins_static.so>: a plain dlopen of the registering library, as
 *    trtexec --staticPlugins and Polygraphy --plugins do.
 * The harness plays TensorRT: it exports getPluginRegistry/getLogger/getInferLibMajorVersion.
 */
#include "harness.h"
#include "suites.h"
#include "tensorrt_doubles.h"

#include "NvInferVersion.h"

#include <cstdio>
#include <cstdlib>
#include <dlfcn.h>
#include <fstream>
#include <set>
#include <unistd.h>

namespace harness
{
namespace
{

using Severity = nvinfer1::ILogger::Severity;

CapturingLogger& finderLogger()
{
    static CapturingLogger logger;
    return logger;
}

CapturingLogger& initLogger()
{
    static CapturingLogger logger;
    return logger;
}

std::set<std::string> const kAllPlugins = {"DLU/1/", "CARAFE/1/", "MMCVCARAFE/1/", "MMCVCARAFENaive/1/", "DDF/1/"};

struct State
{
    std::string path;
    std::string loader;
    std::string expected;
    PluginLibrary library;
    std::vector<nvinfer1::IPluginCreatorInterface*> creators;
};

State& state()
{
    static State instance;
    return instance;
}

std::set<std::string> registeredSet()
{
    std::vector<std::string> const keys = registeredPlugins();
    return {keys.begin(), keys.end()};
}

//! The registry holds exactly the creators getCreators() returns, each once.
void expectRegisteredAreTheLibrarys()
{
    std::vector<std::string> const keys = registeredPlugins();
    EXPECT(registeredSet() == kAllPlugins && keys.size() == kAllPlugins.size(),
        "the five creators are registered once, with empty namespace");
    int32_t count = 0;
    nvinfer1::IPluginCreatorInterface* const* all = registry().getAllCreators(&count);
    std::set<nvinfer1::IPluginCreatorInterface*> const fromRegistry(all, all + count);
    std::set<nvinfer1::IPluginCreatorInterface*> const fromLibrary(state().creators.begin(), state().creators.end());
    EXPECT(fromRegistry == fromLibrary, "the registry holds the creators getCreators returns");
}

//! A copy of the file at `path` under a new name in the temporary directory.
std::string copyOfLibrary(std::string const& path)
{
    char name[] = "/tmp/dlu_trt_plugins_copy_XXXXXX";
    int const fd = mkstemp(name);
    EXPECT(fd >= 0, "create a temporary file");
    close(fd);
    std::ifstream in(path, std::ios::binary);
    std::ofstream out(name, std::ios::binary);
    out << in.rdbuf();
    EXPECT(static_cast<bool>(out), std::string("copy the library to ") + name);
    return name;
}

void expectNothingLogged()
{
    EXPECT(!globalLogger().contains(Severity::kWARNING, {""}), "nothing logged, log:\n" + globalLogger().dump());
    EXPECT(!initLogger().contains(Severity::kWARNING, {""}), "nothing logged, log:\n" + initLogger().dump());
    EXPECT(!finderLogger().contains(Severity::kWARNING, {""}), "nothing logged, log:\n" + finderLogger().dump());
}

void openAndList()
{
    State& s = state();
    static TestLoggerFinder finder(finderLogger());
    bool const viaStaticLibrary = s.loader != "loadlibrary" && s.loader != "init";
    if (viaStaticLibrary)
    {
        // What trtexec --staticPlugins / Polygraphy --plugins do: dlopen and nothing else.
        void* handle = dlopen(s.loader.c_str(), RTLD_NOW | RTLD_LOCAL);
        EXPECT(handle != nullptr, "dlopen " + s.loader + ": " + (handle == nullptr ? dlerror() : ""));
    }
    else
    {
        s.library = openPluginLibrary(s.path);
        EXPECT(registeredPlugins().empty(), "loading the library registers nothing by itself");
        EXPECT(!globalLogger().contains(Severity::kVERBOSE, {""}), "loading the library logs nothing");
    }
    // For the static library: its dependency, already loaded; opening it only looks it up.
    s.library = openPluginLibrary(s.path);
    s.library.setLoggerFinder(&finder);
    int32_t count = 0;
    nvinfer1::IPluginCreatorInterface* const* list = s.library.getCreators(count);
    s.creators.assign(list, list + count);
    EXPECT(count == static_cast<int32_t>(kAllPlugins.size()), "getCreators lists 5 creators");
    if (viaStaticLibrary)
    {
        // Registered while loading, so asking for the creators as loadLibrary would is flagged.
        EXPECT(finderLogger().contains(Severity::kWARNING, {"registered the plugins already", "one way"}),
            "getCreators after static registration warns about two loading paths, log:\n" + finderLogger().dump());
        finderLogger().clear();
    }
}

void registerAsThePathDoes()
{
    State& s = state();
    if (s.loader == "loadlibrary")
    {
        EXPECT(registeredPlugins().empty(), "nothing is registered: TensorRT registers what getCreators returns");
        expectNothingLogged();
        return;
    }
    if (s.loader == "init" && s.expected == "conflict")
    {
        // Another library already registered a plugin of the same name and version: a copy of
        // this library under another file name, so its creators are distinct objects.
        std::string const copy = copyOfLibrary(s.path);
        PluginLibrary other = openPluginLibrary(copy);
        std::remove(copy.c_str());
        int32_t count = 0;
        nvinfer1::IPluginCreatorInterface* const* theirs = other.getCreators(count);
        EXPECT(count > 0 && registry().registerCreator(*theirs[0], ""), "the other library's DLU is registered");
        EXPECT(!s.library.init(&initLogger(), ""), "initLibDluTrtPlugins reports the conflict");
        EXPECT(initLogger().contains(Severity::kERROR, {"plugin DLU version 1 is registered already", "one way"}),
            "the error names the plugin, log:\n" + initLogger().dump());
        int32_t registeredCount = 0;
        nvinfer1::IPluginCreatorInterface* const* all = registry().getAllCreators(&registeredCount);
        std::set<nvinfer1::IPluginCreatorInterface*> const fromRegistry(all, all + registeredCount);
        std::set<nvinfer1::IPluginCreatorInterface*> expected(s.creators.begin() + 1, s.creators.end());
        expected.insert(theirs[0]);
        EXPECT(fromRegistry == expected, "the other library's DLU is kept, this library's other creators registered");
        return;
    }
    if (s.loader == "init")
    {
        bool const ok = s.library.init(&initLogger(), "");
        if (s.expected == "version-mismatch")
        {
            std::string const built = "built with the headers of TensorRT " + std::to_string(NV_TENSORRT_MAJOR);
            std::string const runs = "runs TensorRT " + std::to_string(NV_TENSORRT_MAJOR + 1);
            EXPECT(!ok, "initLibDluTrtPlugins fails when the process runs another TensorRT major");
            EXPECT(registeredPlugins().empty(), "nothing registered");
            EXPECT(initLogger().contains(Severity::kERROR, {built, runs, "-DTENSORRT_INCLUDE_DIR"}),
                "a version mismatch is an error naming both versions, log:\n" + initLogger().dump());
            return;
        }
        EXPECT(ok, "initLibDluTrtPlugins returns true, log:\n" + initLogger().dump());
    }
    expectRegisteredAreTheLibrarys();
    expectNothingLogged();
}

void initAgainAndMisuse()
{
    State& s = state();
    if (s.expected == "version-mismatch" || s.expected == "conflict" || s.loader == "loadlibrary")
    {
        // Registering explicitly after TensorRT took the creators is what the warning is about.
        if (s.loader == "loadlibrary")
        {
            EXPECT(s.library.init(nullptr, nullptr), "initLibDluTrtPlugins registers, log:\n" + globalLogger().dump());
            expectRegisteredAreTheLibrarys();
            int32_t count = 0;
            s.library.getCreators(count);
            EXPECT(finderLogger().contains(Severity::kWARNING, {"registered the plugins already", "one way"}),
                "getCreators after initLibDluTrtPlugins warns about two loading paths, log:\n" + finderLogger().dump());
        }
        return;
    }
    // A second call (e.g. the Python helper after libdlu_trt_plugins_static.so) is harmless.
    EXPECT(s.library.init(&initLogger(), ""), "a second initLibDluTrtPlugins call returns true");
    expectRegisteredAreTheLibrarys();
    expectNothingLogged();
    EXPECT(!s.library.init(&initLogger(), "custom"), "a namespace other than \"\" is refused");
    EXPECT(initLogger().contains(Severity::kERROR, {"namespace \"custom\" is not supported", "Pass \"\""}),
        "the refusal names the namespace and the fix, log:\n" + initLogger().dump());
    expectRegisteredAreTheLibrarys();
}

} // namespace

int runLoadingSuite(std::string const& libraryPath, std::string const& loader, std::string const& expectation)
{
    state().path = libraryPath;
    state().loader = loader;
    state().expected = expectation;
    std::string const loaderName = loader.substr(loader.rfind('/') + 1);
    return runTests(("loading/" + loaderName + "/" + expectation).c_str(),
        {
            {"library_loads_and_lists_five_creators", &openAndList},
            {"registration_matches_the_loading_path", &registerAsThePathDoes},
            {"init_again_and_misuse", &initAgainAndMisuse},
        });
}

} // namespace harness
