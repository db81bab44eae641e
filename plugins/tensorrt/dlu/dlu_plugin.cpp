#include "dlu_plugin.h"

#include "shapes.h"

namespace dlu_trt
{
namespace
{

char const* const kName = "DLU";
ReassemblyFieldNames const kFieldNames{"kernel_size", "group", "scale"};

enum Input : int32_t
{
    kX = 0,
    kKernels = 1,
    kOffsets = 2
};

} // namespace

DluPlugin::DluPlugin(std::string layerName, ReassemblyAttributes const& attributes)
    : PluginBase(kName, {"x", "kernels", "offsets"}, std::move(layerName), describe(attributes, kFieldNames))
    , mAttributes(attributes)
{
}

DluParams DluPlugin::params(nvinfer1::Dims const& x) const noexcept
{
    return DluParams{x.d[0], x.d[1], x.d[2], x.d[3], mAttributes.kernelSize, mAttributes.group, mAttributes.scale};
}

void DluPlugin::checkShapes(InputShapes const& shapes) const
{
    int64_t const k = mAttributes.kernelSize;
    int64_t const g = mAttributes.group;
    int64_t const s = mAttributes.scale;
    shapes.expectMultipleOf(kX, 1, g, "group");
    for (Input const input : {kKernels, kOffsets})
    {
        shapes.expectEqual(input, 0, shapes.at(kX, 0), "N of x");
        shapes.expectEqual(input, 2, shapes.at(kX, 2), "H of x");
        shapes.expectEqual(input, 3, shapes.at(kX, 3), "W of x");
    }
    shapes.expectEqual(kKernels, 1, g * k * k, "group*kernel_size*kernel_size");
    shapes.expectEqual(kOffsets, 1, 2 * g * s * s, "2*group*scale*scale");
}

void DluPlugin::outputShape(
    nvinfer1::DimsExprs const* inputs, nvinfer1::DimsExprs& output, nvinfer1::IExprBuilder& builder) const
{
    upsampledShape(context(), builder, inputs[kX], mAttributes.scale, output);
}

DluStatus DluPlugin::checkKernelParameters(nvinfer1::Dims const* inputDims) const
{
    DluParams const p = params(inputDims[kX]);
    return dlu_kernels_dlu_check(&p);
}

DluStatus DluPlugin::launch(
    DluDType dtype, nvinfer1::Dims const* inputDims, void const* const* inputs, void* output, cudaStream_t stream) const
{
    DluParams const p = params(inputDims[kX]);
    return dlu_kernels_dlu_forward_cuda(dtype, &p, inputs[kX], inputs[kKernels], inputs[kOffsets], output, stream);
}

std::vector<nvinfer1::PluginField> DluPlugin::serializedFields() const
{
    return reassemblyFields(mAttributes, kFieldNames);
}

std::unique_ptr<PluginBase> DluPlugin::copy() const
{
    return std::make_unique<DluPlugin>(layerName(), mAttributes);
}

DluPluginCreator::DluPluginCreator()
    : CreatorBase(kName, reassemblyFieldSpecs(kFieldNames))
{
}

std::unique_ptr<PluginBase> DluPluginCreator::create(std::string const& layerName, FieldReader const& fields) const
{
    std::string const context = pluginContext(kName, layerName);
    ReassemblyAttributes const attributes = readReassemblyAttributes(context, fields, kFieldNames);
    checkReassemblyAttributes(context, attributes, kFieldNames);
    // The kernels have the last word on the attributes (one size that any group divides).
    DluParams const probe{1, attributes.group, 1, 1, attributes.kernelSize, attributes.group, attributes.scale};
    requireKernelsAccept(context, dlu_kernels_dlu_check(&probe));
    return std::make_unique<DluPlugin>(layerName, attributes);
}

} // namespace dlu_trt
