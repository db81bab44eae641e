#include "ddf_plugin.h"

#include "node_attributes.h"
#include "shapes.h"

#include <limits>

namespace dlu_trt
{
namespace
{

char const* const kName = "DDF";
char const* const kKernelSize = "kernel_size";
char const* const kDilation = "dilation";
char const* const kStride = "stride";
char const* const kCombine = "combine";

// Limits and defaults shared with the ONNX Runtime custom ops (plugins/common/node_attributes.h).
char const* const kKernelSizeRange = dlu_nodes::kKernelSizeRange.text;
char const* const kPositiveRange = dlu_nodes::kPositiveRange.text;
char const* const kCombineRange = dlu_nodes::kCombineRange.text;

constexpr int32_t kMaxKernelSize = dlu_nodes::kMaxKernelSize;
constexpr int32_t kMaxInt = std::numeric_limits<int32_t>::max();

// Defaults of DDFPack (kernel_size=3, dilation=1, stride=1, kernel_combine='mul').
constexpr int32_t kDefaultKernelSize = dlu_nodes::kDdfDefaultKernelSize;
constexpr int32_t kDefaultDilation = dlu_nodes::kDdfDefaultDilation;
constexpr int32_t kDefaultStride = dlu_nodes::kDdfDefaultStride;
constexpr int32_t kDefaultCombine = dlu_nodes::kDdfDefaultCombine;

enum Input : int32_t
{
    kX = 0,
    kChannelFilter = 1,
    kSpatialFilter = 2
};

std::string describe(DdfAttributes const& a)
{
    return std::string(kKernelSize) + "=" + std::to_string(a.kernelSize) + "," + kDilation + "="
        + std::to_string(a.dilation) + "," + kStride + "=" + std::to_string(a.stride) + "," + kCombine + "="
        + std::to_string(a.combine);
}

} // namespace

DdfPlugin::DdfPlugin(std::string layerName, DdfAttributes const& attributes)
    : PluginBase(kName, {"x", "channel_filter", "spatial_filter"}, std::move(layerName), describe(attributes))
    , mAttributes(attributes)
{
}

DdfParams DdfPlugin::params(nvinfer1::Dims const& x) const noexcept
{
    return DdfParams{x.d[0], x.d[1], x.d[2], x.d[3], mAttributes.kernelSize, mAttributes.dilation, mAttributes.stride,
        mAttributes.combine};
}

void DdfPlugin::checkShapes(InputShapes const& shapes) const
{
    int64_t const k = mAttributes.kernelSize;
    int64_t const s = mAttributes.stride;
    auto const reduced = [s](int64_t dim) { return dim < 0 ? dim : dim / s; };
    shapes.expectAtLeast(kX, 2, s, "stride");
    shapes.expectAtLeast(kX, 3, s, "stride");
    shapes.expectEqual(kChannelFilter, 0, shapes.at(kX, 0), "N of x");
    shapes.expectEqual(kChannelFilter, 1, shapes.at(kX, 1), "C of x");
    shapes.expectEqual(kChannelFilter, 2, k, "kernel_size");
    shapes.expectEqual(kChannelFilter, 3, k, "kernel_size");
    shapes.expectEqual(kSpatialFilter, 0, shapes.at(kX, 0), "N of x");
    shapes.expectEqual(kSpatialFilter, 1, k * k, "kernel_size*kernel_size");
    shapes.expectEqual(kSpatialFilter, 2, reduced(shapes.at(kX, 2)), "(H of x) // stride");
    shapes.expectEqual(kSpatialFilter, 3, reduced(shapes.at(kX, 3)), "(W of x) // stride");
}

void DdfPlugin::outputShape(
    nvinfer1::DimsExprs const* inputs, nvinfer1::DimsExprs& output, nvinfer1::IExprBuilder& builder) const
{
    nvinfer1::DimsExprs const& x = inputs[kX];
    output.d[0] = x.d[0];
    output.d[1] = x.d[1];
    output.d[2] = floorDivide(context(), builder, x.d[2], mAttributes.stride);
    output.d[3] = floorDivide(context(), builder, x.d[3], mAttributes.stride);
}

DluStatus DdfPlugin::checkKernelParameters(nvinfer1::Dims const* inputDims) const
{
    DdfParams const p = params(inputDims[kX]);
    return dlu_kernels_ddf_check(&p);
}

DluStatus DdfPlugin::launch(
    DluDType dtype, nvinfer1::Dims const* inputDims, void const* const* inputs, void* output, cudaStream_t stream) const
{
    DdfParams const p = params(inputDims[kX]);
    return dlu_kernels_ddf_forward_cuda(
        dtype, &p, inputs[kX], inputs[kChannelFilter], inputs[kSpatialFilter], output, stream);
}

std::vector<nvinfer1::PluginField> DdfPlugin::serializedFields() const
{
    using nvinfer1::PluginFieldType;
    return {
        {kKernelSize, &mAttributes.kernelSize, PluginFieldType::kINT32, 1},
        {kDilation, &mAttributes.dilation, PluginFieldType::kINT32, 1},
        {kStride, &mAttributes.stride, PluginFieldType::kINT32, 1},
        {kCombine, &mAttributes.combine, PluginFieldType::kINT32, 1},
    };
}

std::unique_ptr<PluginBase> DdfPlugin::copy() const
{
    return std::make_unique<DdfPlugin>(layerName(), mAttributes);
}

DdfPluginCreator::DdfPluginCreator()
    : CreatorBase(kName,
          {{kKernelSize, nvinfer1::PluginFieldType::kINT32}, {kDilation, nvinfer1::PluginFieldType::kINT32},
              {kStride, nvinfer1::PluginFieldType::kINT32}, {kCombine, nvinfer1::PluginFieldType::kINT32}})
{
}

std::unique_ptr<PluginBase> DdfPluginCreator::create(std::string const& layerName, FieldReader const& fields) const
{
    std::string const context = pluginContext(kName, layerName);
    DdfAttributes const a{
        valueOrDefault(context, kKernelSize, fields.integer(kKernelSize), kDefaultKernelSize, kKernelSizeRange),
        valueOrDefault(context, kDilation, fields.integer(kDilation), kDefaultDilation, kPositiveRange),
        valueOrDefault(context, kStride, fields.integer(kStride), kDefaultStride, kPositiveRange),
        valueOrDefault(context, kCombine, fields.integer(kCombine), kDefaultCombine, kCombineRange),
    };
    checkRange(context, kKernelSize, a.kernelSize, 1, kMaxKernelSize, /*odd=*/true, kKernelSizeRange);
    checkRange(context, kDilation, a.dilation, 1, kMaxInt, false, kPositiveRange);
    checkRange(context, kStride, a.stride, 1, kMaxInt, false, kPositiveRange);
    checkRange(context, kCombine, a.combine, 0, 1, false, kCombineRange);
    // The kernels have the last word on the attributes (the smallest input the stride allows).
    DdfParams const probe{1, 1, a.stride, a.stride, a.kernelSize, a.dilation, a.stride, a.combine};
    requireKernelsAccept(context, dlu_kernels_ddf_check(&probe));
    return std::make_unique<DdfPlugin>(layerName, a);
}

} // namespace dlu_trt
