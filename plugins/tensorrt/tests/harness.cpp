#include "harness.h"

#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <exception>
#include <stdexcept>

namespace harness
{
namespace
{

int32_t gFailures = 0;
PluginLibrary gLibrary;

template <typename Value> std::vector<uint8_t> bytesOf(Value value)
{
    std::vector<uint8_t> bytes(sizeof(Value));
    std::memcpy(bytes.data(), &value, sizeof(Value));
    return bytes;
}

size_t elementSize(nvinfer1::PluginFieldType type)
{
    switch (type)
    {
    case nvinfer1::PluginFieldType::kFLOAT16: return 2;
    case nvinfer1::PluginFieldType::kFLOAT32: return 4;
    case nvinfer1::PluginFieldType::kFLOAT64: return 8;
    case nvinfer1::PluginFieldType::kINT8: return 1;
    case nvinfer1::PluginFieldType::kINT16: return 2;
    case nvinfer1::PluginFieldType::kINT32: return 4;
    case nvinfer1::PluginFieldType::kINT64: return 8;
    case nvinfer1::PluginFieldType::kCHAR: return 1;
    case nvinfer1::PluginFieldType::kUNKNOWN: return 1;
    default: throw std::invalid_argument("field type not used by these tests");
    }
}

} // namespace

void expect(bool ok, std::string const& what, char const* file, int line)
{
    if (!ok)
    {
        ++gFailures;
        std::printf("    FAILED %s:%d: %s\n", file, line, what.c_str());
    }
}

int runTests(char const* suite, std::vector<TestCase> const& tests)
{
    int32_t failedTests = 0;
    int32_t skippedTests = 0;
    for (TestCase const& test : tests)
    {
        int32_t const before = gFailures;
        std::string status = "ok";
        try
        {
            test.run();
        }
        catch (Skip const& skip)
        {
            status = "SKIPPED (" + skip.reason + ")";
            ++skippedTests;
        }
        catch (std::exception const& error)
        {
            ++gFailures;
            std::printf("    FAILED: exception: %s\n", error.what());
        }
        if (gFailures != before)
        {
            status = "FAILED";
            ++failedTests;
        }
        std::printf("[%s] %s: %s\n", suite, test.name, status.c_str());
        std::fflush(stdout);
    }
    int32_t const total = static_cast<int32_t>(tests.size());
    std::printf("[%s] %d tests: %d passed, %d failed, %d skipped\n", suite, total, total - failedTests - skippedTests,
        failedTests, skippedTests);
    if (failedTests > 0)
    {
        return 1;
    }
    return skippedTests == total ? kSkipExitCode : 0;
}

PluginLibrary openPluginLibrary(std::string const& path)
{
    PluginLibrary library;
    library.handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (library.handle == nullptr)
    {
        throw std::runtime_error("dlopen(" + path + ") failed: " + dlerror());
    }
    library.getCreators = reinterpret_cast<decltype(library.getCreators)>(dlsym(library.handle, "getCreators"));
    library.setLoggerFinder
        = reinterpret_cast<decltype(library.setLoggerFinder)>(dlsym(library.handle, "setLoggerFinder"));
    library.version = reinterpret_cast<decltype(library.version)>(dlsym(library.handle, "dlu_trt_plugins_version"));
    library.init = reinterpret_cast<decltype(library.init)>(dlsym(library.handle, "initLibDluTrtPlugins"));
    if (library.getCreators == nullptr || library.setLoggerFinder == nullptr || library.version == nullptr
        || library.init == nullptr)
    {
        throw std::runtime_error(
            path + " lacks getCreators, setLoggerFinder, initLibDluTrtPlugins or dlu_trt_plugins_version");
    }
    return library;
}

PluginLibrary const& library()
{
    return gLibrary;
}

void setLibrary(PluginLibrary const& library)
{
    gLibrary = library;
}

nvinfer1::IPluginCreatorV3One& creator(char const* name)
{
    int32_t count = 0;
    nvinfer1::IPluginCreatorInterface* const* creators = gLibrary.getCreators(count);
    for (int32_t i = 0; i < count; ++i)
    {
        auto* v3 = static_cast<nvinfer1::IPluginCreatorV3One*>(creators[i]);
        if (std::strcmp(v3->getPluginName(), name) == 0)
        {
            return *v3;
        }
    }
    throw std::runtime_error(std::string("no creator named ") + name);
}

Fields& Fields::raw(
    char const* name, nvinfer1::PluginFieldType type, std::vector<uint8_t> bytes, int32_t length, bool nullData)
{
    mEntries.push_back({name, type, std::move(bytes), length, nullData});
    return *this;
}

Fields& Fields::i32(char const* name, int32_t value)
{
    return raw(name, nvinfer1::PluginFieldType::kINT32, bytesOf(value), 1);
}

Fields& Fields::i64(char const* name, int64_t value)
{
    return raw(name, nvinfer1::PluginFieldType::kINT64, bytesOf(value), 1);
}

Fields& Fields::i8(char const* name, int8_t value)
{
    return raw(name, nvinfer1::PluginFieldType::kINT8, bytesOf(value), 1);
}

Fields& Fields::f32(char const* name, float value)
{
    return raw(name, nvinfer1::PluginFieldType::kFLOAT32, bytesOf(value), 1);
}

Fields Fields::copyOf(nvinfer1::PluginFieldCollection const& collection)
{
    Fields copy;
    for (int32_t i = 0; i < collection.nbFields; ++i)
    {
        nvinfer1::PluginField const& field = collection.fields[i];
        size_t const size = elementSize(field.type) * static_cast<size_t>(field.length);
        auto const* data = static_cast<uint8_t const*>(field.data);
        copy.raw(field.name, field.type, std::vector<uint8_t>(data, data + size), field.length);
    }
    return copy;
}

nvinfer1::PluginFieldCollection const* Fields::collection()
{
    mFields.clear();
    for (Entry const& entry : mEntries)
    {
        mFields.emplace_back(
            entry.name.c_str(), entry.nullData ? nullptr : entry.bytes.data(), entry.type, entry.length);
    }
    mCollection.nbFields = static_cast<int32_t>(mFields.size());
    mCollection.fields = mFields.data();
    return &mCollection;
}

std::string compareFields(nvinfer1::PluginFieldCollection const& a, nvinfer1::PluginFieldCollection const& b)
{
    if (a.nbFields != b.nbFields)
    {
        return std::to_string(a.nbFields) + " fields vs " + std::to_string(b.nbFields);
    }
    for (int32_t i = 0; i < a.nbFields; ++i)
    {
        nvinfer1::PluginField const& x = a.fields[i];
        nvinfer1::PluginField const& y = b.fields[i];
        if (std::strcmp(x.name, y.name) != 0 || x.type != y.type || x.length != y.length)
        {
            return std::string("field ") + std::to_string(i) + ": " + x.name + " vs " + y.name;
        }
        size_t const size = elementSize(x.type) * static_cast<size_t>(x.length);
        if (std::memcmp(x.data, y.data, size) != 0)
        {
            return std::string("field ") + x.name + ": different values";
        }
    }
    return "";
}

PluginPtr createPlugin(char const* name, Fields& fields, nvinfer1::TensorRTPhase phase, char const* layer)
{
    return PluginPtr(creator(name).createPlugin(layer, fields.collection(), phase));
}

PluginPtr requirePlugin(char const* name, Fields& fields, nvinfer1::TensorRTPhase phase, char const* layer)
{
    PluginPtr plugin = createPlugin(name, fields, phase, layer);
    if (plugin == nullptr)
    {
        throw std::runtime_error(std::string("createPlugin(") + name + ") returned nullptr");
    }
    return plugin;
}

nvinfer1::IPluginV3OneCore& core(nvinfer1::IPluginV3& plugin)
{
    return *static_cast<nvinfer1::IPluginV3OneCore*>(
        plugin.getCapabilityInterface(nvinfer1::PluginCapabilityType::kCORE));
}

nvinfer1::IPluginV3OneBuild& build(nvinfer1::IPluginV3& plugin)
{
    return *static_cast<nvinfer1::IPluginV3OneBuild*>(
        plugin.getCapabilityInterface(nvinfer1::PluginCapabilityType::kBUILD));
}

nvinfer1::IPluginV3OneRuntime& runtime(nvinfer1::IPluginV3& plugin)
{
    return *static_cast<nvinfer1::IPluginV3OneRuntime*>(
        plugin.getCapabilityInterface(nvinfer1::PluginCapabilityType::kRUNTIME));
}

nvinfer1::Dims dims(std::vector<int64_t> const& values)
{
    nvinfer1::Dims result{};
    result.nbDims = static_cast<int32_t>(values.size());
    for (size_t i = 0; i < values.size(); ++i)
    {
        result.d[i] = values[i];
    }
    return result;
}

std::vector<nvinfer1::PluginTensorDesc> tensorDescs(
    std::vector<std::vector<int64_t>> const& shapes, nvinfer1::DataType type)
{
    std::vector<nvinfer1::PluginTensorDesc> descs;
    for (auto const& shape : shapes)
    {
        nvinfer1::PluginTensorDesc desc{};
        desc.dims = dims(shape);
        desc.type = type;
        desc.format = nvinfer1::TensorFormat::kLINEAR;
        desc.scale = 1.0F;
        descs.push_back(desc);
    }
    return descs;
}

std::vector<nvinfer1::DynamicPluginTensorDesc> dynamicDescs(std::vector<std::vector<int64_t>> const& network,
    std::vector<std::vector<int64_t>> const& minimum, std::vector<std::vector<int64_t>> const& maximum,
    nvinfer1::DataType type)
{
    std::vector<nvinfer1::DynamicPluginTensorDesc> descs;
    for (size_t i = 0; i < network.size(); ++i)
    {
        nvinfer1::DynamicPluginTensorDesc desc{};
        desc.desc = tensorDescs({network[i]}, type)[0];
        desc.min = dims(minimum[i]);
        desc.opt = dims(maximum[i]);
        desc.max = dims(maximum[i]);
        descs.push_back(desc);
    }
    return descs;
}

} // namespace harness
