/*
 * The library's entry point: one registration table of every op, its domain, execution
 * providers and dtypes.
 *
 * The OrtCustomOp and OrtCustomOpDomain objects must outlive every session that uses them, and
 * an application may register the library on any number of session options. So they are made
 * once per ONNX Runtime API table (one per runtime library in the process) and kept for the life
 * of the process: nothing to release at exit, when the runtime may already be gone.
 */
#include "dlu_ort_ops.h"

#include "carafe_op.h"
#include "custom_op.h"
#include "ddf_op.h"
#include "dlu_op.h"
#include "mmcv_carafe_op.h"
#include "ort_api.h"

#include "dlu_kernels.h"

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#ifndef DLU_ORT_OPS_LIBRARY_VERSION
#error "DLU_ORT_OPS_LIBRARY_VERSION must be defined by the build"
#endif

namespace dlu_ort
{
namespace
{

constexpr ONNXTensorElementDataType kDtypes[] = {ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16};

class Registration
{
public:
    Registration(OrtApi const& api, OrtApi const* parallelApi)
        : mApi(api)
    {
        std::vector<Device> devices{Device::kCpu};
        if (dlu_kernels_has_cuda() != 0)
        {
            devices.push_back(Device::kCuda);
        }
        OrtCustomOpDomain* dluDeploy = domain(DluOp::kDomain);
        OrtCustomOpDomain* mmcv = domain(MmcvCarafeOp::kDomain);
        for (Device const device : devices)
        {
            for (ONNXTensorElementDataType const dtype : kDtypes)
            {
                add<DluOp>(dluDeploy, device, dtype, parallelApi);
                add<CarafeOp>(dluDeploy, device, dtype, parallelApi);
                add<DdfOp>(dluDeploy, device, dtype, parallelApi);
                add<MmcvCarafeOp>(mmcv, device, dtype, parallelApi);
            }
        }
    }

    void addTo(OrtSessionOptions* options) const
    {
        for (OrtCustomOpDomain* domain : mDomains)
        {
            throwIfError(mApi, mApi.AddCustomOpDomain(options, domain), "libdlu_ort_ops: adding its op domains");
        }
    }

private:
    OrtCustomOpDomain* domain(char const* name)
    {
        OrtCustomOpDomain* created = nullptr;
        throwIfError(mApi, mApi.CreateCustomOpDomain(name, &created),
            std::string("libdlu_ort_ops: creating the domain ") + name);
        mDomains.push_back(created);
        return created;
    }

    template <class Op>
    void add(OrtCustomOpDomain* domain, Device device, ONNXTensorElementDataType dtype, OrtApi const* parallelApi)
    {
        auto op = std::make_unique<CustomOp<Op>>(device, dtype, parallelApi);
        throwIfError(mApi, mApi.CustomOpDomain_Add(domain, op.get()),
            std::string("libdlu_ort_ops: registering ") + Op::kDomain + "::" + Op::kType);
        mOps.push_back(std::move(op));
    }

    OrtApi const& mApi;
    std::vector<OrtCustomOpDomain*> mDomains;
    std::vector<std::shared_ptr<void>> mOps;
};

Registration& registrationFor(OrtApiBase const* base, OrtApi const& api)
{
    static std::mutex mutex;
    static auto* registrations = new std::map<OrtApiBase const*, std::unique_ptr<Registration>>(); // never freed
    std::lock_guard<std::mutex> lock(mutex);
    std::unique_ptr<Registration>& entry = (*registrations)[base];
    if (!entry)
    {
        entry = std::make_unique<Registration>(api, base->GetApi(kParallelForApiVersion));
    }
    return *entry;
}

} // namespace
} // namespace dlu_ort

extern "C" {

OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options, OrtApiBase const* base)
{
    using namespace dlu_ort;
    if (base == nullptr)
    {
        return nullptr; // no runtime to report to (ONNX Runtime always passes its API base)
    }
    OrtApi const* api = base->GetApi(kRequiredApiVersion);
    if (api == nullptr)
    {
        // Every runtime has API version 1, enough to say why.
        OrtApi const* oldest = base->GetApi(1);
        std::string const message = std::string("libdlu_ort_ops needs ONNX Runtime ") + kOldestOnnxRuntime
            + " or newer (API version " + std::to_string(kRequiredApiVersion) + "); this is ONNX Runtime "
            + base->GetVersionString() + ". Upgrade onnxruntime.";
        return oldest != nullptr ? oldest->CreateStatus(ORT_FAIL, message.c_str()) : nullptr;
    }
    return guarded(*api, [&] { registrationFor(base, *api).addTo(options); });
}

const char* dlu_ort_ops_version(void)
{
    return DLU_ORT_OPS_LIBRARY_VERSION;
}

} // extern "C"
