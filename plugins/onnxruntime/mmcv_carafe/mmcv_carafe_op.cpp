#include "mmcv_carafe_op.h"

#include "node_attributes.h"

#include <sstream>

namespace dlu_ort
{
namespace
{

ReassemblyNames const kNames{"kernel_size", "group_size", "scale_factor"};

// mmcv's symbolic always writes scale_factor as a FLOAT although CARAFE needs an integer factor;
// anything but a whole number in range is rejected, not rounded.
ReassemblyAttributes readMmcv(NodeReader const& node)
{
    std::optional<float> const scaleFactor = node.number(kNames.scale);
    if (!scaleFactor.has_value())
    {
        node.fail("the required attribute scale_factor is missing",
            std::string("Give the node scale_factor = ") + dlu_nodes::kScaleFactorRange + " (mmcv's CARAFE export "
                "writes it)");
    }
    ReassemblyAttributes attributes = readReassembly(node, kNames, 0);
    if (!dlu_nodes::isWholeScale(*scaleFactor))
    {
        std::ostringstream value;
        value << *scaleFactor;
        node.fail("attribute scale_factor = " + value.str() + " is invalid",
            std::string("Use scale_factor = ") + dlu_nodes::kScaleFactorRange
                + ": CARAFE upsamples by an integer factor");
    }
    attributes.scale = static_cast<int32_t>(*scaleFactor);
    return attributes;
}

} // namespace

MmcvCarafeOp::MmcvCarafeOp(NodeReader const& node)
    : CarafeComputation(readMmcv(node), kNames)
{
}

} // namespace dlu_ort
