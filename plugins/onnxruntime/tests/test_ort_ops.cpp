/*
 * libdlu_ort_ops inside a real ONNX Runtime: the libonnxruntime.so of the onnxruntime wheel,
 * loaded with dlopen and driven through its C API (OrtGetApiBase), registers the library with
 * RegisterCustomOpsLibrary_V2 and runs plugin-mode .onnx files this test writes itself
 * (onnx_writer.h). Every output is compared with the CPU kernels called directly (bit for bit:
 * same kernels, any split over the intra-op threads gives the same values), in float32 and
 * float16, at two shapes of one dynamic-shape model, with 1 and 2 intra-op threads; then the
 * errors: bad attributes, mixed dtypes, shapes that do not match the attributes.
 *
 *   test_ort_ops <libonnxruntime.so.N> <libdlu_ort_ops.so> <scratch dir>
 */
#include "dlu_common.h"
#include "dlu_kernels.h"
#include "onnx_writer.h"
#include "onnxruntime_c_api.h"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace
{

using onnx_writer::Dim;
using onnx_writer::floatAttribute;
using onnx_writer::intAttribute;
using onnx_writer::Model;
using onnx_writer::Node;
using onnx_writer::stringAttribute;
using onnx_writer::Value;

int gFailures = 0;

void expect(bool ok, std::string const& what)
{
    if (!ok)
    {
        ++gFailures;
        std::fprintf(stderr, "FAIL: %s\n", what.c_str());
    }
}

bool contains(std::string const& text, std::string const& needle)
{
    return text.find(needle) != std::string::npos;
}

//! A float tensor (float16 tensors hold values already rounded to half).
struct Tensor
{
    std::vector<int64_t> shape;
    std::vector<float> values;
};

int64_t count(std::vector<int64_t> const& shape)
{
    int64_t n = 1;
    for (int64_t d : shape)
    {
        n *= d;
    }
    return n;
}

std::vector<dlu_kernels::Half> toHalf(std::vector<float> const& values)
{
    std::vector<dlu_kernels::Half> out(values.size());
    for (size_t i = 0; i < values.size(); ++i)
    {
        out[i] = dlu_kernels::float_to_half(values[i]);
    }
    return out;
}

std::vector<float> toFloat(std::vector<dlu_kernels::Half> const& values)
{
    std::vector<float> out(values.size());
    for (size_t i = 0; i < values.size(); ++i)
    {
        out[i] = dlu_kernels::half_to_float(values[i]);
    }
    return out;
}

Tensor random(std::vector<int64_t> shape, std::mt19937& rng, float scale, bool fp16)
{
    std::normal_distribution<float> normal(0.0F, scale);
    Tensor t{std::move(shape), {}};
    t.values.resize(static_cast<size_t>(count(t.shape)));
    for (float& v : t.values)
    {
        v = normal(rng);
    }
    if (fp16)
    {
        t.values = toFloat(toHalf(t.values));
    }
    return t;
}

class Runtime
{
public:
    Runtime(std::string const& library, std::string const& ops)
        : mOps(ops)
    {
        mHandle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (mHandle == nullptr)
        {
            std::fprintf(stderr, "cannot load %s: %s\n", library.c_str(), dlerror());
            return;
        }
        using GetApiBase = OrtApiBase const* (*) ();
        auto getBase = reinterpret_cast<GetApiBase>(dlsym(mHandle, "OrtGetApiBase"));
        if (getBase == nullptr)
        {
            std::fprintf(stderr, "%s has no OrtGetApiBase\n", library.c_str());
            return;
        }
        mBase = getBase();
        mApi = mBase->GetApi(16);
        if (mApi == nullptr || !ok(mApi->CreateEnv(ORT_LOGGING_LEVEL_FATAL, "test_ort_ops", &mEnv)))
        {
            mApi = nullptr;
            return;
        }
        std::printf("ONNX Runtime %s\n", mBase->GetVersionString());
    }

    bool usable() const
    {
        return mApi != nullptr;
    }

    //! A session of `model` with the library registered; "" or the error message in `error`.
    OrtSession* session(std::string const& model, int threads, std::string& error)
    {
        OrtSessionOptions* options = nullptr;
        OrtSession* session = nullptr;
        error.clear();
        if (ok(mApi->CreateSessionOptions(&options), &error) && ok(mApi->SetIntraOpNumThreads(options, threads), &error)
            && ok(mApi->RegisterCustomOpsLibrary_V2(options, mOps.c_str()), &error))
        {
            ok(mApi->CreateSession(mEnv, model.c_str(), options, &session), &error);
        }
        if (options != nullptr)
        {
            mApi->ReleaseSessionOptions(options);
        }
        return session;
    }

    //! Runs `session`; the outputs as floats, or the error message in `error`.
    std::vector<Tensor> run(OrtSession* session, std::map<std::string, Tensor> const& feeds,
        std::map<std::string, bool> const& fp16, std::vector<std::string> const& outputs, std::string& error)
    {
        OrtMemoryInfo* memory = nullptr;
        ok(mApi->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &memory));
        std::vector<std::vector<char>> storage;
        std::vector<OrtValue*> inputs;
        std::vector<char const*> inputNames;
        for (auto const& [name, tensor] : feeds)
        {
            bool const half = fp16.at(name);
            std::vector<char> bytes;
            if (half)
            {
                std::vector<dlu_kernels::Half> h = toHalf(tensor.values);
                bytes.resize(h.size() * 2);
                std::memcpy(bytes.data(), h.data(), bytes.size());
            }
            else
            {
                bytes.resize(tensor.values.size() * 4);
                std::memcpy(bytes.data(), tensor.values.data(), bytes.size());
            }
            storage.push_back(std::move(bytes));
            OrtValue* value = nullptr;
            ok(mApi->CreateTensorWithDataAsOrtValue(memory, storage.back().data(), storage.back().size(),
                tensor.shape.data(), tensor.shape.size(),
                half ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &value));
            inputs.push_back(value);
            inputNames.push_back(name.c_str());
        }
        std::vector<char const*> outputNames;
        for (std::string const& name : outputs)
        {
            outputNames.push_back(name.c_str());
        }
        std::vector<OrtValue*> results(outputs.size(), nullptr);
        std::vector<Tensor> tensors;
        error.clear();
        if (ok(mApi->Run(session, nullptr, inputNames.data(), inputs.data(), inputs.size(), outputNames.data(),
                   outputNames.size(), results.data()),
                &error))
        {
            for (OrtValue* value : results)
            {
                tensors.push_back(read(value));
            }
        }
        for (OrtValue* value : results)
        {
            if (value != nullptr)
            {
                mApi->ReleaseValue(value);
            }
        }
        for (OrtValue* value : inputs)
        {
            mApi->ReleaseValue(value);
        }
        mApi->ReleaseMemoryInfo(memory);
        return tensors;
    }

    void release(OrtSession* session)
    {
        if (session != nullptr)
        {
            mApi->ReleaseSession(session);
        }
    }

private:
    bool ok(OrtStatus* status, std::string* error = nullptr)
    {
        if (status == nullptr)
        {
            return true;
        }
        std::string const message = mApi->GetErrorMessage(status);
        mApi->ReleaseStatus(status);
        if (error != nullptr)
        {
            *error = message;
        }
        else
        {
            expect(false, "ONNX Runtime call failed: " + message);
        }
        return false;
    }

    Tensor read(OrtValue* value)
    {
        OrtTensorTypeAndShapeInfo* info = nullptr;
        ok(mApi->GetTensorTypeAndShape(value, &info));
        size_t rank = 0;
        ok(mApi->GetDimensionsCount(info, &rank));
        Tensor t;
        t.shape.resize(rank);
        ok(mApi->GetDimensions(info, t.shape.data(), rank));
        ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
        ok(mApi->GetTensorElementType(info, &type));
        mApi->ReleaseTensorTypeAndShapeInfo(info);
        void* data = nullptr;
        ok(mApi->GetTensorMutableData(value, &data));
        size_t const n = static_cast<size_t>(count(t.shape));
        if (type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16)
        {
            std::vector<dlu_kernels::Half> h(n);
            std::memcpy(h.data(), data, n * 2);
            t.values = toFloat(h);
        }
        else
        {
            t.values.assign(static_cast<float const*>(data), static_cast<float const*>(data) + n);
        }
        return t;
    }

    std::string mOps;
    void* mHandle = nullptr;
    OrtApiBase const* mBase = nullptr;
    OrtApi const* mApi = nullptr;
    OrtEnv* mEnv = nullptr;
};

