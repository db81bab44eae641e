// Tests of the C ABI of libdlu_kernels on the CPU: every validation and error path (status,
// message naming the field and value, nothing written), and small fp32/fp16 results against
// the formulas of docs/ops.md transcribed here in double precision, on every CPU instruction
// set this machine can run (and those against each other).
//
//   test_kernels_c_abi [--expect-isa NAME] [--expect-bad-isa-env]
// --expect-isa: DLU_KERNELS_CPU_ISA selected NAME (checked first). --expect-bad-isa-env: the
// variable names an unknown set, so CPU calls must fail with a message naming it.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "dlu_kernels.h"

namespace {

int g_failures = 0;

void expect(bool ok, const std::string& what)
{
    if (!ok) {
        ++g_failures;
        std::fprintf(stderr, "FAIL: %s\n", what.c_str());
    }
}

/* A call must fail with `status`, a message containing `needle`, and leave `out` untouched. */
void expect_error(const std::string& name, DluStatus status, DluStatus expected, const std::string& needle,
                  const std::vector<float>* out = nullptr)
{
    const std::string message = dlu_kernels_last_error();
    expect(status == expected, name + ": status " + std::to_string(status) + ", expected " + std::to_string(expected));
    expect(message.find(needle) != std::string::npos, name + ": message '" + message + "' lacks '" + needle + "'");
    if (out != nullptr) {
        bool untouched = true;
        for (float v : *out) untouched = untouched && v == 12345.0f;
        expect(untouched, name + ": the output was written");
    }
}

void expect_ok(const std::string& name, DluStatus status)
{
    expect(status == DLU_STATUS_OK, name + ": status " + std::to_string(status) + " (" + dlu_kernels_last_error() + ")");
    expect(std::string(dlu_kernels_last_error()).empty(), name + ": last_error not cleared after success");
}

// ---- formulas (docs/ops.md) in double precision --------------------------------------------

double at(const std::vector<float>& x, int64_t c_count, int64_t h, int64_t w, int64_t n, int64_t c, int64_t y,
          int64_t xx)
{
    if (y < 0 || y >= h || xx < 0 || xx >= w) return 0.0;
    return x[((n * c_count + c) * h + y) * w + xx];
}

std::vector<double> carafe_formula(const std::vector<float>& x, const std::vector<float>& masks, const CarafeParams& p)
{
    const int64_t k = p.kernel_size, s = p.scale, r = (k - 1) / 2, H = p.h * s, W = p.w * s;
    std::vector<double> out(static_cast<size_t>(p.n * p.c * H * W));
    for (int64_t n = 0; n < p.n; ++n)
        for (int64_t c = 0; c < p.c; ++c)
            for (int64_t oy = 0; oy < H; ++oy)
                for (int64_t ox = 0; ox < W; ++ox) {
                    const int64_t g = c / (p.c / p.group);
                    double acc = 0;
                    for (int64_t ky = 0; ky < k; ++ky)
                        for (int64_t kx = 0; kx < k; ++kx) {
                            const double m = masks[((n * p.group * k * k + g * k * k + ky * k + kx) * H + oy) * W + ox];
                            acc += at(x, p.c, p.h, p.w, n, c, oy / s + ky - r, ox / s + kx - r) * m;
                        }
                    out[((n * p.c + c) * H + oy) * W + ox] = acc;
                }
    return out;
}

std::vector<double> dlu_formula(const std::vector<float>& x, const std::vector<float>& kernels,
                                const std::vector<float>& offsets, const DluParams& p)
{
    const int64_t k = p.kernel_size, s = p.scale, r = (k - 1) / 2, H = p.h * s, W = p.w * s, G = p.group;
    const int64_t h = p.h, w = p.w;
    std::vector<double> out(static_cast<size_t>(p.n * p.c * H * W));
    for (int64_t n = 0; n < p.n; ++n)
        for (int64_t c = 0; c < p.c; ++c)
            for (int64_t oy = 0; oy < H; ++oy)
                for (int64_t ox = 0; ox < W; ++ox) {
                    const int64_t g = c / (p.c / G), py = oy / s, px = ox / s, j = (oy % s) * s + ox % s;
                    double u = offsets[((n * G * 2 * s * s + (2 * g) * s * s + j) * h + py) * w + px];
                    double v = offsets[((n * G * 2 * s * s + (2 * g + 1) * s * s + j) * h + py) * w + px];
                    if (std::isnan(u)) u = 0;
                    if (std::isnan(v)) v = 0;
                    const double X = std::min(std::max(px + u, 0.0), w - 1.0);
                    const double Y = std::min(std::max(py + v, 0.0), h - 1.0);
                    const int64_t x0 = static_cast<int64_t>(std::floor(X)), y0 = static_cast<int64_t>(std::floor(Y));
                    const int64_t x1 = std::min(x0 + 1, w - 1), y1 = std::min(y0 + 1, h - 1);
                    const double ax = X - x0, ay = Y - y0;
                    double acc = 0;
                    for (int64_t ky = 0; ky < k; ++ky)
                        for (int64_t kx = 0; kx < k; ++kx) {
                            const int64_t base = (n * G * k * k + g * k * k + ky * k + kx) * h * w;
                            auto K = [&](int64_t yy, int64_t xx) { return static_cast<double>(kernels[base + yy * w + xx]); };
                            const double kappa = (1 - ay) * ((1 - ax) * K(y0, x0) + ax * K(y0, x1)) +
                                                 ay * ((1 - ax) * K(y1, x0) + ax * K(y1, x1));
                            acc += at(x, p.c, h, w, n, c, py + ky - r, px + kx - r) * kappa;
                        }
                    out[((n * p.c + c) * H + oy) * W + ox] = acc;
                }
    return out;
}

std::vector<double> ddf_formula(const std::vector<float>& x, const std::vector<float>& cf, const std::vector<float>& sf,
                                const DdfParams& p)
{
    const int64_t k = p.kernel_size, r = (k - 1) / 2, s = p.stride, d = p.dilation, ho = p.h / s, wo = p.w / s;
    std::vector<double> out(static_cast<size_t>(p.n * p.c * ho * wo));
    for (int64_t n = 0; n < p.n; ++n)
        for (int64_t c = 0; c < p.c; ++c)
            for (int64_t q = 0; q < ho; ++q)
                for (int64_t e = 0; e < wo; ++e) {
                    double acc = 0;
                    for (int64_t ky = 0; ky < k; ++ky)
                        for (int64_t kx = 0; kx < k; ++kx) {
                            const double a = cf[((n * p.c + c) * k + ky) * k + kx];
                            const double b = sf[((n * k * k + ky * k + kx) * ho + q) * wo + e];
                            const double kernel = p.combine == 0 ? a * b : a + b;
                            acc += at(x, p.c, p.h, p.w, n, c, q * s + (ky - r) * d, e * s + (kx - r) * d) * kernel;
                        }
                    out[((n * p.c + c) * ho + q) * wo + e] = acc;
                }
    return out;
}

double max_abs_diff(const std::vector<float>& got, const std::vector<double>& want)
{
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(got[i] - want[i]));
    return got.size() == want.size() ? worst : std::numeric_limits<double>::infinity();
}

