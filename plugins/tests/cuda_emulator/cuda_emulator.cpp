// Host-side CUDA emulator (model and scope: cuda_runtime.h). Blocks run one after another;
// the threads of a block are fibers that switch at __syncthreads() only.
//
// A fiber is created once per thread slot (makecontext) and then lives in a loop: it parks,
// runs the kernel body for one block when resumed, and parks again. Switches are
// _setjmp/_longjmp, which, unlike swapcontext, need no system call: a launch of 65535 blocks
// of 256 threads then takes seconds, not minutes.
#undef _FORTIFY_SOURCE  // its longjmp check rejects jumps between stacks, which is the point here
#include <setjmp.h>
#include <ucontext.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "cuda_runtime.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

namespace {

constexpr size_t kFiberStackBytes = 256 * 1024;  // room for AddressSanitizer's larger frames
constexpr int kMaxThreadsPerBlock = 1024;
constexpr size_t kMaxDynamicSharedBytes = 48 * 1024;  // without the opt-in launch attribute

enum class FiberState { kRunnable, kAtBarrier, kExited };

struct Fiber {
    std::unique_ptr<char[]> stack{new char[kFiberStackBytes]};
    jmp_buf resume_point;  // where the fiber continues: its park point or its barrier
    FiberState state = FiberState::kExited;
    void* barrier_site = nullptr;  // return address of the __syncthreads() call it waits in
    void* fake_stack = nullptr;    // AddressSanitizer's bookkeeping across switches
};

// Launches are serialised: kernels' `static` shared arrays and the built-in variables are
// process-wide.
std::mutex launch_mutex;
std::vector<std::unique_ptr<Fiber>> fibers;
jmp_buf scheduler;
const void* scheduler_stack_bottom = nullptr;
size_t scheduler_stack_size = 0;
Fiber* current = nullptr;
bool in_launch = false;
const std::function<void()>* thread_body = nullptr;
std::vector<float> dynamic_shared;  // float-aligned, like the kernels' use of it

std::mutex state_mutex;
cudaError_t last_error = cudaSuccess;
std::set<void*> allocations;
std::set<void*> streams;

cudaError_t record(cudaError_t error)
{
    if (error != cudaSuccess) {
        const std::lock_guard<std::mutex> lock(state_mutex);
        last_error = error;
    }
    return error;
}

void start_switch([[maybe_unused]] void** fake_stack, [[maybe_unused]] const void* bottom,
                  [[maybe_unused]] size_t size)
{
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_start_switch_fiber(fake_stack, bottom, size);
#endif
}

void finish_switch([[maybe_unused]] void* fake_stack, [[maybe_unused]] const void** old_bottom,
                   [[maybe_unused]] size_t* old_size)
{
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_finish_switch_fiber(fake_stack, old_bottom, old_size);
#endif
}

/* From a fiber: save where it continues, then jump to the scheduler. */
void yield_to_scheduler(Fiber& fiber)
{
    start_switch(&fiber.fake_stack, scheduler_stack_bottom, scheduler_stack_size);
    if (_setjmp(fiber.resume_point) == 0) _longjmp(scheduler, 1);
    finish_switch(fiber.fake_stack, &scheduler_stack_bottom, &scheduler_stack_size);
}

void fiber_main()
{
    Fiber& fiber = *current;
    finish_switch(nullptr, &scheduler_stack_bottom, &scheduler_stack_size);
    yield_to_scheduler(fiber);  // created: resumed when its first block starts
    for (;;) {
        (*thread_body)();
        fiber.state = FiberState::kExited;
        yield_to_scheduler(fiber);  // resumed when its next block starts
    }
}

/* Creates fiber slot `fiber` and runs it to its first park point. */
void create(Fiber& fiber)
{
    ucontext_t entry, here;
    getcontext(&entry);
    entry.uc_stack.ss_sp = fiber.stack.get();
    entry.uc_stack.ss_size = kFiberStackBytes;
    entry.uc_link = nullptr;  // fiber_main never returns
    makecontext(&entry, fiber_main, 0);
    current = &fiber;
    void* fake_stack = nullptr;
    start_switch(&fake_stack, fiber.stack.get(), kFiberStackBytes);
    if (_setjmp(scheduler) == 0) swapcontext(&here, &entry);
    finish_switch(fake_stack, nullptr, nullptr);
}

/* Runs a fiber until its next barrier or the end of its kernel body. */
void resume(Fiber& fiber, size_t linear_index)
{
    const auto i = static_cast<unsigned>(linear_index);
    threadIdx = uint3{i % blockDim.x, (i / blockDim.x) % blockDim.y, i / (blockDim.x * blockDim.y)};
    current = &fiber;
    void* fake_stack = nullptr;
    start_switch(&fake_stack, fiber.stack.get(), kFiberStackBytes);
    if (_setjmp(scheduler) == 0) _longjmp(fiber.resume_point, 1);
    finish_switch(fake_stack, nullptr, nullptr);
}

/* Runs one block to completion; returns an empty string or why the launch failed. */
std::string run_block(size_t threads)
{
    for (size_t i = 0; i < threads; ++i) fibers[i]->state = FiberState::kRunnable;
    for (;;) {
        // Every runnable thread runs to its next barrier or its end, in thread order.
        for (size_t i = 0; i < threads; ++i) {
            if (fibers[i]->state == FiberState::kRunnable) resume(*fibers[i], i);
        }
        size_t waiting = 0, exited = 0;
        void* site = nullptr;
        bool same_site = true;
        for (size_t i = 0; i < threads; ++i) {
            const Fiber& fiber = *fibers[i];
            if (fiber.state == FiberState::kExited) {
                ++exited;
                continue;
            }
            if (waiting++ == 0) site = fiber.barrier_site;
            same_site = same_site && fiber.barrier_site == site;
        }
        if (waiting == 0) return {};
        if (exited != 0) {
            return std::to_string(waiting) + " thread(s) wait in __syncthreads() while " + std::to_string(exited) +
                   " have exited (a barrier in divergent code)";
        }
        if (!same_site) return "the threads of a block wait in different __syncthreads() calls (divergent barriers)";
        for (size_t i = 0; i < threads; ++i) fibers[i]->state = FiberState::kRunnable;
    }
}

/* After a failed block, fibers stopped mid-kernel go back to their park point. */
void park_all(size_t threads)
{
    for (size_t i = 0; i < threads; ++i) {
        Fiber& fiber = *fibers[i];
        if (fiber.state == FiberState::kAtBarrier) {  // its stack is abandoned: a new slot
            fibers[i] = std::make_unique<Fiber>();
            create(*fibers[i]);
        }
    }
}

std::string check_config(const cudaLaunchConfig_t& c)
{
    const auto threads = static_cast<uint64_t>(c.blockDim.x) * c.blockDim.y * c.blockDim.z;
    if (threads == 0 || threads > kMaxThreadsPerBlock || c.blockDim.z > 64) {
        return "block of " + std::to_string(c.blockDim.x) + "x" + std::to_string(c.blockDim.y) + "x" +
               std::to_string(c.blockDim.z) + " threads";
    }
    if (c.gridDim.x == 0 || c.gridDim.y == 0 || c.gridDim.z == 0 || c.gridDim.x > 0x7fffffffu ||
        c.gridDim.y > 65535 || c.gridDim.z > 65535) {
        return "grid of " + std::to_string(c.gridDim.x) + "x" + std::to_string(c.gridDim.y) + "x" +
               std::to_string(c.gridDim.z) + " blocks";
    }
    if (c.dynamicSmemBytes > kMaxDynamicSharedBytes) {
        return std::to_string(c.dynamicSmemBytes) + " bytes of dynamic shared memory";
    }
    return {};
}

}  // namespace

