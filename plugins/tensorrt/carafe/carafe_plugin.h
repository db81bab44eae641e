/*
 * CARAFE (content-aware reassembly, mmcv semantics), docs/ops.md#carafe.
 *
 * ONNX node CARAFE(x, masks) -> out, attributes kernel_size, group, scale:
 *   x [N, C, H, W], masks [N, G*k*k, s*H, s*W] -> out [N, C, s*H, s*W].
 */
#ifndef DLU_TRT_CARAFE_PLUGIN_H
#define DLU_TRT_CARAFE_PLUGIN_H

#include "creator_base.h"
#include "plugin_base.h"
#include "reassembly_attributes.h"

namespace dlu_trt
{

class CarafePlugin : public PluginBase
{
public:
    CarafePlugin(std::string layerName, ReassemblyAttributes const& attributes);

protected:
    //! For plugins computing CARAFE under another name and other field names (MMCVCARAFE).
    CarafePlugin(char const* pluginName, std::vector<char const*> inputNames, std::string layerName,
        ReassemblyAttributes const& attributes, ReassemblyFieldNames const& fieldNames);

    ReassemblyAttributes const& attributes() const noexcept
    {
        return mAttributes;
    }

    std::vector<nvinfer1::PluginField> serializedFields() const override;
    std::unique_ptr<PluginBase> copy() const override;

private:
    void checkShapes(InputShapes const& shapes) const override;
    void outputShape(
        nvinfer1::DimsExprs const* inputs, nvinfer1::DimsExprs& output, nvinfer1::IExprBuilder& builder) const override;
    DluStatus checkKernelParameters(nvinfer1::Dims const* inputDims) const override;
    DluStatus launch(DluDType dtype, nvinfer1::Dims const* inputDims, void const* const* inputs, void* output,
        cudaStream_t stream) const override;

    CarafeParams params(nvinfer1::Dims const& x) const noexcept;

    ReassemblyAttributes mAttributes;
};

class CarafePluginCreator final : public CreatorBase
{
public:
    CarafePluginCreator();

private:
    std::unique_ptr<PluginBase> create(std::string const& layerName, FieldReader const& fields) const override;
};

//! The attributes accepted by the CARAFE kernels, or a PluginError naming the field and value.
void checkCarafeAttributes(
    std::string const& context, ReassemblyAttributes const& attributes, ReassemblyFieldNames const& names);

} // namespace dlu_trt

#endif // DLU_TRT_CARAFE_PLUGIN_H
