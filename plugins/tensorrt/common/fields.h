/*
 * Reading and checking the plugin fields a creator receives.
 *
 * At the build phase the fields come from the ONNX parser (INT attributes as kINT32, FLOAT as
 * kFLOAT32) or from an application; at the runtime phase they are what getFieldsToSerialize()
 * wrote. Integers are accepted as kINT8/16/32/64 and numbers additionally as kFLOAT16/32/64, so
 * applications building fields with numpy's default int64 work too. Every failure throws a
 * PluginError whose message names the plugin, the layer, the field and the offending value.
 */
#ifndef DLU_TRT_FIELDS_H
#define DLU_TRT_FIELDS_H

#include "NvInferRuntime.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dlu_trt
{

//! One field a creator declares in getFieldNames(): its name and the type the ONNX parser uses.
struct FieldSpec
{
    char const* name;
    nvinfer1::PluginFieldType type;
};

//! "DLU plugin (layer 'up1')": how every message about one plugin object begins.
std::string pluginContext(char const* pluginName, std::string const& layerName);

class FieldReader
{
public:
    //! `known`: the fields the plugin understands; others are reported as ignored (warning).
    FieldReader(
        std::string context, nvinfer1::PluginFieldCollection const* fields, std::vector<FieldSpec> const& known);

    //! A whole number in [INT32_MIN, INT32_MAX]; nullopt when the field is absent.
    std::optional<int32_t> integer(char const* name) const;

    //! A real number; nullopt when the field is absent.
    std::optional<double> number(char const* name) const;

private:
    nvinfer1::PluginField const* find(char const* name) const;

    std::string mContext;
    nvinfer1::PluginFieldCollection const* mFields;
};

//! The value, or the default; throws when the field is required (no default) and absent.
int32_t valueOrDefault(std::string const& context, char const* field, std::optional<int32_t> value,
    std::optional<int32_t> defaultValue, char const* rangeText);

//! Throws unless lo <= value <= hi (and value odd when `odd`); `rangeText` describes the range.
void checkRange(std::string const& context, char const* field, int64_t value, int64_t lo, int64_t hi, bool odd,
    char const* rangeText);

//! Readable name of a field type ("INT32", "FLOAT32", ...).
char const* fieldTypeName(nvinfer1::PluginFieldType type) noexcept;

} // namespace dlu_trt

#endif // DLU_TRT_FIELDS_H
