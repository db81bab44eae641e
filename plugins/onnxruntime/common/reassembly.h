/*
 * What DLU, CARAFE and MMCVCARAFE share: kernel_size, group and scale (docs/ops.md), read with
 * the defaults and limits of plugins/common/node_attributes.h, and x's shape checks.
 */
#ifndef DLU_ORT_REASSEMBLY_H
#define DLU_ORT_REASSEMBLY_H

#include "kernel_io.h"
#include "node.h"

#include <cstdint>
#include <string>

namespace dlu_ort
{

struct ReassemblyAttributes
{
    int32_t kernelSize;
    int32_t group;
    int32_t scale;
};

//! How the node spells the three attributes (DLU/CARAFE: kernel_size, group, scale;
//! MMCVCARAFE: kernel_size, group_size, scale_factor).
struct ReassemblyNames
{
    char const* kernelSize;
    char const* group;
    char const* scale;
};

//! kernel_size and group (defaults 5 and 1) from the node, with the given scale.
ReassemblyAttributes readReassembly(NodeReader const& node, ReassemblyNames const& names, int32_t scale);

//! The same with the scale read as a required INT attribute.
ReassemblyAttributes readReassembly(NodeReader const& node, ReassemblyNames const& names);

//! Throws unless x's channels split into `group` equal groups.
void checkGroups(std::string const& context, Shape const& x, ReassemblyAttributes const& a, ReassemblyNames const& names);

//! "kernel_size = 5, group = 1" in the node's spelling.
std::string describe(ReassemblyAttributes const& a, ReassemblyNames const& names, bool withScale);

//! [N, C, scale*H, scale*W] for x = [N, C, H, W].
Shape upsampled(Shape const& x, int32_t scale);

} // namespace dlu_ort

#endif // DLU_ORT_REASSEMBLY_H