// ---- the plugin-mode model ---------------------------------------------------------------------

// DLU k=3 G=2 s=2; CARAFE k=5 G=1 s=2; MMCVCARAFE k=3 group_size=2 scale_factor=2.0;
// DDF k=3 dilation=2 stride=2 add; a standard Relu after the DLU. Dynamic N, H, W.
constexpr int64_t kChannels = 128;

Value input(std::string name, int32_t type, int64_t channels, std::string h, std::string w)
{
    return Value{std::move(name), type, {Dim{0, "n"}, Dim{channels, ""}, Dim{0, std::move(h)}, Dim{0, std::move(w)}}};
}

Model pluginModel(int32_t type)
{
    std::vector<onnx_writer::Attribute> const version{stringAttribute("plugin_version", "1")};
    Model m;
    m.nodes = {
        Node{"DLU", "dlu_deploy", "up/DLU", {"x", "kernels", "offsets"}, {"y_dlu"},
            {intAttribute("kernel_size", 3), intAttribute("group", 2), intAttribute("scale", 2), version[0]}},
        Node{"Relu", "", "relu", {"y_dlu"}, {"y_relu"}, {}},
        Node{"CARAFE", "dlu_deploy", "up/CARAFE", {"x", "masks5"}, {"y_carafe"},
            {intAttribute("kernel_size", 5), intAttribute("group", 1), intAttribute("scale", 2), version[0]}},
        Node{"MMCVCARAFE", "mmcv", "up/MMCVCARAFE", {"x", "masks3"}, {"y_mmcv"},
            {intAttribute("kernel_size", 3), intAttribute("group_size", 2), floatAttribute("scale_factor", 2.0F)}},
        Node{"DDF", "dlu_deploy", "down/DDF", {"x", "channel_filter", "spatial_filter"}, {"y_ddf"},
            {intAttribute("kernel_size", 3), intAttribute("dilation", 2), intAttribute("stride", 2),
                intAttribute("combine", 1), version[0]}},
    };
    m.inputs = {input("x", type, kChannels, "h", "w"), input("kernels", type, 2 * 9, "h", "w"),
        input("offsets", type, 2 * 2 * 4, "h", "w"), input("masks5", type, 25, "h2", "w2"),
        input("masks3", type, 2 * 9, "h2", "w2"),
        Value{"channel_filter", type, {Dim{0, "n"}, Dim{kChannels, ""}, Dim{3, ""}, Dim{3, ""}}},
        input("spatial_filter", type, 9, "hs", "ws")};
    for (char const* name : {"y_relu", "y_carafe", "y_mmcv", "y_ddf"})
    {
        m.outputs.push_back(Value{name, type, {}});
    }
    m.opsets = {{"", 17}, {"dlu_deploy", 1}, {"mmcv", 1}};
    return m;
}

