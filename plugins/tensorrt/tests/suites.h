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

//! How the library reaches TensorRT when loaded. `loader`: "dlopen" (the harness opens it, like
//! trtexec --staticPlugins or ctypes) or the path of a library whose name starts with
//! "libnvinfer" that opens it (like IPluginRegistry::loadLibrary). `expectation`:
//! "registered", "not-registered" or "version-mismatch".
int runLoadingSuite(std::string const& libraryPath, std::string const& loader, std::string const& expectation);

} // namespace harness

#endif // DLU_TRT_TESTS_SUITES_H
