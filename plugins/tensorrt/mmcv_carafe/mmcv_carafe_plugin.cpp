#include "mmcv_carafe_plugin.h"

#include "logging.h"
#include "node_attributes.h"

#include <sstream>

namespace dlu_trt
{
namespace
{

ReassemblyFieldNames const kFieldNames{"kernel_size", "group_size", "scale_factor"};
char const* const kScaleFactorRange = dlu_nodes::kScaleFactorRange;

// mmcv's symbolic always writes scale_factor as a FLOAT attribute although CARAFE needs an
// integer factor; anything but a whole number in range is rejected, not rounded.
int32_t wholeScale(std::string const& context, double scaleFactor)
{
    if (!dlu_nodes::isWholeScale(scaleFactor))
    {
        std::ostringstream message;
        message << context << ": field \"" << kFieldNames.scale << "\" = " << scaleFactor << " is invalid: expected "
                << kScaleFactorRange;
        throw PluginError(message.str());
    }
    return static_cast<int32_t>(scaleFactor);
}

} // namespace

MmcvCarafePlugin::MmcvCarafePlugin(
    char const* name, std::string layerName, ReassemblyAttributes const& attributes, float scaleFactor)
    : CarafePlugin(name, {"features", "masks"}, std::move(layerName), attributes, kFieldNames)
    , mName(name)
    , mScaleFactor(scaleFactor)
{
}

std::vector<nvinfer1::PluginField> MmcvCarafePlugin::serializedFields() const
{
    using nvinfer1::PluginFieldType;
    return {
        {kFieldNames.kernelSize, &attributes().kernelSize, PluginFieldType::kINT32, 1},
        {kFieldNames.group, &attributes().group, PluginFieldType::kINT32, 1},
        {kFieldNames.scale, &mScaleFactor, PluginFieldType::kFLOAT32, 1},
    };
}

std::unique_ptr<PluginBase> MmcvCarafePlugin::copy() const
{
    return std::make_unique<MmcvCarafePlugin>(mName, layerName(), attributes(), mScaleFactor);
}

MmcvCarafePluginCreator::MmcvCarafePluginCreator(char const* name)
    : CreatorBase(name, reassemblyFieldSpecs(kFieldNames, nvinfer1::PluginFieldType::kFLOAT32))
    , mName(name)
{
}

std::unique_ptr<PluginBase> MmcvCarafePluginCreator::create(
    std::string const& layerName, FieldReader const& fields) const
{
    std::string const context = pluginContext(mName, layerName);
    std::optional<double> const scaleFactor = fields.number(kFieldNames.scale);
    if (!scaleFactor.has_value())
    {
        throw PluginError(context + ": field \"" + kFieldNames.scale + "\" is required but missing (expected "
            + kScaleFactorRange + ")");
    }
    ReassemblyAttributes const attributes
        = readReassemblyAttributes(context, fields, kFieldNames, wholeScale(context, *scaleFactor));
    checkCarafeAttributes(context, attributes, kFieldNames);
    return std::make_unique<MmcvCarafePlugin>(mName, layerName, attributes, static_cast<float>(attributes.scale));
}

} // namespace dlu_trt
