// The C ABI (dlu_kernels.h): validation first, then dispatch on dtype to the CPU or CUDA
// implementation. No C++ exception crosses this boundary.
#include <exception>
#include <initializer_list>
#include <new>
#include <string>
#include <utility>

#include "cpu_kernels.h"
#include "dlu_kernels.h"
#include "internal.h"

#ifndef DLU_KERNELS_VERSION_STRING
#error "DLU_KERNELS_VERSION_STRING must be defined by the build"
#endif

namespace dlu_kernels {
namespace {

thread_local std::string g_last_error;

DluStatus check_dtype(const char* op, DluDType dtype)
{
    if (dtype != DLU_DTYPE_FLOAT32 && dtype != DLU_DTYPE_FLOAT16) {
        set_last_error(std::string(op) + ": dtype=" + std::to_string(static_cast<int>(dtype)) +
                       " is not known: use DLU_DTYPE_FLOAT32 (0) or DLU_DTYPE_FLOAT16 (1)");
        return DLU_STATUS_INVALID_ARGUMENT;
    }
    return DLU_STATUS_OK;
}

DluStatus check_pointers(const char* op, std::initializer_list<std::pair<const char*, const void*>> pointers)
{
    for (const auto& named : pointers) {
        if (named.second == nullptr) {
            set_last_error(std::string(op) + ": " + named.first + " is NULL: pass the tensor's data pointer");
            return DLU_STATUS_INVALID_ARGUMENT;
        }
    }
    return DLU_STATUS_OK;
}

/* Runs a CPU kernel, turning allocation or thread failures into a status. */
template <class F>
DluStatus run_cpu(const char* op, F&& kernel)
{
    try {
        kernel();
    } catch (const std::bad_alloc&) {
        set_last_error(std::string(op) + ": out of host memory for the kernel's scratch buffers");
        return DLU_STATUS_INTERNAL_ERROR;
    } catch (const std::exception& e) {
        set_last_error(std::string(op) + ": " + e.what());
        return DLU_STATUS_INTERNAL_ERROR;
    }
    clear_last_error();
    return DLU_STATUS_OK;
}

#if !defined(DLU_KERNELS_WITH_CUDA)
DluStatus not_compiled(const char* op)
{
    set_last_error(std::string(op) +
                   ": this libdlu_kernels was built without CUDA: rebuild with a CUDA toolkit installed "
                   "(cmake finds nvcc) to run on the GPU");
    return DLU_STATUS_NOT_COMPILED;
}
#endif

}  // namespace

void set_last_error(const std::string& message) { g_last_error = message; }
void clear_last_error() { g_last_error.clear(); }

}  // namespace dlu_kernels

using dlu_kernels::Half;

#define DLU_RETURN_IF_ERROR(expr)                   \
    do {                                            \
        const DluStatus status_ = (expr);           \
        if (status_ != DLU_STATUS_OK) return status_; \
    } while (0)

