/*
 * The attributes DLU and CARAFE share (docs/ops.md): kernel_size k, group G, scale s, with the
 * limits "k odd, 1 <= k <= 15; 1 <= s <= 8; G >= 1" (C % G == 0 is a shape check).
 */
#ifndef DLU_TRT_REASSEMBLY_ATTRIBUTES_H
#define DLU_TRT_REASSEMBLY_ATTRIBUTES_H

#include "fields.h"
#include "node_attributes.h"

#include "NvInferRuntime.h"

#include <cstdint>
#include <string>
#include <vector>

namespace dlu_trt
{

// Limits and defaults shared with the ONNX Runtime custom ops (plugins/common/node_attributes.h).
constexpr int32_t kMaxKernelSize = dlu_nodes::kMaxKernelSize;
constexpr int32_t kMaxScale = dlu_nodes::kMaxScale;

constexpr char const* kKernelSizeRange = dlu_nodes::kKernelSizeRange.text;
constexpr char const* kGroupRange = dlu_nodes::kGroupRange.text;
constexpr char const* kScaleRange = dlu_nodes::kScaleRange.text;

// Defaults of the modules' constructors (DLUPack / CARAFEPack: up_kernel=5, up_group=1); the
// scale has none there, so it has none here either.
constexpr int32_t kDefaultKernelSize = dlu_nodes::kReassemblyDefaultKernelSize;
constexpr int32_t kDefaultGroup = dlu_nodes::kReassemblyDefaultGroup;

struct ReassemblyAttributes
{
    int32_t kernelSize;
    int32_t group;
    int32_t scale;
};

//! Field names as the ONNX node spells them (CARAFE/DLU: kernel_size, group, scale;
//! MMCVCARAFE: kernel_size, group_size, scale_factor).
struct ReassemblyFieldNames
{
    char const* kernelSize;
    char const* group;
    char const* scale;
};

//! Throws a PluginError naming the field and value unless the attributes are within the limits.
void checkReassemblyAttributes(
    std::string const& context, ReassemblyAttributes const& attributes, ReassemblyFieldNames const& names);

//! "kernel_size=5,group=1,scale=2" with the given field names.
std::string describe(ReassemblyAttributes const& attributes, ReassemblyFieldNames const& names);

//! The creator's field declarations: kernel_size and group as kINT32, the scale as `scaleType`.
std::vector<FieldSpec> reassemblyFieldSpecs(
    ReassemblyFieldNames const& names, nvinfer1::PluginFieldType scaleType = nvinfer1::PluginFieldType::kINT32);

//! kernel_size and group (defaults 5 and 1) from the fields, and the given scale.
ReassemblyAttributes readReassemblyAttributes(
    std::string const& context, FieldReader const& fields, ReassemblyFieldNames const& names, int32_t scale);

//! The same with the scale read as a required integer field (DLU, CARAFE).
ReassemblyAttributes readReassemblyAttributes(
    std::string const& context, FieldReader const& fields, ReassemblyFieldNames const& names);

//! The three attributes as kINT32 fields pointing into `attributes` (which must outlive them).
std::vector<nvinfer1::PluginField> reassemblyFields(
    ReassemblyAttributes const& attributes, ReassemblyFieldNames const& names);

//! out = [N, C, scale*H, scale*W] for x = [N, C, H, W].
void upsampledShape(std::string const& context, nvinfer1::IExprBuilder& builder, nvinfer1::DimsExprs const& x,
    int32_t scale, nvinfer1::DimsExprs& out);

} // namespace dlu_trt

#endif // DLU_TRT_REASSEMBLY_ATTRIBUTES_H