struct Case
{
    int64_t n, h, w;
};

std::map<std::string, Tensor> feeds(Case const& c, std::mt19937& rng, bool fp16)
{
    int64_t const n = c.n, h = c.h, w = c.w;
    return {
        {"x", random({n, kChannels, h, w}, rng, 1.0F, fp16)},
        {"kernels", random({n, 18, h, w}, rng, 0.3F, fp16)},
        {"offsets", random({n, 16, h, w}, rng, 1.5F, fp16)},
        {"masks5", random({n, 25, 2 * h, 2 * w}, rng, 0.2F, fp16)},
        {"masks3", random({n, 18, 2 * h, 2 * w}, rng, 0.3F, fp16)},
        {"channel_filter", random({n, kChannels, 3, 3}, rng, 0.3F, fp16)},
        {"spatial_filter", random({n, 9, h / 2, w / 2}, rng, 0.3F, fp16)},
    };
}

//! Runs `kernel` on host buffers of `dtype` built from the feeds; returns the output as floats.
std::vector<float> direct(bool fp16, std::vector<Tensor const*> const& inputs, int64_t outCount,
    std::function<DluStatus(DluDType, std::vector<void const*> const&, void*)> const& kernel)
{
    std::vector<std::vector<dlu_kernels::Half>> halves;
    std::vector<void const*> pointers;
    for (Tensor const* t : inputs)
    {
        if (fp16)
        {
            halves.push_back(toHalf(t->values));
            pointers.push_back(halves.back().data());
        }
        else
        {
            pointers.push_back(t->values.data());
        }
    }
    if (fp16)
    {
        std::vector<dlu_kernels::Half> out(static_cast<size_t>(outCount));
        expect(kernel(DLU_DTYPE_FLOAT16, pointers, out.data()) == DLU_STATUS_OK, dlu_kernels_last_error());
        return toFloat(out);
    }
    std::vector<float> out(static_cast<size_t>(outCount));
    expect(kernel(DLU_DTYPE_FLOAT32, pointers, out.data()) == DLU_STATUS_OK, dlu_kernels_last_error());
    return out;
}

