#!/usr/bin/env bash
# cross_compile_aarch64.sh TENSORRT_INCLUDE_DIR CUDA_INCLUDE_DIR KERNELS_DIR -- KERNEL_CPU_SOURCES... -- PLUGIN_SOURCES...
# The CPU parts of a Jetson (aarch64, JetPack 6 = TensorRT 10.3) build, with Debian's aarch64
# cross compiler: the CPU kernels linked into an aarch64 shared library (no undefined symbols),
# and every C++ source of the plugin library compiled against the TensorRT headers, warnings as
# errors. The CUDA kernels need nvcc with the aarch64 CUDA target and are not built here.
# Exit 77 (ctest: skipped) when the cross compiler is absent.
set -euo pipefail
cxx="${DLU_AARCH64_CXX:-aarch64-linux-gnu-g++}"
if ! command -v "$cxx" >/dev/null 2>&1; then
  echo "SKIPPED: $cxx not found; install Debian's cross compiler (apt-get install g++-aarch64-linux-gnu) to check the Jetson build's CPU parts"
  exit 77
fi
trt_include="$1" cuda_include="$2" kernels_dir="$3"
shift 3
[ "$1" = "--" ] && shift
kernel_sources=()
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do kernel_sources+=("$1"); shift; done
shift
plugin_sources=("$@")

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
flags=(-std=c++17 -O1 -fPIC -fvisibility=hidden -Wall -Wextra -Werror -pthread)
objects=()
for source in "${kernel_sources[@]}"; do
  object="$out/kernels_$(basename "$source").o"
  "$cxx" "${flags[@]}" -DDLU_KERNELS_VERSION_STRING='"cross-check"' -I"$kernels_dir" -c "$source" -o "$object"
  objects+=("$object")
done
"$cxx" -shared -pthread -Wl,--no-undefined -o "$out/libdlu_kernels.so" "${objects[@]}"
machine="$(LC_ALL=C readelf -h "$out/libdlu_kernels.so" | sed -n 's/^ *Machine: *//p')"
if [ "$machine" != "AArch64" ]; then
  echo "FAILED: libdlu_kernels.so was built for '$machine', not AArch64"
  exit 1
fi
plugin_root="$(cd "$(dirname "$0")/.." && pwd)"
includes=()
for dir in common dlu carafe mmcv_carafe ddf library; do includes+=(-I"$plugin_root/$dir"); done
includes+=(-I"$plugin_root/../common")  # node attributes shared with plugins/onnxruntime
for source in "${plugin_sources[@]}"; do
  "$cxx" "${flags[@]}" -Wpedantic -DDLU_TRT_PLUGINS_LIBRARY_VERSION='"cross-check"' "${includes[@]}" \
    -I"$kernels_dir" -isystem "$trt_include" -isystem "$cuda_include" -c "$source" -o "$out/plugin_$(basename "$source").o"
done
echo "ok: $("$cxx" -dumpfullversion) built the CPU kernels ($machine) and compiled ${#plugin_sources[@]} plugin sources against $trt_include"
