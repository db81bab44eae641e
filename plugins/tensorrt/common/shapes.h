/*
 * Checking the input shapes of a plugin against its attributes.
 *
 * The same checks run at every stage that sees shapes: getOutputShapes (dimensions that are
 * build-time constants), configurePlugin (the network's dimensions and the profile's min and
 * max) and onShapeChange (the actual runtime shapes). A dimension not known yet is -1 and is
 * skipped, so one description of the constraints serves all stages.
 */
#ifndef DLU_TRT_SHAPES_H
#define DLU_TRT_SHAPES_H

#include "NvInferRuntime.h"

#include <cstdint>
#include <string>
#include <vector>

namespace dlu_trt
{

constexpr int32_t kRank = 4; // every input and output is NCHW

class InputShapes
{
public:
    //! `dims[i]` are the dimensions of input `names[i]`; negative entries are unknown.
    InputShapes(std::string const& context, std::vector<char const*> const& names, nvinfer1::Dims const* dims);

    //! The dimension, or -1 when unknown.
    int64_t at(int32_t input, int32_t axis) const noexcept;

    //! Throws unless the dimension or `expected` is unknown (< 0) or they are equal; `expected`
    //! is explained by `formula`, e.g. "group*kernel_size*kernel_size".
    void expectEqual(int32_t input, int32_t axis, int64_t expected, std::string const& formula) const;

    //! Throws unless the dimension is unknown or >= `minimum` (explained by `formula`).
    void expectAtLeast(int32_t input, int32_t axis, int64_t minimum, std::string const& formula) const;

    //! Throws unless the dimension is unknown or a multiple of `divisor` (explained by `formula`).
    void expectMultipleOf(int32_t input, int32_t axis, int64_t divisor, std::string const& formula) const;

private:
    std::string describe(int32_t input, int32_t axis) const;

    std::string const& mContext;
    std::vector<char const*> const& mNames;
    nvinfer1::Dims const* mDims;
};

//! Throws unless every input has rank 4.
void checkRanks(std::string const& context, std::vector<char const*> const& names, nvinfer1::Dims const* dims);

//! The known values of build-time dimension expressions (-1 where not constant).
nvinfer1::Dims constantDims(nvinfer1::DimsExprs const& exprs) noexcept;

int64_t volume(nvinfer1::Dims const& dims) noexcept;

//! dim * factor and dim // divisor (floor) as expressions; dim itself when the factor is 1.
nvinfer1::IDimensionExpr const* multiply(
    std::string const& context, nvinfer1::IExprBuilder& builder, nvinfer1::IDimensionExpr const* dim, int32_t factor);
nvinfer1::IDimensionExpr const* floorDivide(
    std::string const& context, nvinfer1::IExprBuilder& builder, nvinfer1::IDimensionExpr const* dim, int32_t divisor);

} // namespace dlu_trt

#endif // DLU_TRT_SHAPES_H
