#include "logging.h"

#include "tensorrt_runtime.h"

#include <atomic>
#include <cstdio>
#include <exception>

namespace dlu_trt
{
namespace
{

std::atomic<nvinfer1::ILoggerFinder*> gLoggerFinder{nullptr};

nvinfer1::ILogger* currentLogger() noexcept
{
    if (nvinfer1::ILoggerFinder* finder = gLoggerFinder.load())
    {
        try
        {
            // findLogger() is not declared noexcept.
            if (nvinfer1::ILogger* logger = finder->findLogger())
            {
                return logger;
            }
        }
        catch (...)
        {
        }
    }
    TensorRtRuntime const tensorRt = findLoadedTensorRt();
    return tensorRt.getLogger != nullptr ? tensorRt.getLogger() : nullptr;
}

char const* severityName(nvinfer1::ILogger::Severity severity) noexcept
{
    switch (severity)
    {
    case nvinfer1::ILogger::Severity::kINTERNAL_ERROR: return "INTERNAL ERROR";
    case nvinfer1::ILogger::Severity::kERROR: return "ERROR";
    case nvinfer1::ILogger::Severity::kWARNING: return "WARNING";
    case nvinfer1::ILogger::Severity::kINFO: return "INFO";
    case nvinfer1::ILogger::Severity::kVERBOSE: return "VERBOSE";
    }
    return "UNKNOWN";
}

} // namespace

void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept
{
    nvinfer1::ILoggerFinder* expected = nullptr;
    if (finder != nullptr)
    {
        gLoggerFinder.compare_exchange_strong(expected, finder);
    }
}

void log(nvinfer1::ILogger::Severity severity, std::string const& message) noexcept
{
    if (nvinfer1::ILogger* logger = currentLogger())
    {
        logger->log(severity, message.c_str());
        return;
    }
    // No TensorRT logger exists yet: keep errors and warnings visible, drop the chatter.
    if (severity <= nvinfer1::ILogger::Severity::kWARNING)
    {
        std::fprintf(stderr, "[dlu_trt_plugins] %s: %s\n", severityName(severity), message.c_str());
    }
}

void reportError(std::string const& message, nvinfer1::IErrorRecorder* recorder, nvinfer1::ErrorCode code) noexcept
{
    log(nvinfer1::ILogger::Severity::kERROR, message);
    if (recorder != nullptr)
    {
        // The recorder keeps at most kMAX_DESC_LENGTH characters; the logger has the full text.
        recorder->reportError(code, message.c_str());
    }
}

void reportCurrentException(std::string const& context, nvinfer1::IErrorRecorder* recorder) noexcept
{
    try
    {
        throw;
    }
    catch (PluginError const& error)
    {
        reportError(error.what(), recorder, error.code());
    }
    catch (std::exception const& error)
    {
        reportError(context + ": " + error.what(), recorder, nvinfer1::ErrorCode::kINTERNAL_ERROR);
    }
    catch (...)
    {
        reportError(context + ": unknown exception", recorder, nvinfer1::ErrorCode::kINTERNAL_ERROR);
    }
}

} // namespace dlu_trt
