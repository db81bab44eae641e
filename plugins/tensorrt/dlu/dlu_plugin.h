/*
 * DLU (Dynamic Lightweight Upsampling), docs/ops.md#dlu.
 *
 * ONNX node DLU(x, kernels, offsets) -> out, attributes kernel_size, group, scale:
 *   x [N, C, H, W], kernels [N, G*k*k, H, W], offsets [N, 2*G*s*s, H, W] -> out [N, C, s*H, s*W].
 * The fused kernel samples each output pixel's reassembly kernel from the low-resolution kernel
 * space; the full-resolution kernel tensor never exists.
 */
#ifndef DLU_TRT_DLU_PLUGIN_H
#define DLU_TRT_DLU_PLUGIN_H

#include "creator_base.h"
#include "plugin_base.h"
#include "reassembly_attributes.h"

namespace dlu_trt
{

class DluPlugin final : public PluginBase
{
public:
    DluPlugin(std::string layerName, ReassemblyAttributes const& attributes);

private:
    void checkShapes(InputShapes const& shapes) const override;
    void outputShape(
        nvinfer1::DimsExprs const* inputs, nvinfer1::DimsExprs& output, nvinfer1::IExprBuilder& builder) const override;
    DluStatus checkKernelParameters(nvinfer1::Dims const* inputDims) const override;
    DluStatus launch(DluDType dtype, nvinfer1::Dims const* inputDims, void const* const* inputs, void* output,
        cudaStream_t stream) const override;
    std::vector<nvinfer1::PluginField> serializedFields() const override;
    std::unique_ptr<PluginBase> copy() const override;

    DluParams params(nvinfer1::Dims const& x) const noexcept;

    ReassemblyAttributes mAttributes;
};

class DluPluginCreator final : public CreatorBase
{
public:
    DluPluginCreator();

private:
    std::unique_ptr<PluginBase> create(std::string const& layerName, FieldReader const& fields) const override;
};

} // namespace dlu_trt

#endif // DLU_TRT_DLU_PLUGIN_H
