#include "kernel_io.h"

#include <exception>
#include <mutex>
#include <vector>

namespace dlu_ort
{
namespace
{

struct TensorInfo
{
    OrtApi const& api;
    OrtTensorTypeAndShapeInfo* info = nullptr;

    ~TensorInfo()
    {
        if (info != nullptr)
        {
            api.ReleaseTensorTypeAndShapeInfo(info);
        }
    }
};

struct ParallelItems
{
    std::function<void(size_t)> const* item;
    std::mutex mutex;
    std::exception_ptr firstError;
};

// Called by ONNX Runtime's pool threads: nothing may escape.
void runItem(void* data, size_t index)
{
    auto* items = static_cast<ParallelItems*>(data);
    try
    {
        (*items->item)(index);
    }
    catch (...)
    {
        std::lock_guard<std::mutex> lock(items->mutex);
        if (!items->firstError)
        {
            items->firstError = std::current_exception();
        }
    }
}

} // namespace

std::string describe(Shape const& shape)
{
    std::string text = "[";
    for (size_t i = 0; i < shape.size(); ++i)
    {
        text += (i == 0 ? "" : ", ") + std::to_string(shape[i]);
    }
    return text + "]";
}

KernelIo::KernelIo(OrtApi const& api, OrtKernelContext* context, std::string const& nodeContext, Device device,
    ONNXTensorElementDataType type)
    : mApi(api)
    , mContext(context)
    , mNodeContext(nodeContext)
    , mDevice(device)
    , mType(type)
{
}

Input KernelIo::input(size_t index, char const* name, char const* firstName) const
{
    std::string const where = mNodeContext + ": input " + name;
    OrtValue const* value = nullptr;
    throwIfError(mApi, mApi.KernelContext_GetInput(mContext, index, &value), where);
    if (value == nullptr)
    {
        throw OrtError(ORT_INVALID_ARGUMENT, where + " is missing. Connect all inputs of the node (docs/ops.md).");
    }
    TensorInfo tensor{mApi};
    throwIfError(mApi, mApi.GetTensorTypeAndShape(value, &tensor.info), where);
    ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    throwIfError(mApi, mApi.GetTensorElementType(tensor.info, &type), where);
    if (type != mType)
    {
        throw OrtError(ORT_INVALID_ARGUMENT,
            where + " is " + elementTypeName(type) + " but " + firstName + " is " + elementTypeName(mType)
                + ". Feed every input of the node in the same dtype, float32 or float16 (insert a Cast).");
    }
    size_t rank = 0;
    throwIfError(mApi, mApi.GetDimensionsCount(tensor.info, &rank), where);
    std::vector<int64_t> dims(rank);
    throwIfError(mApi, mApi.GetDimensions(tensor.info, dims.data(), rank), where);
    if (rank != 4)
    {
        std::string shape = "[";
        for (size_t i = 0; i < rank; ++i)
        {
            shape += (i == 0 ? "" : ", ") + std::to_string(dims[i]);
        }
        throw OrtError(ORT_INVALID_ARGUMENT,
            where + " has shape " + shape + "] (" + std::to_string(rank)
                + " dimensions). Feed NCHW tensors: 4 dimensions (docs/ops.md).");
    }
    OrtMemoryInfo const* memory = nullptr;
    throwIfError(mApi, mApi.GetTensorMemoryInfo(value, &memory), where);
    OrtMemoryInfoDeviceType deviceType = OrtMemoryInfoDeviceType_CPU;
    mApi.MemoryInfoGetDeviceType(memory, &deviceType);
    bool const onCpu = deviceType == OrtMemoryInfoDeviceType_CPU;
    if (onCpu != (mDevice == Device::kCpu))
    {
        throw OrtError(ORT_INVALID_ARGUMENT,
            where + (onCpu ? " is in host memory but this kernel runs on the CUDA execution provider"
                           : " is in device memory but this kernel runs on the CPU execution provider")
                + ". Let ONNX Runtime place the node's inputs (do not pin them with IO binding to another "
                  "device than the node's execution provider).");
    }
    void* data = nullptr;
    throwIfError(mApi, mApi.GetTensorMutableData(const_cast<OrtValue*>(value), &data), where);
    return Input{data, Shape{dims[0], dims[1], dims[2], dims[3]}};
}

void* KernelIo::output(Shape const& shape) const
{
    OrtValue* value = nullptr;
    std::string const where = mNodeContext + ": output of shape " + describe(shape);
    throwIfError(mApi, mApi.KernelContext_GetOutput(mContext, 0, shape.data(), shape.size(), &value), where);
    if (value == nullptr)
    {
        throw OrtError(ORT_FAIL, where + " could not be allocated");
    }
    void* data = nullptr;
    throwIfError(mApi, mApi.GetTensorMutableData(value, &data), where);
    return data;
}

void* KernelIo::computeStream() const
{
    void* stream = nullptr;
    throwIfError(mApi, mApi.KernelContext_GetGPUComputeStream(mContext, &stream), mNodeContext + ": compute stream");
    return stream;
}

void CpuThreads::run(size_t items, std::function<void(size_t)> const& item) const
{
    ParallelItems state;
    state.item = &item;
    throwIfError(*mApi, mApi->KernelContext_ParallelFor(mContext, &runItem, items, 0, &state), "intra-op threads");
    if (state.firstError)
    {
        std::rethrow_exception(state.firstError);
    }
}

} // namespace dlu_ort
