#include "creator_base.h"

#include "logging.h"

namespace dlu_trt
{

CreatorBase::CreatorBase(char const* pluginName, std::vector<FieldSpec> fields)
    : mPluginName(pluginName)
    , mSpecs(std::move(fields))
{
    for (FieldSpec const& spec : mSpecs)
    {
        mFields.emplace_back(spec.name, nullptr, spec.type, 1);
    }
    mCollection.nbFields = static_cast<int32_t>(mFields.size());
    mCollection.fields = mFields.data();
}

char const* CreatorBase::getPluginName() const noexcept
{
    return mPluginName;
}

char const* CreatorBase::getPluginVersion() const noexcept
{
    return kPluginVersion;
}

char const* CreatorBase::getPluginNamespace() const noexcept
{
    return "";
}

nvinfer1::PluginFieldCollection const* CreatorBase::getFieldNames() noexcept
{
    return &mCollection;
}

nvinfer1::IPluginV3* CreatorBase::createPlugin(
    char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase /* phase */) noexcept
{
    std::string const layerName = name != nullptr ? name : "";
    try
    {
        FieldReader const fields(pluginContext(mPluginName, layerName), fc, mSpecs);
        return create(layerName, fields).release();
    }
    catch (...)
    {
        reportCurrentException(pluginContext(mPluginName, layerName));
    }
    return nullptr;
}

} // namespace dlu_trt
