/*
 * load_in_plain_process <libdlu_trt_plugins.so>: open the plugin library with dlopen in a process
 * that has not loaded TensorRT and call initLibDluTrtPlugins(), as a ctypes user does before
 * importing tensorrt. The library must load silently without libnvinfer being linked, and then
 *  - TensorRT is installed on the library search path: initLibDluTrtPlugins loaded
 *    libnvinfer.so.<major> and the five creators are in TensorRT's real plugin registry; or
 *  - it is not: initLibDluTrtPlugins returned false and said so on stderr, with the fixes.
 * Exit code 0 when the outcome matches the machine, 1 otherwise.
 */
#include "NvInferRuntime.h"
#include "NvInferVersion.h"

#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <string>
#include <unistd.h>

namespace
{

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
char const* const kSoname = "libnvinfer.so." STRINGIFY(NV_TENSORRT_MAJOR);

//! What `action` writes to stderr.
template <typename Action> std::string captureStderr(Action action)
{
    std::fflush(stderr);
    FILE* capture = std::tmpfile();
    int const saved = dup(2);
    dup2(fileno(capture), 2);
    action();
    std::fflush(stderr);
    dup2(saved, 2);
    close(saved);
    std::string text;
    std::rewind(capture);
    for (int c = std::fgetc(capture); c != EOF; c = std::fgetc(capture))
    {
        text.push_back(static_cast<char>(c));
    }
    std::fclose(capture);
    return text;
}

} // namespace

int main(int argc, char** argv)
{
    if (argc != 2)
    {
        std::fprintf(stderr, "usage: %s <libdlu_trt_plugins.so>\n", argv[0]);
        return 2;
    }
    void* library = nullptr;
    std::string const loading = captureStderr([&] { library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL); });
    if (library == nullptr)
    {
        std::printf("FAILED: dlopen: %s\n", dlerror());
        return 1;
    }
    if (!loading.empty())
    {
        std::printf("FAILED: loading the library printed: %s", loading.c_str());
        return 1;
    }
    auto init = reinterpret_cast<bool (*)(void*, char const*)>(dlsym(library, "initLibDluTrtPlugins"));
    if (init == nullptr)
    {
        std::printf("FAILED: no initLibDluTrtPlugins in %s\n", argv[1]);
        return 1;
    }
    bool initialised = false;
    std::string const messages = captureStderr([&] { initialised = init(nullptr, ""); });
    void* tensorRt = dlopen(kSoname, RTLD_LAZY | RTLD_NOLOAD);
    if (tensorRt == nullptr)
    {
        bool const explained = !initialised
            && messages.find("no TensorRT runtime is loaded in this process") != std::string::npos
            && messages.find("import tensorrt first") != std::string::npos
            && messages.find("LD_LIBRARY_PATH") != std::string::npos;
        std::printf("%s: %s is not installed here; the library says so: %s", explained ? "ok" : "FAILED", kSoname,
            messages.c_str());
        return explained ? 0 : 1;
    }
    auto getPluginRegistry = reinterpret_cast<nvinfer1::IPluginRegistry* (*)()>(dlsym(tensorRt, "getPluginRegistry"));
    nvinfer1::IPluginRegistry* registry = getPluginRegistry != nullptr ? getPluginRegistry() : nullptr;
    int missing = registry == nullptr ? 1 : 0;
    for (char const* name : {"DLU", "CARAFE", "MMCVCARAFE", "MMCVCARAFENaive", "DDF"})
    {
        bool const found = registry != nullptr && registry->getCreator(name, "1", "") != nullptr;
        std::printf("%s: %s version 1 in TensorRT's registry\n", found ? "ok" : "FAILED", name);
        missing += found ? 0 : 1;
    }
    return missing == 0 ? 0 : 1;
}
