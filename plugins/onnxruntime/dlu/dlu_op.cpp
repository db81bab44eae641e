#include "dlu_op.h"

#include "kernel_calls.h"

namespace dlu_ort
{
namespace
{

ReassemblyNames const kNames{"kernel_size", "group", "scale"};

} // namespace

DluOp::DluOp(NodeReader const& node)
    : mAttributes(readReassembly(node, kNames))
{
    node.checkPluginVersion();
}

DluParams DluOp::params(Shape const& x) const noexcept
{
    return DluParams{x[0], x[1], x[2], x[3], mAttributes.kernelSize, mAttributes.group, mAttributes.scale};
}

Shape DluOp::outputShape(std::string const& context, Inputs const& inputs) const
{
    Shape const& x = inputs[0].shape;
    int64_t const k = mAttributes.kernelSize;
    int64_t const g = mAttributes.group;
    int64_t const s = mAttributes.scale;
    std::string const from = " of x = " + describe(x) + ", " + describe(mAttributes, kNames, true);
    expectShape(context, kInputs[1], inputs[1].shape, Shape{x[0], g * k * k, x[2], x[3]},
        "N, group*kernel_size^2, H, W" + from);
    expectShape(context, kInputs[2], inputs[2].shape, Shape{x[0], g * 2 * s * s, x[2], x[3]},
        "N, group*2*scale^2, H, W" + from);
    checkGroups(context, x, mAttributes, kNames);
    return upsampled(x, mAttributes.scale);
}

void DluOp::runCpu(
    std::string const& context, CpuThreads const& threads, DluDType dtype, Inputs const& inputs, void* out) const
{
    Shape const& x = inputs[0].shape;
    DluParams const whole = params(x);
    checkKernel(context, dlu_kernels_dlu_check(&whole));
    if (!threads.available())
    {
        checkKernel(context,
            dlu_kernels_dlu_forward_cpu(dtype, &whole, inputs[0].data, inputs[1].data, inputs[2].data, out, 0));
        return;
    }
    int64_t const plane = x[2] * x[3];
    int64_t const s2 = int64_t{mAttributes.scale} * mAttributes.scale;
    int64_t const taps = int64_t{mAttributes.kernelSize} * mAttributes.kernelSize;
    ChannelSplit const split(x[0], x[1], mAttributes.group);
    threads.run(split.size(), [&](size_t index) {
        ChannelRange const r = split[index];
        // One group's channels see only that group's kernels and offsets: a group-1 call on them.
        DluParams const part{1, r.count, x[2], x[3], mAttributes.kernelSize, 1, mAttributes.scale};
        int64_t const groupIndex = r.batch * mAttributes.group + r.group;
        int64_t const channel = r.batch * x[1] + r.first;
        checkKernel(context,
            dlu_kernels_dlu_forward_cpu(dtype, &part, advance(inputs[0].data, channel * plane, dtype),
                advance(inputs[1].data, groupIndex * taps * plane, dtype),
                advance(inputs[2].data, groupIndex * 2 * s2 * plane, dtype), advance(out, channel * plane * s2, dtype),
                1));
    });
}

void DluOp::runCuda(std::string const& context, DluDType dtype, Inputs const& inputs, void* out, void* stream) const
{
    DluParams const p = params(inputs[0].shape);
    checkKernel(
        context, dlu_kernels_dlu_forward_cuda(dtype, &p, inputs[0].data, inputs[1].data, inputs[2].data, out, stream));
}

} // namespace dlu_ort
