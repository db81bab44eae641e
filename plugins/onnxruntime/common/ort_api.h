/*
 * The ONNX Runtime C API as this library uses it: the API version it asks for, errors as C++
 * exceptions inside the library and as OrtStatus at every callback ONNX Runtime calls, and small
 * readers of tensors' element types.
 *
 * Version policy: the library requests the oldest API that has every function it needs, not the
 * ORT_API_VERSION of the headers it is compiled against, so it loads in older runtimes too:
 *   16 (ONNX Runtime 1.16): OrtCustomOp::CreateKernelV2 / KernelComputeV2, which return errors as
 *      a status instead of aborting; everything else used is older (KernelInfo_GetNodeName 15,
 *      KernelInfo_GetInputTypeInfo and MemoryInfoGetDeviceType 14).
 *   17 (ONNX Runtime 1.17), optional: KernelContext_ParallelFor, the session's intra-op thread
 *      pool. Older runtimes run the CPU kernels on their own threads instead.
 */
#ifndef DLU_ORT_ORT_API_H
#define DLU_ORT_ORT_API_H

#include "onnxruntime_c_api.h"

#include <cstdint>
#include <exception>
#include <new>
#include <stdexcept>
#include <string>

namespace dlu_ort
{

constexpr uint32_t kRequiredApiVersion = 16;
constexpr uint32_t kParallelForApiVersion = 17;
//! The release that introduced kRequiredApiVersion (docs/kernels.md, "Versions").
constexpr char const* kOldestOnnxRuntime = "1.16";

//! An error with the ONNX Runtime code it is reported under; the message is complete (it names
//! the node and the fix).
class OrtError : public std::runtime_error
{
public:
    OrtError(OrtErrorCode code, std::string const& message)
        : std::runtime_error(message)
        , mCode(code)
    {
    }

    OrtErrorCode code() const noexcept
    {
        return mCode;
    }

private:
    OrtErrorCode mCode;
};

//! Throws an OrtError "<context>: <ONNX Runtime's message>" when `status` is an error (and
//! releases the status).
void throwIfError(OrtApi const& api, OrtStatus* status, std::string const& context);

//! Runs `body` and returns nullptr, or the exception it threw as an OrtStatus: nothing thrown
//! inside the library crosses a callback back into ONNX Runtime.
template <class Body>
OrtStatus* guarded(OrtApi const& api, Body&& body) noexcept
{
    try
    {
        body();
        return nullptr;
    }
    catch (OrtError const& e)
    {
        return api.CreateStatus(e.code(), e.what());
    }
    catch (std::bad_alloc const&)
    {
        return api.CreateStatus(ORT_FAIL, "libdlu_ort_ops: out of host memory");
    }
    catch (std::exception const& e)
    {
        return api.CreateStatus(ORT_FAIL, (std::string("libdlu_ort_ops: ") + e.what()).c_str());
    }
    catch (...)
    {
        return api.CreateStatus(ORT_FAIL, "libdlu_ort_ops: unknown error");
    }
}

//! "float32", "float16", "int64", ... (ONNX's names, as numpy users know them).
char const* elementTypeName(ONNXTensorElementDataType type) noexcept;

} // namespace dlu_ort

#endif // DLU_ORT_ORT_API_H
