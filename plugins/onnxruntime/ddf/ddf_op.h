/*
 * DDF (docs/ops.md#ddf) on the DDF kernels of plugins/kernels.
 *
 * ONNX node dlu_deploy::DDF(x, channel_filter, spatial_filter) -> out, attributes kernel_size
 * (INT, default 3), dilation (INT, default 1), stride (INT, default 1), combine (INT, 0 = mul,
 * 1 = add, default 0), plugin_version (STRING "1", optional).
 * x [N, C, H, W], channel_filter [N, C, k, k], spatial_filter [N, k*k, H/stride, W/stride]
 * -> out [N, C, H/stride, W/stride] (floor division).
 */
#ifndef DLU_ORT_DDF_OP_H
#define DLU_ORT_DDF_OP_H

#include "kernel_io.h"
#include "node.h"

#include "dlu_kernels.h"

#include <array>
#include <cstdint>
#include <string>

namespace dlu_ort
{

struct DdfAttributes
{
    int32_t kernelSize;
    int32_t dilation;
    int32_t stride;
    int32_t combine;
};

class DdfOp
{
public:
    static constexpr char const* kDomain = "dlu_deploy";
    static constexpr char const* kType = "DDF";
    static constexpr std::array<char const*, 3> kInputs{"x", "channel_filter", "spatial_filter"};
    using Inputs = std::array<Input, kInputs.size()>;

    explicit DdfOp(NodeReader const& node);

    Shape outputShape(std::string const& context, Inputs const& inputs) const;
    void runCpu(std::string const& context, CpuThreads const& threads, DluDType dtype, Inputs const& inputs,
        void* out) const;
    void runCuda(std::string const& context, DluDType dtype, Inputs const& inputs, void* out, void* stream) const;

private:
    DdfParams params(Shape const& x) const noexcept;

    DdfAttributes mAttributes;
};

} // namespace dlu_ort

#endif // DLU_ORT_DDF_OP_H
