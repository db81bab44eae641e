/*
 * What the DLU, CARAFE, MMCVCARAFE and DDF plugins have in common.
 *
 * Each is an IPluginV3 exposing the Core, Build and Runtime capabilities of version "One":
 * one output of the first input's type (TensorRT 11 networks are strongly typed), fp32 or fp16,
 * all inputs and the output of one type, linear NCHW. The per-op subclass supplies the shape
 * constraints, the output shape expressions, the kernel call and the serialised fields; this
 * class turns every failure into a logged/recorded error and a failure return value, as every
 * method is noexcept.
 *
 * enqueue() is stateless: it reads the shapes from the tensor descriptors it is given, so a
 * plugin object can serve any shape of its profile and be shared without setup.
 */
#ifndef DLU_TRT_PLUGIN_BASE_H
#define DLU_TRT_PLUGIN_BASE_H

#include "NvInferRuntime.h"
#include "dlu_kernels.h"

#include <memory>
#include <string>
#include <vector>

namespace dlu_trt
{

class InputShapes;

//! Throws a PluginError with the kernels' message (dlu_kernels_last_error) unless `status` is OK.
void requireKernelsAccept(std::string const& context, DluStatus status);

//! The plugin version of every plugin in this library ("1"; a breaking change of a plugin's
//! fields or inputs gets a new version and keeps the old one registered).
constexpr char const* kPluginVersion = "1";

class PluginBase : public nvinfer1::IPluginV3,
                   public nvinfer1::IPluginV3OneCore,
                   public nvinfer1::IPluginV3OneBuild,
                   public nvinfer1::IPluginV3OneRuntime
{
public:
    PluginBase(PluginBase const&) = delete;
    PluginBase& operator=(PluginBase const&) = delete;
    ~PluginBase() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs, nvinfer1::DataType const* inputTypes,
        int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;
    char const* getTimingCacheID() noexcept override;
    char const* getMetadataString() noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

protected:
    //! `inputNames` in ONNX input order; `attributes` e.g. "kernel_size=5,group=1,scale=2".
    PluginBase(
        char const* pluginName, std::vector<char const*> inputNames, std::string layerName, std::string attributes);

    //! "DLU plugin (layer "up1")", the start of every message about this object.
    std::string const& context() const noexcept
    {
        return mContext;
    }
    std::string const& layerName() const noexcept
    {
        return mLayerName;
    }

    //! Throw a PluginError for dimensions that contradict the attributes (unknown ones are -1).
    virtual void checkShapes(InputShapes const& shapes) const = 0;

    //! The output's dimension expressions (rank and constant dimensions are already checked).
    virtual void outputShape(
        nvinfer1::DimsExprs const* inputs, nvinfer1::DimsExprs& output, nvinfer1::IExprBuilder& builder) const = 0;

    //! The kernels' own parameter check for these (complete) input dimensions.
    virtual DluStatus checkKernelParameters(nvinfer1::Dims const* inputDims) const = 0;

    //! Enqueue the kernel; the input dimensions are complete and checked.
    virtual DluStatus launch(DluDType dtype, nvinfer1::Dims const* inputDims, void const* const* inputs, void* output,
        cudaStream_t stream) const = 0;

    //! The fields createPlugin() needs at the runtime phase to rebuild this object; the data
    //! pointers point into this object.
    virtual std::vector<nvinfer1::PluginField> serializedFields() const = 0;

    //! A new object with the same attributes and layer name (what clone() returns).
    virtual std::unique_ptr<PluginBase> copy() const = 0;

private:
    int32_t nbInputs() const noexcept
    {
        return static_cast<int32_t>(mInputNames.size());
    }
    void checkCounts(int32_t nbInputs, int32_t nbOutputs) const;
    void checkAllShapes(nvinfer1::Dims const* dims) const;
    void checkKernels(nvinfer1::Dims const* dims) const;

    char const* mPluginName;
    std::vector<char const*> mInputNames;
    std::string mLayerName;
    std::string mContext;
    std::string mTimingCacheId;
    nvinfer1::IErrorRecorder* mErrorRecorder{nullptr};
    std::vector<nvinfer1::PluginField> mSerialized;
    nvinfer1::PluginFieldCollection mSerializedCollection{};
};

} // namespace dlu_trt

#endif // DLU_TRT_PLUGIN_BASE_H
