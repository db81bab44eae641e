/*
 * The attributes of the plugin-mode ONNX nodes (docs/ops.md) as both native front ends read
 * them: the TensorRT plugins (plugins/tensorrt) and the ONNX Runtime custom ops
 * (plugins/onnxruntime). Names, defaults and allowed ranges live here once, with no TensorRT or
 * ONNX Runtime type in sight; each front end words its errors in its own terms.
 *
 * The ranges are those of the kernels' own checks (plugins/kernels/checks.cpp); C % group == 0
 * and the input shapes are checked against the tensors, not here.
 */
#ifndef DLU_NODE_ATTRIBUTES_H
#define DLU_NODE_ATTRIBUTES_H

#include <cmath>
#include <cstdint>
#include <limits>

namespace dlu_nodes
{

//! An allowed integer range, and how to say it in an error message.
struct IntRange
{
    int64_t lo;
    int64_t hi;
    bool odd;
    char const* text;
};

constexpr int32_t kMaxKernelSize = 15;
constexpr int32_t kMaxScale = 8;

constexpr IntRange kKernelSizeRange{1, kMaxKernelSize, true, "an odd integer in [1, 15]"};
constexpr IntRange kGroupRange{1, std::numeric_limits<int32_t>::max(), false, "an integer >= 1"};
constexpr IntRange kScaleRange{1, kMaxScale, false, "an integer in [1, 8]"};
constexpr IntRange kPositiveRange{1, std::numeric_limits<int32_t>::max(), false, "an integer >= 1"};
constexpr IntRange kCombineRange{0, 1, false, "0 (mul) or 1 (add)"};
//! mmcv writes CARAFE's scale_factor as a FLOAT; only whole numbers in range are accepted.
constexpr char const* kScaleFactorRange = "a whole number in [1, 8]";

constexpr bool inRange(IntRange const& range, int64_t value)
{
    return value >= range.lo && value <= range.hi && (!range.odd || value % 2 != 0);
}

//! True when `scaleFactor` (mmcv's FLOAT scale_factor) is a whole number in [1, kMaxScale].
inline bool isWholeScale(double scaleFactor)
{
    return scaleFactor >= 1.0 && scaleFactor <= kMaxScale && std::floor(scaleFactor) == scaleFactor;
}

// DLU and CARAFE (and MMCVCARAFE): defaults of the modules' constructors (DLUPack / CARAFEPack:
// up_kernel=5, up_group=1). The scale has none there, so it is required.
constexpr int32_t kReassemblyDefaultKernelSize = 5;
constexpr int32_t kReassemblyDefaultGroup = 1;

// DDF: defaults of DDFPack (kernel_size=3, dilation=1, stride=1, kernel_combine='mul').
constexpr int32_t kDdfDefaultKernelSize = 3;
constexpr int32_t kDdfDefaultDilation = 1;
constexpr int32_t kDdfDefaultStride = 1;
constexpr int32_t kDdfDefaultCombine = 0;

//! The plugin_version attribute every dlu_deploy node carries (docs/ops.md#onnx-nodes-plugin-mode).
constexpr char const* kPluginVersion = "1";

} // namespace dlu_nodes

#endif // DLU_NODE_ATTRIBUTES_H