void __syncthreads()
{
    if (!in_launch) {
        std::fprintf(stderr, "cuda emulator: __syncthreads() outside a kernel\n");
        std::abort();
    }
    current->state = FiberState::kAtBarrier;
    current->barrier_site = __builtin_return_address(0);
    yield_to_scheduler(*current);
}

namespace dlu_cuda_emulator {

cudaError_t run_grid(const cudaLaunchConfig_t& config, const std::function<void()>& body)
{
    const std::string bad_config = check_config(config);
    if (!bad_config.empty()) {
        std::fprintf(stderr, "cuda emulator: invalid launch configuration: %s\n", bad_config.c_str());
        return record(cudaErrorInvalidConfiguration);
    }
    const std::lock_guard<std::mutex> lock(launch_mutex);
    const size_t threads = static_cast<size_t>(config.blockDim.x) * config.blockDim.y * config.blockDim.z;
    while (fibers.size() < threads) {
        fibers.push_back(std::make_unique<Fiber>());
        create(*fibers.back());
    }
    dynamic_shared.assign((config.dynamicSmemBytes + sizeof(float) - 1) / sizeof(float), 0.0f);
    thread_body = &body;
    blockDim = config.blockDim;
    gridDim = config.gridDim;
    in_launch = true;
    std::string failure;
    for (unsigned z = 0; z < config.gridDim.z && failure.empty(); ++z) {
        for (unsigned y = 0; y < config.gridDim.y && failure.empty(); ++y) {
            for (unsigned x = 0; x < config.gridDim.x && failure.empty(); ++x) {
                blockIdx = uint3{x, y, z};
                failure = run_block(threads);
                if (!failure.empty()) {
                    park_all(threads);
                    failure = "block (" + std::to_string(x) + "," + std::to_string(y) + "," + std::to_string(z) +
                              "): " + failure;
                }
            }
        }
    }
    in_launch = false;
    thread_body = nullptr;
    if (!failure.empty()) {
        std::fprintf(stderr, "cuda emulator: launch failed: %s\n", failure.c_str());
        return record(cudaErrorLaunchFailure);
    }
    return cudaSuccess;
}

void* dynamic_shared_memory()
{
    if (!in_launch) {
        std::fprintf(stderr, "cuda emulator: dynamic shared memory used outside a kernel\n");
        std::abort();
    }
    return dynamic_shared.data();
}

}  // namespace dlu_cuda_emulator

