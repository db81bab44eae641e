#!/usr/bin/env bash
# neon_qemu.sh CMAKE SOURCE_DIR BUILD_DIR
# The NEON CPU kernels, run: an aarch64 cross build (Debian's aarch64-linux-gnu-g++) of
# libdlu_kernels and test_kernels_c_abi only (no CUDA, emulator, TensorRT or ONNX Runtime) in
# BUILD_DIR, configured with CMAKE from SOURCE_DIR, then test_kernels_c_abi under qemu-aarch64.
# Passes when every check passes, the neon path was among those checked, and the default
# selection picked it (so a silent fall back to portable fails). The build dir is kept, so a
# rerun rebuilds only what changed. Exit 77 (ctest: skipped) without the cross compiler, qemu or
# the aarch64 C library. DLU_AARCH64_CXX, DLU_QEMU_AARCH64, DLU_AARCH64_SYSROOT override the tools.
set -euo pipefail
cmake="$1" source_dir="$2" build_dir="$3"
cxx="${DLU_AARCH64_CXX:-aarch64-linux-gnu-g++}"
qemu="${DLU_QEMU_AARCH64:-qemu-aarch64}"
sysroot="${DLU_AARCH64_SYSROOT:-/usr/aarch64-linux-gnu}"
if ! command -v "$cxx" >/dev/null 2>&1; then
  echo "SKIPPED: $cxx not found; install Debian's cross compiler (apt-get install g++-aarch64-linux-gnu) to run the NEON kernels under qemu"
  exit 77
fi
if ! command -v "$qemu" >/dev/null 2>&1; then
  echo "SKIPPED: $qemu not found; install qemu user-mode emulation (apt-get install qemu-user) to run the NEON kernels"
  exit 77
fi
if [ ! -e "$sysroot/lib/ld-linux-aarch64.so.1" ]; then
  echo "SKIPPED: no aarch64 C library in $sysroot (Debian: libc6-arm64-cross, installed with g++-aarch64-linux-gnu)"
  exit 77
fi

# Host settings must not leak into the cross build.
unset CXXFLAGS CPPFLAGS LDFLAGS CMAKE_TOOLCHAIN_FILE DLU_KERNELS_CPU_ISA
"$cmake" -S "$source_dir" -B "$build_dir" -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=Release -DDLU_DEPLOY_WITH_CUDA=OFF \
  -DDLU_DEPLOY_CUDA_EMULATOR=OFF -DDLU_DEPLOY_BUILD_TESTS=ON
"$cmake" --build "$build_dir" --target test_kernels_c_abi --parallel "$(nproc)"

# --expect-isa neon: the automatic selection (DLU_KERNELS_CPU_ISA unset) chose NEON.
status=0
output="$("$qemu" -L "$sysroot" -E LD_LIBRARY_PATH="$build_dir/lib" "$build_dir/bin/test_kernels_c_abi" \
  --expect-isa neon 2>&1)" || status=$?
echo "$output"
if [ "$status" -ne 0 ]; then
  echo "FAILED: test_kernels_c_abi exited with $status under $qemu"
  exit 1
fi
if ! grep -qx "checking the neon CPU kernels" <<<"$output"; then
  echo "FAILED: test_kernels_c_abi did not check the neon CPU kernels under $qemu"
  exit 1
fi
if ! grep -qx "all C ABI checks passed" <<<"$output"; then
  echo "FAILED: test_kernels_c_abi did not report all C ABI checks passed"
  exit 1
fi
echo "ok: the neon and portable CPU kernels ($("$cxx" -dumpfullversion), aarch64) pass the C ABI checks under $qemu"
