/*
 * One example configuration per plugin (non-default attributes) with its shapes, shared by the
 * CPU and GPU suites. Shapes follow docs/ops.md.
 */
#ifndef DLU_TRT_TESTS_OP_CASES_H
#define DLU_TRT_TESTS_OP_CASES_H

#include "harness.h"

#include "dlu_kernels.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace harness
{

using Shape = std::vector<int64_t>;

struct OpCase
{
    char const* plugin;
    //! Fields of the example configuration, as the ONNX parser passes them.
    std::function<Fields()> fields;
    //! Channels of the first input valid for the configuration (a multiple of the group).
    int64_t channels;
    //! Input shapes for x of shape [n, c, h, w].
    std::function<std::vector<Shape>(int64_t n, int64_t c, int64_t h, int64_t w)> inputs;
    //! Output shape for x of shape [n, c, h, w] (docs/ops.md).
    std::function<Shape(int64_t n, int64_t c, int64_t h, int64_t w)> output;
    //! Input dimensions as TensorRT passes them at build time with N, C, H, W dynamic: symbols
    //! (letters) or constants.
    std::vector<std::vector<std::string>> symbolicInputs;
    //! The smallest H and W the configuration accepts.
    int64_t minSpatial;
    //! The CPU kernel of the configuration (the reference of the GPU suite) for x of shape `x`.
    std::function<DluStatus(DluDType, Shape const& x, std::vector<void const*> const& inputs, void* output)> cpu;
};

std::vector<OpCase> const& opCases();

} // namespace harness

#endif // DLU_TRT_TESTS_OP_CASES_H
