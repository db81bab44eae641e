/*
 * Just enough of ONNX's protobuf encoding (onnx/onnx.proto: ModelProto, GraphProto, NodeProto,
 * AttributeProto, ValueInfoProto) to write plugin-mode test models from C++, without protobuf or
 * Python: the test writes its .onnx files itself, so it depends on nothing but libonnxruntime.
 */
#ifndef DLU_ORT_TESTS_ONNX_WRITER_H
#define DLU_ORT_TESTS_ONNX_WRITER_H

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace onnx_writer
{

// onnx.proto TensorProto.DataType
constexpr int32_t kFloat = 1;
constexpr int32_t kFloat16 = 10;

struct Attribute
{
    enum class Kind
    {
        kInt,
        kFloat,
        kString
    };
    std::string name;
    Kind kind;
    int64_t i = 0;
    float f = 0.0F;
    std::string s;
};

Attribute intAttribute(std::string name, int64_t value);
Attribute floatAttribute(std::string name, float value);
Attribute stringAttribute(std::string name, std::string value);

struct Node
{
    std::string opType;
    std::string domain;
    std::string name;
    std::vector<std::string> inputs;
    std::vector<std::string> outputs;
    std::vector<Attribute> attributes;
};

//! A dimension: a fixed size, or a symbolic one (dim_param) when `param` is not empty.
struct Dim
{
    int64_t value = 0;
    std::string param;
};

struct Value
{
    std::string name;
    int32_t elemType;
    std::vector<Dim> dims; // empty: shape unknown
};

struct Model
{
    std::vector<Node> nodes;
    std::vector<Value> inputs;
    std::vector<Value> outputs;
    std::vector<std::pair<std::string, int64_t>> opsets; // (domain, version); "" is the ONNX domain
    int64_t irVersion = 10;
};

//! The serialised ModelProto.
std::string serialize(Model const& model);

//! Writes `model` to `path`; false on an I/O error.
bool save(Model const& model, std::string const& path);

} // namespace onnx_writer

#endif // DLU_ORT_TESTS_ONNX_WRITER_H