std::vector<float> random_vector(size_t size, std::mt19937& rng, float scale = 1.0f)
{
    std::normal_distribution<float> dist(0.0f, scale);
    std::vector<float> v(size);
    for (auto& e : v) e = dist(rng);
    return v;
}

/* Kernel or mask values like a softmax's: positive, about 1 in sum over the k*k taps. */
std::vector<float> random_weights(size_t size, int64_t taps, std::mt19937& rng)
{
    std::uniform_real_distribution<float> dist(0.0f, 2.0f / static_cast<float>(taps));
    std::vector<float> v(size);
    for (auto& e : v) e = dist(rng);
    return v;
}

// ---- fp16 helpers independent of the library -------------------------------------------------

double half_value(uint16_t bits)
{
    const int sign = bits >> 15, exponent = (bits >> 10) & 31, mantissa = bits & 1023;
    double v = exponent == 0 ? std::ldexp(mantissa, -24) : std::ldexp(1024 + mantissa, exponent - 25);
    if (exponent == 31) v = mantissa ? std::nan("") : std::numeric_limits<double>::infinity();
    return sign ? -v : v;
}

/* Nearest half to v, ties to the even bit pattern, by search over all finite halves. */
uint16_t nearest_half(double v)
{
    const uint16_t sign = v < 0 ? 0x8000 : 0;
    const double a = std::fabs(v);
    if (a >= 65520.0) return sign | 0x7c00;
    uint16_t lo = 0, hi = 0x7bff;
    while (lo < hi) {  // largest pattern with value <= a
        const uint16_t mid = static_cast<uint16_t>((lo + hi + 1) / 2);
        if (half_value(mid) <= a) lo = mid; else hi = static_cast<uint16_t>(mid - 1);
    }
    uint16_t best = lo;
    if (lo < 0x7bff || a > half_value(0x7bff)) {
        const uint16_t up = static_cast<uint16_t>(lo + 1);
        const double dl = a - half_value(lo), du = half_value(up) - a;
        if (du < dl || (du == dl && (up & 1) == 0)) best = up;
    }
    return sign | best;
}

// ---- the tests ------------------------------------------------------------------------------

void test_metadata()
{
    expect(std::string(dlu_kernels_version()) == "0.1.0", "version is " + std::string(dlu_kernels_version()));
    const int32_t has_cuda = dlu_kernels_has_cuda();
    expect(has_cuda == 0 || has_cuda == 1, "has_cuda returns 0 or 1");
    expect(has_cuda || dlu_kernels_cuda_device_count() == 0, "no CUDA devices without CUDA support");
}

