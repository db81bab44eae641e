/*
 * What a kernel knows about its node when ONNX Runtime creates it: the node's name (for every
 * message), its attributes (read and range-checked with the limits shared with the TensorRT
 * plugins, plugins/common/node_attributes.h) and its inputs' element types.
 */
#ifndef DLU_ORT_NODE_H
#define DLU_ORT_NODE_H

#include "node_attributes.h"
#include "ort_api.h"

#include <cstdint>
#include <optional>
#include <string>

namespace dlu_ort
{

//! `dlu_deploy::DLU node "neck.upsample_modules.0/DLU"`: how every message about a node begins.
std::string nodeContext(char const* domain, char const* opType, std::string const& nodeName);

class NodeReader
{
public:
    NodeReader(OrtApi const& api, OrtKernelInfo const* info, char const* domain, char const* opType);

    std::string const& context() const noexcept
    {
        return mContext;
    }

    //! An INT attribute; nullopt when absent; throws when it has another type.
    std::optional<int64_t> integer(char const* name) const;
    //! A FLOAT attribute; nullopt when absent; throws when it has another type.
    std::optional<float> number(char const* name) const;
    //! A STRING attribute; nullopt when absent; throws when it has another type.
    std::optional<std::string> text(char const* name) const;

    //! The INT attribute (or `fallback` when absent and not required), checked against `range`.
    int32_t integerIn(char const* name, dlu_nodes::IntRange const& range, std::optional<int32_t> fallback) const;

    //! Rejects a plugin_version other than the one this library implements (absent is fine).
    void checkPluginVersion() const;

    //! Throws unless input `index` is a tensor of `expected` (the dtype this kernel computes).
    //! `inputName` is the op's name for that input (docs/ops.md).
    void checkInputType(size_t index, char const* inputName, ONNXTensorElementDataType expected,
        char const* firstInputName) const;

    //! Throws an INVALID_ARGUMENT OrtError "<context>: <what>. <fix>".
    [[noreturn]] void fail(std::string const& what, std::string const& fix) const;

private:
    //! The attribute's type when it exists with a type other than `wanted`, else nullptr.
    char const* otherType(char const* name, char const* wanted) const;

    OrtApi const& mApi;
    OrtKernelInfo const* mInfo;
    std::string mContext;
};

} // namespace dlu_ort

#endif // DLU_ORT_NODE_H