void compare(std::string const& what, Tensor const& got, std::vector<int64_t> const& shape, std::vector<float> const& want)
{
    expect(got.shape == shape, what + ": output shape differs");
    if (got.values.size() != want.size())
    {
        expect(false, what + ": output size differs");
        return;
    }
    size_t mismatches = 0;
    for (size_t i = 0; i < want.size(); ++i)
    {
        mismatches += got.values[i] != want[i] ? 1 : 0;
    }
    expect(mismatches == 0, what + ": " + std::to_string(mismatches) + " of " + std::to_string(want.size())
            + " values differ from the CPU kernels");
}

void testPluginModel(Runtime& ort, std::string const& dir, bool fp16)
{
    std::string const label = fp16 ? "float16" : "float32";
    std::string const path = dir + "/plugin_" + label + ".onnx";
    expect(onnx_writer::save(pluginModel(fp16 ? onnx_writer::kFloat16 : onnx_writer::kFloat), path), "writing " + path);
    std::mt19937 rng(fp16 ? 7 : 3);
    for (int threads : {1, 2})
    {
        std::string error;
        OrtSession* session = ort.session(path, threads, error);
        expect(session != nullptr, label + " session: " + error);
        if (session == nullptr)
        {
            return;
        }
        for (Case const c : {Case{1, 6, 7}, Case{2, 5, 9}})
        {
            std::string const what = label + " " + std::to_string(threads) + " threads, n=" + std::to_string(c.n)
                + " h=" + std::to_string(c.h) + " w=" + std::to_string(c.w);
            std::map<std::string, Tensor> const in = feeds(c, rng, fp16);
            std::map<std::string, bool> halfs;
            for (auto const& item : in)
            {
                halfs[item.first] = fp16;
            }
            std::vector<Tensor> out = ort.run(session, in, halfs, {"y_relu", "y_carafe", "y_mmcv", "y_ddf"}, error);
            expect(out.size() == 4, what + ": run failed: " + error);
            if (out.size() != 4)
            {
                continue;
            }
            int64_t const n = c.n, h = c.h, w = c.w;
            std::vector<int64_t> const up{n, kChannels, 2 * h, 2 * w};
            std::vector<int64_t> const down{n, kChannels, h / 2, w / 2};
            std::vector<float> dlu = direct(fp16, {&in.at("x"), &in.at("kernels"), &in.at("offsets")}, count(up),
                [&](DluDType t, std::vector<void const*> const& p, void* o) {
                    DluParams const params{n, kChannels, h, w, 3, 2, 2};
                    return dlu_kernels_dlu_forward_cpu(t, &params, p[0], p[1], p[2], o, 1);
                });
            for (float& v : dlu)
            {
                v = v > 0.0F ? v : 0.0F; // the Relu after it (exact in either dtype)
            }
            compare(what + " DLU+Relu", out[0], up, dlu);
            compare(what + " CARAFE", out[1], up,
                direct(fp16, {&in.at("x"), &in.at("masks5")}, count(up),
                    [&](DluDType t, std::vector<void const*> const& p, void* o) {
                        CarafeParams const params{n, kChannels, h, w, 5, 1, 2};
                        return dlu_kernels_carafe_forward_cpu(t, &params, p[0], p[1], o, 1);
                    }));
            compare(what + " MMCVCARAFE", out[2], up,
                direct(fp16, {&in.at("x"), &in.at("masks3")}, count(up),
                    [&](DluDType t, std::vector<void const*> const& p, void* o) {
                        CarafeParams const params{n, kChannels, h, w, 3, 2, 2};
                        return dlu_kernels_carafe_forward_cpu(t, &params, p[0], p[1], o, 1);
                    }));
            compare(what + " DDF", out[3], down,
                direct(fp16, {&in.at("x"), &in.at("channel_filter"), &in.at("spatial_filter")}, count(down),
                    [&](DluDType t, std::vector<void const*> const& p, void* o) {
                        DdfParams const params{n, kChannels, h, w, 3, 2, 2, 1};
                        return dlu_kernels_ddf_forward_cpu(t, &params, p[0], p[1], p[2], o, 1);
                    }));
        }
        ort.release(session);
    }
}

