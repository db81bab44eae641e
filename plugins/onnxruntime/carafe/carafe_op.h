/*
 * CARAFE (docs/ops.md#carafe) on the CARAFE kernels of plugins/kernels.
 *
 * ONNX node dlu_deploy::CARAFE(x, masks) -> out, attributes kernel_size (INT, default 5),
 * group (INT, default 1), scale (INT, required), plugin_version (STRING "1", optional).
 * x [N, C, H, W], masks [N, group*k*k, scale*H, scale*W] -> out [N, C, scale*H, scale*W].
 *
 * CarafeComputation is the part MMCVCARAFE (mmcv_carafe/) shares: the same tensors under other
 * attribute names.
 */
#ifndef DLU_ORT_CARAFE_OP_H
#define DLU_ORT_CARAFE_OP_H

#include "kernel_io.h"
#include "node.h"
#include "reassembly.h"

#include "dlu_kernels.h"

#include <array>
#include <string>

namespace dlu_ort
{

class CarafeComputation
{
public:
    using Inputs = std::array<Input, 2>;

    CarafeComputation(ReassemblyAttributes const& attributes, ReassemblyNames const& names)
        : mAttributes(attributes)
        , mNames(names)
    {
    }

    Shape outputShape(std::string const& context, Inputs const& inputs) const;
    void runCpu(std::string const& context, CpuThreads const& threads, DluDType dtype, Inputs const& inputs,
        void* out) const;
    void runCuda(std::string const& context, DluDType dtype, Inputs const& inputs, void* out, void* stream) const;

private:
    CarafeParams params(Shape const& x) const noexcept;

    ReassemblyAttributes mAttributes;
    ReassemblyNames mNames;
};

class CarafeOp : public CarafeComputation
{
public:
    static constexpr char const* kDomain = "dlu_deploy";
    static constexpr char const* kType = "CARAFE";
    static constexpr std::array<char const*, 2> kInputs{"x", "masks"};

    explicit CarafeOp(NodeReader const& node);
};

} // namespace dlu_ort

#endif // DLU_ORT_CARAFE_OP_H
