#include "op_cases.h"

namespace harness
{

std::vector<OpCase> const& opCases()
{
    static std::vector<OpCase> const cases = {
        {
            "DLU",
            [] { return Fields().i32("kernel_size", 3).i32("group", 2).i32("scale", 2); },
            8,
            [](int64_t n, int64_t c, int64_t h, int64_t w) {
                return std::vector<Shape>{{n, c, h, w}, {n, 2 * 3 * 3, h, w}, {n, 2 * 2 * 2 * 2, h, w}};
            },
            [](int64_t n, int64_t c, int64_t h, int64_t w) { return Shape{n, c, 2 * h, 2 * w}; },
            {{"N", "C", "H", "W"}, {"N", "18", "H", "W"}, {"N", "16", "H", "W"}},
            1,
            [](DluDType dtype, Shape const& x, std::vector<void const*> const& in, void* out) {
                DluParams const p{x[0], x[1], x[2], x[3], 3, 2, 2};
                return dlu_kernels_dlu_forward_cpu(dtype, &p, in[0], in[1], in[2], out, 0);
            },
        },
        {
            "CARAFE",
            [] { return Fields().i32("kernel_size", 5).i32("group", 3).i32("scale", 3); },
            6,
            [](int64_t n, int64_t c, int64_t h, int64_t w) {
                return std::vector<Shape>{{n, c, h, w}, {n, 3 * 5 * 5, 3 * h, 3 * w}};
            },
            [](int64_t n, int64_t c, int64_t h, int64_t w) { return Shape{n, c, 3 * h, 3 * w}; },
            {{"N", "C", "H", "W"}, {"N", "75", "MH", "MW"}},
            1,
            [](DluDType dtype, Shape const& x, std::vector<void const*> const& in, void* out) {
                CarafeParams const p{x[0], x[1], x[2], x[3], 5, 3, 3};
                return dlu_kernels_carafe_forward_cpu(dtype, &p, in[0], in[1], out, 0);
            },
        },
        {
            "MMCVCARAFE",
            [] { return Fields().i32("kernel_size", 3).i32("group_size", 2).f32("scale_factor", 2.0F); },
            4,
            [](int64_t n, int64_t c, int64_t h, int64_t w) {
                return std::vector<Shape>{{n, c, h, w}, {n, 2 * 3 * 3, 2 * h, 2 * w}};
            },
            [](int64_t n, int64_t c, int64_t h, int64_t w) { return Shape{n, c, 2 * h, 2 * w}; },
            {{"N", "C", "H", "W"}, {"N", "18", "MH", "MW"}},
            1,
            [](DluDType dtype, Shape const& x, std::vector<void const*> const& in, void* out) {
                CarafeParams const p{x[0], x[1], x[2], x[3], 3, 2, 2};
                return dlu_kernels_carafe_forward_cpu(dtype, &p, in[0], in[1], out, 0);
            },
        },
        {
            // mmcv's CARAFENaive export: the same CARAFE function under its own node name.
            "MMCVCARAFENaive",
            [] { return Fields().i32("kernel_size", 5).i32("group_size", 1).f32("scale_factor", 3.0F); },
            3,
            [](int64_t n, int64_t c, int64_t h, int64_t w) {
                return std::vector<Shape>{{n, c, h, w}, {n, 5 * 5, 3 * h, 3 * w}};
            },
            [](int64_t n, int64_t c, int64_t h, int64_t w) { return Shape{n, c, 3 * h, 3 * w}; },
            {{"N", "C", "H", "W"}, {"N", "25", "MH", "MW"}},
            1,
            [](DluDType dtype, Shape const& x, std::vector<void const*> const& in, void* out) {
                CarafeParams const p{x[0], x[1], x[2], x[3], 5, 1, 3};
                return dlu_kernels_carafe_forward_cpu(dtype, &p, in[0], in[1], out, 0);
            },
        },
        {
            "DDF",
            [] { return Fields().i32("kernel_size", 3).i32("dilation", 2).i32("stride", 2).i32("combine", 1); },
            5,
            [](int64_t n, int64_t c, int64_t h, int64_t w) {
                return std::vector<Shape>{{n, c, h, w}, {n, c, 3, 3}, {n, 3 * 3, h / 2, w / 2}};
            },
            [](int64_t n, int64_t c, int64_t h, int64_t w) { return Shape{n, c, h / 2, w / 2}; },
            {{"N", "C", "H", "W"}, {"N", "C", "3", "3"}, {"N", "9", "SH", "SW"}},
            2,
            [](DluDType dtype, Shape const& x, std::vector<void const*> const& in, void* out) {
                DdfParams const p{x[0], x[1], x[2], x[3], 3, 2, 2, 1};
                return dlu_kernels_ddf_forward_cpu(dtype, &p, in[0], in[1], in[2], out, 0);
            },
        },
    };
    return cases;
}

} // namespace harness
