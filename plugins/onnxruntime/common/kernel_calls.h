/*
 * Calling the kernels of plugins/kernels (dlu_kernels.h) from a node: their statuses as
 * OrtErrors, tensor shapes checked against what the node's attributes imply, and the split of
 * a CPU call into independent channel ranges for the intra-op thread pool.
 */
#ifndef DLU_ORT_KERNEL_CALLS_H
#define DLU_ORT_KERNEL_CALLS_H

#include "dlu_kernels.h"
#include "kernel_io.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace dlu_ort
{

//! Throws an OrtError with the kernels' message (dlu_kernels_last_error(), read on this thread)
//! unless `status` is DLU_STATUS_OK.
void checkKernel(std::string const& context, DluStatus status);

//! Throws INVALID_ARGUMENT unless `actual` equals `expected`; `layout` says where each expected
//! dimension comes from, e.g. "N, group*kernel_size^2, H, W of x = [1, 8, 5, 6], kernel_size = 5, group = 1".
void expectShape(std::string const& context, char const* input, Shape const& actual, Shape const& expected,
    std::string const& layout);

inline size_t elementSize(DluDType dtype) noexcept
{
    return dtype == DLU_DTYPE_FLOAT16 ? 2 : 4;
}

//! `data` advanced by `elements` elements of `dtype`.
inline void const* advance(void const* data, int64_t elements, DluDType dtype) noexcept
{
    return static_cast<char const*>(data) + elements * static_cast<int64_t>(elementSize(dtype));
}

inline void* advance(void* data, int64_t elements, DluDType dtype) noexcept
{
    return static_cast<char*>(data) + elements * static_cast<int64_t>(elementSize(dtype));
}

//! Channels [first, first + count) of one image, all inside one group.
struct ChannelRange
{
    int64_t batch;
    int64_t group;
    int64_t first;
    int64_t count;
};

//! Splits N images of C channels in `groups` equal groups into ranges of whole-group-or-less,
//! each a separate kernel call on a thread of the pool, about one per core. The kernels compute
//! per-group data (DLU's sampled kernels, DDF's converted filters) once per call, so ranges stay
//! at least kMinChannelsPerRange wide; results are identical for any split (each output element
//! is computed by one call, the same way).
class ChannelSplit
{
public:
    static constexpr int64_t kMinChannelsPerRange = 32;

    ChannelSplit(int64_t batch, int64_t channels, int64_t groups);

    size_t size() const noexcept
    {
        return static_cast<size_t>(mBatch * mGroups * mRangesPerGroup);
    }

    ChannelRange operator[](size_t index) const noexcept;

private:
    int64_t mBatch;
    int64_t mGroups;
    int64_t mChannelsPerGroup;
    int64_t mRangesPerGroup;
};

} // namespace dlu_ort

#endif // DLU_ORT_KERNEL_CALLS_H
