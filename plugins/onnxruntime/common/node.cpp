#include "node.h"

#include <vector>

namespace dlu_ort
{
namespace
{

std::string nodeName(OrtApi const& api, OrtKernelInfo const* info)
{
    size_t size = 0;
    OrtStatus* status = api.KernelInfo_GetNodeName(info, nullptr, &size);
    if (status != nullptr || size == 0)
    {
        if (status != nullptr)
        {
            api.ReleaseStatus(status);
        }
        return "";
    }
    std::vector<char> name(size);
    status = api.KernelInfo_GetNodeName(info, name.data(), &size);
    if (status != nullptr)
    {
        api.ReleaseStatus(status);
        return "";
    }
    return std::string(name.data());
}

//! True when the call succeeded (the status, if any, is released).
bool succeeded(OrtApi const& api, OrtStatus* status)
{
    if (status == nullptr)
    {
        return true;
    }
    api.ReleaseStatus(status);
    return false;
}

} // namespace

std::string nodeContext(char const* domain, char const* opType, std::string const& nodeName)
{
    return std::string(domain) + "::" + opType + " node " + (nodeName.empty() ? "(unnamed)" : "\"" + nodeName + "\"");
}

NodeReader::NodeReader(OrtApi const& api, OrtKernelInfo const* info, char const* domain, char const* opType)
    : mApi(api)
    , mInfo(info)
    , mContext(nodeContext(domain, opType, nodeName(api, info)))
{
}

char const* NodeReader::otherType(char const* name, char const* wanted) const
{
    std::string const kind(wanted);
    int64_t integerValue = 0;
    float floatValue = 0.0F;
    size_t size = 0;
    if (kind != "INT" && succeeded(mApi, mApi.KernelInfoGetAttribute_int64(mInfo, name, &integerValue)))
    {
        return "INT";
    }
    if (kind != "FLOAT" && succeeded(mApi, mApi.KernelInfoGetAttribute_float(mInfo, name, &floatValue)))
    {
        return "FLOAT";
    }
    if (kind != "STRING" && succeeded(mApi, mApi.KernelInfoGetAttribute_string(mInfo, name, nullptr, &size)))
    {
        return "STRING";
    }
    size = 0;
    if (succeeded(mApi, mApi.KernelInfoGetAttributeArray_int64(mInfo, name, nullptr, &size))
        || succeeded(mApi, mApi.KernelInfoGetAttributeArray_float(mInfo, name, nullptr, &size)))
    {
        return "a list";
    }
    return nullptr;
}

std::optional<int64_t> NodeReader::integer(char const* name) const
{
    int64_t value = 0;
    if (succeeded(mApi, mApi.KernelInfoGetAttribute_int64(mInfo, name, &value)))
    {
        return value;
    }
    if (char const* type = otherType(name, "INT"))
    {
        fail(std::string("attribute ") + name + " is " + type + ", expected INT",
            "Write it as an integer attribute (docs/ops.md), or re-export the model with dlu-export");
    }
    return std::nullopt;
}

std::optional<float> NodeReader::number(char const* name) const
{
    float value = 0.0F;
    if (succeeded(mApi, mApi.KernelInfoGetAttribute_float(mInfo, name, &value)))
    {
        return value;
    }
    if (char const* type = otherType(name, "FLOAT"))
    {
        fail(std::string("attribute ") + name + " is " + type + ", expected FLOAT",
            "Write it as a float attribute, as mmcv's exporter does");
    }
    return std::nullopt;
}

std::optional<std::string> NodeReader::text(char const* name) const
{
    size_t size = 0;
    if (!succeeded(mApi, mApi.KernelInfoGetAttribute_string(mInfo, name, nullptr, &size)))
    {
        if (char const* type = otherType(name, "STRING"))
        {
            fail(std::string("attribute ") + name + " is " + type + ", expected STRING",
                "Write it as a string attribute (docs/ops.md), or re-export the model with dlu-export");
        }
        return std::nullopt;
    }
    std::vector<char> value(size + 1, '\0');
    throwIfError(mApi, mApi.KernelInfoGetAttribute_string(mInfo, name, value.data(), &size),
        mContext + ": reading attribute " + name);
    return std::string(value.data());
}

int32_t NodeReader::integerIn(
    char const* name, dlu_nodes::IntRange const& range, std::optional<int32_t> fallback) const
{
    std::optional<int64_t> const value = integer(name);
    if (!value.has_value())
    {
        if (fallback.has_value())
        {
            return *fallback;
        }
        fail(std::string("the required attribute ") + name + " is missing",
            std::string("Give the node ") + name + " = " + range.text + " (docs/ops.md), or re-export the model "
                "with dlu-export");
    }
    if (!dlu_nodes::inRange(range, *value))
    {
        fail(std::string("attribute ") + name + " = " + std::to_string(*value) + " is invalid",
            std::string("Use ") + name + " = " + range.text + " (docs/ops.md)");
    }
    return static_cast<int32_t>(*value);
}

void NodeReader::checkPluginVersion() const
{
    std::optional<std::string> const version = text("plugin_version");
    if (version.has_value() && *version != dlu_nodes::kPluginVersion)
    {
        fail("plugin_version = \"" + *version + "\" is not supported (this library implements \""
                + dlu_nodes::kPluginVersion + "\")",
            "Re-export the model with the dlu-export of this dlu_deploy, or load the custom-op library of the "
            "dlu_deploy that wrote it");
    }
}

void NodeReader::checkInputType(
    size_t index, char const* inputName, ONNXTensorElementDataType expected, char const* firstInputName) const
{
    OrtTypeInfo* typeInfo = nullptr;
    OrtStatus* status = mApi.KernelInfo_GetInputTypeInfo(mInfo, index, &typeInfo);
    if (status != nullptr)
    {
        mApi.ReleaseStatus(status); // untyped in the graph: the tensor is checked when the node runs
        return;
    }
    OrtTensorTypeAndShapeInfo const* tensorInfo = nullptr;
    ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    bool const isTensor = succeeded(mApi, mApi.CastTypeInfoToTensorInfo(typeInfo, &tensorInfo))
        && tensorInfo != nullptr && succeeded(mApi, mApi.GetTensorElementType(tensorInfo, &type));
    mApi.ReleaseTypeInfo(typeInfo);
    if (!isTensor)
    {
        fail(std::string("input ") + inputName + " is not a tensor",
            "Feed it a float32 or float16 tensor (docs/ops.md)");
    }
    if (type != expected && type != ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED)
    {
        fail(std::string("input ") + inputName + " is " + elementTypeName(type) + " but " + firstInputName + " is "
                + elementTypeName(expected),
            "Give every input of the node the same dtype, float32 or float16 (insert a Cast, or export the model "
            "with --fp16 for float16 throughout)");
    }
}

void NodeReader::fail(std::string const& what, std::string const& fix) const
{
    throw OrtError(ORT_INVALID_ARGUMENT, mContext + ": " + what + ". " + fix + ".");
}

} // namespace dlu_ort