extern "C" {

DluStatus dlu_kernels_dlu_check(const DluParams* p)
{
    DLU_RETURN_IF_ERROR(dlu_kernels::check_dlu(p));
    dlu_kernels::clear_last_error();
    return DLU_STATUS_OK;
}

DluStatus dlu_kernels_carafe_check(const CarafeParams* p)
{
    DLU_RETURN_IF_ERROR(dlu_kernels::check_carafe(p));
    dlu_kernels::clear_last_error();
    return DLU_STATUS_OK;
}

DluStatus dlu_kernels_ddf_check(const DdfParams* p)
{
    DLU_RETURN_IF_ERROR(dlu_kernels::check_ddf(p));
    dlu_kernels::clear_last_error();
    return DLU_STATUS_OK;
}

DluStatus dlu_kernels_dlu_forward_cpu(DluDType dtype, const DluParams* p, const void* x, const void* kernels,
                                      const void* offsets, void* out, int32_t num_threads)
{
    DLU_RETURN_IF_ERROR(dlu_kernels::check_dlu(p));
    DLU_RETURN_IF_ERROR(dlu_kernels::check_dtype("DLU", dtype));
    DLU_RETURN_IF_ERROR(
        dlu_kernels::check_pointers("DLU", {{"x", x}, {"kernels", kernels}, {"offsets", offsets}, {"out", out}}));
    DLU_RETURN_IF_ERROR(dlu_kernels::check_cpu_isa("DLU"));
    return dlu_kernels::run_cpu("DLU", [&] {
        if (dtype == DLU_DTYPE_FLOAT32) {
            dlu_kernels::dlu_forward_cpu(*p, static_cast<const float*>(x), static_cast<const float*>(kernels),
                                         static_cast<const float*>(offsets), static_cast<float*>(out), num_threads);
        } else {
            dlu_kernels::dlu_forward_cpu(*p, static_cast<const Half*>(x), static_cast<const Half*>(kernels),
                                         static_cast<const Half*>(offsets), static_cast<Half*>(out), num_threads);
        }
    });
}

DluStatus dlu_kernels_carafe_forward_cpu(DluDType dtype, const CarafeParams* p, const void* x, const void* masks,
                                         void* out, int32_t num_threads)
{
    DLU_RETURN_IF_ERROR(dlu_kernels::check_carafe(p));
    DLU_RETURN_IF_ERROR(dlu_kernels::check_dtype("CARAFE", dtype));
    DLU_RETURN_IF_ERROR(dlu_kernels::check_pointers("CARAFE", {{"x", x}, {"masks", masks}, {"out", out}}));
    DLU_RETURN_IF_ERROR(dlu_kernels::check_cpu_isa("CARAFE"));
    return dlu_kernels::run_cpu("CARAFE", [&] {
        if (dtype == DLU_DTYPE_FLOAT32) {
            dlu_kernels::carafe_forward_cpu(*p, static_cast<const float*>(x), static_cast<const float*>(masks),
                                            static_cast<float*>(out), num_threads);
        } else {
            dlu_kernels::carafe_forward_cpu(*p, static_cast<const Half*>(x), static_cast<const Half*>(masks),
                                            static_cast<Half*>(out), num_threads);
        }
    });
}

DluStatus dlu_kernels_ddf_forward_cpu(DluDType dtype, const DdfParams* p, const void* x, const void* channel_filter,
                                      const void* spatial_filter, void* out, int32_t num_threads)
{
    DLU_RETURN_IF_ERROR(dlu_kernels::check_ddf(p));
    DLU_RETURN_IF_ERROR(dlu_kernels::check_dtype("DDF", dtype));
    DLU_RETURN_IF_ERROR(dlu_kernels::check_pointers(
        "DDF", {{"x", x}, {"channel_filter", channel_filter}, {"spatial_filter", spatial_filter}, {"out", out}}));
    DLU_RETURN_IF_ERROR(dlu_kernels::check_cpu_isa("DDF"));
    return dlu_kernels::run_cpu("DDF", [&] {
        if (dtype == DLU_DTYPE_FLOAT32) {
            dlu_kernels::ddf_forward_cpu(*p, static_cast<const float*>(x), static_cast<const float*>(channel_filter),
                                         static_cast<const float*>(spatial_filter), static_cast<float*>(out),
                                         num_threads);
        } else {
            dlu_kernels::ddf_forward_cpu(*p, static_cast<const Half*>(x), static_cast<const Half*>(channel_filter),
                                         static_cast<const Half*>(spatial_filter), static_cast<Half*>(out),
                                         num_threads);
        }
    });
}

DluStatus dlu_kernels_dlu_forward_cuda(DluDType dtype, const DluParams* p, const void* x, const void* kernels,
                                       const void* offsets, void* out, void* stream)
{
    DLU_RETURN_IF_ERROR(dlu_kernels::check_dlu(p));
    DLU_RETURN_IF_ERROR(dlu_kernels::check_dtype("DLU", dtype));
    DLU_RETURN_IF_ERROR(
        dlu_kernels::check_pointers("DLU", {{"x", x}, {"kernels", kernels}, {"offsets", offsets}, {"out", out}}));
#if defined(DLU_KERNELS_WITH_CUDA)
    DLU_RETURN_IF_ERROR(dlu_kernels::dlu_forward_cuda(dtype, *p, x, kernels, offsets, out, stream));
    dlu_kernels::clear_last_error();
    return DLU_STATUS_OK;
#else
    (void)stream;
    return dlu_kernels::not_compiled("DLU");
#endif
}

DluStatus dlu_kernels_carafe_forward_cuda(DluDType dtype, const CarafeParams* p, const void* x, const void* masks,
                                          void* out, void* stream)
{
    DLU_RETURN_IF_ERROR(dlu_kernels::check_carafe(p));
    DLU_RETURN_IF_ERROR(dlu_kernels::check_dtype("CARAFE", dtype));
    DLU_RETURN_IF_ERROR(dlu_kernels::check_pointers("CARAFE", {{"x", x}, {"masks", masks}, {"out", out}}));
#if defined(DLU_KERNELS_WITH_CUDA)
    DLU_RETURN_IF_ERROR(dlu_kernels::carafe_forward_cuda(dtype, *p, x, masks, out, stream));
    dlu_kernels::clear_last_error();
    return DLU_STATUS_OK;
#else
    (void)stream;
    return dlu_kernels::not_compiled("CARAFE");
#endif
}

DluStatus dlu_kernels_ddf_forward_cuda(DluDType dtype, const DdfParams* p, const void* x, const void* channel_filter,
                                       const void* spatial_filter, void* out, void* stream)
{
    DLU_RETURN_IF_ERROR(dlu_kernels::check_ddf(p));
    DLU_RETURN_IF_ERROR(dlu_kernels::check_dtype("DDF", dtype));
    DLU_RETURN_IF_ERROR(dlu_kernels::check_pointers(
        "DDF", {{"x", x}, {"channel_filter", channel_filter}, {"spatial_filter", spatial_filter}, {"out", out}}));
#if defined(DLU_KERNELS_WITH_CUDA)
    DLU_RETURN_IF_ERROR(dlu_kernels::ddf_forward_cuda(dtype, *p, x, channel_filter, spatial_filter, out, stream));
    dlu_kernels::clear_last_error();
    return DLU_STATUS_OK;
#else
    (void)stream;
    return dlu_kernels::not_compiled("DDF");
#endif
}

DluStatus dlu_kernels_set_cpu_isa(DluCpuIsa isa)
{
    DLU_RETURN_IF_ERROR(dlu_kernels::select_cpu_isa(isa));
    dlu_kernels::clear_last_error();
    return DLU_STATUS_OK;
}

DluCpuIsa dlu_kernels_cpu_isa(void) { return dlu_kernels::selected_cpu_isa(); }

int32_t dlu_kernels_cpu_isa_supported(DluCpuIsa isa) { return dlu_kernels::cpu_isa_supported(isa) ? 1 : 0; }

const char* dlu_kernels_cpu_isa_name(DluCpuIsa isa) { return dlu_kernels::cpu_isa_name(isa); }

int32_t dlu_kernels_has_cuda(void)
{
#if defined(DLU_KERNELS_WITH_CUDA)
    return 1;
#else
    return 0;
#endif
}

int32_t dlu_kernels_cuda_device_count(void)
{
#if defined(DLU_KERNELS_WITH_CUDA)
    return dlu_kernels::cuda_device_count();
#else
    return 0;
#endif
}

const char* dlu_kernels_last_error(void) { return dlu_kernels::g_last_error.c_str(); }

const char* dlu_kernels_version(void) { return DLU_KERNELS_VERSION_STRING; }

}  // extern "C"