void test_dlu_validation()
{
    const DluParams good{2, 8, 3, 4, 3, 2, 2};
    expect_ok("dlu valid", dlu_kernels_dlu_check(&good));
    expect_error("dlu NULL", dlu_kernels_dlu_check(nullptr), DLU_STATUS_INVALID_ARGUMENT, "params is NULL");
    struct Case {
        std::function<void(DluParams&)> edit;
        const char* needle;
    };
    const Case cases[] = {
        {[](DluParams& p) { p.n = 0; }, "n=0"},
        {[](DluParams& p) { p.c = -1; }, "c=-1"},
        {[](DluParams& p) { p.h = 0; }, "h=0"},
        {[](DluParams& p) { p.w = 0; }, "w=0"},
        {[](DluParams& p) { p.kernel_size = 4; }, "kernel_size=4"},
        {[](DluParams& p) { p.kernel_size = 0; }, "kernel_size=0"},
        {[](DluParams& p) { p.kernel_size = 17; }, "kernel_size=17"},
        {[](DluParams& p) { p.scale = 0; }, "scale=0"},
        {[](DluParams& p) { p.scale = 9; }, "scale=9"},
        {[](DluParams& p) { p.group = 0; }, "group=0"},
        {[](DluParams& p) { p.group = 3; }, "group=3"},
        {[](DluParams& p) { p.n = int64_t{1} << 40; p.c = int64_t{1} << 20; p.group = 1; }, "more than 2^63"},
        {[](DluParams& p) { p.h = int64_t{1} << 40; p.w = int64_t{1} << 20; }, "more than 2^63"},
    };
    std::vector<float> x(1), k(1), o(1), out(4, 12345.0f);
    for (const auto& c : cases) {
        DluParams p = good;
        c.edit(p);
        expect_error(std::string("dlu check ") + c.needle, dlu_kernels_dlu_check(&p), DLU_STATUS_INVALID_ARGUMENT,
                     c.needle);
        expect_error(std::string("dlu cpu ") + c.needle,
                     dlu_kernels_dlu_forward_cpu(DLU_DTYPE_FLOAT32, &p, x.data(), k.data(), o.data(), out.data(), 1),
                     DLU_STATUS_INVALID_ARGUMENT, c.needle, &out);
        expect_error(std::string("dlu cuda ") + c.needle,
                     dlu_kernels_dlu_forward_cuda(DLU_DTYPE_FLOAT32, &p, x.data(), k.data(), o.data(), out.data(),
                                                  nullptr),
                     DLU_STATUS_INVALID_ARGUMENT, c.needle, &out);
    }
    const DluParams p = good;
    expect_error("dlu dtype", dlu_kernels_dlu_forward_cpu(static_cast<DluDType>(7), &p, x.data(), k.data(), o.data(),
                                                          out.data(), 1),
                 DLU_STATUS_INVALID_ARGUMENT, "dtype=7", &out);
    expect_error("dlu cuda dtype", dlu_kernels_dlu_forward_cuda(static_cast<DluDType>(-1), &p, x.data(), k.data(),
                                                                o.data(), out.data(), nullptr),
                 DLU_STATUS_INVALID_ARGUMENT, "dtype=-1", &out);
    const void* ptrs[] = {x.data(), k.data(), o.data()};
    const char* names[] = {"x is NULL", "kernels is NULL", "offsets is NULL"};
    for (int i = 0; i < 3; ++i) {
        const void* a[3] = {ptrs[0], ptrs[1], ptrs[2]};
        a[i] = nullptr;
        expect_error(names[i], dlu_kernels_dlu_forward_cpu(DLU_DTYPE_FLOAT32, &p, a[0], a[1], a[2], out.data(), 1),
                     DLU_STATUS_INVALID_ARGUMENT, names[i], &out);
        expect_error(names[i], dlu_kernels_dlu_forward_cuda(DLU_DTYPE_FLOAT16, &p, a[0], a[1], a[2], out.data(), nullptr),
                     DLU_STATUS_INVALID_ARGUMENT, names[i], &out);
    }
    expect_error("dlu out NULL", dlu_kernels_dlu_forward_cpu(DLU_DTYPE_FLOAT32, &p, x.data(), k.data(), o.data(), nullptr, 1),
                 DLU_STATUS_INVALID_ARGUMENT, "out is NULL");
}

void test_carafe_validation()
{
    const CarafeParams good{1, 6, 2, 5, 5, 3, 3};
    expect_ok("carafe valid", dlu_kernels_carafe_check(&good));
    expect_error("carafe NULL", dlu_kernels_carafe_check(nullptr), DLU_STATUS_INVALID_ARGUMENT, "params is NULL");
    struct Case {
        std::function<void(CarafeParams&)> edit;
        const char* needle;
    };
    const Case cases[] = {
        {[](CarafeParams& p) { p.n = 0; }, "n=0"},
        {[](CarafeParams& p) { p.c = 0; }, "c=0"},
        {[](CarafeParams& p) { p.h = -3; }, "h=-3"},
        {[](CarafeParams& p) { p.w = 0; }, "w=0"},
        {[](CarafeParams& p) { p.kernel_size = 2; }, "kernel_size=2"},
        {[](CarafeParams& p) { p.kernel_size = -1; }, "kernel_size=-1"},
        {[](CarafeParams& p) { p.scale = -2; }, "scale=-2"},
        {[](CarafeParams& p) { p.scale = 16; }, "scale=16"},
        {[](CarafeParams& p) { p.group = 4; }, "group=4"},
        {[](CarafeParams& p) { p.group = -1; }, "group=-1"},
        {[](CarafeParams& p) { p.h = int64_t{1} << 31; p.w = int64_t{1} << 31; }, "more than 2^63"},
    };
    std::vector<float> x(1), m(1), out(4, 12345.0f);
    for (const auto& c : cases) {
        CarafeParams p = good;
        c.edit(p);
        expect_error(std::string("carafe check ") + c.needle, dlu_kernels_carafe_check(&p), DLU_STATUS_INVALID_ARGUMENT,
                     c.needle);
        expect_error(std::string("carafe cpu ") + c.needle,
                     dlu_kernels_carafe_forward_cpu(DLU_DTYPE_FLOAT16, &p, x.data(), m.data(), out.data(), 0),
                     DLU_STATUS_INVALID_ARGUMENT, c.needle, &out);
        expect_error(std::string("carafe cuda ") + c.needle,
                     dlu_kernels_carafe_forward_cuda(DLU_DTYPE_FLOAT32, &p, x.data(), m.data(), out.data(), nullptr),
                     DLU_STATUS_INVALID_ARGUMENT, c.needle, &out);
    }
    const CarafeParams p = good;
    expect_error("carafe dtype", dlu_kernels_carafe_forward_cpu(static_cast<DluDType>(2), &p, x.data(), m.data(),
                                                                out.data(), 1),
                 DLU_STATUS_INVALID_ARGUMENT, "dtype=2", &out);
    expect_error("carafe x NULL", dlu_kernels_carafe_forward_cpu(DLU_DTYPE_FLOAT32, &p, nullptr, m.data(), out.data(), 1),
                 DLU_STATUS_INVALID_ARGUMENT, "x is NULL", &out);
    expect_error("carafe masks NULL",
                 dlu_kernels_carafe_forward_cuda(DLU_DTYPE_FLOAT32, &p, x.data(), nullptr, out.data(), nullptr),
                 DLU_STATUS_INVALID_ARGUMENT, "masks is NULL", &out);
    expect_error("carafe out NULL", dlu_kernels_carafe_forward_cpu(DLU_DTYPE_FLOAT32, &p, x.data(), m.data(), nullptr, 1),
                 DLU_STATUS_INVALID_ARGUMENT, "out is NULL");
}

