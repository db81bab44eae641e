/*
 * DLU (docs/ops.md#dlu) on the DLU kernels of plugins/kernels.
 *
 * ONNX node dlu_deploy::DLU(x, kernels, offsets) -> out, attributes kernel_size (INT, default 5),
 * group (INT, default 1), scale (INT, required), plugin_version (STRING "1", optional).
 * x [N, C, H, W], kernels [N, group*k*k, H, W], offsets [N, group*2*scale^2, H, W]
 * -> out [N, C, scale*H, scale*W].
 */
#ifndef DLU_ORT_DLU_OP_H
#define DLU_ORT_DLU_OP_H

#include "kernel_io.h"
#include "node.h"
#include "reassembly.h"

#include "dlu_kernels.h"

#include <array>
#include <string>

namespace dlu_ort
{

class DluOp
{
public:
    static constexpr char const* kDomain = "dlu_deploy";
    static constexpr char const* kType = "DLU";
    static constexpr std::array<char const*, 3> kInputs{"x", "kernels", "offsets"};
    using Inputs = std::array<Input, kInputs.size()>;

    explicit DluOp(NodeReader const& node);

    Shape outputShape(std::string const& context, Inputs const& inputs) const;
    void runCpu(std::string const& context, CpuThreads const& threads, DluDType dtype, Inputs const& inputs,
        void* out) const;
    void runCuda(std::string const& context, DluDType dtype, Inputs const& inputs, void* out, void* stream) const;

private:
    DluParams params(Shape const& x) const noexcept;

    ReassemblyAttributes mAttributes;
};

} // namespace dlu_ort

#endif // DLU_ORT_DLU_OP_H
