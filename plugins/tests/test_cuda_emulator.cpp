// Checks the host CUDA emulator itself, so that a kernel test passing under it means
// something: block-wide shared memory and barriers behave as on a GPU, and what a GPU (or
// compute-sanitizer) would reject is rejected.
#include <cuda_runtime.h>

#include <cstdio>
#include <vector>

namespace {

int g_failures = 0;

void expect(bool ok, const char* what)
{
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok) ++g_failures;
}

cudaLaunchConfig_t config(dim3 grid, dim3 block, size_t shared_bytes = 0)
{
    cudaLaunchConfig_t c{};
    c.gridDim = grid;
    c.blockDim = block;
    c.dynamicSmemBytes = shared_bytes;
    return c;
}

// Each block reverses its slice through shared memory: right only if no thread reads before
// every thread of its block has written.
__global__ void reverse_in_blocks(const int* in, int* out)
{
    __shared__ int slice[128];
    const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    slice[threadIdx.x] = in[i];
    __syncthreads();
    out[i] = slice[blockDim.x - 1 - threadIdx.x];
}

// The same through dynamic shared memory, with a 2-D block and a grid looping on y.
__global__ void reverse_dynamic(const int* in, int* out, int rows)
{
    float* slice = dynamic_shared_floats();
    const unsigned t = threadIdx.y * blockDim.x + threadIdx.x, n = blockDim.x * blockDim.y;
    for (int row = static_cast<int>(blockIdx.y); row < rows; row += static_cast<int>(gridDim.y)) {
        __syncthreads();
        slice[t] = static_cast<float>(in[row * n + t]);
        __syncthreads();
        out[row * n + t] = static_cast<int>(slice[n - 1 - t]);
    }
}

__global__ void barrier_after_exit(int* out)
{
    if (threadIdx.x == 0) return;
    __syncthreads();
    out[threadIdx.x] = 1;
}

__global__ void barriers_at_two_sites(int* out)
{
    if (threadIdx.x % 2 == 0) {
        __syncthreads();
        out[threadIdx.x] = 1;
    } else {
        out[threadIdx.x] = 2;
        __syncthreads();
    }
}

}  // namespace

int main()
{
    std::vector<int> in(512), out(512, -1);
    for (int i = 0; i < 512; ++i) in[i] = i;
    int *d_in = nullptr, *d_out = nullptr;
    cudaMalloc(reinterpret_cast<void**>(&d_in), 512 * sizeof(int));
    cudaMalloc(reinterpret_cast<void**>(&d_out), 512 * sizeof(int));
    cudaMemcpy(d_in, in.data(), 512 * sizeof(int), cudaMemcpyHostToDevice);

    auto c = config(dim3(4), dim3(128));
    expect(cudaLaunchKernelEx(&c, reverse_in_blocks, d_in, d_out) == cudaSuccess, "static shared memory launch");
    cudaMemcpy(out.data(), d_out, 512 * sizeof(int), cudaMemcpyDeviceToHost);
    bool reversed = true;
    for (int i = 0; i < 512; ++i) reversed = reversed && out[i] == (i / 128) * 128 + 127 - i % 128;
    expect(reversed, "a barrier orders shared-memory writes before reads");

    c = config(dim3(1, 3), dim3(8, 4), 32 * sizeof(float));
    expect(cudaLaunchKernelEx(&c, reverse_dynamic, d_in, d_out, 16) == cudaSuccess, "dynamic shared memory launch");
    cudaMemcpy(out.data(), d_out, 512 * sizeof(int), cudaMemcpyDeviceToHost);
    reversed = true;
    for (int i = 0; i < 512; ++i) reversed = reversed && out[i] == (i / 32) * 32 + 31 - i % 32;
    expect(reversed, "dynamic shared memory, 2-D blocks, a grid looping on y");

    c = config(dim3(1), dim3(32));
    expect(cudaLaunchKernelEx(&c, barrier_after_exit, d_out) == cudaErrorLaunchFailure,
           "a barrier some threads skip by exiting fails the launch");
    expect(cudaGetLastError() == cudaErrorLaunchFailure && cudaGetLastError() == cudaSuccess,
           "the failure is the last error, once");
    expect(cudaLaunchKernelEx(&c, barriers_at_two_sites, d_out) == cudaErrorLaunchFailure,
           "threads waiting in different barriers fail the launch");
    cudaGetLastError();

    c = config(dim3(1), dim3(64, 32));
    expect(cudaLaunchKernelEx(&c, reverse_in_blocks, d_in, d_out) == cudaErrorInvalidConfiguration,
           "more than 1024 threads per block is refused");
    c = config(dim3(1, 65536), dim3(32));
    expect(cudaLaunchKernelEx(&c, reverse_in_blocks, d_in, d_out) == cudaErrorInvalidConfiguration,
           "a grid y dimension over 65535 is refused");
    c = config(dim3(1), dim3(32), 64 * 1024);
    expect(cudaLaunchKernelEx(&c, reverse_dynamic, d_in, d_out, 1) == cudaErrorInvalidConfiguration,
           "more than 48 KiB of dynamic shared memory is refused");
    cudaGetLastError();

    expect(cudaFree(d_in) == cudaSuccess && cudaFree(d_out) == cudaSuccess, "cudaFree of allocations");
    expect(cudaFree(d_in) == cudaErrorInvalidValue, "a double cudaFree is an error");
    if (g_failures != 0) {
        std::fprintf(stderr, "%d emulator check(s) failed\n", g_failures);
        return 1;
    }
    return 0;
}
