#include "plugin_base.h"

#include "fields.h"
#include "logging.h"
#include "shapes.h"

#include <array>

namespace dlu_trt
{
namespace
{

using nvinfer1::DataType;

constexpr int32_t kMaxInputs = 3;

bool isSupportedType(DataType type) noexcept
{
    return type == DataType::kFLOAT || type == DataType::kHALF;
}

char const* typeName(DataType type) noexcept
{
    switch (type)
    {
    case DataType::kFLOAT: return "FLOAT";
    case DataType::kHALF: return "HALF";
    case DataType::kBF16: return "BF16";
    case DataType::kINT8: return "INT8";
    case DataType::kINT32: return "INT32";
    case DataType::kINT64: return "INT64";
    case DataType::kBOOL: return "BOOL";
    case DataType::kUINT8: return "UINT8";
    case DataType::kFP8: return "FP8";
    default: return "an unsupported type";
    }
}

nvinfer1::ErrorCode errorCodeOf(DluStatus status) noexcept
{
    switch (status)
    {
    case DLU_STATUS_INVALID_ARGUMENT: return nvinfer1::ErrorCode::kINVALID_ARGUMENT;
    case DLU_STATUS_CUDA_ERROR: return nvinfer1::ErrorCode::kFAILED_EXECUTION;
    default: return nvinfer1::ErrorCode::kINTERNAL_ERROR;
    }
}

bool anyEmpty(nvinfer1::Dims const* dims, int32_t count) noexcept
{
    for (int32_t i = 0; i < count; ++i)
    {
        if (volume(dims[i]) == 0)
        {
            return true;
        }
    }
    return false;
}

} // namespace

void requireKernelsAccept(std::string const& context, DluStatus status)
{
    if (status != DLU_STATUS_OK)
    {
        throw PluginError(context + ": " + dlu_kernels_last_error(), errorCodeOf(status));
    }
}

PluginBase::PluginBase(
    char const* pluginName, std::vector<char const*> inputNames, std::string layerName, std::string attributes)
    : mPluginName(pluginName)
    , mInputNames(std::move(inputNames))
    , mLayerName(std::move(layerName))
    , mContext(pluginContext(pluginName, mLayerName))
    , mTimingCacheId(std::string(pluginName) + "_v" + kPluginVersion + ":" + attributes)
{
}

nvinfer1::IPluginCapability* PluginBase::getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
    case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
    case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
    }
    return nullptr;
}

nvinfer1::IPluginV3* PluginBase::clone() noexcept
{
    try
    {
        std::unique_ptr<PluginBase> plugin = copy();
        plugin->mErrorRecorder = mErrorRecorder;
        return plugin.release();
    }
    catch (...)
    {
        reportCurrentException(mContext, mErrorRecorder);
    }
    return nullptr;
}

char const* PluginBase::getPluginName() const noexcept
{
    return mPluginName;
}

char const* PluginBase::getPluginVersion() const noexcept
{
    return kPluginVersion;
}

char const* PluginBase::getPluginNamespace() const noexcept
{
    return "";
}

int32_t PluginBase::getNbOutputs() const noexcept
{
    return 1;
}

void PluginBase::checkCounts(int32_t inputCount, int32_t outputCount) const
{
    if (inputCount != nbInputs())
    {
        std::string names;
        for (char const* name : mInputNames)
        {
            names += (names.empty() ? "" : ", ") + std::string(name);
        }
        throw PluginError(mContext + ": takes " + std::to_string(nbInputs()) + " inputs (" + names + "), got "
            + std::to_string(inputCount));
    }
    if (outputCount != 1)
    {
        throw PluginError(mContext + ": has 1 output, got " + std::to_string(outputCount));
    }
}

void PluginBase::checkAllShapes(nvinfer1::Dims const* dims) const
{
    checkRanks(mContext, mInputNames, dims);
    checkShapes(InputShapes(mContext, mInputNames, dims));
}

void PluginBase::checkKernels(nvinfer1::Dims const* dims) const
{
    // Empty tensors need no kernel (enqueue returns at once); the kernels reject sizes of 0.
    if (!anyEmpty(dims, nbInputs()))
    {
        requireKernelsAccept(mContext, checkKernelParameters(dims));
    }
}

int32_t PluginBase::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    try
    {
        checkCounts(nbInputs, nbOutputs);
        if (!isSupportedType(inputTypes[0]))
        {
            throw PluginError(mContext + ": input 0 (" + mInputNames[0] + ") has type " + typeName(inputTypes[0])
                + "; expected FLOAT or HALF");
        }
        for (int32_t i = 1; i < nbInputs; ++i)
        {
            if (inputTypes[i] != inputTypes[0])
            {
                throw PluginError(mContext + ": input " + std::to_string(i) + " (" + mInputNames[i] + ") has type "
                    + typeName(inputTypes[i]) + " but input 0 (" + mInputNames[0] + ") has " + typeName(inputTypes[0])
                    + "; all inputs must have one type");
            }
        }
        // Strongly typed networks: the output has the inputs' type.
        outputTypes[0] = inputTypes[0];
        return 0;
    }
    catch (...)
    {
        reportCurrentException(mContext, mErrorRecorder);
    }
    return 1;
}

