#include "reassembly.h"

#include "node_attributes.h"
#include "ort_api.h"

namespace dlu_ort
{

ReassemblyAttributes readReassembly(NodeReader const& node, ReassemblyNames const& names, int32_t scale)
{
    // In the node's attribute order: kernel_size, group, scale.
    int32_t const kernelSize
        = node.integerIn(names.kernelSize, dlu_nodes::kKernelSizeRange, dlu_nodes::kReassemblyDefaultKernelSize);
    int32_t const group = node.integerIn(names.group, dlu_nodes::kGroupRange, dlu_nodes::kReassemblyDefaultGroup);
    return ReassemblyAttributes{kernelSize, group, scale};
}

ReassemblyAttributes readReassembly(NodeReader const& node, ReassemblyNames const& names)
{
    ReassemblyAttributes attributes = readReassembly(node, names, 0);
    attributes.scale = node.integerIn(names.scale, dlu_nodes::kScaleRange, std::nullopt);
    return attributes;
}

void checkGroups(std::string const& context, Shape const& x, ReassemblyAttributes const& a, ReassemblyNames const& names)
{
    if (x[1] % a.group != 0)
    {
        throw OrtError(ORT_INVALID_ARGUMENT,
            context + ": x has " + std::to_string(x[1]) + " channels, which " + names.group + " = "
                + std::to_string(a.group) + " does not split into equal groups. Feed x with a multiple of "
                + std::to_string(a.group) + " channels, or give the node a " + names.group
                + " that divides the channel count.");
    }
}

std::string describe(ReassemblyAttributes const& a, ReassemblyNames const& names, bool withScale)
{
    std::string text = std::string(names.kernelSize) + " = " + std::to_string(a.kernelSize) + ", " + names.group
        + " = " + std::to_string(a.group);
    return withScale ? text + ", " + names.scale + " = " + std::to_string(a.scale) : text;
}

Shape upsampled(Shape const& x, int32_t scale)
{
    return Shape{x[0], x[1], x[2] * scale, x[3] * scale};
}

} // namespace dlu_ort