void test_ddf_validation()
{
    const DdfParams good{1, 4, 6, 5, 3, 2, 2, 1};
    expect_ok("ddf valid", dlu_kernels_ddf_check(&good));
    expect_error("ddf NULL", dlu_kernels_ddf_check(nullptr), DLU_STATUS_INVALID_ARGUMENT, "params is NULL");
    struct Case {
        std::function<void(DdfParams&)> edit;
        const char* needle;
    };
    const Case cases[] = {
        {[](DdfParams& p) { p.n = -1; }, "n=-1"},
        {[](DdfParams& p) { p.c = 0; }, "c=0"},
        {[](DdfParams& p) { p.h = 0; }, "h=0"},
        {[](DdfParams& p) { p.w = -7; }, "w=-7"},
        {[](DdfParams& p) { p.kernel_size = 6; }, "kernel_size=6"},
        {[](DdfParams& p) { p.kernel_size = 19; }, "kernel_size=19"},
        {[](DdfParams& p) { p.dilation = 0; }, "dilation=0"},
        {[](DdfParams& p) { p.stride = 0; }, "stride=0"},
        {[](DdfParams& p) { p.combine = 2; }, "combine=2"},
        {[](DdfParams& p) { p.combine = -1; }, "combine=-1"},
        {[](DdfParams& p) { p.h = 1; }, "empty output"},
        {[](DdfParams& p) { p.w = 1; }, "empty output"},
        {[](DdfParams& p) { p.n = int64_t{1} << 40; p.c = int64_t{1} << 30; }, "more than 2^63"},
    };
    std::vector<float> x(1), a(1), b(1), out(4, 12345.0f);
    for (const auto& c : cases) {
        DdfParams p = good;
        c.edit(p);
        expect_error(std::string("ddf check ") + c.needle, dlu_kernels_ddf_check(&p), DLU_STATUS_INVALID_ARGUMENT,
                     c.needle);
        expect_error(std::string("ddf cpu ") + c.needle,
                     dlu_kernels_ddf_forward_cpu(DLU_DTYPE_FLOAT32, &p, x.data(), a.data(), b.data(), out.data(), 2),
                     DLU_STATUS_INVALID_ARGUMENT, c.needle, &out);
        expect_error(std::string("ddf cuda ") + c.needle,
                     dlu_kernels_ddf_forward_cuda(DLU_DTYPE_FLOAT16, &p, x.data(), a.data(), b.data(), out.data(),
                                                  nullptr),
                     DLU_STATUS_INVALID_ARGUMENT, c.needle, &out);
    }
    const DdfParams p = good;
    expect_error("ddf dtype", dlu_kernels_ddf_forward_cpu(static_cast<DluDType>(3), &p, x.data(), a.data(), b.data(),
                                                          out.data(), 1),
                 DLU_STATUS_INVALID_ARGUMENT, "dtype=3", &out);
    expect_error("ddf channel_filter NULL",
                 dlu_kernels_ddf_forward_cpu(DLU_DTYPE_FLOAT32, &p, x.data(), nullptr, b.data(), out.data(), 1),
                 DLU_STATUS_INVALID_ARGUMENT, "channel_filter is NULL", &out);
    expect_error("ddf spatial_filter NULL",
                 dlu_kernels_ddf_forward_cuda(DLU_DTYPE_FLOAT32, &p, x.data(), a.data(), nullptr, out.data(), nullptr),
                 DLU_STATUS_INVALID_ARGUMENT, "spatial_filter is NULL", &out);
    expect_error("ddf x NULL", dlu_kernels_ddf_forward_cpu(DLU_DTYPE_FLOAT32, &p, nullptr, a.data(), b.data(), out.data(), 1),
                 DLU_STATUS_INVALID_ARGUMENT, "x is NULL", &out);
    expect_error("ddf out NULL", dlu_kernels_ddf_forward_cpu(DLU_DTYPE_FLOAT32, &p, x.data(), a.data(), b.data(), nullptr, 1),
                 DLU_STATUS_INVALID_ARGUMENT, "out is NULL");
}

