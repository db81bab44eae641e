// Run-time choice of the CPU kernels' instruction set: the best the CPU supports, unless
// DLU_KERNELS_CPU_ISA or dlu_kernels_set_cpu_isa() names another (tests run every path).
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cpu_kernels.h"
#include "internal.h"

namespace dlu_kernels {
namespace {

constexpr const char* kIsaEnv = "DLU_KERNELS_CPU_ISA";
constexpr DluCpuIsa kIsas[] = {DLU_CPU_ISA_AUTO, DLU_CPU_ISA_PORTABLE, DLU_CPU_ISA_AVX2, DLU_CPU_ISA_AVX512,
                               DLU_CPU_ISA_NEON};

DluCpuIsa best_isa()
{
    if (cpu_isa_supported(DLU_CPU_ISA_AVX512)) return DLU_CPU_ISA_AVX512;
    if (cpu_isa_supported(DLU_CPU_ISA_AVX2)) return DLU_CPU_ISA_AVX2;
    if (cpu_isa_supported(DLU_CPU_ISA_NEON)) return DLU_CPU_ISA_NEON;
    return DLU_CPU_ISA_PORTABLE;
}

std::string supported_names()
{
    std::string names;
    for (DluCpuIsa isa : kIsas) {
        if (!cpu_isa_supported(isa)) continue;
        names += (names.empty() ? "" : ", ") + std::string(cpu_isa_name(isa));
    }
    return names;
}

/* The environment's choice: the ISA, or AUTO with `error` set when the value is unusable. */
DluCpuIsa isa_from_environment(std::string* error)
{
    const char* value = std::getenv(kIsaEnv);
    if (value == nullptr || *value == '\0') return best_isa();
    for (DluCpuIsa isa : kIsas) {
        if (std::strcmp(value, cpu_isa_name(isa)) != 0) continue;
        if (isa == DLU_CPU_ISA_AUTO) return best_isa();
        if (cpu_isa_supported(isa)) return isa;
        *error = std::string(kIsaEnv) + "=" + value + " is not supported by this CPU or build: use one of " +
                 supported_names() + " (or unset it)";
        return DLU_CPU_ISA_AUTO;
    }
    *error = std::string(kIsaEnv) + "=" + value + " is not known: use one of " + supported_names() + " (or unset it)";
    return DLU_CPU_ISA_AUTO;
}

struct Selection {
    std::atomic<int> isa;
    std::string environment_error;  // written once, before `isa` is published
    Selection() : isa(0) { isa.store(isa_from_environment(&environment_error)); }
};

Selection& selection()
{
    static Selection instance;  // thread-safe initialisation; reads the environment once
    return instance;
}

}  // namespace

bool cpu_isa_supported(DluCpuIsa isa)
{
    switch (isa) {
        case DLU_CPU_ISA_AUTO:
        case DLU_CPU_ISA_PORTABLE: return true;
#if defined(DLU_KERNELS_X86_ISAS)
        case DLU_CPU_ISA_AVX2:
            return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
        case DLU_CPU_ISA_AVX512:
            return cpu_isa_supported(DLU_CPU_ISA_AVX2) && __builtin_cpu_supports("avx512f") &&
                   __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                   __builtin_cpu_supports("avx512dq");
#endif
#if defined(DLU_KERNELS_NEON_ISA)
        case DLU_CPU_ISA_NEON: return true;  // Advanced SIMD and its fp16 conversions are baseline AArch64
#endif
        default: return false;
    }
}

const char* cpu_isa_name(DluCpuIsa isa)
{
    switch (isa) {
        case DLU_CPU_ISA_AUTO: return "auto";
        case DLU_CPU_ISA_PORTABLE: return "portable";
        case DLU_CPU_ISA_AVX2: return "avx2";
        case DLU_CPU_ISA_AVX512: return "avx512";
        case DLU_CPU_ISA_NEON: return "neon";
        default: return "unknown";
    }
}

DluCpuIsa selected_cpu_isa() { return static_cast<DluCpuIsa>(selection().isa.load()); }

DluStatus select_cpu_isa(DluCpuIsa isa)
{
    bool known = false;
    for (DluCpuIsa candidate : kIsas) known = known || candidate == isa;
    if (!known) {
        set_last_error("dlu_kernels_set_cpu_isa: isa=" + std::to_string(static_cast<int>(isa)) +
                       " is not known: use a DluCpuIsa value (dlu_kernels.h)");
        return DLU_STATUS_INVALID_ARGUMENT;
    }
    if (!cpu_isa_supported(isa)) {
        set_last_error(std::string("dlu_kernels_set_cpu_isa: ") + cpu_isa_name(isa) +
                       " is not supported by this CPU or build: use one of " + supported_names());
        return DLU_STATUS_INVALID_ARGUMENT;
    }
    selection().isa.store(isa == DLU_CPU_ISA_AUTO ? best_isa() : isa);
    return DLU_STATUS_OK;
}

DluStatus check_cpu_isa(const char* op)
{
    Selection& s = selection();
    if (s.isa.load() != DLU_CPU_ISA_AUTO) return DLU_STATUS_OK;
    set_last_error(std::string(op) + ": " + s.environment_error);
    return DLU_STATUS_INVALID_ARGUMENT;
}

const CpuKernelTable& cpu_kernels()
{
    switch (selected_cpu_isa()) {
#if defined(DLU_KERNELS_X86_ISAS)
        case DLU_CPU_ISA_AVX2: return kCpuKernelsAvx2;
        case DLU_CPU_ISA_AVX512: return kCpuKernelsAvx512;
#endif
#if defined(DLU_KERNELS_NEON_ISA)
        case DLU_CPU_ISA_NEON: return kCpuKernelsNeon;
#endif
        default: return kCpuKernelsPortable;
    }
}

}  // namespace dlu_kernels
