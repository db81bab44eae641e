/*
 * One CPU thread's scratch memory (dlu_cpu.cpp, carafe_cpu.cpp, ddf_cpu.cpp): zeroed, and its
 * start aligned to a cache line. The kernels lay out their tiles in whole vectors from that
 * start; malloc aligns a large block to 16 bytes only, which made every vector load of the
 * kernel tiles straddle two lines (DDF at 1x256x100x152: 3.6-3.9 -> 3.3-3.4 ms, docs/kernels.md).
 */
#ifndef DLU_CPU_SCRATCH_H
#define DLU_CPU_SCRATCH_H

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dlu_kernels {

class CpuScratch {
public:
    explicit CpuScratch(size_t floats) : storage_(floats + kLineBytes / sizeof(float)) {}

    float* data()
    {
        const uintptr_t start = reinterpret_cast<uintptr_t>(storage_.data());
        return reinterpret_cast<float*>((start + kLineBytes - 1) & ~uintptr_t{kLineBytes - 1});
    }

private:
    static constexpr uintptr_t kLineBytes = 64;
    std::vector<float> storage_;  // zeroed: lanes past a tile's last column are read, never used
};

}  // namespace dlu_kernels

#endif  // DLU_CPU_SCRATCH_H
