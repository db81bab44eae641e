/*
 * enqueue on a CUDA device, compared element by element with the CPU kernels on the same
 * inputs (fp32: max abs difference <= 1e-5; fp16: |difference| <= 1e-3 + 1e-3*|cpu|, docs/ops.md
 * tolerances). Skipped with the CUDA runtime's reason where no device can be used; scripts run
 * it under compute-sanitizer too (ctest trt_plugins.gpu_memcheck).
 */
#include "harness.h"
#include "op_cases.h"
#include "suites.h"
#include "tensorrt_doubles.h"

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>

namespace harness
{
namespace
{

using nvinfer1::DataType;

void requireDevice()
{
    int32_t count = 0;
    cudaError_t const status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess || count == 0)
    {
        throw Skip{std::string("no usable CUDA device: ")
            + (status != cudaSuccess ? cudaGetErrorString(status) : "device count is 0")};
    }
}

void check(cudaError_t status, char const* what)
{
    if (status != cudaSuccess)
    {
        throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
    }
}

class DeviceBuffer
{
public:
    explicit DeviceBuffer(size_t bytes)
        : mBytes(bytes)
    {
        check(cudaMalloc(&mData, bytes), "cudaMalloc");
    }
    DeviceBuffer(DeviceBuffer const&) = delete;
    DeviceBuffer& operator=(DeviceBuffer const&) = delete;
    ~DeviceBuffer()
    {
        cudaFree(mData);
    }
    void* data() const noexcept
    {
        return mData;
    }
    size_t bytes() const noexcept
    {
        return mBytes;
    }

private:
    void* mData{nullptr};
    size_t mBytes;
};

//! Host tensor in the storage type of `dtype`, filled from float values.
std::vector<uint8_t> encode(std::vector<float> const& values, DataType dtype)
{
    size_t const element = dtype == DataType::kFLOAT ? 4 : 2;
    std::vector<uint8_t> bytes(values.size() * element);
    for (size_t i = 0; i < values.size(); ++i)
    {
        if (dtype == DataType::kFLOAT)
        {
            std::memcpy(&bytes[i * 4], &values[i], 4);
        }
        else
        {
            __half const h = __float2half_rn(values[i]);
            std::memcpy(&bytes[i * 2], &h, 2);
        }
    }
    return bytes;
}

std::vector<float> decode(std::vector<uint8_t> const& bytes, DataType dtype)
{
    size_t const element = dtype == DataType::kFLOAT ? 4 : 2;
    std::vector<float> values(bytes.size() / element);
    for (size_t i = 0; i < values.size(); ++i)
    {
        if (dtype == DataType::kFLOAT)
        {
            std::memcpy(&values[i], &bytes[i * 4], 4);
        }
        else
        {
            __half h;
            std::memcpy(&h, &bytes[i * 2], 2);
            values[i] = __half2float(h);
        }
    }
    return values;
}

int64_t elements(Shape const& shape)
{
    int64_t count = 1;
    for (int64_t d : shape)
    {
        count *= d;
    }
    return count;
}

//! Inputs of unit scale: features ~ N(0,1), filters and kernels small and positive or centred,
//! DLU offsets ~ N(0, 2) so that many samples land beyond the border.
std::vector<float> randomInput(char const* plugin, size_t input, int64_t count, std::mt19937& rng)
{
    std::normal_distribution<float> normal(0.0F, 1.0F);
    std::uniform_real_distribution<float> uniform(0.0F, 0.2F);
    std::vector<float> values(static_cast<size_t>(count));
    bool const offsets = std::strcmp(plugin, "DLU") == 0 && input == 2;
    for (float& v : values)
    {
        v = input == 0 ? normal(rng) : (offsets ? 2.0F * normal(rng) : uniform(rng));
    }
    return values;
}

struct Run
{
    std::vector<float> gpu;
    std::vector<float> cpu;
    int32_t status;
};

Run runOnce(OpCase const& op, nvinfer1::IPluginV3& plugin, Shape const& x, DataType dtype, cudaStream_t stream,
    std::mt19937& rng)
{
    std::vector<Shape> const inputShapes = op.inputs(x[0], x[1], x[2], x[3]);
    Shape const outputShape = op.output(x[0], x[1], x[2], x[3]);
    size_t const element = dtype == DataType::kFLOAT ? 4 : 2;

    std::vector<std::vector<uint8_t>> host;
    std::vector<std::unique_ptr<DeviceBuffer>> device;
    std::vector<void const*> hostPointers;
    std::vector<void const*> devicePointers;
    for (size_t i = 0; i < inputShapes.size(); ++i)
    {
        host.push_back(encode(randomInput(op.plugin, i, elements(inputShapes[i]), rng), dtype));
        device.push_back(std::make_unique<DeviceBuffer>(host.back().size()));
        check(cudaMemcpy(device.back()->data(), host.back().data(), host.back().size(), cudaMemcpyHostToDevice),
            "copy input");
        hostPointers.push_back(host.back().data());
        devicePointers.push_back(device.back()->data());
    }
    size_t const outputBytes = static_cast<size_t>(elements(outputShape)) * element;
    DeviceBuffer output(outputBytes);
    // All bits set is NaN in fp32 and fp16: an element the kernel does not write stays NaN.
    check(cudaMemset(output.data(), 0xFF, outputBytes), "fill output");

    auto const in = tensorDescs(inputShapes, dtype);
    auto const out = tensorDescs({outputShape}, dtype);
    Run run{};
    run.status = runtime(plugin).onShapeChange(in.data(), static_cast<int32_t>(in.size()), out.data(), 1);
    if (run.status == 0)
    {
        void* outputs[1] = {output.data()};
        run.status = runtime(plugin).enqueue(in.data(), out.data(), devicePointers.data(), outputs, nullptr, stream);
    }
    check(cudaStreamSynchronize(stream), "synchronise");
    std::vector<uint8_t> result(outputBytes);
    check(cudaMemcpy(result.data(), output.data(), outputBytes, cudaMemcpyDeviceToHost), "copy output");
    run.gpu = decode(result, dtype);

    std::vector<uint8_t> reference(outputBytes);
    DluDType const kernelType = dtype == DataType::kFLOAT ? DLU_DTYPE_FLOAT32 : DLU_DTYPE_FLOAT16;
    EXPECT(op.cpu(kernelType, x, hostPointers, reference.data()) == DLU_STATUS_OK,
        std::string("CPU kernel: ") + dlu_kernels_last_error());
    run.cpu = decode(reference, dtype);
    return run;
}

void matchesCpuKernels(DataType dtype)
{
    requireDevice();
    cudaStream_t stream{};
    check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "create stream");
    std::mt19937 rng(20240611);
    for (OpCase const& op : opCases())
    {
        Fields fields = op.fields();
        PluginPtr created = requirePlugin(op.plugin, fields, nvinfer1::TensorRTPhase::kRUNTIME);
        RecordingErrorRecorder recorder;
        TestResourceContext context(&recorder);
        // One attached object for every shape: enqueue keeps no state between shapes.
        PluginPtr plugin(runtime(*created).attachToContext(&context));
        int64_t const c = op.channels;
        int64_t const lo = op.minSpatial;
        for (Shape const& x : {Shape{2, c, 5, 7}, Shape{1, c, lo, lo + 1}, Shape{3, 4 * c, 31, 45}, Shape{1, c, 6, 4}})
        {
            Run const run = runOnce(op, *plugin, x, dtype, stream, rng);
            std::string const where = std::string(op.plugin) + (dtype == DataType::kFLOAT ? " fp32" : " fp16") + " x=["
                + std::to_string(x[0]) + "," + std::to_string(x[1]) + "," + std::to_string(x[2]) + ","
                + std::to_string(x[3]) + "]";
            EXPECT(run.status == 0, where + ": enqueue succeeds");
            double worst = 0.0;
            int64_t outside = 0;
            for (size_t i = 0; i < run.gpu.size(); ++i)
            {
                double const difference = std::fabs(double(run.gpu[i]) - double(run.cpu[i]));
                double const allowed = dtype == DataType::kFLOAT ? 1e-5 : 1e-3 + 1e-3 * std::fabs(run.cpu[i]);
                worst = std::max(worst, std::isnan(difference) ? INFINITY : difference);
                outside += (difference <= allowed) ? 0 : 1;
            }
            EXPECT(outside == 0,
                where + ": " + std::to_string(outside)
                    + " elements outside tolerance, max |gpu - cpu| = " + std::to_string(worst));
            std::printf("    %s: max |gpu - cpu| = %.3g over %zu elements\n", where.c_str(), worst, run.gpu.size());
        }
        EXPECT(recorder.getNbErrors() == 0, std::string(op.plugin) + ": no errors recorded");
    }
    check(cudaStreamDestroy(stream), "destroy stream");
}

