/*
 * Opens the plugin library in a process without TensorRT: it must load (no libnvinfer
 * dependency) and say on stderr why nothing was registered (ctest checks the text).
 */
#include <cstdio>
#include <dlfcn.h>

int main(int argc, char** argv)
{
    if (argc != 2)
    {
        std::fprintf(stderr, "usage: %s <libdlu_trt_plugins.so>\n", argv[0]);
        return 2;
    }
    void* handle = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr)
    {
        std::fprintf(stderr, "dlopen failed: %s\n", dlerror());
        return 1;
    }
    std::printf("loaded without TensorRT\n");
    return 0;
}
