/*
 * MMCVCARAFE: the node mmcv's CARAFE symbolic emits (docs/ops.md#mmcvcarafe), computed by the
 * CARAFE kernels, so ONNX files already exported from mmcv/mmdetection models parse unchanged.
 *
 * ONNX node MMCVCARAFE(features, masks) -> out, attributes kernel_size (INT), group_size (INT),
 * scale_factor (FLOAT, a whole number). Shapes as CARAFE.
 */
#ifndef DLU_TRT_MMCV_CARAFE_PLUGIN_H
#define DLU_TRT_MMCV_CARAFE_PLUGIN_H

#include "carafe_plugin.h"

namespace dlu_trt
{

class MmcvCarafePlugin final : public CarafePlugin
{
public:
    //! `scaleFactor` equals attributes.scale; it is serialised as FLOAT32, the ONNX attribute's type.
    MmcvCarafePlugin(std::string layerName, ReassemblyAttributes const& attributes, float scaleFactor);

private:
    std::vector<nvinfer1::PluginField> serializedFields() const override;
    std::unique_ptr<PluginBase> copy() const override;

    float mScaleFactor;
};

class MmcvCarafePluginCreator final : public CreatorBase
{
public:
    MmcvCarafePluginCreator();

private:
    std::unique_ptr<PluginBase> create(std::string const& layerName, FieldReader const& fields) const override;
};

} // namespace dlu_trt

#endif // DLU_TRT_MMCV_CARAFE_PLUGIN_H