void failedEnqueueLeavesOutputUntouched()
{
    requireDevice();
    Fields fields = Fields().i32("kernel_size", 3).i32("group", 4).i32("scale", 2);
    PluginPtr plugin = requirePlugin("DLU", fields, nvinfer1::TensorRTPhase::kRUNTIME);
    RecordingErrorRecorder recorder;
    TestResourceContext context(&recorder);
    PluginPtr attached(runtime(*plugin).attachToContext(&context));
    // C = 6 is not a multiple of group = 4.
    auto const in = tensorDescs({{1, 6, 4, 4}, {1, 36, 4, 4}, {1, 32, 4, 4}}, DataType::kFLOAT);
    auto const out = tensorDescs({{1, 6, 8, 8}}, DataType::kFLOAT);
    DeviceBuffer x(6 * 16 * 4);
    DeviceBuffer kernels(36 * 16 * 4);
    DeviceBuffer offsets(32 * 16 * 4);
    DeviceBuffer output(6 * 64 * 4);
    check(cudaMemset(output.data(), 0x5A, output.bytes()), "fill output");
    void const* inputs[3] = {x.data(), kernels.data(), offsets.data()};
    void* outputs[1] = {output.data()};
    EXPECT(runtime(*attached).enqueue(in.data(), out.data(), inputs, outputs, nullptr, nullptr) != 0,
        "enqueue fails for C not divisible by the group");
    check(cudaDeviceSynchronize(), "synchronise");
    std::vector<uint8_t> result(output.bytes());
    check(cudaMemcpy(result.data(), output.data(), result.size(), cudaMemcpyDeviceToHost), "copy output");
    bool untouched = true;
    for (uint8_t byte : result)
    {
        untouched = untouched && byte == 0x5A;
    }
    EXPECT(untouched, "the output is not written");
    EXPECT(recorder.getNbErrors() == 1, "the error is recorded");
}

} // namespace

int probeGpu()
{
    try
    {
        requireDevice();
        return 0;
    }
    catch (Skip const& skip)
    {
        std::printf("SKIPPED: %s\n", skip.reason.c_str());
        return kSkipExitCode;
    }
}

int runGpuSuite()
{
    static CapturingLogger logger;
    static TestLoggerFinder finder(logger);
    library().setLoggerFinder(&finder);
    return runTests("gpu",
        {
            {"fp32_matches_cpu_kernels", [] { matchesCpuKernels(DataType::kFLOAT); }},
            {"fp16_matches_cpu_kernels", [] { matchesCpuKernels(DataType::kHALF); }},
            {"failed_enqueue_leaves_output_untouched", failedEnqueueLeavesOutputUntouched},
        });
}

} // namespace harness