cudaError_t cudaGetLastError()
{
    const std::lock_guard<std::mutex> lock(state_mutex);
    const cudaError_t error = last_error;
    last_error = cudaSuccess;
    return error;
}

cudaError_t cudaPeekAtLastError()
{
    const std::lock_guard<std::mutex> lock(state_mutex);
    return last_error;
}

const char* cudaGetErrorName(cudaError_t error)
{
    switch (error) {
        case cudaSuccess: return "cudaSuccess";
        case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
        case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
        case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
        case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    }
    return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t error)
{
    switch (error) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument";
        case cudaErrorMemoryAllocation: return "out of memory";
        case cudaErrorInvalidConfiguration: return "invalid configuration argument";
        case cudaErrorLaunchFailure: return "unspecified launch failure";
    }
    return "unknown error";
}

cudaError_t cudaGetDeviceCount(int* count)
{
    if (count == nullptr) return record(cudaErrorInvalidValue);
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device)
{
    if (device == nullptr) return record(cudaErrorInvalidValue);
    *device = 0;
    return cudaSuccess;
}

/* The multiprocessor count sizes the kernels' channel splits: 132 (an H100 SXM) by default,
 * DLU_CUDA_EMULATOR_SM_COUNT to emulate another GPU. */
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device)
{
    if (value == nullptr || device != 0 || attr != cudaDevAttrMultiProcessorCount) {
        return record(cudaErrorInvalidValue);
    }
    const char* env = std::getenv("DLU_CUDA_EMULATOR_SM_COUNT");
    *value = env != nullptr && std::atoi(env) > 0 ? std::atoi(env) : 132;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void** ptr, size_t bytes)
{
    if (ptr == nullptr) return record(cudaErrorInvalidValue);
    // The exact size (no rounding up), so AddressSanitizer sees every byte past the end.
    if (posix_memalign(ptr, 256, bytes == 0 ? 1 : bytes) != 0) return record(cudaErrorMemoryAllocation);
    const std::lock_guard<std::mutex> lock(state_mutex);
    allocations.insert(*ptr);
    return cudaSuccess;
}

cudaError_t cudaFree(void* ptr)
{
    if (ptr == nullptr) return cudaSuccess;
    {
        const std::lock_guard<std::mutex> lock(state_mutex);
        if (allocations.erase(ptr) == 0) {
            last_error = cudaErrorInvalidValue;
            return cudaErrorInvalidValue;
        }
    }
    std::free(ptr);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind)
{
    if (bytes != 0 && (dst == nullptr || src == nullptr)) return record(cudaErrorInvalidValue);
    if (bytes != 0) std::memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemset(void* ptr, int value, size_t bytes)
{
    if (bytes != 0 && ptr == nullptr) return record(cudaErrorInvalidValue);
    if (bytes != 0) std::memset(ptr, value, bytes);
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned)
{
    if (stream == nullptr) return record(cudaErrorInvalidValue);
    *stream = reinterpret_cast<cudaStream_t>(new char);
    const std::lock_guard<std::mutex> lock(state_mutex);
    streams.insert(*stream);
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream)
{
    {
        const std::lock_guard<std::mutex> lock(state_mutex);
        if (streams.erase(stream) == 0) {
            last_error = cudaErrorInvalidValue;
            return cudaErrorInvalidValue;
        }
    }
    delete reinterpret_cast<char*>(stream);
    return cudaSuccess;
}

// Launches complete before they return, so there is never anything to wait for.
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
