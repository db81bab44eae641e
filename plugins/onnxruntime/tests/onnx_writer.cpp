#include "onnx_writer.h"

#include <cstring>
#include <fstream>

namespace onnx_writer
{
namespace
{

// Protobuf wire types.
constexpr uint32_t kVarint = 0;
constexpr uint32_t kLengthDelimited = 2;
constexpr uint32_t kFixed32 = 5;

class Message
{
public:
    Message& varint(uint32_t field, uint64_t value)
    {
        key(field, kVarint);
        raw(value);
        return *this;
    }

    Message& bytes(uint32_t field, std::string const& value)
    {
        key(field, kLengthDelimited);
        raw(value.size());
        mBytes += value;
        return *this;
    }

    Message& message(uint32_t field, Message const& value)
    {
        return bytes(field, value.mBytes);
    }

    Message& fixed32(uint32_t field, float value)
    {
        key(field, kFixed32);
        uint32_t bits = 0;
        std::memcpy(&bits, &value, sizeof(bits));
        for (int i = 0; i < 4; ++i)
        {
            mBytes += static_cast<char>((bits >> (8 * i)) & 0xffU);
        }
        return *this;
    }

    std::string const& str() const
    {
        return mBytes;
    }

private:
    void key(uint32_t field, uint32_t wireType)
    {
        raw((uint64_t{field} << 3) | wireType);
    }

    void raw(uint64_t value)
    {
        do
        {
            uint8_t byte = value & 0x7fU;
            value >>= 7;
            mBytes += static_cast<char>(value != 0 ? (byte | 0x80U) : byte);
        } while (value != 0);
    }

    std::string mBytes;
};

Message attribute(Attribute const& a)
{
    // AttributeProto: name 1, f 2, i 3, s 4, type 20 (FLOAT 1, INT 2, STRING 3).
    Message m;
    m.bytes(1, a.name);
    switch (a.kind)
    {
    case Attribute::Kind::kFloat: m.fixed32(2, a.f).varint(20, 1); break;
    case Attribute::Kind::kInt: m.varint(3, static_cast<uint64_t>(a.i)).varint(20, 2); break;
    case Attribute::Kind::kString: m.bytes(4, a.s).varint(20, 3); break;
    }
    return m;
}

Message node(Node const& n)
{
    // NodeProto: input 1, output 2, name 3, op_type 4, attribute 5, domain 7.
    Message m;
    for (std::string const& input : n.inputs)
    {
        m.bytes(1, input);
    }
    for (std::string const& output : n.outputs)
    {
        m.bytes(2, output);
    }
    m.bytes(3, n.name).bytes(4, n.opType);
    for (Attribute const& a : n.attributes)
    {
        m.message(5, attribute(a));
    }
    if (!n.domain.empty())
    {
        m.bytes(7, n.domain);
    }
    return m;
}

Message value(Value const& v)
{
    // ValueInfoProto: name 1, type 2. TypeProto: tensor_type 1. TypeProto.Tensor: elem_type 1,
    // shape 2. TensorShapeProto: dim 1. Dimension: dim_value 1, dim_param 2.
    Message tensor;
    tensor.varint(1, static_cast<uint64_t>(v.elemType));
    if (!v.dims.empty())
    {
        Message shape;
        for (Dim const& d : v.dims)
        {
            Message dim;
            if (d.param.empty())
            {
                dim.varint(1, static_cast<uint64_t>(d.value));
            }
            else
            {
                dim.bytes(2, d.param);
            }
            shape.message(1, dim);
        }
        tensor.message(2, shape);
    }
    Message type;
    type.message(1, tensor);
    Message m;
    m.bytes(1, v.name).message(2, type);
    return m;
}

} // namespace

Attribute intAttribute(std::string name, int64_t value)
{
    Attribute a{std::move(name), Attribute::Kind::kInt, 0, 0.0F, {}};
    a.i = value;
    return a;
}

Attribute floatAttribute(std::string name, float value)
{
    Attribute a{std::move(name), Attribute::Kind::kFloat, 0, 0.0F, {}};
    a.f = value;
    return a;
}

Attribute stringAttribute(std::string name, std::string value)
{
    Attribute a{std::move(name), Attribute::Kind::kString, 0, 0.0F, {}};
    a.s = std::move(value);
    return a;
}

std::string serialize(Model const& model)
{
    // GraphProto: node 1, name 2, input 11, output 12.
    Message graph;
    for (Node const& n : model.nodes)
    {
        graph.message(1, node(n));
    }
    graph.bytes(2, "test");
    for (Value const& v : model.inputs)
    {
        graph.message(11, value(v));
    }
    for (Value const& v : model.outputs)
    {
        graph.message(12, value(v));
    }
    // ModelProto: ir_version 1, producer_name 2, graph 7, opset_import 8 (domain 1, version 2).
    Message m;
    m.varint(1, static_cast<uint64_t>(model.irVersion)).bytes(2, "dlu_ort_ops test");
    m.message(7, graph);
    for (auto const& [domain, version] : model.opsets)
    {
        Message opset;
        if (!domain.empty())
        {
            opset.bytes(1, domain);
        }
        opset.varint(2, static_cast<uint64_t>(version));
        m.message(8, opset);
    }
    return m.str();
}

bool save(Model const& model, std::string const& path)
{
    std::ofstream file(path, std::ios::binary);
    std::string const bytes = serialize(model);
    file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return static_cast<bool>(file);
}

} // namespace onnx_writer
