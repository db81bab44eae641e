#include "reassembly_attributes.h"

#include "shapes.h"

#include <limits>

namespace dlu_trt
{

void checkReassemblyAttributes(
    std::string const& context, ReassemblyAttributes const& attributes, ReassemblyFieldNames const& names)
{
    checkRange(context, names.kernelSize, attributes.kernelSize, 1, kMaxKernelSize, /*odd=*/true, kKernelSizeRange);
    checkRange(context, names.group, attributes.group, 1, std::numeric_limits<int32_t>::max(), false, kGroupRange);
    checkRange(context, names.scale, attributes.scale, 1, kMaxScale, false, kScaleRange);
}

std::string describe(ReassemblyAttributes const& attributes, ReassemblyFieldNames const& names)
{
    return std::string(names.kernelSize) + "=" + std::to_string(attributes.kernelSize) + "," + names.group + "="
        + std::to_string(attributes.group) + "," + names.scale + "=" + std::to_string(attributes.scale);
}

std::vector<FieldSpec> reassemblyFieldSpecs(ReassemblyFieldNames const& names, nvinfer1::PluginFieldType scaleType)
{
    return {{names.kernelSize, nvinfer1::PluginFieldType::kINT32}, {names.group, nvinfer1::PluginFieldType::kINT32},
        {names.scale, scaleType}};
}

ReassemblyAttributes readReassemblyAttributes(
    std::string const& context, FieldReader const& fields, ReassemblyFieldNames const& names, int32_t scale)
{
    int32_t const kernelSize = valueOrDefault(
        context, names.kernelSize, fields.integer(names.kernelSize), kDefaultKernelSize, kKernelSizeRange);
    int32_t const group = valueOrDefault(context, names.group, fields.integer(names.group), kDefaultGroup, kGroupRange);
    return ReassemblyAttributes{kernelSize, group, scale};
}

ReassemblyAttributes readReassemblyAttributes(
    std::string const& context, FieldReader const& fields, ReassemblyFieldNames const& names)
{
    // Fields are checked in the order of the node's attributes: kernel_size, group, scale.
    ReassemblyAttributes attributes = readReassemblyAttributes(context, fields, names, 0);
    attributes.scale = valueOrDefault(context, names.scale, fields.integer(names.scale), std::nullopt, kScaleRange);
    return attributes;
}

std::vector<nvinfer1::PluginField> reassemblyFields(
    ReassemblyAttributes const& attributes, ReassemblyFieldNames const& names)
{
    using nvinfer1::PluginFieldType;
    return {
        {names.kernelSize, &attributes.kernelSize, PluginFieldType::kINT32, 1},
        {names.group, &attributes.group, PluginFieldType::kINT32, 1},
        {names.scale, &attributes.scale, PluginFieldType::kINT32, 1},
    };
}

void upsampledShape(std::string const& context, nvinfer1::IExprBuilder& builder, nvinfer1::DimsExprs const& x,
    int32_t scale, nvinfer1::DimsExprs& out)
{
    out.d[0] = x.d[0];
    out.d[1] = x.d[1];
    out.d[2] = multiply(context, builder, x.d[2], scale);
    out.d[3] = multiply(context, builder, x.d[3], scale);
}

} // namespace dlu_trt
