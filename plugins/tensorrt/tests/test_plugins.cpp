/*
 * The plugin objects driven as TensorRT drives them, without TensorRT's runtime: creators from
 * getCreators(), fields as the ONNX parser passes them, shape expressions from a symbolic
 * IExprBuilder, format negotiation, serialisation and re-creation at the runtime phase.
 */
#include "harness.h"
#include "op_cases.h"
#include "suites.h"
#include "tensorrt_doubles.h"

#include "dlu_kernels.h"

#include <cmath>
#include <cstring>
#include <set>

namespace harness
{
namespace
{

using nvinfer1::DataType;
using nvinfer1::PluginFieldType;
using nvinfer1::TensorFormat;
using nvinfer1::TensorRTPhase;
using Severity = nvinfer1::ILogger::Severity;

CapturingLogger& logger()
{
    static CapturingLogger instance;
    return instance;
}

//! Expect createPlugin to fail and to log one error naming every one of `parts`.
void expectRejected(char const* plugin, Fields fields, std::vector<std::string> const& parts)
{
    logger().clear();
    PluginPtr created = createPlugin(plugin, fields, TensorRTPhase::kBUILD, "up_7");
    std::string what = std::string(plugin) + " rejects fields (expected a message with";
    for (std::string const& part : parts)
    {
        what += " [" + part + "]";
    }
    EXPECT(created == nullptr, what + "): plugin was created");
    std::vector<std::string> withContext = parts;
    withContext.push_back(std::string(plugin) + " plugin (layer \"up_7\")");
    EXPECT(logger().contains(Severity::kERROR, withContext), what + "), log:\n" + logger().dump());
}

std::vector<nvinfer1::DimsExprs> symbolicInputs(SymbolicExprBuilder& builder, OpCase const& op)
{
    std::vector<nvinfer1::DimsExprs> inputs;
    for (auto const& input : op.symbolicInputs)
    {
        inputs.push_back(builder.dims(input));
    }
    return inputs;
}

int32_t outputShapes(nvinfer1::IPluginV3& plugin, std::vector<nvinfer1::DimsExprs> const& inputs,
    nvinfer1::DimsExprs& output, SymbolicExprBuilder& builder)
{
    return build(plugin).getOutputShapes(
        inputs.data(), static_cast<int32_t>(inputs.size()), nullptr, 0, &output, 1, builder);
}

// ---------------------------------------------------------------------------------------------

void creatorsAreListed()
{
    int32_t count = 0;
    nvinfer1::IPluginCreatorInterface* const* creators = library().getCreators(count);
    EXPECT(count == 5, "getCreators returns 5 creators, got " + std::to_string(count));
    std::set<std::string> names;
    for (int32_t i = 0; i < count; ++i)
    {
        nvinfer1::InterfaceInfo const info = creators[i]->getInterfaceInfo();
        EXPECT(std::strcmp(info.kind, "PLUGIN CREATOR_V3ONE") == 0 && info.major == 1,
            std::string("creator interface is IPluginCreatorV3One, got ") + info.kind);
        auto* v3 = static_cast<nvinfer1::IPluginCreatorV3One*>(creators[i]);
        names.insert(v3->getPluginName());
        EXPECT(std::strcmp(v3->getPluginVersion(), "1") == 0, std::string(v3->getPluginName()) + " has version 1");
        EXPECT(std::strcmp(v3->getPluginNamespace(), "") == 0, std::string(v3->getPluginName()) + " namespace empty");
    }
    EXPECT((names == std::set<std::string>{"DLU", "CARAFE", "MMCVCARAFE", "MMCVCARAFENaive", "DDF"}),
        "creator names");
    EXPECT(std::string(library().version()).find("TensorRT") != std::string::npos, "version names the headers");
}

void fieldNamesDeclareEveryOnnxAttribute()
{
    std::vector<std::pair<char const*, std::vector<std::pair<std::string, PluginFieldType>>>> const expected = {
        {"DLU",
            {{"kernel_size", PluginFieldType::kINT32}, {"group", PluginFieldType::kINT32},
                {"scale", PluginFieldType::kINT32}}},
        {"CARAFE",
            {{"kernel_size", PluginFieldType::kINT32}, {"group", PluginFieldType::kINT32},
                {"scale", PluginFieldType::kINT32}}},
        {"MMCVCARAFE",
            {{"kernel_size", PluginFieldType::kINT32}, {"group_size", PluginFieldType::kINT32},
                {"scale_factor", PluginFieldType::kFLOAT32}}},
        {"MMCVCARAFENaive",
            {{"kernel_size", PluginFieldType::kINT32}, {"group_size", PluginFieldType::kINT32},
                {"scale_factor", PluginFieldType::kFLOAT32}}},
        {"DDF",
            {{"kernel_size", PluginFieldType::kINT32}, {"dilation", PluginFieldType::kINT32},
                {"stride", PluginFieldType::kINT32}, {"combine", PluginFieldType::kINT32}}},
    };
    for (auto const& [plugin, fields] : expected)
    {
        nvinfer1::PluginFieldCollection const* declared = creator(plugin).getFieldNames();
        EXPECT(declared != nullptr && declared->nbFields == static_cast<int32_t>(fields.size()),
            std::string(plugin) + " declares every attribute");
        for (int32_t i = 0; declared != nullptr && i < declared->nbFields && i < static_cast<int32_t>(fields.size());
            ++i)
        {
            EXPECT(fields[i].first == declared->fields[i].name && fields[i].second == declared->fields[i].type
                    && declared->fields[i].length == 1,
                std::string(plugin) + " field " + fields[i].first);
        }
    }
}

void createsFromOnnxFields()
{
    for (OpCase const& op : opCases())
    {
        Fields fields = op.fields();
        PluginPtr plugin = createPlugin(op.plugin, fields);
        EXPECT(plugin != nullptr, std::string(op.plugin) + " created from INT32 fields");
        if (plugin == nullptr)
        {
            continue;
        }
        for (auto type : {nvinfer1::PluginCapabilityType::kCORE, nvinfer1::PluginCapabilityType::kBUILD,
                 nvinfer1::PluginCapabilityType::kRUNTIME})
        {
            EXPECT(plugin->getCapabilityInterface(type) != nullptr, std::string(op.plugin) + " has every capability");
        }
        EXPECT(std::strcmp(core(*plugin).getPluginName(), op.plugin) == 0, "core name");
        EXPECT(std::strcmp(core(*plugin).getPluginVersion(), "1") == 0, "core version");
        EXPECT(std::strcmp(core(*plugin).getPluginNamespace(), "") == 0, "core namespace");
        EXPECT(std::strcmp(build(*plugin).getInterfaceInfo().kind, "PLUGIN_V3ONE_BUILD") == 0, "build interface");
        EXPECT(std::strcmp(runtime(*plugin).getInterfaceInfo().kind, "PLUGIN_V3ONE_RUNTIME") == 0, "runtime interface");
        EXPECT(build(*plugin).getNbOutputs() == 1, "one output");
    }
}

//! The serialised fields of a plugin created from `fields` equal `expected`.
void expectResolvedFields(char const* plugin, Fields fields, Fields expected)
{
    PluginPtr created = createPlugin(plugin, fields);
    EXPECT(created != nullptr, std::string(plugin) + " created, log:\n" + logger().dump());
    if (created != nullptr)
    {
        std::string const difference = compareFields(*runtime(*created).getFieldsToSerialize(), *expected.collection());
        EXPECT(difference.empty(), std::string(plugin) + " resolved fields: " + difference);
    }
}

void appliesDefaults()
{
    expectResolvedFields(
        "DLU", Fields().i32("scale", 4), Fields().i32("kernel_size", 5).i32("group", 1).i32("scale", 4));
    expectResolvedFields(
        "CARAFE", Fields().i32("scale", 2), Fields().i32("kernel_size", 5).i32("group", 1).i32("scale", 2));
    expectResolvedFields("MMCVCARAFE", Fields().f32("scale_factor", 2.0F),
        Fields().i32("kernel_size", 5).i32("group_size", 1).f32("scale_factor", 2.0F));
    expectResolvedFields(
        "DDF", Fields(), Fields().i32("kernel_size", 3).i32("dilation", 1).i32("stride", 1).i32("combine", 0));
}

void acceptsOtherIntegerWidths()
{
    // Applications building fields with numpy get INT64 by default; INT8 is also an integer.
    expectResolvedFields("DLU", Fields().i64("kernel_size", 7).i8("group", 4).i64("scale", 3),
        Fields().i32("kernel_size", 7).i32("group", 4).i32("scale", 3));
    expectResolvedFields("MMCVCARAFE", Fields().i64("kernel_size", 3).i32("group_size", 2).i64("scale_factor", 4),
        Fields().i32("kernel_size", 3).i32("group_size", 2).f32("scale_factor", 4.0F));
}

void rejectsInvalidFieldsNamingFieldAndValue()
{
    expectRejected("DLU", Fields().i32("kernel_size", 4).i32("scale", 2), {"\"kernel_size\" = 4", "odd"});
    expectRejected("DLU", Fields().i32("kernel_size", 17).i32("scale", 2), {"\"kernel_size\" = 17", "[1, 15]"});
    expectRejected("DLU", Fields().i32("kernel_size", -1).i32("scale", 2), {"\"kernel_size\" = -1"});
    expectRejected("DLU", Fields().i32("group", 0).i32("scale", 2), {"\"group\" = 0", ">= 1"});
    expectRejected("DLU", Fields().i32("scale", 0), {"\"scale\" = 0", "[1, 8]"});
    expectRejected("DLU", Fields().i32("scale", 9), {"\"scale\" = 9", "[1, 8]"});
    expectRejected("DLU", Fields().i32("kernel_size", 3), {"\"scale\"", "required"});
    expectRejected("CARAFE", Fields().i32("kernel_size", 0).i32("scale", 2), {"\"kernel_size\" = 0"});
    expectRejected("CARAFE", Fields().i32("group", -2).i32("scale", 2), {"\"group\" = -2"});
    expectRejected("CARAFE", Fields().i32("scale", 12), {"\"scale\" = 12"});
    expectRejected("MMCVCARAFE", Fields().f32("scale_factor", 2.5F), {"\"scale_factor\" = 2.5", "whole number"});
    expectRejected("MMCVCARAFENaive", Fields().f32("scale_factor", 2.5F),
        {"MMCVCARAFENaive plugin", "\"scale_factor\" = 2.5", "whole number"});
    expectRejected("MMCVCARAFE", Fields().f32("scale_factor", 0.0F), {"\"scale_factor\" = 0"});
    expectRejected("MMCVCARAFE", Fields().f32("scale_factor", 9.0F), {"\"scale_factor\" = 9"});
    expectRejected("MMCVCARAFE", Fields().f32("scale_factor", std::nanf("")), {"\"scale_factor\" = nan"});
    expectRejected("MMCVCARAFE", Fields().i32("group_size", 0).f32("scale_factor", 2.0F), {"\"group_size\" = 0"});
    expectRejected("MMCVCARAFE", Fields().i32("kernel_size", 2).f32("scale_factor", 2.0F), {"\"kernel_size\" = 2"});
    expectRejected("MMCVCARAFE", Fields().i32("kernel_size", 3), {"\"scale_factor\"", "required"});
    expectRejected("DDF", Fields().i32("combine", 2), {"\"combine\" = 2", "0 (mul) or 1 (add)"});
    expectRejected("DDF", Fields().i32("dilation", 0), {"\"dilation\" = 0", ">= 1"});
    expectRejected("DDF", Fields().i32("stride", -1), {"\"stride\" = -1"});
    expectRejected("DDF", Fields().i32("kernel_size", 16), {"\"kernel_size\" = 16"});
    // Malformed fields: wrong type, wrong length, no data, too wide.
    expectRejected("DLU", Fields().f32("kernel_size", 3.0F).i32("scale", 2), {"\"kernel_size\"", "type FLOAT32"});
    expectRejected("DDF", Fields().f32("stride", 1.0F), {"\"stride\"", "type FLOAT32"});
    std::vector<uint8_t> twoInts(8, 0);
    expectRejected("DLU", Fields().raw("scale", PluginFieldType::kINT32, twoInts, 2), {"\"scale\"", "2 values"});
    expectRejected(
        "DDF", Fields().raw("stride", PluginFieldType::kINT32, {0, 0, 0, 0}, 1, true), {"\"stride\"", "no data"});
    expectRejected("CARAFE", Fields().i64("scale", int64_t{1} << 40), {"\"scale\" = 1099511627776", "32-bit"});
    expectRejected("MMCVCARAFE", Fields().raw("scale_factor", PluginFieldType::kCHAR, {'2', 0}, 2),
        {"\"scale_factor\"", "type CHAR"});
}

void warnsAboutUnknownFields()
{
    logger().clear();
    Fields fields = Fields().i32("scale", 2).i32("plugin_version_typo", 1);
    PluginPtr plugin = createPlugin("DLU", fields, TensorRTPhase::kBUILD, "up_1");
    EXPECT(plugin != nullptr, "an unknown field does not stop creation");
    EXPECT(logger().contains(Severity::kWARNING, {"DLU plugin (layer \"up_1\")", "plugin_version_typo"}),
        "the unknown field is named in a warning, log:\n" + logger().dump());
}

bool specAllowsReassembly(int32_t k, int32_t g, int32_t s)
{
    return k >= 1 && k <= 15 && k % 2 == 1 && g >= 1 && s >= 1 && s <= 8; // docs/ops.md#carafe, #dlu
}

void validationAgreesWithSpecAndKernels()
{
    int32_t disagreements = 0;
    for (int32_t k = -1; k <= 17; ++k)
    {
        for (int32_t g : {-1, 0, 1, 2, 3, 64})
        {
            for (int32_t s = -1; s <= 9; ++s)
            {
                bool const spec = specAllowsReassembly(k, g, s);
                int64_t const c = g > 0 ? g : 1;
                DluParams const dlu{1, c, 1, 1, k, g, s};
                CarafeParams const carafe{1, c, 1, 1, k, g, s};
                Fields dluFields = Fields().i32("kernel_size", k).i32("group", g).i32("scale", s);
                Fields carafeFields = Fields().i32("kernel_size", k).i32("group", g).i32("scale", s);
                Fields mmcvFields = Fields().i32("kernel_size", k).i32("group_size", g).f32("scale_factor", float(s));
                bool const results[] = {createPlugin("DLU", dluFields) != nullptr,
                    createPlugin("CARAFE", carafeFields) != nullptr, createPlugin("MMCVCARAFE", mmcvFields) != nullptr,
                    dlu_kernels_dlu_check(&dlu) == DLU_STATUS_OK, dlu_kernels_carafe_check(&carafe) == DLU_STATUS_OK};
                for (bool const result : results)
                {
                    disagreements += result != spec ? 1 : 0;
                }
            }
        }
    }
    for (int32_t k = -1; k <= 17; ++k)
    {
        for (int32_t d = -1; d <= 3; ++d)
        {
            for (int32_t s = -1; s <= 3; ++s)
            {
                for (int32_t combine = -1; combine <= 2; ++combine)
                {
                    bool const spec = k >= 1 && k <= 15 && k % 2 == 1 && d >= 1 && s >= 1 && combine >= 0
                        && combine <= 1; // docs/ops.md#ddf
                    int64_t const h = s > 0 ? s : 1;
                    DdfParams const params{1, 1, h, h, k, d, s, combine};
                    Fields fields
                        = Fields().i32("kernel_size", k).i32("dilation", d).i32("stride", s).i32("combine", combine);
                    disagreements += (createPlugin("DDF", fields) != nullptr) != spec ? 1 : 0;
                    disagreements += (dlu_kernels_ddf_check(&params) == DLU_STATUS_OK) != spec ? 1 : 0;
                }
            }
        }
    }
    EXPECT(disagreements == 0,
        "plugins and kernels accept exactly the attributes docs/ops.md allows; disagreements: "
            + std::to_string(disagreements));
    logger().clear();
}

void outputShapesAreSymbolic()
{
    for (OpCase const& op : opCases())
    {
        Fields fields = op.fields();
        PluginPtr plugin = requirePlugin(op.plugin, fields);
        SymbolicExprBuilder builder;
        std::vector<nvinfer1::DimsExprs> const inputs = symbolicInputs(builder, op);
        nvinfer1::DimsExprs output{};
        EXPECT(outputShapes(*plugin, inputs, output, builder) == 0, std::string(op.plugin) + " getOutputShapes");
        EXPECT(output.nbDims == 4, "rank 4 output");
        EXPECT(output.d[0] == inputs[0].d[0] && output.d[1] == inputs[0].d[1],
            std::string(op.plugin) + " passes N and C of the first input through");
        for (int64_t h = op.minSpatial; h <= 9; ++h)
        {
            for (int64_t w : {op.minSpatial, int64_t{7}, int64_t{16}})
            {
                Bindings const values{{"N", 3}, {"C", op.channels}, {"H", h}, {"W", w}};
                Shape const expected = op.output(3, op.channels, h, w);
                for (int32_t axis = 0; axis < 4; ++axis)
                {
                    int64_t const got = static_cast<SymbolicDim const*>(output.d[axis])->evaluate(values);
                    EXPECT(got == expected[axis],
                        std::string(op.plugin) + " output dim " + std::to_string(axis) + " at H=" + std::to_string(h)
                            + ", W=" + std::to_string(w) + ": "
                            + static_cast<SymbolicDim const*>(output.d[axis])->text() + " = " + std::to_string(got)
                            + ", expected " + std::to_string(expected[axis]));
                }
            }
        }
        // A static build: constants in, constants out.
        SymbolicExprBuilder staticBuilder;
        std::vector<nvinfer1::DimsExprs> constants;
        for (Shape const& shape : op.inputs(2, op.channels, 6, 10))
        {
            std::vector<std::string> text;
            for (int64_t value : shape)
            {
                text.push_back(std::to_string(value));
            }
            constants.push_back(staticBuilder.dims(text));
        }
        EXPECT(outputShapes(*plugin, constants, output, staticBuilder) == 0, "static getOutputShapes");
        Shape const expected = op.output(2, op.channels, 6, 10);
        for (int32_t axis = 0; axis < 4; ++axis)
        {
            EXPECT(output.d[axis]->isConstant() && output.d[axis]->getConstantValue() == expected[axis],
                std::string(op.plugin) + " constant output dim " + std::to_string(axis));
        }
    }
}

void outputShapesRejectContradictions()
{
    struct Case
    {
        char const* plugin;
        std::vector<std::vector<std::string>> inputs;
        std::vector<std::string> message;
    };
    std::vector<Case> const cases = {
        {"DLU", {{"N", "C", "H", "W"}, {"N", "17", "H", "W"}, {"N", "16", "H", "W"}},
            {"input 1 (kernels) has C = 17", "group*kernel_size*kernel_size = 18"}},
        {"DLU", {{"N", "C", "H", "W"}, {"N", "18", "H", "W"}, {"N", "8", "H", "W"}},
            {"input 2 (offsets) has C = 8", "2*group*scale*scale = 16"}},
        {"DLU", {{"N", "9", "H", "W"}, {"N", "18", "H", "W"}, {"N", "16", "H", "W"}},
            {"input 0 (x) has C = 9", "multiple of group = 2"}},
        {"DLU", {{"N", "C", "4", "W"}, {"N", "18", "5", "W"}, {"N", "16", "H", "W"}},
            {"input 1 (kernels) has H = 5", "H of x = 4"}},
        {"DLU", {{"N", "C", "H"}, {"N", "18", "H", "W"}, {"N", "16", "H", "W"}}, {"input 0 (x) has rank 3"}},
        {"DLU", {{"N", "C", "H", "W"}, {"N", "18", "H", "W"}}, {"takes 3 inputs (x, kernels, offsets), got 2"}},
        {"CARAFE", {{"N", "C", "4", "5"}, {"N", "75", "12", "16"}},
            {"input 1 (masks) has W = 16", "scale*W of the features = 15"}},
        {"CARAFE", {{"2", "C", "H", "W"}, {"3", "75", "MH", "MW"}}, {"input 1 (masks) has N = 3", "N of the features"}},
        {"MMCVCARAFE", {{"N", "C", "H", "W"}, {"N", "9", "MH", "MW"}},
            {"input 1 (masks) has C = 9", "group*kernel_size*kernel_size = 18"}},
        {"MMCVCARAFENaive", {{"N", "C", "H", "W"}, {"N", "9", "MH", "MW"}},
            {"MMCVCARAFENaive plugin", "input 1 (masks) has C = 9", "group*kernel_size*kernel_size = 25"}},
        {"DDF", {{"N", "C", "H", "W"}, {"N", "C", "3", "5"}, {"N", "9", "SH", "SW"}},
            {"input 1 (channel_filter) has W = 5", "kernel_size = 3"}},
        {"DDF", {{"N", "4", "H", "W"}, {"N", "5", "3", "3"}, {"N", "9", "SH", "SW"}},
            {"input 1 (channel_filter) has C = 5", "C of x = 4"}},
        {"DDF", {{"N", "C", "9", "W"}, {"N", "C", "3", "3"}, {"N", "9", "5", "SW"}},
            {"input 2 (spatial_filter) has H = 5", "(H of x) // stride = 4"}},
        {"DDF", {{"N", "C", "1", "W"}, {"N", "C", "3", "3"}, {"N", "9", "SH", "SW"}},
            {"input 0 (x) has H = 1", "at least stride = 2"}},
    };
    for (Case const& c : cases)
    {
        OpCase const* op = nullptr;
        for (OpCase const& candidate : opCases())
        {
            op = std::strcmp(candidate.plugin, c.plugin) == 0 ? &candidate : op;
        }
        Fields fields = op->fields();
        PluginPtr plugin = requirePlugin(c.plugin, fields, TensorRTPhase::kBUILD, "layer");
        SymbolicExprBuilder builder;
        std::vector<nvinfer1::DimsExprs> inputs;
        for (auto const& input : c.inputs)
        {
            inputs.push_back(builder.dims(input));
        }
        nvinfer1::DimsExprs output{};
        logger().clear();
        EXPECT(outputShapes(*plugin, inputs, output, builder) != 0, std::string(c.plugin) + " rejects " + c.message[0]);
        EXPECT(
            logger().contains(Severity::kERROR, c.message), "message: " + c.message[0] + "\nlog:\n" + logger().dump());
    }
}

void formatCombinationSweep()
{
    int32_t mismatches = 0;
    for (OpCase const& op : opCases())
    {
        Fields fields = op.fields();
        PluginPtr plugin = requirePlugin(op.plugin, fields);
        int32_t const nbInputs = static_cast<int32_t>(op.symbolicInputs.size());
        int32_t const nbIO = nbInputs + 1;
        for (DataType const prefix : {DataType::kFLOAT, DataType::kHALF})
        {
            for (int32_t pos = 0; pos < nbIO; ++pos)
            {
                for (int32_t t = 0; t < nvinfer1::EnumMax<DataType>(); ++t)
                {
                    for (int32_t f = 0; f < nvinfer1::EnumMax<TensorFormat>(); ++f)
                    {
                        std::vector<nvinfer1::DynamicPluginTensorDesc> inOut(static_cast<size_t>(nbIO));
                        for (int32_t i = 0; i < pos; ++i)
                        {
                            inOut[i].desc.type = prefix;
                            inOut[i].desc.format = TensorFormat::kLINEAR;
                        }
                        auto const type = static_cast<DataType>(t);
                        auto const format = static_cast<TensorFormat>(f);
                        inOut[pos].desc.type = type;
                        inOut[pos].desc.format = format;
                        bool const expected = format == TensorFormat::kLINEAR
                            && (pos == 0 ? (type == DataType::kFLOAT || type == DataType::kHALF) : type == prefix);
                        bool const got = build(*plugin).supportsFormatCombination(pos, inOut.data(), nbInputs, 1);
                        mismatches += got != expected ? 1 : 0;
                    }
                }
            }
        }
        // Wrong counts and positions are refused, not read out of bounds.
        std::vector<nvinfer1::DynamicPluginTensorDesc> inOut(static_cast<size_t>(nbIO + 1));
        mismatches += build(*plugin).supportsFormatCombination(nbIO, inOut.data(), nbInputs, 1) ? 1 : 0;
        mismatches += build(*plugin).supportsFormatCombination(0, inOut.data(), nbInputs + 1, 1) ? 1 : 0;
    }
    EXPECT(mismatches == 0,
        "supportsFormatCombination: fp32/fp16 linear, one type; mismatches: " + std::to_string(mismatches));
}

void outputTypeFollowsInput()
{
    for (OpCase const& op : opCases())
    {
        Fields fields = op.fields();
        PluginPtr plugin = requirePlugin(op.plugin, fields);
        int32_t const nbInputs = static_cast<int32_t>(op.symbolicInputs.size());
        for (DataType const type : {DataType::kFLOAT, DataType::kHALF})
        {
            std::vector<DataType> inputs(static_cast<size_t>(nbInputs), type);
            DataType output = DataType::kINT8;
            EXPECT(build(*plugin).getOutputDataTypes(&output, 1, inputs.data(), nbInputs) == 0 && output == type,
                std::string(op.plugin) + " output type = input type");
        }
        std::vector<DataType> mixed(static_cast<size_t>(nbInputs), DataType::kHALF);
        mixed[1] = DataType::kFLOAT;
        DataType output{};
        logger().clear();
        EXPECT(build(*plugin).getOutputDataTypes(&output, 1, mixed.data(), nbInputs) != 0
                && logger().contains(Severity::kERROR, {"input 1", "FLOAT", "HALF", "one type"}),
            std::string(op.plugin) + " rejects mixed input types, log:\n" + logger().dump());
        std::vector<DataType> integers(static_cast<size_t>(nbInputs), DataType::kINT32);
        EXPECT(build(*plugin).getOutputDataTypes(&output, 1, integers.data(), nbInputs) != 0,
            std::string(op.plugin) + " rejects INT32 inputs");
    }
}

void configureChecksTheProfile()
{
    for (OpCase const& op : opCases())
    {
        Fields fields = op.fields();
        PluginPtr plugin = requirePlugin(op.plugin, fields);
        int64_t const lo = op.minSpatial;
        std::vector<Shape> const minimum = op.inputs(1, op.channels, lo, lo);
        std::vector<Shape> const maximum = op.inputs(4, op.channels, 64, 96);
        // As TensorRT describes the network: dimensions that vary over the profile are -1.
        std::vector<Shape> network = maximum;
        for (size_t i = 0; i < network.size(); ++i)
        {
            for (size_t axis = 0; axis < 4; ++axis)
            {
                network[i][axis] = minimum[i][axis] == maximum[i][axis] ? maximum[i][axis] : -1;
            }
        }
        auto descs = dynamicDescs(network, minimum, maximum, DataType::kHALF);
        auto out = dynamicDescs({{-1, op.channels, -1, -1}}, {op.output(1, op.channels, lo, lo)},
            {op.output(4, op.channels, 64, 96)}, DataType::kHALF);
        int32_t const nbInputs = static_cast<int32_t>(descs.size());
        logger().clear();
        EXPECT(build(*plugin).configurePlugin(descs.data(), nbInputs, out.data(), 1) == 0,
            std::string(op.plugin) + " accepts a consistent profile, log:\n" + logger().dump());
        size_t const workspace = build(*plugin).getWorkspaceSize(descs.data(), nbInputs, out.data(), 1);
        EXPECT(workspace == 0, std::string(op.plugin) + " needs no workspace");
        // A profile whose second input disagrees at its maximum.
        std::vector<Shape> badMaximum = maximum;
        badMaximum[1][1] += 1;
        auto bad = dynamicDescs(network, minimum, badMaximum, DataType::kHALF);
        logger().clear();
        EXPECT(build(*plugin).configurePlugin(bad.data(), nbInputs, out.data(), 1) != 0
                && logger().contains(Severity::kERROR, {std::string(op.plugin) + " plugin", "input 1", "has C = "}),
            std::string(op.plugin) + " rejects an inconsistent profile, log:\n" + logger().dump());
    }
    // DDF: a profile whose smallest input is smaller than the stride.
    Fields fields = Fields().i32("kernel_size", 3).i32("stride", 4);
    PluginPtr ddf = requirePlugin("DDF", fields);
    auto descs = dynamicDescs({{1, 2, -1, -1}, {1, 2, 3, 3}, {1, 9, -1, -1}},
        {{1, 2, 3, 8}, {1, 2, 3, 3}, {1, 9, 0, 2}}, {{1, 2, 16, 16}, {1, 2, 3, 3}, {1, 9, 4, 4}}, DataType::kFLOAT);
    auto out = dynamicDescs({{1, 2, -1, -1}}, {{1, 2, 0, 2}}, {{1, 2, 4, 4}}, DataType::kFLOAT);
    logger().clear();
    EXPECT(build(*ddf).configurePlugin(descs.data(), 3, out.data(), 1) != 0
            && logger().contains(Severity::kERROR, {"DDF plugin", "input 0 (x) has H = 3", "stride = 4"}),
        "DDF rejects a profile with H < stride, log:\n" + logger().dump());
}

void serialisationRoundTrips()
{
    for (OpCase const& op : opCases())
    {
        Fields fields = op.fields();
        PluginPtr plugin = requirePlugin(op.plugin, fields, TensorRTPhase::kBUILD, "neck.up0");
        nvinfer1::PluginFieldCollection const* serialised = runtime(*plugin).getFieldsToSerialize();
        EXPECT(serialised != nullptr, "getFieldsToSerialize");
        std::string const difference = compareFields(*serialised, *fields.collection());
        EXPECT(difference.empty(), std::string(op.plugin) + " serialises the ONNX fields unchanged: " + difference);

        // What TensorRT does: copy the bytes into the engine, later re-create at the runtime phase.
        Fields stored = Fields::copyOf(*serialised);
        PluginPtr restored = createPlugin(op.plugin, stored, TensorRTPhase::kRUNTIME, "neck.up0");
        EXPECT(restored != nullptr, std::string(op.plugin) + " re-created at the runtime phase");

        PluginPtr cloned(plugin->clone());
        RecordingErrorRecorder recorder;
        TestResourceContext context(&recorder);
        PluginPtr attached(runtime(*plugin).attachToContext(&context));
        EXPECT(
            cloned != nullptr && attached != nullptr && cloned.get() != plugin.get() && attached.get() != plugin.get(),
            "clone and attachToContext return new objects");
        for (nvinfer1::IPluginV3* copy : {restored.get(), cloned.get(), attached.get()})
        {
            if (copy == nullptr)
            {
                continue;
            }
            std::string const copyDifference
                = compareFields(*runtime(*copy).getFieldsToSerialize(), *stored.collection());
            EXPECT(copyDifference.empty(), std::string(op.plugin) + " copy has equal fields: " + copyDifference);
            EXPECT(std::strcmp(build(*copy).getTimingCacheID(), build(*plugin).getTimingCacheID()) == 0,
                std::string(op.plugin) + " copy has the same timing cache ID");
        }
        // The timing cache ID names the plugin and every attribute value.
        std::string const id = build(*plugin).getTimingCacheID();
        EXPECT(id.find(op.plugin) == 0, "timing cache ID starts with the plugin name: " + id);
        for (int32_t i = 0; i < fields.collection()->nbFields; ++i)
        {
            EXPECT(id.find(fields.collection()->fields[i].name) != std::string::npos,
                "timing cache ID " + id + " names " + fields.collection()->fields[i].name);
        }
    }
    // Different attributes, different timing cache IDs.
    Fields a = Fields().i32("kernel_size", 3).i32("scale", 2);
    Fields b = Fields().i32("kernel_size", 5).i32("scale", 2);
    PluginPtr pa = requirePlugin("DLU", a);
    PluginPtr pb = requirePlugin("DLU", b);
    EXPECT(std::strcmp(build(*pa).getTimingCacheID(), build(*pb).getTimingCacheID()) != 0,
        "timing cache IDs differ with the attributes");
}

void onShapeChangeChecksRuntimeShapes()
{
    for (OpCase const& op : opCases())
    {
        Fields fields = op.fields();
        PluginPtr plugin = requirePlugin(op.plugin, fields, TensorRTPhase::kRUNTIME);
        auto const in = tensorDescs(op.inputs(2, op.channels, 5, 8), DataType::kFLOAT);
        auto const out = tensorDescs({op.output(2, op.channels, 5, 8)}, DataType::kFLOAT);
        logger().clear();
        EXPECT(runtime(*plugin).onShapeChange(in.data(), static_cast<int32_t>(in.size()), out.data(), 1) == 0,
            std::string(op.plugin) + " accepts consistent shapes, log:\n" + logger().dump());
    }
    struct Case
    {
        char const* plugin;
        Fields fields;
        std::vector<Shape> inputs;
        std::vector<std::string> message;
    };
    std::vector<Case> cases;
    cases.push_back({"DLU", Fields().i32("kernel_size", 3).i32("group", 4).i32("scale", 2),
        {{1, 6, 4, 4}, {1, 36, 4, 4}, {1, 32, 4, 4}}, {"input 0 (x) has C = 6", "multiple of group = 4"}});
    cases.push_back({"DLU", Fields().i32("kernel_size", 3).i32("scale", 2), {{1, 4, 4, 4}, {1, 9, 4, 4}, {1, 8, 4, 5}},
        {"input 2 (offsets) has W = 5", "W of x = 4"}});
    cases.push_back({"CARAFE", Fields().i32("kernel_size", 1).i32("scale", 2), {{1, 4, 4, 4}, {1, 1, 8, 9}},
        {"input 1 (masks) has W = 9", "= 8"}});
    cases.push_back({"DDF", Fields().i32("stride", 2), {{1, 4, 1, 6}, {1, 4, 3, 3}, {1, 9, 0, 3}},
        {"input 0 (x) has H = 1", "at least stride = 2"}});
    for (Case& c : cases)
    {
        PluginPtr plugin = requirePlugin(c.plugin, c.fields, TensorRTPhase::kRUNTIME);
        auto const in = tensorDescs(c.inputs, DataType::kHALF);
        auto const out = tensorDescs({{1, 1, 1, 1}}, DataType::kHALF);
        logger().clear();
        EXPECT(runtime(*plugin).onShapeChange(in.data(), static_cast<int32_t>(in.size()), out.data(), 1) != 0
                && logger().contains(Severity::kERROR, c.message),
            std::string(c.plugin) + " onShapeChange rejects: " + c.message[0] + "\nlog:\n" + logger().dump());
    }
}

void enqueueReportsErrorsThroughTheRecorder()
{
    // Shapes the kernels reject fail before any memory is touched, so no GPU is needed.
    Fields fields = Fields().i32("kernel_size", 3).i32("group", 4).i32("scale", 2);
    PluginPtr plugin = requirePlugin("DLU", fields, TensorRTPhase::kRUNTIME, "up3");
    RecordingErrorRecorder recorder;
    TestResourceContext context(&recorder);
    PluginPtr attached(runtime(*plugin).attachToContext(&context));
    auto const in = tensorDescs({{1, 6, 4, 4}, {1, 36, 4, 4}, {1, 32, 4, 4}}, DataType::kFLOAT);
    auto const out = tensorDescs({{1, 6, 8, 8}}, DataType::kFLOAT);
    void const* inputs[3] = {nullptr, nullptr, nullptr};
    void* outputs[1] = {nullptr};
    logger().clear();
    int32_t const status = runtime(*attached).enqueue(in.data(), out.data(), inputs, outputs, nullptr, nullptr);
    EXPECT(status != 0, "enqueue fails for C not divisible by the group");
    EXPECT(recorder.getNbErrors() == 1 && recorder.getErrorCode(0) == nvinfer1::ErrorCode::kINVALID_ARGUMENT
            && std::string(recorder.getErrorDesc(0)).find("DLU plugin (layer \"up3\")") == 0,
        "the error recorder of the execution context receives the error");
    EXPECT(logger().contains(Severity::kERROR, {"DLU plugin (layer \"up3\")", "group"}),
        "the kernels' message is logged, log:\n" + logger().dump());

    auto const int8 = tensorDescs({{1, 8, 4, 4}, {1, 36, 4, 4}, {1, 32, 4, 4}}, DataType::kINT8);
    EXPECT(runtime(*attached).enqueue(int8.data(), out.data(), inputs, outputs, nullptr, nullptr) != 0
            && recorder.getNbErrors() == 2,
        "enqueue rejects INT8 tensors");

    // An empty batch has nothing to compute and succeeds without touching memory.
    auto const empty = tensorDescs({{0, 8, 4, 4}, {0, 36, 4, 4}, {0, 32, 4, 4}}, DataType::kFLOAT);
    auto const emptyOut = tensorDescs({{0, 8, 8, 8}}, DataType::kFLOAT);
    EXPECT(runtime(*attached).enqueue(empty.data(), emptyOut.data(), inputs, outputs, nullptr, nullptr) == 0,
        "enqueue of an empty batch succeeds");
}

} // namespace

int runPluginSuite()
{
    static TestLoggerFinder finder(logger());
    library().setLoggerFinder(&finder);
    return runTests("plugins",
        {
            {"creators_are_listed", creatorsAreListed},
            {"field_names_declare_every_onnx_attribute", fieldNamesDeclareEveryOnnxAttribute},
            {"creates_from_onnx_fields", createsFromOnnxFields},
            {"applies_defaults", appliesDefaults},
            {"accepts_other_integer_widths", acceptsOtherIntegerWidths},
            {"rejects_invalid_fields_naming_field_and_value", rejectsInvalidFieldsNamingFieldAndValue},
            {"warns_about_unknown_fields", warnsAboutUnknownFields},
            {"validation_agrees_with_spec_and_kernels", validationAgreesWithSpecAndKernels},
            {"output_shapes_are_symbolic", outputShapesAreSymbolic},
            {"output_shapes_reject_contradictions", outputShapesRejectContradictions},
            {"format_combination_sweep", formatCombinationSweep},
            {"output_type_follows_input", outputTypeFollowsInput},
            {"configure_checks_the_profile", configureChecksTheProfile},
            {"serialisation_round_trips", serialisationRoundTrips},
            {"on_shape_change_checks_runtime_shapes", onShapeChangeChecksRuntimeShapes},
            {"enqueue_reports_errors_through_the_recorder", enqueueReportsErrorsThroughTheRecorder},
        });
}

} // namespace harness