int32_t PluginBase::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
    nvinfer1::DimsExprs const* /* shapeInputs */, int32_t /* nbShapeInputs */, nvinfer1::DimsExprs* outputs,
    int32_t nbOutputs, nvinfer1::IExprBuilder& exprBuilder) noexcept
{
    try
    {
        checkCounts(nbInputs, nbOutputs);
        std::array<nvinfer1::Dims, kMaxInputs> known{};
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            known[i] = constantDims(inputs[i]);
        }
        checkAllShapes(known.data());
        outputs[0].nbDims = kRank;
        outputShape(inputs, outputs[0], exprBuilder);
        return 0;
    }
    catch (...)
    {
        reportCurrentException(mContext, mErrorRecorder);
    }
    return 1;
}

bool PluginBase::supportsFormatCombination(
    int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    // Decided from inOut[0..pos] only, as TensorRT requires; counts were reported by getOutputShapes.
    if (inOut == nullptr || nbInputs != this->nbInputs() || nbOutputs != 1 || pos < 0 || pos >= nbInputs + nbOutputs)
    {
        return false;
    }
    nvinfer1::PluginTensorDesc const& desc = inOut[pos].desc;
    if (desc.format != nvinfer1::TensorFormat::kLINEAR)
    {
        return false;
    }
    return pos == 0 ? isSupportedType(desc.type) : desc.type == inOut[0].desc.type;
}

int32_t PluginBase::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* /* out */, int32_t nbOutputs) noexcept
{
    try
    {
        checkCounts(nbInputs, nbOutputs);
        std::array<nvinfer1::Dims, kMaxInputs> network{};
        std::array<nvinfer1::Dims, kMaxInputs> minimum{};
        std::array<nvinfer1::Dims, kMaxInputs> maximum{};
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            network[i] = in[i].desc.dims;
            minimum[i] = in[i].min;
            maximum[i] = in[i].max;
        }
        checkAllShapes(network.data());
        // The profile's bounds are complete shapes: both ends must suit the kernels.
        for (auto const* bound : {&minimum, &maximum})
        {
            checkAllShapes(bound->data());
            checkKernels(bound->data());
        }
        return 0;
    }
    catch (...)
    {
        reportCurrentException(mContext, mErrorRecorder);
    }
    return 1;
}

size_t PluginBase::getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* /* inputs */, int32_t /* nbInputs */,
    nvinfer1::DynamicPluginTensorDesc const* /* outputs */, int32_t /* nbOutputs */) const noexcept
{
    // The kernels read the inputs and write the output directly (the DLU kernel never
    // materialises the full-resolution kernels), so no shape of the profile needs scratch memory.
    return 0;
}

char const* PluginBase::getTimingCacheID() noexcept
{
    return mTimingCacheId.c_str();
}

char const* PluginBase::getMetadataString() noexcept
{
    return mTimingCacheId.c_str();
}

int32_t PluginBase::onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::PluginTensorDesc const* /* out */, int32_t nbOutputs) noexcept
{
    try
    {
        checkCounts(nbInputs, nbOutputs);
        std::array<nvinfer1::Dims, kMaxInputs> dims{};
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            dims[i] = in[i].dims;
        }
        checkAllShapes(dims.data());
        checkKernels(dims.data());
        return 0;
    }
    catch (...)
    {
        reportCurrentException(mContext, mErrorRecorder);
    }
    return 1;
}

int32_t PluginBase::enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
    void const* const* inputs, void* const* outputs, void* /* workspace */, cudaStream_t stream) noexcept
{
    try
    {
        DataType const type = inputDesc[0].type;
        if (!isSupportedType(type))
        {
            throw PluginError(mContext + ": enqueue got input type " + typeName(type) + "; expected FLOAT or HALF");
        }
        std::array<nvinfer1::Dims, kMaxInputs> dims{};
        for (int32_t i = 0; i < nbInputs(); ++i)
        {
            dims[i] = inputDesc[i].dims;
        }
        if (anyEmpty(dims.data(), nbInputs()) || volume(outputDesc[0].dims) == 0)
        {
            return 0;
        }
        DluDType const dtype = type == DataType::kFLOAT ? DLU_DTYPE_FLOAT32 : DLU_DTYPE_FLOAT16;
        requireKernelsAccept(mContext, launch(dtype, dims.data(), inputs, outputs[0], stream));
        return 0;
    }
    catch (...)
    {
        reportCurrentException(mContext, mErrorRecorder);
    }
    return 1;
}

nvinfer1::IPluginV3* PluginBase::attachToContext(nvinfer1::IPluginResourceContext* context) noexcept
{
    try
    {
        std::unique_ptr<PluginBase> plugin = copy();
        plugin->mErrorRecorder = context != nullptr ? context->getErrorRecorder() : nullptr;
        return plugin.release();
    }
    catch (...)
    {
        reportCurrentException(mContext, mErrorRecorder);
    }
    return nullptr;
}

nvinfer1::PluginFieldCollection const* PluginBase::getFieldsToSerialize() noexcept
{
    try
    {
        mSerialized = serializedFields();
        mSerializedCollection.nbFields = static_cast<int32_t>(mSerialized.size());
        mSerializedCollection.fields = mSerialized.data();
        return &mSerializedCollection;
    }
    catch (...)
    {
        reportCurrentException(mContext, mErrorRecorder);
    }
    return nullptr;
}

} // namespace dlu_trt
