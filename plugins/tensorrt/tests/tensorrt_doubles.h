/*
 * Stand-ins for the parts of TensorRT that drive a plugin, so the plugin objects can be tested
 * without libnvinfer (which cannot be installed everywhere the tests run).
 *
 * IDimensionExpr and IExprBuilder are concrete API classes whose inline methods forward to a
 * protected `mImpl` pointer of the abstract types apiv::VDimensionExpr / apiv::VExprBuilder
 * (NvInferImpl.h). A subclass may set that protected member, so the doubles below derive from the
 * API class and point mImpl at their own implementation of the V* interface: the plugin code
 * calls exactly the inline methods it calls inside TensorRT.
 *
 * The expressions are symbolic: an input dimension can be a named symbol ("H"), and an output
 * expression can be evaluated for any values of the symbols, which is how the tests check that
 * output shapes are right for every runtime shape, not only for the constants of one build.
 */
#ifndef DLU_TRT_TESTS_TENSORRT_DOUBLES_H
#define DLU_TRT_TESTS_TENSORRT_DOUBLES_H

#include "NvInferRuntime.h"

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace harness
{

using Bindings = std::map<std::string, int64_t>;

class SymbolicDim final : public nvinfer1::IDimensionExpr
{
public:
    static std::unique_ptr<SymbolicDim> constant(int64_t value);
    static std::unique_ptr<SymbolicDim> symbol(std::string name);
    static std::unique_ptr<SymbolicDim> operation(
        nvinfer1::DimensionOperation op, SymbolicDim const& lhs, SymbolicDim const& rhs);

    ~SymbolicDim() noexcept override = default;

    //! The value for the given symbol values (throws for an unbound symbol).
    int64_t evaluate(Bindings const& bindings) const;
    //! E.g. "(H*2)".
    std::string text() const;

private:
    enum class Kind
    {
        kConstant,
        kSymbol,
        kOperation
    };

    class Impl final : public nvinfer1::apiv::VDimensionExpr
    {
    public:
        explicit Impl(SymbolicDim const& owner)
            : mOwner(owner)
        {
        }
        bool isConstant() const override;
        int64_t getConstantValue() const override;
        bool isSizeTensor() const override
        {
            return false;
        }

    private:
        SymbolicDim const& mOwner;
    };

    SymbolicDim(Kind kind, int64_t value, std::string symbol, nvinfer1::DimensionOperation op, SymbolicDim const* lhs,
        SymbolicDim const* rhs);

    Kind mKind;
    int64_t mValue;
    std::string mSymbol;
    nvinfer1::DimensionOperation mOperation;
    SymbolicDim const* mLhs;
    SymbolicDim const* mRhs;
    Impl mImplementation;
};

//! Owns every expression it makes; operations on two constants fold to a constant, as in TensorRT.
class SymbolicExprBuilder final : public nvinfer1::IExprBuilder
{
public:
    SymbolicExprBuilder();
    ~SymbolicExprBuilder() noexcept override = default;

    SymbolicDim const* symbol(std::string const& name);
    SymbolicDim const* constantDim(int64_t value);
    //! NCHW dimensions, each a symbol (string starting with a letter) or a constant.
    nvinfer1::DimsExprs dims(std::vector<std::string> const& nchw);

    //! Count of operations requested by the plugin (constants excluded).
    int32_t operationCount() const noexcept
    {
        return mOperations;
    }

private:
    class Impl final : public nvinfer1::apiv::VExprBuilder
    {
    public:
        explicit Impl(SymbolicExprBuilder& owner)
            : mOwner(owner)
        {
        }
        nvinfer1::IDimensionExpr const* constant(int64_t value) override;
        nvinfer1::IDimensionExpr const* operation(nvinfer1::DimensionOperation op,
            nvinfer1::IDimensionExpr const& first, nvinfer1::IDimensionExpr const& second) override;
        nvinfer1::IDimensionExpr const* declareSizeTensor(
            int32_t outputIndex, nvinfer1::IDimensionExpr const& opt, nvinfer1::IDimensionExpr const& upper) override;

    private:
        SymbolicExprBuilder& mOwner;
    };

    SymbolicDim const* keep(std::unique_ptr<SymbolicDim> dim);

    std::vector<std::unique_ptr<SymbolicDim>> mDims;
    int32_t mOperations{0};
    Impl mImplementation;
};

struct LogEntry
{
    nvinfer1::ILogger::Severity severity;
    std::string message;
};

class CapturingLogger final : public nvinfer1::ILogger
{
public:
    void log(Severity severity, nvinfer1::AsciiChar const* msg) noexcept override;
    std::vector<LogEntry> take();
    //! True when an entry of at most `severity` contains every one of `parts`.
    bool contains(Severity severity, std::vector<std::string> const& parts) const;
    std::string dump() const;
    void clear();

private:
    mutable std::mutex mMutex;
    std::vector<LogEntry> mEntries;
};

class TestLoggerFinder final : public nvinfer1::ILoggerFinder
{
public:
    explicit TestLoggerFinder(nvinfer1::ILogger& logger)
        : mLogger(logger)
    {
    }
    ~TestLoggerFinder() override = default;
    nvinfer1::ILogger* findLogger() override
    {
        return &mLogger;
    }

private:
    nvinfer1::ILogger& mLogger;
};

class RecordingErrorRecorder final : public nvinfer1::IErrorRecorder
{
public:
    int32_t getNbErrors() const noexcept override;
    nvinfer1::ErrorCode getErrorCode(int32_t errorIdx) const noexcept override;
    ErrorDesc getErrorDesc(int32_t errorIdx) const noexcept override;
    bool hasOverflowed() const noexcept override
    {
        return false;
    }
    void clear() noexcept override;
    bool reportError(nvinfer1::ErrorCode val, ErrorDesc desc) noexcept override;
    RefCount incRefCount() noexcept override
    {
        return ++mRefCount;
    }
    RefCount decRefCount() noexcept override
    {
        return --mRefCount;
    }

private:
    std::vector<std::pair<nvinfer1::ErrorCode, std::string>> mErrors;
    RefCount mRefCount{0};
};

//! What attachToContext receives; TensorRT offers no public way to make one, so the test
//! subclasses the interface (compiled against the same headers as the plugins).
class TestResourceContext final : public nvinfer1::IPluginResourceContext
{
public:
    explicit TestResourceContext(nvinfer1::IErrorRecorder* recorder)
        : mRecorder(recorder)
    {
    }
    ~TestResourceContext() noexcept override = default;
    nvinfer1::IGpuAllocator* getGpuAllocator() const noexcept override
    {
        return nullptr;
    }
    nvinfer1::IErrorRecorder* getErrorRecorder() const noexcept override
    {
        return mRecorder;
    }

private:
    nvinfer1::IErrorRecorder* mRecorder;
};

//! The registry the harness exports as getPluginRegistry(), standing in for TensorRT's global one.
nvinfer1::IPluginRegistry& registry();
std::vector<std::string> registeredPlugins(); // "name/version/namespace" in registration order
CapturingLogger& globalLogger();              // what the exported getLogger() returns

} // namespace harness

#endif // DLU_TRT_TESTS_TENSORRT_DOUBLES_H
