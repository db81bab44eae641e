#include "ddf_op.h"

#include "kernel_calls.h"
#include "node_attributes.h"

namespace dlu_ort
{
namespace
{

DdfAttributes readDdf(NodeReader const& node)
{
    node.checkPluginVersion();
    // In the node's attribute order.
    DdfAttributes const a{
        node.integerIn("kernel_size", dlu_nodes::kKernelSizeRange, dlu_nodes::kDdfDefaultKernelSize),
        node.integerIn("dilation", dlu_nodes::kPositiveRange, dlu_nodes::kDdfDefaultDilation),
        node.integerIn("stride", dlu_nodes::kPositiveRange, dlu_nodes::kDdfDefaultStride),
        node.integerIn("combine", dlu_nodes::kCombineRange, dlu_nodes::kDdfDefaultCombine),
    };
    // The kernels have the last word on the attributes (the smallest input the stride allows).
    DdfParams const probe{1, 1, a.stride, a.stride, a.kernelSize, a.dilation, a.stride, a.combine};
    if (dlu_kernels_ddf_check(&probe) != DLU_STATUS_OK)
    {
        node.fail(dlu_kernels_last_error(), "Fix the node's attributes (docs/ops.md#ddf)");
    }
    return a;
}

std::string describe(DdfAttributes const& a)
{
    return "kernel_size = " + std::to_string(a.kernelSize) + ", stride = " + std::to_string(a.stride);
}

} // namespace

DdfOp::DdfOp(NodeReader const& node)
    : mAttributes(readDdf(node))
{
}

DdfParams DdfOp::params(Shape const& x) const noexcept
{
    return DdfParams{x[0], x[1], x[2], x[3], mAttributes.kernelSize, mAttributes.dilation, mAttributes.stride,
        mAttributes.combine};
}

Shape DdfOp::outputShape(std::string const& context, Inputs const& inputs) const
{
    Shape const& x = inputs[0].shape;
    int64_t const k = mAttributes.kernelSize;
    int64_t const s = mAttributes.stride;
    if (x[0] > 0 && x[1] > 0 && (x[2] < s || x[3] < s))
    {
        throw OrtError(ORT_INVALID_ARGUMENT,
            context + ": x = " + dlu_ort::describe(x) + " gives an empty output at stride = " + std::to_string(s)
                + ". Feed inputs at least stride pixels high and wide.");
    }
    Shape const out{x[0], x[1], x[2] / s, x[3] / s};
    std::string const from = " of x = " + dlu_ort::describe(x) + ", " + describe(mAttributes);
    expectShape(context, kInputs[1], inputs[1].shape, Shape{x[0], x[1], k, k}, "N, C, kernel_size, kernel_size" + from);
    expectShape(context, kInputs[2], inputs[2].shape, Shape{x[0], k * k, out[2], out[3]},
        "N, kernel_size^2, H // stride, W // stride" + from);
    return out;
}

void DdfOp::runCpu(
    std::string const& context, CpuThreads const& threads, DluDType dtype, Inputs const& inputs, void* out) const
{
    Shape const& x = inputs[0].shape;
    DdfParams const whole = params(x);
    checkKernel(context, dlu_kernels_ddf_check(&whole));
    if (!threads.available())
    {
        checkKernel(context,
            dlu_kernels_ddf_forward_cpu(dtype, &whole, inputs[0].data, inputs[1].data, inputs[2].data, out, 0));
        return;
    }
    int64_t const plane = x[2] * x[3];
    int64_t const outPlane = (x[2] / mAttributes.stride) * (x[3] / mAttributes.stride);
    int64_t const taps = int64_t{mAttributes.kernelSize} * mAttributes.kernelSize;
    ChannelSplit const split(x[0], x[1], 1);
    threads.run(split.size(), [&](size_t index) {
        ChannelRange const r = split[index];
        DdfParams part = whole;
        part.n = 1;
        part.c = r.count;
        int64_t const channel = r.batch * x[1] + r.first;
        checkKernel(context,
            dlu_kernels_ddf_forward_cpu(dtype, &part, advance(inputs[0].data, channel * plane, dtype),
                advance(inputs[1].data, channel * taps, dtype), advance(inputs[2].data, r.batch * taps * outPlane, dtype),
                advance(out, channel * outPlane, dtype), 1));
    });
}

void DdfOp::runCuda(std::string const& context, DluDType dtype, Inputs const& inputs, void* out, void* stream) const
{
    DdfParams const p = params(inputs[0].shape);
    checkKernel(
        context, dlu_kernels_ddf_forward_cuda(dtype, &p, inputs[0].data, inputs[1].data, inputs[2].data, out, stream));
}

} // namespace dlu_ort
