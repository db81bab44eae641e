#include "shapes.h"

#include "logging.h"

namespace dlu_trt
{
namespace
{

char const* const kAxisNames[kRank] = {"N", "C", "H", "W"};

nvinfer1::IDimensionExpr const* combine(std::string const& context, nvinfer1::IExprBuilder& builder,
    nvinfer1::DimensionOperation operation, nvinfer1::IDimensionExpr const* dim, int32_t value)
{
    if (value == 1)
    {
        return dim;
    }
    nvinfer1::IDimensionExpr const* constant = builder.constant(value);
    nvinfer1::IDimensionExpr const* result
        = constant != nullptr ? builder.operation(operation, *dim, *constant) : nullptr;
    if (result == nullptr)
    {
        throw PluginError(
            context + ": IExprBuilder could not build an output dimension", nvinfer1::ErrorCode::kINTERNAL_ERROR);
    }
    return result;
}

} // namespace

InputShapes::InputShapes(std::string const& context, std::vector<char const*> const& names, nvinfer1::Dims const* dims)
    : mContext(context)
    , mNames(names)
    , mDims(dims)
{
}

int64_t InputShapes::at(int32_t input, int32_t axis) const noexcept
{
    int64_t const value = mDims[input].d[axis];
    return value < 0 ? -1 : value;
}

std::string InputShapes::describe(int32_t input, int32_t axis) const
{
    return mContext + ": input " + std::to_string(input) + " (" + mNames[static_cast<size_t>(input)] + ") has "
        + kAxisNames[axis] + " = " + std::to_string(at(input, axis));
}

void InputShapes::expectEqual(int32_t input, int32_t axis, int64_t expected, std::string const& formula) const
{
    int64_t const actual = at(input, axis);
    if (actual >= 0 && expected >= 0 && actual != expected)
    {
        throw PluginError(describe(input, axis) + "; expected " + formula + " = " + std::to_string(expected));
    }
}

void InputShapes::expectAtLeast(int32_t input, int32_t axis, int64_t minimum, std::string const& formula) const
{
    int64_t const actual = at(input, axis);
    if (actual >= 0 && actual < minimum)
    {
        throw PluginError(describe(input, axis) + "; expected at least " + formula + " = " + std::to_string(minimum));
    }
}

void InputShapes::expectMultipleOf(int32_t input, int32_t axis, int64_t divisor, std::string const& formula) const
{
    int64_t const actual = at(input, axis);
    if (actual >= 0 && divisor > 0 && actual % divisor != 0)
    {
        throw PluginError(
            describe(input, axis) + "; expected a multiple of " + formula + " = " + std::to_string(divisor));
    }
}

void checkRanks(std::string const& context, std::vector<char const*> const& names, nvinfer1::Dims const* dims)
{
    for (size_t i = 0; i < names.size(); ++i)
    {
        if (dims[i].nbDims != kRank)
        {
            throw PluginError(context + ": input " + std::to_string(i) + " (" + names[i] + ") has rank "
                + std::to_string(dims[i].nbDims) + "; expected rank 4 (NCHW)");
        }
    }
}

nvinfer1::Dims constantDims(nvinfer1::DimsExprs const& exprs) noexcept
{
    nvinfer1::Dims dims{};
    dims.nbDims = exprs.nbDims;
    for (int32_t i = 0; i < exprs.nbDims && i < nvinfer1::Dims::MAX_DIMS; ++i)
    {
        nvinfer1::IDimensionExpr const* expr = exprs.d[i];
        dims.d[i] = (expr != nullptr && expr->isConstant()) ? expr->getConstantValue() : -1;
    }
    return dims;
}

int64_t volume(nvinfer1::Dims const& dims) noexcept
{
    int64_t result = 1;
    for (int32_t i = 0; i < dims.nbDims; ++i)
    {
        result *= dims.d[i];
    }
    return result;
}

nvinfer1::IDimensionExpr const* multiply(
    std::string const& context, nvinfer1::IExprBuilder& builder, nvinfer1::IDimensionExpr const* dim, int32_t factor)
{
    return combine(context, builder, nvinfer1::DimensionOperation::kPROD, dim, factor);
}

nvinfer1::IDimensionExpr const* floorDivide(
    std::string const& context, nvinfer1::IExprBuilder& builder, nvinfer1::IDimensionExpr const* dim, int32_t divisor)
{
    return combine(context, builder, nvinfer1::DimensionOperation::kFLOOR_DIV, dim, divisor);
}

} // namespace dlu_trt
