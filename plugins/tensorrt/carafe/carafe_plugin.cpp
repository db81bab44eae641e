#include "carafe_plugin.h"

#include "shapes.h"

namespace dlu_trt
{
namespace
{

char const* const kName = "CARAFE";
ReassemblyFieldNames const kFieldNames{"kernel_size", "group", "scale"};

enum Input : int32_t
{
    kX = 0,
    kMasks = 1
};

} // namespace

void checkCarafeAttributes(
    std::string const& context, ReassemblyAttributes const& attributes, ReassemblyFieldNames const& names)
{
    checkReassemblyAttributes(context, attributes, names);
    // The kernels have the last word on the attributes (one size that any group divides).
    CarafeParams const probe{1, attributes.group, 1, 1, attributes.kernelSize, attributes.group, attributes.scale};
    requireKernelsAccept(context, dlu_kernels_carafe_check(&probe));
}

CarafePlugin::CarafePlugin(std::string layerName, ReassemblyAttributes const& attributes)
    : CarafePlugin(kName, {"x", "masks"}, std::move(layerName), attributes, kFieldNames)
{
}

CarafePlugin::CarafePlugin(char const* pluginName, std::vector<char const*> inputNames, std::string layerName,
    ReassemblyAttributes const& attributes, ReassemblyFieldNames const& fieldNames)
    : PluginBase(pluginName, std::move(inputNames), std::move(layerName), describe(attributes, fieldNames))
    , mAttributes(attributes)
{
}

CarafeParams CarafePlugin::params(nvinfer1::Dims const& x) const noexcept
{
    return CarafeParams{x.d[0], x.d[1], x.d[2], x.d[3], mAttributes.kernelSize, mAttributes.group, mAttributes.scale};
}

void CarafePlugin::checkShapes(InputShapes const& shapes) const
{
    int64_t const k = mAttributes.kernelSize;
    int64_t const g = mAttributes.group;
    int64_t const s = mAttributes.scale;
    auto const scaled = [s](int64_t dim) { return dim < 0 ? dim : s * dim; };
    shapes.expectMultipleOf(kX, 1, g, "group");
    shapes.expectEqual(kMasks, 0, shapes.at(kX, 0), "N of the features");
    shapes.expectEqual(kMasks, 1, g * k * k, "group*kernel_size*kernel_size");
    shapes.expectEqual(kMasks, 2, scaled(shapes.at(kX, 2)), "scale*H of the features");
    shapes.expectEqual(kMasks, 3, scaled(shapes.at(kX, 3)), "scale*W of the features");
}

void CarafePlugin::outputShape(
    nvinfer1::DimsExprs const* inputs, nvinfer1::DimsExprs& output, nvinfer1::IExprBuilder& builder) const
{
    upsampledShape(context(), builder, inputs[kX], mAttributes.scale, output);
}

DluStatus CarafePlugin::checkKernelParameters(nvinfer1::Dims const* inputDims) const
{
    CarafeParams const p = params(inputDims[kX]);
    return dlu_kernels_carafe_check(&p);
}

DluStatus CarafePlugin::launch(
    DluDType dtype, nvinfer1::Dims const* inputDims, void const* const* inputs, void* output, cudaStream_t stream) const
{
    CarafeParams const p = params(inputDims[kX]);
    return dlu_kernels_carafe_forward_cuda(dtype, &p, inputs[kX], inputs[kMasks], output, stream);
}

std::vector<nvinfer1::PluginField> CarafePlugin::serializedFields() const
{
    return reassemblyFields(mAttributes, kFieldNames);
}

std::unique_ptr<PluginBase> CarafePlugin::copy() const
{
    return std::make_unique<CarafePlugin>(layerName(), mAttributes);
}

CarafePluginCreator::CarafePluginCreator()
    : CreatorBase(kName, reassemblyFieldSpecs(kFieldNames))
{
}

std::unique_ptr<PluginBase> CarafePluginCreator::create(std::string const& layerName, FieldReader const& fields) const
{
    std::string const context = pluginContext(kName, layerName);
    ReassemblyAttributes const attributes = readReassemblyAttributes(context, fields, kFieldNames);
    checkCarafeAttributes(context, attributes, kFieldNames);
    return std::make_unique<CarafePlugin>(layerName, attributes);
}

} // namespace dlu_trt
