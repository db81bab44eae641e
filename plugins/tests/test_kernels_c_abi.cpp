// Tests of the C ABI of libdlu_kernels on the CPU: every validation and error path (status,
// message naming the field and value, nothing written), and small fp32/fp16 results against
// the formulas of docs/ops.md transcribed here in double precision.
#include <cmath>
#include <cstdint>
#include <cstdio>
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

void test_numerics_fp32()
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
        expect_ok("dlu cpu run", dlu_kernels_dlu_forward_cpu(DLU_DTYPE_FLOAT32, &p, x.data(), kernels.data(),
                                                             offsets.data(), out.data(), 3));
        const double err = max_abs_diff(out, dlu_formula(x, kernels, offsets, p));
        expect(err <= 1e-5, "dlu fp32 error " + std::to_string(err));
        std::vector<float> single(out.size());
        dlu_kernels_dlu_forward_cpu(DLU_DTYPE_FLOAT32, &p, x.data(), kernels.data(), offsets.data(), single.data(), 1);
        expect(std::memcmp(single.data(), out.data(), out.size() * sizeof(float)) == 0,
               "dlu: 1 and 3 threads give different bits");
    }
    const CarafeParams carafe_cases[] = {{2, 4, 3, 5, 3, 2, 2}, {1, 3, 1, 1, 5, 1, 3}, {1, 2, 2, 3, 1, 1, 1}};
    for (const auto& p : carafe_cases) {
        const int64_t s = p.scale, kk = int64_t{p.kernel_size} * p.kernel_size;
        auto x = random_vector(p.n * p.c * p.h * p.w, rng);
        auto masks = random_vector(p.n * p.group * kk * p.h * s * p.w * s, rng, 0.3f);
        std::vector<float> out(p.n * p.c * p.h * s * p.w * s);
        expect_ok("carafe cpu run", dlu_kernels_carafe_forward_cpu(DLU_DTYPE_FLOAT32, &p, x.data(), masks.data(),
                                                                   out.data(), 0));
        const double err = max_abs_diff(out, carafe_formula(x, masks, p));
        expect(err <= 1e-5, "carafe fp32 error " + std::to_string(err));
    }
    const DdfParams ddf_cases[] = {{2, 3, 5, 6, 3, 1, 1, 0}, {1, 2, 7, 5, 5, 2, 2, 1}, {1, 2, 3, 9, 3, 4, 1, 0},
                                   {1, 1, 5, 5, 13, 1, 2, 1}, {1, 2, 4, 4, 1, 1, 3, 0}};
    for (const auto& p : ddf_cases) {
        const int64_t kk = int64_t{p.kernel_size} * p.kernel_size, ho = p.h / p.stride, wo = p.w / p.stride;
        auto x = random_vector(p.n * p.c * p.h * p.w, rng);
        auto cf = random_vector(p.n * p.c * kk, rng, 0.5f);
        auto sf = random_vector(p.n * kk * ho * wo, rng, 0.5f);
        std::vector<float> out(p.n * p.c * ho * wo);
        expect_ok("ddf cpu run", dlu_kernels_ddf_forward_cpu(DLU_DTYPE_FLOAT32, &p, x.data(), cf.data(), sf.data(),
                                                             out.data(), 2));
        const double err = max_abs_diff(out, ddf_formula(x, cf, sf, p));
        expect(err <= 1e-5, "ddf fp32 error " + std::to_string(err));
    }
}

/* fp16 storage: every half value passes through exactly (k = 1, s = 1, mask 1) and products
 * are rounded once to the nearest half, ties to even. */
void test_fp16_rounding()
{
    const int64_t count = 65536;
    const CarafeParams p{1, 1, 1, count, 1, 1, 1};
    std::vector<uint16_t> x(count), ones(count, 0x3c00), out(count);
    for (int64_t i = 0; i < count; ++i) x[i] = static_cast<uint16_t>(i);
    expect_ok("fp16 identity", dlu_kernels_carafe_forward_cpu(DLU_DTYPE_FLOAT16, &p, x.data(), ones.data(), out.data(), 2));
    int mismatches = 0;
    for (int64_t i = 0; i < count; ++i) {
        const bool is_nan = ((i >> 10) & 31) == 31 && (i & 1023) != 0;
        // Values compare equal (a sum starting at +0 turns -0 into +0).
        const bool ok = is_nan ? std::isnan(half_value(out[i])) : half_value(out[i]) == half_value(x[i]);
        mismatches += ok ? 0 : 1;
    }
    expect(mismatches == 0, "fp16 identity: " + std::to_string(mismatches) + " values changed");

    std::mt19937 rng(99);
    std::uniform_int_distribution<int> pattern(0, 0x7bff);
    std::vector<uint16_t> masks(count);
    for (int64_t i = 0; i < count; ++i) {
        x[i] = static_cast<uint16_t>(pattern(rng) | (i % 2 ? 0x8000 : 0));
        masks[i] = static_cast<uint16_t>(pattern(rng));
    }
    expect_ok("fp16 products", dlu_kernels_carafe_forward_cpu(DLU_DTYPE_FLOAT16, &p, x.data(), masks.data(), out.data(), 2));
    mismatches = 0;
    for (int64_t i = 0; i < count; ++i) {
        // The float32 product rounded to half; the float32 rounding first is part of the spec.
        const float product = static_cast<float>(half_value(x[i])) * static_cast<float>(half_value(masks[i]));
        mismatches += half_value(out[i]) == half_value(nearest_half(product)) ? 0 : 1;
    }
    expect(mismatches == 0, "fp16 rounding: " + std::to_string(mismatches) + " products rounded wrongly");
}

}  // namespace

int main()
{
    test_metadata();
    test_dlu_validation();
    test_carafe_validation();
    test_ddf_validation();
    test_cuda_unavailable_paths();
    test_numerics_fp32();
    test_fp16_rounding();
    if (g_failures != 0) {
        std::fprintf(stderr, "%d check(s) failed\n", g_failures);
        return 1;
    }
    std::printf("all C ABI checks passed\n");
    return 0;
}
