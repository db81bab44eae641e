/*
 * Scratch memory of the CPU kernels (dlu_cpu.cpp, carafe_cpu.cpp, ddf_cpu.cpp): a thread's
 * tiles, DLU's tap-minor kernel space. Its start is aligned to a cache line: the kernels lay
 * out their data in whole vectors from there, and malloc aligns a large block to 16 bytes only,
 * which made every vector load from it straddle two lines (DDF at 1x256x100x152: 3.6-3.9 ->
 * 3.3-3.4 ms, docs/kernels.md).
 */
#ifndef DLU_CPU_SCRATCH_H
#define DLU_CPU_SCRATCH_H

#include <cstddef>
#include <cstdint>
#include <memory>

namespace dlu_kernels {

class CpuScratch {
public:
    // zeroed: a thread's tiles (lanes past a tile's last column are read, never used);
    // uninitialised: memory the caller writes in full before reading it.
    enum class Init { zeroed, uninitialised };

    explicit CpuScratch(size_t floats, Init init = Init::zeroed)
        : storage_(init == Init::zeroed ? new float[floats + kLineFloats]() : new float[floats + kLineFloats])
    {
    }

    float* data() const
    {
        const uintptr_t start = reinterpret_cast<uintptr_t>(storage_.get());
        return reinterpret_cast<float*>((start + kLineBytes - 1) & ~uintptr_t{kLineBytes - 1});
    }

private:
    static constexpr uintptr_t kLineBytes = 64;
    static constexpr size_t kLineFloats = kLineBytes / sizeof(float);
    std::unique_ptr<float[]> storage_;
};

}  // namespace dlu_kernels

#endif  // DLU_CPU_SCRATCH_H
