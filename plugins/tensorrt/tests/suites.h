/*
 * The suites of the plugin harness; main() picks one per process (see CMakeLists.txt).
 */
#ifndef DLU_TRT_TESTS_SUITES_H
#define DLU_TRT_TESTS_SUITES_H

#include <string>

namespace harness
{

//! The plugin objects on the CPU (library() must be open).
int runPluginSuite();

//! enqueue on a CUDA device against the CPU kernels; skipped without a device.
int runGpuSuite();

//! 0 when a CUDA device is usable, else prints why and returns kSkipExitCode.
int probeGpu();

//! How the library's plugins reach TensorRT's registry (test_loading.cpp). `loader`:
//! "loadlibrary" (IPluginRegistry::loadLibrary's calls), "init" (dlopen + initLibDluTrtPlugins)
//! or the path of libdlu_trt_plugins_static.so (a plain dlopen, as trtexec --staticPlugins).
//! `expectation`: "registered", "version-mismatch" or "conflict" (init only: another library
//! registered a plugin of the same name first).
int runLoadingSuite(std::string const& libraryPath, std::string const& loader, std::string const& expectation);

} // namespace harness

#endif // DLU_TRT_TESTS_SUITES_H
