#include "kernel_calls.h"

#include "ort_api.h"

#include <algorithm>
#include <thread>

namespace dlu_ort
{

void checkKernel(std::string const& context, DluStatus status)
{
    if (status == DLU_STATUS_OK)
    {
        return;
    }
    std::string const message = context + ": " + dlu_kernels_last_error();
    switch (status)
    {
    case DLU_STATUS_INVALID_ARGUMENT: throw OrtError(ORT_INVALID_ARGUMENT, message);
    case DLU_STATUS_NOT_COMPILED: throw OrtError(ORT_NOT_IMPLEMENTED, message);
    case DLU_STATUS_CUDA_ERROR: throw OrtError(ORT_EP_FAIL, message);
    default: throw OrtError(ORT_FAIL, message);
    }
}

void expectShape(std::string const& context, char const* input, Shape const& actual, Shape const& expected,
    std::string const& layout)
{
    if (actual == expected)
    {
        return;
    }
    throw OrtError(ORT_INVALID_ARGUMENT,
        context + ": input " + input + " has shape " + describe(actual) + ", expected " + describe(expected) + " ("
            + layout + "). Feed tensors that match x and the node's attributes (docs/ops.md).");
}

ChannelSplit::ChannelSplit(int64_t batch, int64_t channels, int64_t groups)
    : mBatch(batch)
    , mGroups(groups)
    , mChannelsPerGroup(channels / groups)
{
    // One range per pool thread: every range repeats the per-group work (8 ranges of 32 channels
    // of a 1x256x100x152 DLU cost about 1.1-1.3x one call on one thread), so there are no more than
    // the threads can use. The pool's size is not visible to a custom op; the machine's is taken
    // (ONNX Runtime's default pool has one thread per core).
    int64_t const wanted = std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()));
    int64_t const calls = std::max<int64_t>(1, batch * groups);
    int64_t const widest = std::max<int64_t>(1, mChannelsPerGroup / kMinChannelsPerRange);
    mRangesPerGroup = std::clamp<int64_t>((wanted + calls - 1) / calls, 1, widest);
}

ChannelRange ChannelSplit::operator[](size_t index) const noexcept
{
    int64_t const i = static_cast<int64_t>(index);
    int64_t const range = i % mRangesPerGroup;
    int64_t const group = (i / mRangesPerGroup) % mGroups;
    int64_t const batch = i / (mRangesPerGroup * mGroups);
    int64_t const begin = mChannelsPerGroup * range / mRangesPerGroup;
    int64_t const end = mChannelsPerGroup * (range + 1) / mRangesPerGroup;
    return ChannelRange{batch, group, group * mChannelsPerGroup + begin, end - begin};
}

} // namespace dlu_ort
