/*
 * DDF (decoupled dynamic filter), docs/ops.md#ddf.
 *
 * ONNX node DDF(x, channel_filter, spatial_filter) -> out, attributes kernel_size, dilation,
 * stride, combine (0 = mul, 1 = add):
 *   x [N, C, H, W], channel_filter [N, C, k, k], spatial_filter [N, k*k, H//s, W//s]
 *   -> out [N, C, H//s, W//s] (floor division).
 */
#ifndef DLU_TRT_DDF_PLUGIN_H
#define DLU_TRT_DDF_PLUGIN_H

#include "creator_base.h"
#include "plugin_base.h"

namespace dlu_trt
{

struct DdfAttributes
{
    int32_t kernelSize;
    int32_t dilation;
    int32_t stride;
    int32_t combine;
};

class DdfPlugin final : public PluginBase
{
public:
    DdfPlugin(std::string layerName, DdfAttributes const& attributes);

private:
    void checkShapes(InputShapes const& shapes) const override;
    void outputShape(
        nvinfer1::DimsExprs const* inputs, nvinfer1::DimsExprs& output, nvinfer1::IExprBuilder& builder) const override;
    DluStatus checkKernelParameters(nvinfer1::Dims const* inputDims) const override;
    DluStatus launch(DluDType dtype, nvinfer1::Dims const* inputDims, void const* const* inputs, void* output,
        cudaStream_t stream) const override;
    std::vector<nvinfer1::PluginField> serializedFields() const override;
    std::unique_ptr<PluginBase> copy() const override;

    DdfParams params(nvinfer1::Dims const& x) const noexcept;

    DdfAttributes mAttributes;
};

class DdfPluginCreator final : public CreatorBase
{
public:
    DdfPluginCreator();

private:
    std::unique_ptr<PluginBase> create(std::string const& layerName, FieldReader const& fields) const override;
};

} // namespace dlu_trt

#endif // DLU_TRT_DDF_PLUGIN_H
