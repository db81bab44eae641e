/*
 * A small test runner for the plugin harness, and the plugin library as TensorRT sees it: a
 * shared object opened with dlopen whose creators come from getCreators().
 */
#ifndef DLU_TRT_TESTS_HARNESS_H
#define DLU_TRT_TESTS_HARNESS_H

#include "NvInferRuntime.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace harness
{

constexpr int kSkipExitCode = 77; // ctest SKIP_RETURN_CODE

void expect(bool ok, std::string const& what, char const* file, int line);

//! Thrown by a test that cannot run here; the suite reports it as skipped with the reason.
struct Skip
{
    std::string reason;
};

struct TestCase
{
    char const* name;
    void (*run)();
};

//! Runs the tests, prints one line per test and a summary; returns the process exit code
//! (0 passed, 1 failed, kSkipExitCode when every test skipped).
int runTests(char const* suite, std::vector<TestCase> const& tests);

struct PluginLibrary
{
    void* handle{nullptr};
    nvinfer1::IPluginCreatorInterface* const* (*getCreators)(int32_t&){nullptr};
    void (*setLoggerFinder)(nvinfer1::ILoggerFinder*){nullptr};
    char const* (*version)(){nullptr};
    bool (*init)(void*, char const*){nullptr}; // initLibDluTrtPlugins
};

//! dlopen(path, RTLD_NOW | RTLD_LOCAL) and look up the exported functions (throws on failure).
PluginLibrary openPluginLibrary(std::string const& path);

//! The library under test, opened by main() for the plugin suites.
PluginLibrary const& library();
void setLibrary(PluginLibrary const& library);

//! The creator named `name` from getCreators() (throws when absent).
nvinfer1::IPluginCreatorV3One& creator(char const* name);

//! Plugin fields with owned storage, as the ONNX parser or TensorRT's deserialiser builds them.
//! Copies are deep; collection() points into the object it is called on.
class Fields
{
public:
    Fields& i32(char const* name, int32_t value);
    Fields& i64(char const* name, int64_t value);
    Fields& i8(char const* name, int8_t value);
    Fields& f32(char const* name, float value);
    Fields& raw(char const* name, nvinfer1::PluginFieldType type, std::vector<uint8_t> bytes, int32_t length,
        bool nullData = false);

    //! A deep copy (names and data), as TensorRT keeps serialised fields in the engine.
    static Fields copyOf(nvinfer1::PluginFieldCollection const& collection);

    nvinfer1::PluginFieldCollection const* collection();

private:
    struct Entry
    {
        std::string name;
        nvinfer1::PluginFieldType type;
        std::vector<uint8_t> bytes;
        int32_t length;
        bool nullData;
    };
    std::vector<Entry> mEntries;
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mCollection{};
};

//! "" when equal, else what differs (names, types, lengths, bytes, in order).
std::string compareFields(nvinfer1::PluginFieldCollection const& a, nvinfer1::PluginFieldCollection const& b);

struct PluginDeleter
{
    void operator()(nvinfer1::IPluginV3* plugin) const
    {
        delete plugin;
    }
};
using PluginPtr = std::unique_ptr<nvinfer1::IPluginV3, PluginDeleter>;

PluginPtr createPlugin(char const* name, Fields& fields,
    nvinfer1::TensorRTPhase phase = nvinfer1::TensorRTPhase::kBUILD, char const* layer = "layer");

//! createPlugin that throws (failing the test) instead of returning nullptr.
PluginPtr requirePlugin(char const* name, Fields& fields,
    nvinfer1::TensorRTPhase phase = nvinfer1::TensorRTPhase::kBUILD, char const* layer = "layer");

nvinfer1::IPluginV3OneCore& core(nvinfer1::IPluginV3& plugin);
nvinfer1::IPluginV3OneBuild& build(nvinfer1::IPluginV3& plugin);
nvinfer1::IPluginV3OneRuntime& runtime(nvinfer1::IPluginV3& plugin);

//! Dims from a list, e.g. dims({2, 8, 5, 7}).
nvinfer1::Dims dims(std::vector<int64_t> const& values);

//! Tensor descriptors of the given shapes, all of one type, linear format.
std::vector<nvinfer1::PluginTensorDesc> tensorDescs(
    std::vector<std::vector<int64_t>> const& shapes, nvinfer1::DataType type);

//! Build-time descriptors: network dims (-1 allowed) and the profile's min/opt/max.
std::vector<nvinfer1::DynamicPluginTensorDesc> dynamicDescs(std::vector<std::vector<int64_t>> const& network,
    std::vector<std::vector<int64_t>> const& minimum, std::vector<std::vector<int64_t>> const& maximum,
    nvinfer1::DataType type);

} // namespace harness

#define EXPECT(condition, what) ::harness::expect(static_cast<bool>(condition), (what), __FILE__, __LINE__)

#endif // DLU_TRT_TESTS_HARNESS_H