/* Valid CUDA calls either run (tested by test_kernels_cuda) or report why they cannot. */
void test_cuda_unavailable_paths()
{
    const DluParams p{1, 2, 2, 2, 3, 1, 2};
    std::vector<float> x(8), k(18), o(16), out(32, 12345.0f);
    if (!dlu_kernels_has_cuda()) {
        expect_error("dlu cuda not compiled",
                     dlu_kernels_dlu_forward_cuda(DLU_DTYPE_FLOAT32, &p, x.data(), k.data(), o.data(), out.data(), nullptr),
                     DLU_STATUS_NOT_COMPILED, "built without CUDA", &out);
        const CarafeParams cp{1, 2, 2, 2, 3, 1, 2};
        expect_error("carafe cuda not compiled",
                     dlu_kernels_carafe_forward_cuda(DLU_DTYPE_FLOAT32, &cp, x.data(), k.data(), out.data(), nullptr),
                     DLU_STATUS_NOT_COMPILED, "built without CUDA", &out);
        const DdfParams dp{1, 2, 2, 2, 1, 1, 1, 0};
        expect_error("ddf cuda not compiled",
                     dlu_kernels_ddf_forward_cuda(DLU_DTYPE_FLOAT32, &dp, x.data(), k.data(), o.data(), out.data(), nullptr),
                     DLU_STATUS_NOT_COMPILED, "built without CUDA", &out);
        return;
    }
    // Built with CUDA but no usable GPU (no driver or no device): a valid launch must report a
    // CUDA error instead of crashing. (With a GPU, test_kernels_cuda runs the kernels.)
    if (dlu_kernels_cuda_device_count() > 0) return;
    expect_error("dlu cuda without GPU",
                 dlu_kernels_dlu_forward_cuda(DLU_DTYPE_FLOAT32, &p, x.data(), k.data(), o.data(), out.data(), nullptr),
                 DLU_STATUS_CUDA_ERROR, "DLU: CUDA", &out);
}

void test_numerics_fp32(const std::string& isa)
{
    std::mt19937 rng(1234);
    // (n, c, h, w, k, g, s) incl. H or W = 1, k = 1, odd and even scales.
    const DluParams dlu_cases[] = {{2, 4, 3, 5, 3, 2, 2}, {1, 3, 1, 4, 5, 1, 3}, {1, 2, 4, 1, 1, 2, 2},
                                   {1, 4, 2, 3, 7, 4, 4}, {1, 2, 3, 3, 9, 1, 1}};
    for (const auto& p : dlu_cases) {
        const int64_t s = p.scale, kk = int64_t{p.kernel_size} * p.kernel_size;
        auto x = random_vector(p.n * p.c * p.h * p.w, rng);
        auto kernels = random_vector(p.n * p.group * kk * p.h * p.w, rng, 0.3f);
        auto offsets = random_vector(p.n * p.group * 2 * s * s * p.h * p.w, rng, 3.0f);  // far past borders
        offsets[0] = std::nanf("");
        offsets[offsets.size() / 2] = std::numeric_limits<float>::infinity();
        offsets.back() = -std::numeric_limits<float>::infinity();
        std::vector<float> out(p.n * p.c * p.h * s * p.w * s);
        expect_ok(isa + " dlu cpu run", dlu_kernels_dlu_forward_cpu(DLU_DTYPE_FLOAT32, &p, x.data(), kernels.data(),
                                                             offsets.data(), out.data(), 3));
        const double err = max_abs_diff(out, dlu_formula(x, kernels, offsets, p));
        expect(err <= 1e-5, isa + " dlu fp32 error " + std::to_string(err));
        std::vector<float> single(out.size());
        dlu_kernels_dlu_forward_cpu(DLU_DTYPE_FLOAT32, &p, x.data(), kernels.data(), offsets.data(), single.data(), 1);
        expect(std::memcmp(single.data(), out.data(), out.size() * sizeof(float)) == 0,
               isa + " dlu: 1 and 3 threads give different bits");
    }
    const CarafeParams carafe_cases[] = {{2, 4, 3, 5, 3, 2, 2}, {1, 3, 1, 1, 5, 1, 3}, {1, 2, 2, 3, 1, 1, 1}};
    for (const auto& p : carafe_cases) {
        const int64_t s = p.scale, kk = int64_t{p.kernel_size} * p.kernel_size;
        auto x = random_vector(p.n * p.c * p.h * p.w, rng);
        auto masks = random_vector(p.n * p.group * kk * p.h * s * p.w * s, rng, 0.3f);
        std::vector<float> out(p.n * p.c * p.h * s * p.w * s);
        expect_ok(isa + " carafe cpu run", dlu_kernels_carafe_forward_cpu(DLU_DTYPE_FLOAT32, &p, x.data(), masks.data(),
                                                                   out.data(), 0));
        const double err = max_abs_diff(out, carafe_formula(x, masks, p));
        expect(err <= 1e-5, isa + " carafe fp32 error " + std::to_string(err));
    }
    const DdfParams ddf_cases[] = {{2, 3, 5, 6, 3, 1, 1, 0}, {1, 2, 7, 5, 5, 2, 2, 1}, {1, 2, 3, 9, 3, 4, 1, 0},
                                   {1, 1, 5, 5, 13, 1, 2, 1}, {1, 2, 4, 4, 1, 1, 3, 0}};
    for (const auto& p : ddf_cases) {
        const int64_t kk = int64_t{p.kernel_size} * p.kernel_size, ho = p.h / p.stride, wo = p.w / p.stride;
        auto x = random_vector(p.n * p.c * p.h * p.w, rng);
        auto cf = random_vector(p.n * p.c * kk, rng, 0.5f);
        auto sf = random_vector(p.n * kk * ho * wo, rng, 0.5f);
        std::vector<float> out(p.n * p.c * ho * wo);
        expect_ok(isa + " ddf cpu run", dlu_kernels_ddf_forward_cpu(DLU_DTYPE_FLOAT32, &p, x.data(), cf.data(), sf.data(),
                                                             out.data(), 2));
        const double err = max_abs_diff(out, ddf_formula(x, cf, sf, p));
        expect(err <= 1e-5, isa + " ddf fp32 error " + std::to_string(err));
    }
}

