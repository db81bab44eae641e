/*
 * OrtCustomOp once for every op (the ONNX Runtime counterpart of plugins/tensorrt/common's
 * plugin and creator bases). An op class provides:
 *
 *   static constexpr char const* kDomain, kType;     the node's domain and op_type
 *   static constexpr std::array<char const*, N> kInputs;  input names (docs/ops.md)
 *   explicit Op(NodeReader const& node);             reads and checks the attributes (throws)
 *   Shape outputShape(std::string const& context, std::array<Input, N> const& inputs) const;
 *   void runCpu(std::string const& context, CpuThreads const&, DluDType, std::array<Input, N> const&, void* out) const;
 *   void runCuda(std::string const& context, DluDType, std::array<Input, N> const&, void* out, void* stream) const;
 *
 * One CustomOp<Op> is registered per (execution provider, dtype): float32 and float16 on the CPU
 * execution provider and, where the kernels have CUDA, on the CUDA execution provider. Input 0
 * carries the dtype; the other inputs accept any type in the schema so that a mixed-dtype node
 * reaches this library and gets its own error rather than onnxruntime's "could not find an
 * implementation".
 */
#ifndef DLU_ORT_CUSTOM_OP_H
#define DLU_ORT_CUSTOM_OP_H

#include "dlu_kernels.h"
#include "kernel_io.h"
#include "node.h"
#include "ort_api.h"

#include <array>
#include <string>

namespace dlu_ort
{

template <class Op>
class CustomOp : public OrtCustomOp
{
public:
    static constexpr size_t kInputCount = Op::kInputs.size();

    //! `parallelApi`: the API table with KernelContext_ParallelFor, or nullptr on older runtimes.
    CustomOp(Device device, ONNXTensorElementDataType type, OrtApi const* parallelApi)
        : OrtCustomOp()
        , mDevice(device)
        , mType(type)
        , mParallelApi(parallelApi)
    {
        OrtCustomOp& op = *this; // value-initialised above: members this version does not set stay null
        // ONNX Runtime reads only the members that exist at this version and hands CreateKernelV2
        // the API table of this version (ort_api.h).
        op.version = kRequiredApiVersion;
        op.GetName = [](OrtCustomOp const*) { return Op::kType; };
        op.GetExecutionProviderType = &executionProvider;
        op.GetInputType = &inputType;
        op.GetInputTypeCount = [](OrtCustomOp const*) { return kInputCount; };
        op.GetOutputType = [](OrtCustomOp const* self, size_t) { return of(self).mType; };
        op.GetOutputTypeCount = [](OrtCustomOp const*) { return size_t{1}; };
        op.KernelDestroy = [](void* kernel) { delete static_cast<Kernel*>(kernel); };
        op.GetInputCharacteristic = [](OrtCustomOp const*, size_t) { return INPUT_OUTPUT_REQUIRED; };
        op.GetOutputCharacteristic = [](OrtCustomOp const*, size_t) { return INPUT_OUTPUT_REQUIRED; };
        op.GetInputMemoryType = [](OrtCustomOp const*, size_t) { return OrtMemTypeDefault; };
        op.GetVariadicInputMinArity = [](OrtCustomOp const*) { return 1; };
        op.GetVariadicInputHomogeneity = [](OrtCustomOp const*) { return 1; };
        op.GetVariadicOutputMinArity = [](OrtCustomOp const*) { return 1; };
        op.GetVariadicOutputHomogeneity = [](OrtCustomOp const*) { return 1; };
        op.CreateKernelV2 = &createKernel;
        op.KernelComputeV2 = &compute;
    }

    CustomOp(CustomOp const&) = delete;
    CustomOp& operator=(CustomOp const&) = delete;

private:
    struct Kernel
    {
        OrtApi const& api;
        OrtApi const* parallelApi;
        std::string context;
        Device device;
        ONNXTensorElementDataType type;
        Op op;
    };

    static CustomOp const& of(OrtCustomOp const* op) noexcept
    {
        return *static_cast<CustomOp const*>(op);
    }

    static char const* ORT_API_CALL executionProvider(OrtCustomOp const* op) noexcept
    {
        return of(op).mDevice == Device::kCuda ? "CUDAExecutionProvider" : nullptr; // nullptr: CPU
    }

    static ONNXTensorElementDataType ORT_API_CALL inputType(OrtCustomOp const* op, size_t index) noexcept
    {
        return index == 0 ? of(op).mType : ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    }

    static OrtStatusPtr ORT_API_CALL createKernel(
        OrtCustomOp const* op, OrtApi const* api, OrtKernelInfo const* info, void** kernel) noexcept
    {
        *kernel = nullptr;
        CustomOp const& self = of(op);
        return guarded(*api, [&] {
            NodeReader const node(*api, info, Op::kDomain, Op::kType);
            size_t inputs = 0;
            throwIfError(*api, api->KernelInfo_GetInputCount(info, &inputs), node.context());
            if (inputs != kInputCount)
            {
                node.fail("has " + std::to_string(inputs) + " inputs, expected " + std::to_string(kInputCount),
                    std::string("Connect ") + inputList() + " (docs/ops.md)");
            }
            for (size_t i = 1; i < kInputCount; ++i)
            {
                node.checkInputType(i, Op::kInputs[i], self.mType, Op::kInputs[0]);
            }
            *kernel = new Kernel{*api, self.mParallelApi, node.context(), self.mDevice, self.mType, Op(node)};
        });
    }

    static OrtStatusPtr ORT_API_CALL compute(void* opKernel, OrtKernelContext* context) noexcept
    {
        Kernel const& kernel = *static_cast<Kernel const*>(opKernel);
        return guarded(kernel.api, [&] {
            KernelIo const io(kernel.api, context, kernel.context, kernel.device, kernel.type);
            std::array<Input, kInputCount> inputs{};
            for (size_t i = 0; i < kInputCount; ++i)
            {
                inputs[i] = io.input(i, Op::kInputs[i], Op::kInputs[0]);
            }
            Shape const shape = kernel.op.outputShape(kernel.context, inputs);
            void* out = io.output(shape);
            if (shape[0] * shape[1] * shape[2] * shape[3] == 0)
            {
                return; // an empty batch (or map): nothing to compute
            }
            DluDType const dtype = kernel.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 ? DLU_DTYPE_FLOAT16
                                                                                      : DLU_DTYPE_FLOAT32;
            if (kernel.device == Device::kCpu)
            {
                kernel.op.runCpu(kernel.context, CpuThreads(kernel.parallelApi, context), dtype, inputs, out);
            }
            else
            {
                kernel.op.runCuda(kernel.context, dtype, inputs, out, io.computeStream());
            }
        });
    }

    static std::string inputList()
    {
        std::string list;
        for (size_t i = 0; i < kInputCount; ++i)
        {
            list += (i == 0 ? "" : i + 1 == kInputCount ? " and " : ", ") + std::string(Op::kInputs[i]);
        }
        return list;
    }

    Device mDevice;
    ONNXTensorElementDataType mType;
    OrtApi const* mParallelApi;
};

} // namespace dlu_ort

#endif // DLU_ORT_CUSTOM_OP_H
