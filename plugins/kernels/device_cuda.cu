// Device discovery for the C ABI (dlu_kernels_cuda_device_count).
#include "cuda_common.cuh"

namespace dlu_kernels {

int cuda_device_count()
{
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError();  // no driver or no device: not an error of a later launch
        return 0;
    }
    return count;
}

}  // namespace dlu_kernels