// ---- errors ------------------------------------------------------------------------------------

Model singleDlu(std::vector<onnx_writer::Attribute> attributes, int32_t kernelsType = onnx_writer::kFloat)
{
    Model m;
    m.nodes = {Node{"DLU", "dlu_deploy", "bad/DLU", {"x", "kernels", "offsets"}, {"y"}, std::move(attributes)}};
    m.inputs = {input("x", onnx_writer::kFloat, 4, "h", "w"), Value{"kernels", kernelsType, {Dim{0, "n"}, Dim{0, "taps"}, Dim{0, "h"}, Dim{0, "w"}}},
        input("offsets", onnx_writer::kFloat, 8, "h", "w")};
    m.outputs = {Value{"y", onnx_writer::kFloat, {}}};
    m.opsets = {{"", 17}, {"dlu_deploy", 1}};
    return m;
}

void expectSessionError(Runtime& ort, std::string const& dir, std::string const& name, Model const& model,
    std::vector<std::string> const& needles)
{
    std::string const path = dir + "/" + name + ".onnx";
    expect(onnx_writer::save(model, path), "writing " + path);
    std::string error;
    OrtSession* session = ort.session(path, 1, error);
    expect(session == nullptr, name + ": the session was created");
    ort.release(session);
    for (std::string const& needle : needles)
    {
        expect(contains(error, needle), name + ": message '" + error + "' lacks '" + needle + "'");
    }
}

