/*
 * MMCVCARAFE and MMCVCARAFENaive: the nodes mmcv's CARAFE and CARAFENaive symbolics emit
 * (docs/ops.md#mmcvcarafe), computed by the CARAFE kernels, so ONNX files already exported from
 * mmcv/mmdetection models parse unchanged. mmcv's two ops compute the same function (CARAFENaive
 * is its reference implementation) and export the same attributes.
 *
 * ONNX node MMCVCARAFE / MMCVCARAFENaive(features, masks) -> out, attributes kernel_size (INT),
 * group_size (INT), scale_factor (FLOAT, a whole number). Shapes as CARAFE.
 */
#ifndef DLU_TRT_MMCV_CARAFE_PLUGIN_H
#define DLU_TRT_MMCV_CARAFE_PLUGIN_H

#include "carafe_plugin.h"

namespace dlu_trt
{

//! The node names of mmcv's CARAFE (mmcv/ops/carafe.py CARAFEFunction) and CARAFENaive
//! (CARAFENaiveFunction) symbolics, domain "mmcv".
inline constexpr char const* kMmcvCarafe = "MMCVCARAFE";
inline constexpr char const* kMmcvCarafeNaive = "MMCVCARAFENaive";

class MmcvCarafePlugin final : public CarafePlugin
{
public:
    //! `name`: kMmcvCarafe or kMmcvCarafeNaive. `scaleFactor` equals attributes.scale; it is
    //! serialised as FLOAT32, the ONNX attribute's type.
    MmcvCarafePlugin(
        char const* name, std::string layerName, ReassemblyAttributes const& attributes, float scaleFactor);

private:
    std::vector<nvinfer1::PluginField> serializedFields() const override;
    std::unique_ptr<PluginBase> copy() const override;

    char const* mName;
    float mScaleFactor;
};

class MmcvCarafePluginCreator final : public CreatorBase
{
public:
    //! `name`: kMmcvCarafe or kMmcvCarafeNaive.
    explicit MmcvCarafePluginCreator(char const* name);

private:
    std::unique_ptr<PluginBase> create(std::string const& layerName, FieldReader const& fields) const override;

    char const* mName;
};

} // namespace dlu_trt

#endif // DLU_TRT_MMCV_CARAFE_PLUGIN_H
