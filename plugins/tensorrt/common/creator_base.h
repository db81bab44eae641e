/*
 * What the plugin creators have in common: name, version "1", the empty namespace, the declared
 * fields (every ONNX attribute of the node, so the ONNX parser forwards them) and a noexcept
 * createPlugin() that reports why it returns nullptr.
 */
#ifndef DLU_TRT_CREATOR_BASE_H
#define DLU_TRT_CREATOR_BASE_H

#include "NvInferRuntime.h"
#include "fields.h"
#include "plugin_base.h"

#include <memory>
#include <string>
#include <vector>

namespace dlu_trt
{

class CreatorBase : public nvinfer1::IPluginCreatorV3One
{
public:
    CreatorBase(char const* pluginName, std::vector<FieldSpec> fields);
    CreatorBase(CreatorBase const&) = delete;
    CreatorBase& operator=(CreatorBase const&) = delete;

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;

    //! The same field types are accepted at both phases: the serialised fields have the types
    //! the ONNX parser uses (see FieldReader for the integer widths accepted besides INT32).
    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept override;

protected:
    //! A checked plugin object, or a PluginError naming the field and value at fault.
    virtual std::unique_ptr<PluginBase> create(std::string const& layerName, FieldReader const& fields) const = 0;

private:
    char const* mPluginName;
    std::vector<FieldSpec> mSpecs;
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mCollection{};
};

} // namespace dlu_trt

#endif // DLU_TRT_CREATOR_BASE_H
