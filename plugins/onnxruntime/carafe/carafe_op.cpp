#include "carafe_op.h"

#include "kernel_calls.h"

namespace dlu_ort
{
namespace
{

ReassemblyNames const kNames{"kernel_size", "group", "scale"};

ReassemblyAttributes readChecked(NodeReader const& node)
{
    node.checkPluginVersion();
    return readReassembly(node, kNames);
}

} // namespace

CarafeOp::CarafeOp(NodeReader const& node)
    : CarafeComputation(readChecked(node), kNames)
{
}

CarafeParams CarafeComputation::params(Shape const& x) const noexcept
{
    return CarafeParams{x[0], x[1], x[2], x[3], mAttributes.kernelSize, mAttributes.group, mAttributes.scale};
}

Shape CarafeComputation::outputShape(std::string const& context, Inputs const& inputs) const
{
    Shape const& x = inputs[0].shape;
    int64_t const k = mAttributes.kernelSize;
    int64_t const s = mAttributes.scale;
    Shape const out = upsampled(x, mAttributes.scale);
    expectShape(context, "masks", inputs[1].shape, Shape{x[0], mAttributes.group * k * k, out[2], out[3]},
        "N, " + std::string(mNames.group) + "*kernel_size^2, " + std::to_string(s) + "*H, " + std::to_string(s)
            + "*W of x = " + describe(x) + ", " + describe(mAttributes, mNames, true));
    checkGroups(context, x, mAttributes, mNames);
    return out;
}

void CarafeComputation::runCpu(
    std::string const& context, CpuThreads const& threads, DluDType dtype, Inputs const& inputs, void* out) const
{
    Shape const& x = inputs[0].shape;
    CarafeParams const whole = params(x);
    checkKernel(context, dlu_kernels_carafe_check(&whole));
    if (!threads.available())
    {
        checkKernel(context, dlu_kernels_carafe_forward_cpu(dtype, &whole, inputs[0].data, inputs[1].data, out, 0));
        return;
    }
    int64_t const plane = x[2] * x[3];
    int64_t const s2 = int64_t{mAttributes.scale} * mAttributes.scale;
    int64_t const taps = int64_t{mAttributes.kernelSize} * mAttributes.kernelSize;
    ChannelSplit const split(x[0], x[1], mAttributes.group);
    threads.run(split.size(), [&](size_t index) {
        ChannelRange const r = split[index];
        // One group's channels see only that group's masks: a group-1 call on them.
        CarafeParams const part{1, r.count, x[2], x[3], mAttributes.kernelSize, 1, mAttributes.scale};
        int64_t const groupIndex = r.batch * mAttributes.group + r.group;
        int64_t const channel = r.batch * x[1] + r.first;
        checkKernel(context,
            dlu_kernels_carafe_forward_cpu(dtype, &part, advance(inputs[0].data, channel * plane, dtype),
                advance(inputs[1].data, groupIndex * taps * plane * s2, dtype),
                advance(out, channel * plane * s2, dtype), 1));
    });
}

void CarafeComputation::runCuda(
    std::string const& context, DluDType dtype, Inputs const& inputs, void* out, void* stream) const
{
    CarafeParams const p = params(inputs[0].shape);
    checkKernel(context, dlu_kernels_carafe_forward_cuda(dtype, &p, inputs[0].data, inputs[1].data, out, stream));
}

} // namespace dlu_ort
