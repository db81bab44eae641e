/*
 * MMCVCARAFE: the node mmcv's CARAFE symbolic emits (docs/ops.md#mmcvcarafe), computed by the
 * CARAFE kernels, so ONNX files exported from mmcv / mmdetection models run unchanged.
 *
 * ONNX node mmcv::MMCVCARAFE(features, masks) -> out, attributes kernel_size (INT), group_size
 * (INT), scale_factor (FLOAT, a whole number; mmcv writes it as a float). Shapes as CARAFE.
 */
#ifndef DLU_ORT_MMCV_CARAFE_OP_H
#define DLU_ORT_MMCV_CARAFE_OP_H

#include "carafe_op.h"

namespace dlu_ort
{

class MmcvCarafeOp : public CarafeComputation
{
public:
    static constexpr char const* kDomain = "mmcv";
    static constexpr char const* kType = "MMCVCARAFE";
    static constexpr std::array<char const*, 2> kInputs{"features", "masks"};

    explicit MmcvCarafeOp(NodeReader const& node);
};

} // namespace dlu_ort

#endif // DLU_ORT_MMCV_CARAFE_OP_H
