#include "reassembly_attributes.h"

#include "fields.h"

#include <limits>

namespace dlu_trt
{

void checkReassemblyAttributes(
    std::string const& context, ReassemblyAttributes const& attributes, ReassemblyFieldNames const& names)
{
    checkRange(context, names.kernelSize, attributes.kernelSize, 1, kMaxKernelSize, /*odd=*/true, kKernelSizeRange);
    checkRange(context, names.group, attributes.group, 1, std::numeric_limits<int32_t>::max(), false, kGroupRange);
    checkRange(context, names.scale, attributes.scale, 1, kMaxScale, false, kScaleRange);
}

std::string describe(ReassemblyAttributes const& attributes, ReassemblyFieldNames const& names)
{
    return std::string(names.kernelSize) + "=" + std::to_string(attributes.kernelSize) + "," + names.group + "="
        + std::to_string(attributes.group) + "," + names.scale + "=" + std::to_string(attributes.scale);
}

} // namespace dlu_trt