/* fp16 storage: every half value passes through exactly (k = 1, s = 1, mask 1) and products
 * are rounded once to the nearest half, ties to even. */
void test_fp16_rounding(const std::string& isa)
{
    const int64_t count = 65536;
    const CarafeParams p{1, 1, 1, count, 1, 1, 1};
    std::vector<uint16_t> x(count), ones(count, 0x3c00), out(count);
    for (int64_t i = 0; i < count; ++i) x[i] = static_cast<uint16_t>(i);
    expect_ok(isa + " fp16 identity", dlu_kernels_carafe_forward_cpu(DLU_DTYPE_FLOAT16, &p, x.data(), ones.data(), out.data(), 2));
    int mismatches = 0;
    for (int64_t i = 0; i < count; ++i) {
        const bool is_nan = ((i >> 10) & 31) == 31 && (i & 1023) != 0;
        // Values compare equal (a sum starting at +0 turns -0 into +0).
        const bool ok = is_nan ? std::isnan(half_value(out[i])) : half_value(out[i]) == half_value(x[i]);
        mismatches += ok ? 0 : 1;
    }
    expect(mismatches == 0, isa + " fp16 identity: " + std::to_string(mismatches) + " values changed");

    std::mt19937 rng(99);
    std::uniform_int_distribution<int> pattern(0, 0x7bff);
    std::vector<uint16_t> masks(count);
    for (int64_t i = 0; i < count; ++i) {
        x[i] = static_cast<uint16_t>(pattern(rng) | (i % 2 ? 0x8000 : 0));
        masks[i] = static_cast<uint16_t>(pattern(rng));
    }
    expect_ok(isa + " fp16 products", dlu_kernels_carafe_forward_cpu(DLU_DTYPE_FLOAT16, &p, x.data(), masks.data(), out.data(), 2));
    mismatches = 0;
    for (int64_t i = 0; i < count; ++i) {
        // The float32 product rounded to half; the float32 rounding first is part of the spec.
        const float product = static_cast<float>(half_value(x[i])) * static_cast<float>(half_value(masks[i]));
        mismatches += half_value(out[i]) == half_value(nearest_half(product)) ? 0 : 1;
    }
    expect(mismatches == 0, isa + " fp16 rounding: " + std::to_string(mismatches) + " products rounded wrongly");
}

// ---- instruction sets ------------------------------------------------------------------------

const DluCpuIsa kAllIsas[] = {DLU_CPU_ISA_PORTABLE, DLU_CPU_ISA_AVX2, DLU_CPU_ISA_AVX512, DLU_CPU_ISA_NEON};

std::vector<DluCpuIsa> supported_isas()
{
    std::vector<DluCpuIsa> isas;
    for (DluCpuIsa isa : kAllIsas) {
        if (dlu_kernels_cpu_isa_supported(isa)) isas.push_back(isa);
    }
    return isas;
}

void test_isa_selection()
{
    expect(std::string(dlu_kernels_cpu_isa_name(DLU_CPU_ISA_AVX512)) == "avx512", "isa name avx512");
    expect(std::string(dlu_kernels_cpu_isa_name(static_cast<DluCpuIsa>(42))) == "unknown", "isa name of 42");
    expect(dlu_kernels_cpu_isa_supported(DLU_CPU_ISA_PORTABLE) == 1, "portable is always supported");
    expect(dlu_kernels_cpu_isa_supported(static_cast<DluCpuIsa>(42)) == 0, "isa 42 is not supported");
#if defined(__x86_64__)
    expect(dlu_kernels_cpu_isa_supported(DLU_CPU_ISA_NEON) == 0, "no NEON on x86-64");
    expect_error("set neon on x86", dlu_kernels_set_cpu_isa(DLU_CPU_ISA_NEON), DLU_STATUS_INVALID_ARGUMENT,
                 "neon is not supported by this CPU or build: use one of auto, portable");
#elif defined(__aarch64__)
    expect(dlu_kernels_cpu_isa_supported(DLU_CPU_ISA_NEON) == 1, "NEON on aarch64");
    expect(dlu_kernels_cpu_isa_supported(DLU_CPU_ISA_AVX2) == 0, "no AVX2 on aarch64");
#endif
    expect_error("set isa 42", dlu_kernels_set_cpu_isa(static_cast<DluCpuIsa>(42)), DLU_STATUS_INVALID_ARGUMENT,
                 "isa=42 is not known");
    expect_ok("set auto", dlu_kernels_set_cpu_isa(DLU_CPU_ISA_AUTO));
    const std::vector<DluCpuIsa> isas = supported_isas();
    expect(dlu_kernels_cpu_isa() == isas.back(), std::string("auto picks the widest set, got ") +
                                                     dlu_kernels_cpu_isa_name(dlu_kernels_cpu_isa()));
    for (DluCpuIsa isa : isas) {
        expect_ok(std::string("set ") + dlu_kernels_cpu_isa_name(isa), dlu_kernels_set_cpu_isa(isa));
        expect(dlu_kernels_cpu_isa() == isa, std::string("selected ") + dlu_kernels_cpu_isa_name(isa));
    }
}

