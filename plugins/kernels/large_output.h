/*
 * Outputs larger than the caches (dlu_cpu.cpp, carafe_cpu.cpp, ddf_cpu.cpp): written with
 * non-temporal stores, and on Linux advised to use transparent huge pages before the first
 * write. A fresh output (torch's CPU allocator maps every large tensor anew) then takes a few
 * dozen 2 MiB page faults instead of thousands of 4 KiB ones: a fresh 62 MB DLU output plus
 * the kernel went from 49.7 to 19.3 ms per call on the development VM (the kernel alone, into
 * a reused output: 12.9 ms).
 */
#ifndef DLU_LARGE_OUTPUT_H
#define DLU_LARGE_OUTPUT_H

#include <cstdint>

#include "cpu_kernels.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace dlu_kernels {

/* Outputs this large (bytes) are written with non-temporal stores (past the last-level cache
 * of typical CPUs, reading them back from cache is not what the caller would get anyway). */
constexpr int64_t kStreamOutputBytes = int64_t{16} << 20;

/* Whether `bytes` of output at `out` are streamed; advises huge pages for its 2 MiB-aligned
 * interior when so (a hint: memory already mapped with small pages is left as it is). */
inline bool prepare_large_output(void* out, int64_t bytes)
{
    if (bytes < kStreamOutputBytes) return false;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    constexpr uintptr_t kHuge = uintptr_t{2} << 20;
    const uintptr_t begin = (reinterpret_cast<uintptr_t>(out) + kHuge - 1) & ~(kHuge - 1);
    const uintptr_t end = (reinterpret_cast<uintptr_t>(out) + static_cast<uintptr_t>(bytes)) & ~(kHuge - 1);
    if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);  // best effort
#endif
    return true;
}

}  // namespace dlu_kernels

#endif  // DLU_LARGE_OUTPUT_H
