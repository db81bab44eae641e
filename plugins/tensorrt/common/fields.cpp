#include "fields.h"

#include "logging.h"
#include "tensorrt_version.h"

#include <cstring>
#include <limits>

namespace dlu_trt
{
namespace
{

using nvinfer1::PluginField;
using nvinfer1::PluginFieldType;

std::string fieldPrefix(std::string const& context, char const* field)
{
    return context + ": field \"" + field + "\"";
}

bool isIntegerType(PluginFieldType type) noexcept
{
    return type == PluginFieldType::kINT8 || type == PluginFieldType::kINT16 || type == PluginFieldType::kINT32
        || type == PluginFieldType::kINT64;
}

int64_t readInteger(PluginField const& field) noexcept
{
    switch (field.type)
    {
    case PluginFieldType::kINT8: return *static_cast<int8_t const*>(field.data);
    case PluginFieldType::kINT16: return *static_cast<int16_t const*>(field.data);
    case PluginFieldType::kINT32: return *static_cast<int32_t const*>(field.data);
    default: return *static_cast<int64_t const*>(field.data);
    }
}

// The one value of a scalar field; throws for missing data or a length other than 1.
void checkScalar(std::string const& context, PluginField const& field)
{
    if (field.data == nullptr)
    {
        throw PluginError(fieldPrefix(context, field.name) + " has no data");
    }
    if (field.length != 1)
    {
        throw PluginError(
            fieldPrefix(context, field.name) + " has " + std::to_string(field.length) + " values; expected exactly 1");
    }
}

} // namespace

std::string pluginContext(char const* pluginName, std::string const& layerName)
{
    return std::string(pluginName) + " plugin (layer \"" + layerName + "\")";
}

char const* fieldTypeName(PluginFieldType type) noexcept
{
    switch (type)
    {
    case PluginFieldType::kFLOAT16: return "FLOAT16";
    case PluginFieldType::kFLOAT32: return "FLOAT32";
    case PluginFieldType::kFLOAT64: return "FLOAT64";
    case PluginFieldType::kINT8: return "INT8";
    case PluginFieldType::kINT16: return "INT16";
    case PluginFieldType::kINT32: return "INT32";
    case PluginFieldType::kCHAR: return "CHAR";
    case PluginFieldType::kDIMS: return "DIMS";
    case PluginFieldType::kUNKNOWN: return "UNKNOWN";
    case PluginFieldType::kBF16: return "BF16";
    case PluginFieldType::kINT64: return "INT64";
    case PluginFieldType::kFP8: return "FP8";
#if DLU_TRT_AT_LEAST(10, 1)
    case PluginFieldType::kINT4: return "INT4";
#endif
#if DLU_TRT_AT_LEAST(10, 8)
    case PluginFieldType::kFP4: return "FP4";
#endif
    }
    return "an unknown type";
}

FieldReader::FieldReader(
    std::string context, nvinfer1::PluginFieldCollection const* fields, std::vector<FieldSpec> const& known)
    : mContext(std::move(context))
    , mFields(fields)
{
    if (mFields != nullptr && mFields->nbFields > 0 && mFields->fields == nullptr)
    {
        throw PluginError(mContext + ": the field collection has " + std::to_string(mFields->nbFields)
            + " fields but no field array");
    }
    int32_t const count = mFields == nullptr ? 0 : mFields->nbFields;
    for (int32_t i = 0; i < count; ++i)
    {
        char const* name = mFields->fields[i].name;
        if (name == nullptr)
        {
            throw PluginError(mContext + ": field " + std::to_string(i) + " has no name");
        }
        bool isKnown = false;
        for (FieldSpec const& spec : known)
        {
            isKnown = isKnown || std::strcmp(spec.name, name) == 0;
        }
        if (!isKnown)
        {
            log(nvinfer1::ILogger::Severity::kWARNING, mContext + ": ignoring unknown field \"" + name + "\"");
        }
    }
}

PluginField const* FieldReader::find(char const* name) const
{
    int32_t const count = mFields == nullptr ? 0 : mFields->nbFields;
    for (int32_t i = 0; i < count; ++i)
    {
        if (std::strcmp(mFields->fields[i].name, name) == 0)
        {
            return &mFields->fields[i];
        }
    }
    return nullptr;
}

std::optional<int32_t> FieldReader::integer(char const* name) const
{
    PluginField const* field = find(name);
    if (field == nullptr)
    {
        return std::nullopt;
    }
    if (!isIntegerType(field->type))
    {
        throw PluginError(
            fieldPrefix(mContext, name) + " has type " + fieldTypeName(field->type) + "; expected an integer (INT32)");
    }
    checkScalar(mContext, *field);
    int64_t const value = readInteger(*field);
    if (value < std::numeric_limits<int32_t>::min() || value > std::numeric_limits<int32_t>::max())
    {
        throw PluginError(
            fieldPrefix(mContext, name) + " = " + std::to_string(value) + " does not fit a 32-bit integer");
    }
    return static_cast<int32_t>(value);
}

std::optional<double> FieldReader::number(char const* name) const
{
    PluginField const* field = find(name);
    if (field == nullptr)
    {
        return std::nullopt;
    }
    bool const isFloat = field->type == PluginFieldType::kFLOAT32 || field->type == PluginFieldType::kFLOAT64;
    if (!isFloat && !isIntegerType(field->type))
    {
        throw PluginError(
            fieldPrefix(mContext, name) + " has type " + fieldTypeName(field->type) + "; expected a number (FLOAT32)");
    }
    checkScalar(mContext, *field);
    if (field->type == PluginFieldType::kFLOAT32)
    {
        return static_cast<double>(*static_cast<float const*>(field->data));
    }
    if (field->type == PluginFieldType::kFLOAT64)
    {
        return *static_cast<double const*>(field->data);
    }
    return static_cast<double>(readInteger(*field));
}

int32_t valueOrDefault(std::string const& context, char const* field, std::optional<int32_t> value,
    std::optional<int32_t> defaultValue, char const* rangeText)
{
    if (value.has_value())
    {
        return *value;
    }
    if (!defaultValue.has_value())
    {
        throw PluginError(fieldPrefix(context, field) + " is required but missing (expected " + rangeText + ")");
    }
    return *defaultValue;
}

void checkRange(std::string const& context, char const* field, int64_t value, int64_t lo, int64_t hi, bool odd,
    char const* rangeText)
{
    bool const inRange = value >= lo && value <= hi && (!odd || value % 2 != 0);
    if (!inRange)
    {
        throw PluginError(
            fieldPrefix(context, field) + " = " + std::to_string(value) + " is invalid: expected " + rangeText);
    }
}

} // namespace dlu_trt
