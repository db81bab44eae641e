// Runs every CUDA kernel variant (DLU and CARAFE fast and generic paths, DDF mul/add, fp32 and
// fp16, misaligned outputs, more work items than one grid dimension holds) and compares it
// with the CPU kernels of the same library, which the CPU tests check against the spec.
// Small shapes: this is also the driver that scripts/gpu-check runs under compute-sanitizer.
// Exits 77 (ctest: skipped) when no CUDA device is usable. --skip-large-grids leaves out the
// launches of 65535 blocks (the host emulator runs them in seconds, but minutes under ASan).
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "dlu_kernels.h"

namespace {

int g_failures = 0;

#define CUDA_OK(expr)                                                                             \
    do {                                                                                          \
        const cudaError_t e_ = (expr);                                                            \
        if (e_ != cudaSuccess) {                                                                  \
            std::fprintf(stderr, "CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__); \
            std::exit(1);                                                                         \
        }                                                                                         \
    } while (0)

double half_value(uint16_t bits)
{
    const int sign = bits >> 15, exponent = (bits >> 10) & 31, mantissa = bits & 1023;
    double v = exponent == 0 ? std::ldexp(mantissa, -24) : std::ldexp(1024 + mantissa, exponent - 25);
    if (exponent == 31) v = mantissa ? std::nan("") : std::numeric_limits<double>::infinity();
    return sign ? -v : v;
}

/* Host buffer of `count` random values of `dtype` (fp16: random finite half patterns). */
struct Buffer {
    DluDType dtype;
    size_t count;
    std::vector<unsigned char> host;
    void* device = nullptr;
    size_t pad_elements = 0;  // device copy starts this many elements into the allocation

    Buffer(DluDType t, size_t n, size_t pad = 0) : dtype(t), count(n), host(n * elem()), pad_elements(pad)
    {
        CUDA_OK(cudaMalloc(&device, (n + pad) * elem()));
    }
    ~Buffer() { cudaFree(device); }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;

    size_t elem() const { return dtype == DLU_DTYPE_FLOAT32 ? 4 : 2; }
    void* dev() const { return static_cast<unsigned char*>(device) + pad_elements * elem(); }
    double at(size_t i) const
    {
        if (dtype == DLU_DTYPE_FLOAT32) {
            float v;
            std::memcpy(&v, host.data() + 4 * i, 4);
            return v;
        }
        uint16_t b;
        std::memcpy(&b, host.data() + 2 * i, 2);
        return half_value(b);
    }
    /* Element i := NaN or +-infinity. */
    void set_special(size_t i, float v)
    {
        if (dtype == DLU_DTYPE_FLOAT32) {
            std::memcpy(host.data() + 4 * i, &v, 4);
        } else {
            const uint16_t h = static_cast<uint16_t>((std::signbit(v) ? 0x8000 : 0) | (std::isnan(v) ? 0x7e00 : 0x7c00));
            std::memcpy(host.data() + 2 * i, &h, 2);
        }
    }
    void fill_random(std::mt19937& rng, float scale)
    {
        std::normal_distribution<float> dist(0.0f, scale);
        for (size_t i = 0; i < count; ++i) {
            const float v = dist(rng);
            if (dtype == DLU_DTYPE_FLOAT32) {
                std::memcpy(host.data() + 4 * i, &v, 4);
            } else {
                // Round-toward-zero to a half pattern: any finite half is a valid input.
                uint32_t bits;
                std::memcpy(&bits, &v, 4);
                const uint32_t sign = (bits >> 16) & 0x8000;
                const int exponent = static_cast<int>((bits >> 23) & 255) - 127 + 15;
                uint16_t h = static_cast<uint16_t>(sign);
                if (exponent > 0 && exponent < 31) h = static_cast<uint16_t>(sign | (exponent << 10) | ((bits >> 13) & 1023));
                std::memcpy(host.data() + 2 * i, &h, 2);
            }
        }
    }
    void upload() { CUDA_OK(cudaMemcpy(dev(), host.data(), count * elem(), cudaMemcpyHostToDevice)); }
    void download() { CUDA_OK(cudaMemcpy(host.data(), dev(), count * elem(), cudaMemcpyDeviceToHost)); }
};

void compare(const std::string& name, const Buffer& gpu, const Buffer& cpu)
{
    size_t bad = 0;
    double worst = 0;
    for (size_t i = 0; i < cpu.count; ++i) {
        const double a = gpu.at(i), b = cpu.at(i);
        const double err = std::fabs(a - b);
        const double tol = cpu.dtype == DLU_DTYPE_FLOAT32 ? 1e-5 : 1e-3 + 1e-3 * std::fabs(b);
        if (!(err <= tol)) ++bad;
        if (err > worst) worst = err;
    }
    if (bad != 0) {
        ++g_failures;
        std::fprintf(stderr, "FAIL %s: %zu of %zu elements differ (max error %g)\n", name.c_str(), bad, cpu.count, worst);
    } else {
        std::printf("ok   %s (max error %.3g)\n", name.c_str(), worst);
    }
}

void expect_status(const std::string& name, DluStatus status)
{
    if (status != DLU_STATUS_OK) {
        ++g_failures;
        std::fprintf(stderr, "FAIL %s: status %d: %s\n", name.c_str(), status, dlu_kernels_last_error());
    }
}

const char* dtype_name(DluDType t) { return t == DLU_DTYPE_FLOAT32 ? "fp32" : "fp16"; }

void run_dlu(const DluParams& p, DluDType dtype, cudaStream_t stream, std::mt19937& rng, size_t out_pad = 0)
{
    const int64_t s = p.scale, kk = int64_t{p.kernel_size} * p.kernel_size;
    const size_t out_count = p.n * p.c * p.h * s * p.w * s;
    Buffer x(dtype, p.n * p.c * p.h * p.w), kernels(dtype, p.n * p.group * kk * p.h * p.w),
        offsets(dtype, p.n * p.group * 2 * s * s * p.h * p.w), gpu(dtype, out_count, out_pad), cpu(dtype, out_count);
    x.fill_random(rng, 1.0f);
    kernels.fill_random(rng, 0.3f);
    offsets.fill_random(rng, 2.5f);  // far past the borders
    offsets.set_special(0, std::nanf(""));
    offsets.set_special(offsets.count / 3, std::numeric_limits<float>::infinity());
    offsets.set_special(offsets.count - 1, -std::numeric_limits<float>::infinity());
    x.upload();
    kernels.upload();
    offsets.upload();
    const std::string name = "DLU " + std::string(dtype_name(dtype)) + " n=" + std::to_string(p.n) +
                             " c=" + std::to_string(p.c) + " " + std::to_string(p.h) + "x" + std::to_string(p.w) +
                             " k=" + std::to_string(p.kernel_size) + " G=" + std::to_string(p.group) +
                             " s=" + std::to_string(p.scale) + (out_pad ? " misaligned" : "");
    expect_status(name, dlu_kernels_dlu_forward_cuda(dtype, &p, x.dev(), kernels.dev(), offsets.dev(), gpu.dev(), stream));
    CUDA_OK(cudaStreamSynchronize(stream));
    gpu.download();
    expect_status(name + " (cpu)", dlu_kernels_dlu_forward_cpu(dtype, &p, x.host.data(), kernels.host.data(),
                                                               offsets.host.data(), cpu.host.data(), 0));
    compare(name, gpu, cpu);
}

void run_carafe(const CarafeParams& p, DluDType dtype, cudaStream_t stream, std::mt19937& rng, size_t out_pad = 0)
{
    const int64_t s = p.scale, kk = int64_t{p.kernel_size} * p.kernel_size;
    const size_t out_count = p.n * p.c * p.h * s * p.w * s;
    Buffer x(dtype, p.n * p.c * p.h * p.w), masks(dtype, p.n * p.group * kk * p.h * s * p.w * s),
        gpu(dtype, out_count, out_pad), cpu(dtype, out_count);
    x.fill_random(rng, 1.0f);
    masks.fill_random(rng, 0.3f);
    x.upload();
    masks.upload();
    const std::string name = "CARAFE " + std::string(dtype_name(dtype)) + " n=" + std::to_string(p.n) +
                             " c=" + std::to_string(p.c) + " " + std::to_string(p.h) + "x" + std::to_string(p.w) +
                             " k=" + std::to_string(p.kernel_size) + " G=" + std::to_string(p.group) +
                             " s=" + std::to_string(p.scale) + (out_pad ? " misaligned" : "");
    expect_status(name, dlu_kernels_carafe_forward_cuda(dtype, &p, x.dev(), masks.dev(), gpu.dev(), stream));
    CUDA_OK(cudaStreamSynchronize(stream));
    gpu.download();
    expect_status(name + " (cpu)",
                  dlu_kernels_carafe_forward_cpu(dtype, &p, x.host.data(), masks.host.data(), cpu.host.data(), 0));
    compare(name, gpu, cpu);
}

void run_ddf(const DdfParams& p, DluDType dtype, cudaStream_t stream, std::mt19937& rng)
{
    const int64_t kk = int64_t{p.kernel_size} * p.kernel_size, ho = p.h / p.stride, wo = p.w / p.stride;
    const size_t out_count = p.n * p.c * ho * wo;
    Buffer x(dtype, p.n * p.c * p.h * p.w), cf(dtype, p.n * p.c * kk), sf(dtype, p.n * kk * ho * wo),
        gpu(dtype, out_count), cpu(dtype, out_count);
    x.fill_random(rng, 1.0f);
    cf.fill_random(rng, 0.5f);
    sf.fill_random(rng, 0.5f);
    x.upload();
    cf.upload();
    sf.upload();
    const std::string name = "DDF " + std::string(dtype_name(dtype)) + " n=" + std::to_string(p.n) +
                             " c=" + std::to_string(p.c) + " " + std::to_string(p.h) + "x" + std::to_string(p.w) +
                             " k=" + std::to_string(p.kernel_size) + " d=" + std::to_string(p.dilation) +
                             " stride=" + std::to_string(p.stride) + (p.combine ? " add" : " mul");
    expect_status(name, dlu_kernels_ddf_forward_cuda(dtype, &p, x.dev(), cf.dev(), sf.dev(), gpu.dev(), stream));
    CUDA_OK(cudaStreamSynchronize(stream));
    gpu.download();
    expect_status(name + " (cpu)", dlu_kernels_ddf_forward_cpu(dtype, &p, x.host.data(), cf.host.data(),
                                                               sf.host.data(), cpu.host.data(), 0));
    compare(name, gpu, cpu);
}

}  // namespace

int main(int argc, char** argv)
{
    const bool large_grids = !(argc == 2 && std::strcmp(argv[1], "--skip-large-grids") == 0);
    if (argc > 1 && large_grids) {
        std::fprintf(stderr, "usage: %s [--skip-large-grids]\n", argv[0]);
        return 2;
    }
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        std::printf("no usable CUDA device: skipped\n");
        return 77;
    }
    if (!dlu_kernels_has_cuda()) {
        std::fprintf(stderr, "libdlu_kernels was built without CUDA\n");
        return 1;
    }
    cudaStream_t stream;
    CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    std::mt19937 rng(2024);
    for (DluDType dtype : {DLU_DTYPE_FLOAT32, DLU_DTYPE_FLOAT16}) {
        // Fast path: k in {3, 5, 7} with even scales; tiles cut by odd sizes; groups; batch.
        for (int k : {3, 5, 7}) {
            run_dlu(DluParams{2, 8, 13, 37, k, 2, 2}, dtype, stream, rng);
            run_carafe(CarafeParams{2, 8, 13, 37, k, 2, 2}, dtype, stream, rng);
            run_dlu(DluParams{1, 12, 5, 9, k, 4, 4}, dtype, stream, rng);
            run_carafe(CarafeParams{1, 6, 5, 9, k, 3, 6}, dtype, stream, rng);
        }
        run_dlu(DluParams{1, 24, 17, 40, 5, 1, 2}, dtype, stream, rng, 1);  // unaligned output pointer
        run_carafe(CarafeParams{1, 24, 17, 40, 3, 1, 2}, dtype, stream, rng, 1);
        run_dlu(DluParams{1, 4, 1, 1, 5, 2, 2}, dtype, stream, rng);  // H = W = 1
        run_dlu(DluParams{1, 4, 1, 7, 3, 1, 8}, dtype, stream, rng);  // H = 1, scale 8
        run_dlu(DluParams{1, 4, 6, 1, 7, 2, 2}, dtype, stream, rng);  // W = 1
        // Generic path: k = 1 and k > 7, odd scales, scale 1.
        for (int k : {1, 9, 11, 15}) {
            run_dlu(DluParams{1, 4, 6, 7, k, 2, 2}, dtype, stream, rng);
            run_carafe(CarafeParams{1, 4, 6, 7, k, 1, 3}, dtype, stream, rng);
        }
        run_dlu(DluParams{2, 6, 7, 5, 3, 3, 3}, dtype, stream, rng);
        run_dlu(DluParams{1, 4, 5, 6, 5, 1, 1}, dtype, stream, rng);
        run_carafe(CarafeParams{1, 4, 5, 6, 7, 2, 5}, dtype, stream, rng);
        // More (n, group, split) work items than a grid's y dimension: blocks loop.
        if (large_grids) {
            run_dlu(DluParams{1, 66000, 1, 1, 3, 66000, 2}, dtype, stream, rng);
            run_carafe(CarafeParams{1, 66000, 1, 2, 1, 66000, 1}, dtype, stream, rng);
        }
        // DDF: mul/add, dilations, strides 1-3, k up to 15, odd sizes.
        for (int k : {1, 3, 5, 7, 13, 15}) {
            run_ddf(DdfParams{2, 10, 19, 23, k, 1, 1, 0}, dtype, stream, rng);
            run_ddf(DdfParams{1, 9, 20, 17, k, 2, 2, 1}, dtype, stream, rng);
        }
        run_ddf(DdfParams{1, 3, 11, 12, 3, 8, 1, 0}, dtype, stream, rng);  // dilation past the image
        run_ddf(DdfParams{1, 17, 9, 10, 3, 1, 3, 1}, dtype, stream, rng);
        if (large_grids) run_ddf(DdfParams{70000, 1, 2, 2, 3, 1, 1, 0}, dtype, stream, rng);
    }
    CUDA_OK(cudaStreamDestroy(stream));
    if (g_failures != 0) {
        std::fprintf(stderr, "%d CUDA check(s) failed\n", g_failures);
        return 1;
    }
    std::printf("all CUDA kernels match the CPU kernels\n");
    return 0;
}