struct Outputs {
    std::vector<float> f32;
    std::vector<uint16_t> f16;
};

std::vector<uint16_t> to_half(const std::vector<float>& v)
{
    std::vector<uint16_t> h(v.size());
    for (size_t i = 0; i < v.size(); ++i) h[i] = nearest_half(v[i]);
    return h;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b)
{
    double worst = a.size() == b.size() ? 0.0 : std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) worst = std::max(worst, std::fabs(double{a[i]} - b[i]));
    return worst;
}

/* fp16 outputs of two paths: equal, or adjacent halves where the fp32 sums straddle a rounding
 * boundary (the paths sum in different orders). */
int half_disagreements(const std::vector<uint16_t>& a, const std::vector<uint16_t>& b)
{
    int bad = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        const double x = half_value(a[i]), y = half_value(b[i]);
        const double ulp = std::max(std::fabs(x), std::fabs(y)) * std::ldexp(1.0, -10) + std::ldexp(1.0, -24);
        bad += std::fabs(x - y) <= ulp ? 0 : 1;
    }
    return a.size() == b.size() ? bad : 1;
}

/*
 * Shapes that exercise every code path of every instruction set (several column tiles, partial
 * vectors, channel blocks with a remainder, rows cut by the border, every scale 1-8, k up to
 * 15, DDF strides 1-5 and dilations past the image): each path against the double-precision
 * formula (fp32, 1e-5) and all paths against the first (portable) one, fp32 and fp16.
 */
void test_isas_agree()
{
    std::mt19937 rng(4321);
    std::vector<std::function<Outputs()>> cases;
    const DluParams dlu_cases[] = {{1, 6, 5, 101, 5, 2, 2}, {1, 5, 4, 21, 3, 1, 4},  {1, 3, 3, 19, 7, 1, 3},
                                   {1, 2, 2, 9, 1, 1, 8},  {1, 2, 3, 7, 15, 1, 5}, {2, 9, 4, 40, 5, 1, 1},
                                   {1, 2, 2, 6, 3, 2, 6},  {1, 1, 2, 5, 3, 1, 7}};
    for (const DluParams& p : dlu_cases) {
        const int64_t s = p.scale, kk = int64_t{p.kernel_size} * p.kernel_size;
        auto x = random_vector(p.n * p.c * p.h * p.w, rng);
        auto kernels = random_weights(p.n * p.group * kk * p.h * p.w, kk, rng);
        auto offsets = random_vector(p.n * p.group * 2 * s * s * p.h * p.w, rng, 2.0f);
        const auto want = dlu_formula(x, kernels, offsets, p);
        const auto xh = to_half(x), kh = to_half(kernels), oh = to_half(offsets);
        cases.push_back([=] {
            Outputs o{std::vector<float>(want.size()), std::vector<uint16_t>(want.size())};
            const std::string name = "dlu " + std::to_string(p.w) + "/" + std::to_string(p.scale);
            expect_ok(name, dlu_kernels_dlu_forward_cpu(DLU_DTYPE_FLOAT32, &p, x.data(), kernels.data(), offsets.data(),
                                                        o.f32.data(), 2));
            expect(max_abs_diff(o.f32, want) <= 1e-5, name + " fp32 vs formula " + std::to_string(max_abs_diff(o.f32, want)));
            expect_ok(name, dlu_kernels_dlu_forward_cpu(DLU_DTYPE_FLOAT16, &p, xh.data(), kh.data(), oh.data(),
                                                        o.f16.data(), 2));
            return o;
        });
    }
    const CarafeParams carafe_cases[] = {{1, 6, 4, 101, 5, 2, 2}, {1, 5, 3, 70, 3, 1, 4}, {1, 3, 3, 17, 7, 3, 3},
                                         {1, 4, 2, 33, 5, 1, 1}, {1, 2, 2, 5, 9, 1, 6}};
    for (const CarafeParams& p : carafe_cases) {
        const int64_t s = p.scale, kk = int64_t{p.kernel_size} * p.kernel_size;
        auto x = random_vector(p.n * p.c * p.h * p.w, rng);
        auto masks = random_weights(p.n * p.group * kk * p.h * s * p.w * s, kk, rng);
        const auto want = carafe_formula(x, masks, p);
        const auto xh = to_half(x), mh = to_half(masks);
        cases.push_back([=] {
            Outputs o{std::vector<float>(want.size()), std::vector<uint16_t>(want.size())};
            const std::string name = "carafe " + std::to_string(p.w) + "/" + std::to_string(p.scale);
            expect_ok(name, dlu_kernels_carafe_forward_cpu(DLU_DTYPE_FLOAT32, &p, x.data(), masks.data(), o.f32.data(), 1));
            expect(max_abs_diff(o.f32, want) <= 1e-5, name + " fp32 vs formula " + std::to_string(max_abs_diff(o.f32, want)));
            expect_ok(name, dlu_kernels_carafe_forward_cpu(DLU_DTYPE_FLOAT16, &p, xh.data(), mh.data(), o.f16.data(), 1));
            return o;
        });
    }
    const DdfParams ddf_cases[] = {{1, 6, 5, 41, 3, 1, 1, 0}, {1, 5, 6, 43, 5, 2, 2, 1}, {1, 3, 7, 35, 7, 3, 3, 0},
                                   {1, 2, 9, 47, 3, 1, 4, 1}, {1, 2, 11, 31, 5, 1, 5, 0}, {1, 3, 6, 20, 3, 40, 1, 1},
                                   {1, 2, 5, 300, 3, 1, 1, 0}, {1, 2, 5, 17, 15, 2, 1, 1}};
    for (const DdfParams& p : ddf_cases) {
        const int64_t kk = int64_t{p.kernel_size} * p.kernel_size, ho = p.h / p.stride, wo = p.w / p.stride;
        auto x = random_vector(p.n * p.c * p.h * p.w, rng);
        auto cf = random_vector(p.n * p.c * kk, rng, 0.5f);
        auto sf = random_vector(p.n * kk * ho * wo, rng, 0.5f);
        const auto want = ddf_formula(x, cf, sf, p);
        const auto xh = to_half(x), ch = to_half(cf), sh = to_half(sf);
        cases.push_back([=] {
            Outputs o{std::vector<float>(want.size()), std::vector<uint16_t>(want.size())};
            const std::string name = "ddf " + std::to_string(p.w) + "/" + std::to_string(p.stride) + "/" +
                                     std::to_string(p.dilation);
            expect_ok(name, dlu_kernels_ddf_forward_cpu(DLU_DTYPE_FLOAT32, &p, x.data(), cf.data(), sf.data(),
                                                        o.f32.data(), 2));
            expect(max_abs_diff(o.f32, want) <= 1e-5, name + " fp32 vs formula " + std::to_string(max_abs_diff(o.f32, want)));
            expect_ok(name, dlu_kernels_ddf_forward_cpu(DLU_DTYPE_FLOAT16, &p, xh.data(), ch.data(), sh.data(),
                                                        o.f16.data(), 2));
            return o;
        });
    }

    std::vector<Outputs> first;
    for (DluCpuIsa isa : supported_isas()) {
        expect_ok("set isa", dlu_kernels_set_cpu_isa(isa));
        const std::string name = dlu_kernels_cpu_isa_name(isa);
        for (size_t i = 0; i < cases.size(); ++i) {
            const size_t failures = static_cast<size_t>(g_failures);
            Outputs o = cases[i]();
            if (static_cast<size_t>(g_failures) != failures) std::fprintf(stderr, "  (case %zu on %s)\n", i, name.c_str());
            if (first.size() <= i) {
                first.push_back(std::move(o));
                continue;
            }
            const double diff = max_abs_diff(o.f32, first[i].f32);
            expect(diff <= 1e-5, name + " vs portable, case " + std::to_string(i) + ": fp32 differs by " + std::to_string(diff));
            const int bad = half_disagreements(o.f16, first[i].f16);
            expect(bad == 0, name + " vs portable, case " + std::to_string(i) + ": " + std::to_string(bad) +
                                 " fp16 outputs differ by more than one unit in the last place");
        }
    }
    dlu_kernels_set_cpu_isa(DLU_CPU_ISA_AUTO);
}

