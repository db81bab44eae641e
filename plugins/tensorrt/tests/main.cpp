/*
 * trt_plugin_harness --library <libdlu_trt_plugins.so> --suite plugins|gpu|gpu-probe
 * trt_plugin_harness --library <...> --suite loading --loader loadlibrary|init|<libdlu_trt_plugins_static.so>
 *                    --expect registered|version-mismatch
 * Exit code 0 passed, 1 failed, 77 skipped (ctest SKIP_RETURN_CODE), 2 usage.
 */
#include "harness.h"
#include "suites.h"

#include <cstdio>
#include <exception>
#include <map>
#include <string>

int main(int argc, char** argv)
{
    std::map<std::string, std::string> options;
    for (int i = 1; i + 1 < argc; i += 2)
    {
        options[argv[i]] = argv[i + 1];
    }
    std::string const library = options["--library"];
    std::string const suite = options["--suite"];
    if (library.empty() || suite.empty())
    {
        std::fprintf(stderr, "usage: %s --library PATH --suite plugins|gpu|loading [--loader L --expect E]\n", argv[0]);
        return 2;
    }
    try
    {
        if (suite == "loading")
        {
            return harness::runLoadingSuite(library, options["--loader"], options["--expect"]);
        }
        harness::setLibrary(harness::openPluginLibrary(library));
        if (suite == "plugins")
        {
            return harness::runPluginSuite();
        }
        if (suite == "gpu")
        {
            return harness::runGpuSuite();
        }
        if (suite == "gpu-probe")
        {
            return harness::probeGpu();
        }
    }
    catch (std::exception const& error)
    {
        std::fprintf(stderr, "harness: %s\n", error.what());
        return 1;
    }
    std::fprintf(stderr, "unknown suite %s\n", suite.c_str());
    return 2;
}
