/*
 * Messages from the plugins to the application.
 *
 * TensorRT gives a plugin library no logger of its own; where messages go depends on how the
 * library was loaded:
 *  - IPluginRegistry::loadLibrary (trtexec --dynamicPlugins, registry.load_library): TensorRT
 *    calls setLoggerFinder() and the finder returns the logger of the calling builder/runtime;
 *  - registered by initLibDluTrtPlugins() (ctypes, applications, libdlu_trt_plugins_static.so
 *    for trtexec --staticPlugins / Polygraphy --plugins): TensorRT's global logger,
 *    `getLogger()` of the libnvinfer loaded in the process (the logger of the most recently
 *    created builder or runtime);
 *  - neither available (e.g. before any builder exists): standard error.
 * Errors additionally go to the execution context's IErrorRecorder once a plugin is attached to
 * one (the only recorder TensorRT exposes to IPluginV3 objects).
 */
#ifndef DLU_TRT_LOGGING_H
#define DLU_TRT_LOGGING_H

#include "NvInferRuntime.h"

#include <stdexcept>
#include <string>

namespace dlu_trt
{

//! An error a plugin method reports before returning its failure value.
class PluginError : public std::runtime_error
{
public:
    explicit PluginError(std::string const& message, nvinfer1::ErrorCode code = nvinfer1::ErrorCode::kINVALID_ARGUMENT)
        : std::runtime_error(message)
        , mCode(code)
    {
    }

    nvinfer1::ErrorCode code() const noexcept
    {
        return mCode;
    }

private:
    nvinfer1::ErrorCode mCode;
};

//! Remember the finder TensorRT passes to the exported setLoggerFinder() (the first non-null one,
//! as TensorRT's own plugin libraries do).
void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept;

void log(nvinfer1::ILogger::Severity severity, std::string const& message) noexcept;

//! Log `message` as an error and, when `recorder` is not null, record it there too.
void reportError(std::string const& message, nvinfer1::IErrorRecorder* recorder = nullptr,
    nvinfer1::ErrorCode code = nvinfer1::ErrorCode::kINVALID_ARGUMENT) noexcept;

//! Report the exception currently being handled (call from inside a catch block).
void reportCurrentException(std::string const& context, nvinfer1::IErrorRecorder* recorder = nullptr) noexcept;

} // namespace dlu_trt

#endif // DLU_TRT_LOGGING_H
