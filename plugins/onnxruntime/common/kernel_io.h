/*
 * What a kernel sees when its node runs: its inputs (checked to be 4-D tensors of the kernel's
 * dtype on the kernel's device), its output, the CUDA compute stream, and the session's intra-op
 * threads for the CPU kernels.
 */
#ifndef DLU_ORT_KERNEL_IO_H
#define DLU_ORT_KERNEL_IO_H

#include "ort_api.h"

#include <array>
#include <cstdint>
#include <functional>
#include <string>

namespace dlu_ort
{

enum class Device
{
    kCpu,
    kCuda
};

using Shape = std::array<int64_t, 4>;

//! "[1, 256, 100, 152]"
std::string describe(Shape const& shape);

struct Input
{
    void const* data;
    Shape shape;
};

class KernelIo
{
public:
    KernelIo(OrtApi const& api, OrtKernelContext* context, std::string const& nodeContext, Device device,
        ONNXTensorElementDataType type);

    //! Input `index` (called `name` in messages); throws unless it is a 4-D tensor of this kernel's dtype
    //! (`firstName` is the input that dtype is seen on) in this kernel's device memory.
    Input input(size_t index, char const* name, char const* firstName) const;

    //! Allocates the output tensor.
    void* output(Shape const& shape) const;

    //! The cudaStream_t ONNX Runtime runs the node on (CUDA kernels only; may be the default stream).
    void* computeStream() const;

private:
    OrtApi const& mApi;
    OrtKernelContext* mContext;
    std::string const& mNodeContext;
    Device mDevice;
    ONNXTensorElementDataType mType;
};

//! Runs independent work items of a CPU kernel on the session's intra-op thread pool
//! (KernelContext_ParallelFor) where the runtime offers it.
class CpuThreads
{
public:
    //! `parallelApi`: the API table of version kParallelForApiVersion, or nullptr when the runtime is older.
    CpuThreads(OrtApi const* parallelApi, OrtKernelContext const* context)
        : mApi(parallelApi)
        , mContext(context)
    {
    }

    //! False on runtimes without KernelContext_ParallelFor: the kernels then use their own threads.
    bool available() const noexcept
    {
        return mApi != nullptr;
    }

    //! Calls item(i) for i in [0, items) on the pool; rethrows the first exception an item threw.
    void run(size_t items, std::function<void(size_t)> const& item) const;

private:
    OrtApi const* mApi;
    OrtKernelContext const* mContext;
};

} // namespace dlu_ort

#endif // DLU_ORT_KERNEL_IO_H