/* DLU_KERNELS_CPU_ISA names an unknown set: CPU calls fail, saying so, until one is selected. */
void test_bad_isa_environment()
{
    const char* value = std::getenv("DLU_KERNELS_CPU_ISA");
    const std::string needle = std::string("DLU_KERNELS_CPU_ISA=") + (value ? value : "") + " is not known: use one of";
    expect(dlu_kernels_cpu_isa() == DLU_CPU_ISA_AUTO, "no set selected under a bad DLU_KERNELS_CPU_ISA");
    const CarafeParams p{1, 1, 1, 4, 1, 1, 1};
    std::vector<float> x(4), m(4), out(4, 12345.0f);
    expect_error("carafe under a bad isa", dlu_kernels_carafe_forward_cpu(DLU_DTYPE_FLOAT32, &p, x.data(), m.data(),
                                                                          out.data(), 1),
                 DLU_STATUS_INVALID_ARGUMENT, "CARAFE: " + needle, &out);
    expect_ok("set auto", dlu_kernels_set_cpu_isa(DLU_CPU_ISA_AUTO));
    expect_ok("carafe after set", dlu_kernels_carafe_forward_cpu(DLU_DTYPE_FLOAT32, &p, x.data(), m.data(), out.data(), 1));
}

}  // namespace

int main(int argc, char** argv)
{
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--expect-isa" && i + 1 < argc) {
            const std::string want = argv[++i];
            expect(dlu_kernels_cpu_isa_name(dlu_kernels_cpu_isa()) == want,
                   "DLU_KERNELS_CPU_ISA selected " + std::string(dlu_kernels_cpu_isa_name(dlu_kernels_cpu_isa())) +
                       ", expected " + want);
        } else if (arg == "--expect-bad-isa-env") {
            test_bad_isa_environment();
        } else {
            std::fprintf(stderr, "unknown argument %s\n", arg.c_str());
            return 2;
        }
    }
    test_metadata();
    test_dlu_validation();
    test_carafe_validation();
    test_ddf_validation();
    test_cuda_unavailable_paths();
    test_isa_selection();
    for (DluCpuIsa isa : supported_isas()) {
        expect_ok("set isa", dlu_kernels_set_cpu_isa(isa));
        std::printf("checking the %s CPU kernels\n", dlu_kernels_cpu_isa_name(isa));
        test_numerics_fp32(dlu_kernels_cpu_isa_name(isa));
        test_fp16_rounding(dlu_kernels_cpu_isa_name(isa));
    }
    test_isas_agree();
    if (g_failures != 0) {
        std::fprintf(stderr, "%d check(s) failed\n", g_failures);
        return 1;
    }
    std::printf("all C ABI checks passed\n");
    return 0;
}