void testErrors(Runtime& ort, std::string const& dir)
{
    auto const k = [](int64_t v) { return intAttribute("kernel_size", v); };
    auto const g = intAttribute("group", 1);
    auto const s = intAttribute("scale", 2);
    expectSessionError(ort, dir, "kernel_size_4", singleDlu({k(4), g, s}),
        {"dlu_deploy::DLU node \"bad/DLU\"", "kernel_size = 4 is invalid", "an odd integer in [1, 15]"});
    expectSessionError(ort, dir, "no_scale", singleDlu({k(3), g}), {"required attribute scale is missing"});
    expectSessionError(ort, dir, "scale_9", singleDlu({k(3), g, intAttribute("scale", 9)}), {"scale = 9 is invalid"});
    expectSessionError(ort, dir, "float_group", singleDlu({k(3), floatAttribute("group", 1.0F), s}),
        {"attribute group is FLOAT, expected INT"});
    expectSessionError(ort, dir, "plugin_version_2", singleDlu({k(3), g, s, stringAttribute("plugin_version", "2")}),
        {"plugin_version = \"2\" is not supported"});
    expectSessionError(ort, dir, "mixed_dtypes", singleDlu({k(3), g, s}, onnx_writer::kFloat16),
        {"input kernels is float16 but x is float32", "same dtype"});

    Model mmcv;
    mmcv.nodes = {Node{"MMCVCARAFE", "mmcv", "m", {"features", "masks"}, {"y"},
        {intAttribute("kernel_size", 3), intAttribute("group_size", 1), floatAttribute("scale_factor", 2.5F)}}};
    mmcv.inputs = {input("features", onnx_writer::kFloat, 4, "h", "w"), input("masks", onnx_writer::kFloat, 9, "H", "W")};
    mmcv.outputs = {Value{"y", onnx_writer::kFloat, {}}};
    mmcv.opsets = {{"", 17}, {"mmcv", 1}};
    expectSessionError(ort, dir, "scale_factor_2_5", mmcv, {"mmcv::MMCVCARAFE node \"m\"", "scale_factor = 2.5 is invalid"});

    Model ddf;
    ddf.nodes = {Node{"DDF", "dlu_deploy", "d", {"x", "cf", "sf"}, {"y"}, {intAttribute("combine", 3)}}};
    ddf.inputs = {input("x", onnx_writer::kFloat, 4, "h", "w"), input("cf", onnx_writer::kFloat, 4, "k", "k"),
        input("sf", onnx_writer::kFloat, 9, "h", "w")};
    ddf.outputs = {Value{"y", onnx_writer::kFloat, {}}};
    ddf.opsets = {{"", 17}, {"dlu_deploy", 1}};
    expectSessionError(ort, dir, "combine_3", ddf, {"combine = 3 is invalid", "0 (mul) or 1 (add)"});

    // Run-time errors: shapes that do not match the attributes; an empty batch is fine.
    std::string const path = dir + "/dlu_k3.onnx";
    expect(onnx_writer::save(singleDlu({k(3), g, s}), path), "writing " + path);
    std::string error;
    OrtSession* session = ort.session(path, 1, error);
    expect(session != nullptr, "dlu_k3 session: " + error);
    if (session == nullptr)
    {
        return;
    }
    std::mt19937 rng(11);
    std::map<std::string, bool> const fp32{{"x", false}, {"kernels", false}, {"offsets", false}};
    auto const run = [&](int64_t n, int64_t c, int64_t kernelsChannels, std::vector<Tensor>& out) {
        std::map<std::string, Tensor> const in{{"x", random({n, c, 3, 4}, rng, 1.0F, false)},
            {"kernels", random({n, kernelsChannels, 3, 4}, rng, 1.0F, false)},
            {"offsets", random({n, 8, 3, 4}, rng, 1.0F, false)}};
        out = ort.run(session, in, fp32, {"y"}, error);
        return error;
    };
    std::vector<Tensor> out;
    std::string message = run(1, 4, 10, out);
    expect(contains(message, "dlu_deploy::DLU node \"bad/DLU\": input kernels has shape [1, 10, 3, 4], expected [1, 9, 3, 4]"),
        "kernels shape: message '" + message + "'");
    message = run(1, 4, 9, out);
    expect(message.empty() && out.size() == 1 && out[0].shape == std::vector<int64_t>{1, 4, 6, 8},
        "the session runs again after an error: '" + message + "'");
    message = run(0, 4, 9, out);
    expect(message.empty() && out.size() == 1 && out[0].shape == std::vector<int64_t>{0, 4, 6, 8},
        "an empty batch gives an empty output: '" + message + "'");
    ort.release(session);
}

} // namespace

int main(int argc, char** argv)
{
    if (argc != 4)
    {
        std::fprintf(stderr, "usage: %s <libonnxruntime.so> <libdlu_ort_ops.so> <scratch dir>\n", argv[0]);
        return 2;
    }
    Runtime ort(argv[1], argv[2]);
    if (!ort.usable())
    {
        std::fprintf(stderr, "FAIL: ONNX Runtime could not be loaded from %s\n", argv[1]);
        return 1;
    }
    testPluginModel(ort, argv[3], false);
    testPluginModel(ort, argv[3], true);
    testErrors(ort, argv[3]);
    if (gFailures != 0)
    {
        std::fprintf(stderr, "%d check(s) failed\n", gFailures);
        return 1;
    }
    std::printf("all ONNX Runtime custom-op checks passed\n");
    return 0;
}
