/* Host-side CUDA emulator: TensorRT's headers include this name (see cuda_runtime.h). */
#include "cuda_runtime.h"
