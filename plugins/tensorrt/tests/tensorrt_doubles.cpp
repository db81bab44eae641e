#include "tensorrt_doubles.h"

#include "tensorrt_version.h"

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>

namespace harness
{

// ---------------------------------------------------------------------------------------------
// Symbolic dimension expressions

SymbolicDim::SymbolicDim(Kind kind, int64_t value, std::string symbol, nvinfer1::DimensionOperation op,
    SymbolicDim const* lhs, SymbolicDim const* rhs)
    : mKind(kind)
    , mValue(value)
    , mSymbol(std::move(symbol))
    , mOperation(op)
    , mLhs(lhs)
    , mRhs(rhs)
    , mImplementation(*this)
{
    mImpl = &mImplementation;
}

std::unique_ptr<SymbolicDim> SymbolicDim::constant(int64_t value)
{
    return std::unique_ptr<SymbolicDim>(
        new SymbolicDim(Kind::kConstant, value, "", nvinfer1::DimensionOperation::kSUM, nullptr, nullptr));
}

std::unique_ptr<SymbolicDim> SymbolicDim::symbol(std::string name)
{
    return std::unique_ptr<SymbolicDim>(
        new SymbolicDim(Kind::kSymbol, 0, std::move(name), nvinfer1::DimensionOperation::kSUM, nullptr, nullptr));
}

std::unique_ptr<SymbolicDim> SymbolicDim::operation(
    nvinfer1::DimensionOperation op, SymbolicDim const& lhs, SymbolicDim const& rhs)
{
    std::unique_ptr<SymbolicDim> result(new SymbolicDim(Kind::kOperation, 0, "", op, &lhs, &rhs));
    if (lhs.mKind == Kind::kConstant && rhs.mKind == Kind::kConstant)
    {
        return constant(result->evaluate({}));
    }
    return result;
}

namespace
{

int64_t floorDiv(int64_t a, int64_t b)
{
    if (b == 0)
    {
        throw std::domain_error("division by zero in a dimension expression");
    }
    int64_t quotient = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
    {
        --quotient;
    }
    return quotient;
}

char const* operatorText(nvinfer1::DimensionOperation op)
{
    switch (op)
    {
    case nvinfer1::DimensionOperation::kSUM: return "+";
    case nvinfer1::DimensionOperation::kPROD: return "*";
    case nvinfer1::DimensionOperation::kMAX: return " max ";
    case nvinfer1::DimensionOperation::kMIN: return " min ";
    case nvinfer1::DimensionOperation::kSUB: return "-";
    case nvinfer1::DimensionOperation::kEQUAL: return "==";
    case nvinfer1::DimensionOperation::kLESS: return "<";
    case nvinfer1::DimensionOperation::kFLOOR_DIV: return "//";
    case nvinfer1::DimensionOperation::kCEIL_DIV: return " ceildiv ";
    }
    return "?";
}

} // namespace

int64_t SymbolicDim::evaluate(Bindings const& bindings) const
{
    switch (mKind)
    {
    case Kind::kConstant: return mValue;
    case Kind::kSymbol: {
        auto const it = bindings.find(mSymbol);
        if (it == bindings.end())
        {
            throw std::out_of_range("no value for symbol " + mSymbol);
        }
        return it->second;
    }
    case Kind::kOperation: break;
    }
    int64_t const a = mLhs->evaluate(bindings);
    int64_t const b = mRhs->evaluate(bindings);
    switch (mOperation)
    {
    case nvinfer1::DimensionOperation::kSUM: return a + b;
    case nvinfer1::DimensionOperation::kPROD: return a * b;
    case nvinfer1::DimensionOperation::kMAX: return a > b ? a : b;
    case nvinfer1::DimensionOperation::kMIN: return a < b ? a : b;
    case nvinfer1::DimensionOperation::kSUB: return a - b;
    case nvinfer1::DimensionOperation::kEQUAL: return a == b ? 1 : 0;
    case nvinfer1::DimensionOperation::kLESS: return a < b ? 1 : 0;
    case nvinfer1::DimensionOperation::kFLOOR_DIV: return floorDiv(a, b);
    case nvinfer1::DimensionOperation::kCEIL_DIV: return -floorDiv(-a, b);
    }
    throw std::logic_error("unknown dimension operation");
}

std::string SymbolicDim::text() const
{
    switch (mKind)
    {
    case Kind::kConstant: return std::to_string(mValue);
    case Kind::kSymbol: return mSymbol;
    case Kind::kOperation: break;
    }
    return "(" + mLhs->text() + operatorText(mOperation) + mRhs->text() + ")";
}

bool SymbolicDim::Impl::isConstant() const
{
    return mOwner.mKind == Kind::kConstant;
}

int64_t SymbolicDim::Impl::getConstantValue() const
{
    // TensorRT returns a negative value for an expression that is not a build-time constant.
    return mOwner.mKind == Kind::kConstant ? mOwner.mValue : -1;
}

SymbolicExprBuilder::SymbolicExprBuilder()
    : mImplementation(*this)
{
    mImpl = &mImplementation;
}

SymbolicDim const* SymbolicExprBuilder::keep(std::unique_ptr<SymbolicDim> dim)
{
    mDims.push_back(std::move(dim));
    return mDims.back().get();
}

SymbolicDim const* SymbolicExprBuilder::symbol(std::string const& name)
{
    return keep(SymbolicDim::symbol(name));
}

SymbolicDim const* SymbolicExprBuilder::constantDim(int64_t value)
{
    return keep(SymbolicDim::constant(value));
}

nvinfer1::DimsExprs SymbolicExprBuilder::dims(std::vector<std::string> const& nchw)
{
    nvinfer1::DimsExprs result{};
    result.nbDims = static_cast<int32_t>(nchw.size());
    for (size_t i = 0; i < nchw.size(); ++i)
    {
        bool const isSymbol = !nchw[i].empty() && std::isalpha(static_cast<unsigned char>(nchw[i][0]));
        result.d[i] = isSymbol ? symbol(nchw[i]) : constantDim(std::stoll(nchw[i]));
    }
    return result;
}

nvinfer1::IDimensionExpr const* SymbolicExprBuilder::Impl::constant(int64_t value)
{
    return mOwner.constantDim(value);
}

nvinfer1::IDimensionExpr const* SymbolicExprBuilder::Impl::operation(
    nvinfer1::DimensionOperation op, nvinfer1::IDimensionExpr const& first, nvinfer1::IDimensionExpr const& second)
{
    // Every expression a plugin can hold came from this builder.
    ++mOwner.mOperations;
    return mOwner.keep(
        SymbolicDim::operation(op, static_cast<SymbolicDim const&>(first), static_cast<SymbolicDim const&>(second)));
}

nvinfer1::IDimensionExpr const* SymbolicExprBuilder::Impl::declareSizeTensor(
    int32_t /* outputIndex */, nvinfer1::IDimensionExpr const& /* opt */, nvinfer1::IDimensionExpr const& /* upper */)
{
    // None of the plugins has data-dependent output shapes.
    return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Logger and error recorder

void CapturingLogger::log(Severity severity, nvinfer1::AsciiChar const* msg) noexcept
{
    std::lock_guard<std::mutex> lock(mMutex);
    mEntries.push_back({severity, msg != nullptr ? msg : ""});
}

std::vector<LogEntry> CapturingLogger::take()
{
    std::lock_guard<std::mutex> lock(mMutex);
    std::vector<LogEntry> entries;
    entries.swap(mEntries);
    return entries;
}

bool CapturingLogger::contains(Severity severity, std::vector<std::string> const& parts) const
{
    std::lock_guard<std::mutex> lock(mMutex);
    for (LogEntry const& entry : mEntries)
    {
        if (entry.severity > severity)
        {
            continue;
        }
        bool all = true;
        for (std::string const& part : parts)
        {
            all = all && entry.message.find(part) != std::string::npos;
        }
        if (all)
        {
            return true;
        }
    }
    return false;
}

std::string CapturingLogger::dump() const
{
    std::lock_guard<std::mutex> lock(mMutex);
    std::ostringstream out;
    for (LogEntry const& entry : mEntries)
    {
        out << "    [" << static_cast<int32_t>(entry.severity) << "] " << entry.message << "\n";
    }
    return out.str();
}

void CapturingLogger::clear()
{
    std::lock_guard<std::mutex> lock(mMutex);
    mEntries.clear();
}

int32_t RecordingErrorRecorder::getNbErrors() const noexcept
{
    return static_cast<int32_t>(mErrors.size());
}

nvinfer1::ErrorCode RecordingErrorRecorder::getErrorCode(int32_t errorIdx) const noexcept
{
    return mErrors.at(static_cast<size_t>(errorIdx)).first;
}

nvinfer1::IErrorRecorder::ErrorDesc RecordingErrorRecorder::getErrorDesc(int32_t errorIdx) const noexcept
{
    return mErrors.at(static_cast<size_t>(errorIdx)).second.c_str();
}

void RecordingErrorRecorder::clear() noexcept
{
    mErrors.clear();
}

bool RecordingErrorRecorder::reportError(nvinfer1::ErrorCode val, ErrorDesc desc) noexcept
{
    mErrors.emplace_back(val, desc != nullptr ? desc : "");
    // false: TensorRT may go on (the recorder does not ask for the build to stop).
    return false;
}

// ---------------------------------------------------------------------------------------------
// Registry

class TestRegistry final : public nvinfer1::IPluginRegistry
{
public:
    ~TestRegistry() noexcept override = default;

    bool registerCreator(
        nvinfer1::IPluginCreatorInterface& creator, nvinfer1::AsciiChar const* const ns) noexcept override
    {
        std::lock_guard<std::mutex> lock(mMutex);
        std::string const key = keyOf(creator, ns);
        for (Entry const& entry : mEntries)
        {
            if (entry.key == key)
            {
                return false;
            }
        }
        mEntries.push_back({key, &creator});
        return true;
    }

    nvinfer1::IPluginCreatorInterface* const* getAllCreators(int32_t* const numCreators) const noexcept override
    {
        std::lock_guard<std::mutex> lock(mMutex);
        mList.clear();
        for (Entry const& entry : mEntries)
        {
            mList.push_back(entry.creator);
        }
        *numCreators = static_cast<int32_t>(mList.size());
        return mList.empty() ? nullptr : mList.data();
    }

    nvinfer1::IPluginCreatorInterface* getCreator(nvinfer1::AsciiChar const* const pluginName,
        nvinfer1::AsciiChar const* const pluginVersion, nvinfer1::AsciiChar const* const ns) noexcept override
    {
        std::lock_guard<std::mutex> lock(mMutex);
        std::string const key = std::string(pluginName) + "/" + pluginVersion + "/" + (ns != nullptr ? ns : "");
        for (Entry const& entry : mEntries)
        {
            if (entry.key == key)
            {
                return entry.creator;
            }
        }
        return nullptr;
    }

    bool deregisterCreator(nvinfer1::IPluginCreatorInterface const& creator) noexcept override
    {
        std::lock_guard<std::mutex> lock(mMutex);
        for (auto it = mEntries.begin(); it != mEntries.end(); ++it)
        {
            if (it->creator == &creator)
            {
                mEntries.erase(it);
                return true;
            }
        }
        return false;
    }

    std::vector<std::string> keys() const
    {
        std::lock_guard<std::mutex> lock(mMutex);
        std::vector<std::string> result;
        for (Entry const& entry : mEntries)
        {
            result.push_back(entry.key);
        }
        return result;
    }

    // Not used by the plugin library; present because the interface requires them.
    void setErrorRecorder(nvinfer1::IErrorRecorder* const /* recorder */) noexcept override {}
    nvinfer1::IErrorRecorder* getErrorRecorder() const noexcept override
    {
        return nullptr;
    }
    bool isParentSearchEnabled() const override
    {
        return false;
    }
    void setParentSearchEnabled(bool const /* enabled */) override {}
    PluginLibraryHandle loadLibrary(nvinfer1::AsciiChar const* /* pluginPath */) noexcept override
    {
        return nullptr;
    }
    void deregisterLibrary(PluginLibraryHandle /* handle */) noexcept override {}
    nvinfer1::IPluginResource* acquirePluginResource(
        nvinfer1::AsciiChar const* /* key */, nvinfer1::IPluginResource* /* resource */) noexcept override
    {
        return nullptr;
    }
    int32_t releasePluginResource(nvinfer1::AsciiChar const* /* key */) noexcept override
    {
        return -1;
    }
#if DLU_TRT_AT_LEAST(10, 10)
    nvinfer1::IPluginCreatorInterface* const* getAllCreatorsRecursive(int32_t* const numCreators) noexcept override
    {
        return getAllCreators(numCreators);
    }
#endif

#if NV_TENSORRT_MAJOR < 11
    // TensorRT 10 still declares the IPluginV2 registry methods (pure virtual, deprecated).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    bool registerCreator(
        nvinfer1::IPluginCreator& /* creator */, nvinfer1::AsciiChar const* const /* ns */) noexcept override
    {
        return false;
    }
    nvinfer1::IPluginCreator* const* getPluginCreatorList(int32_t* const numCreators) const noexcept override
    {
        *numCreators = 0;
        return nullptr;
    }
    nvinfer1::IPluginCreator* getPluginCreator(nvinfer1::AsciiChar const* const /* pluginName */,
        nvinfer1::AsciiChar const* const /* pluginVersion */,
        nvinfer1::AsciiChar const* const /* ns */) noexcept override
    {
        return nullptr;
    }
    bool deregisterCreator(nvinfer1::IPluginCreator const& /* creator */) noexcept override
    {
        return false;
    }
#pragma GCC diagnostic pop
#endif

private:
    struct Entry
    {
        std::string key;
        nvinfer1::IPluginCreatorInterface* creator;
    };

    static std::string keyOf(nvinfer1::IPluginCreatorInterface& creator, char const* ns)
    {
        auto& v3 = static_cast<nvinfer1::IPluginCreatorV3One&>(creator);
        return std::string(v3.getPluginName()) + "/" + v3.getPluginVersion() + "/" + (ns != nullptr ? ns : "");
    }

    mutable std::mutex mMutex;
    std::vector<Entry> mEntries;
    mutable std::vector<nvinfer1::IPluginCreatorInterface*> mList;
};

namespace
{

TestRegistry& testRegistry()
{
    static TestRegistry instance;
    return instance;
}

} // namespace

nvinfer1::IPluginRegistry& registry()
{
    return testRegistry();
}

std::vector<std::string> registeredPlugins()
{
    return testRegistry().keys();
}

CapturingLogger& globalLogger()
{
    static CapturingLogger logger;
    return logger;
}

} // namespace harness

// TensorRT's C entry points, exported by the harness executable (--export-dynamic-symbol) so the
// plugin library finds them in the global scope exactly as it finds libnvinfer's in trtexec.
extern "C" nvinfer1::IPluginRegistry* getPluginRegistry() noexcept
{
    return &harness::registry();
}

extern "C" nvinfer1::ILogger* getLogger() noexcept
{
    return &harness::globalLogger();
}

//! NV_TENSORRT_MAJOR, or DLU_TEST_TENSORRT_MAJOR to play a runtime of another major version.
extern "C" int32_t getInferLibMajorVersion() noexcept
{
    char const* major = std::getenv("DLU_TEST_TENSORRT_MAJOR");
    return major != nullptr ? std::atoi(major) : NV_TENSORRT_MAJOR;
}
