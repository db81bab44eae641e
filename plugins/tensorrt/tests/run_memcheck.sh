#!/usr/bin/env bash
# run_memcheck.sh SANITIZER HARNESS ARGS...: the GPU suite under compute-sanitizer memcheck.
# Exits 77 (skipped) with the reason when compute-sanitizer or a CUDA device is missing.
set -u
sanitizer="$1"
shift
if [ -z "$sanitizer" ] || [ ! -x "$sanitizer" ]; then
  echo "SKIPPED: compute-sanitizer not found (it ships in the CUDA toolkit's bin/; reconfigure with it on PATH)"
  exit 77
fi
harness="$1"
shift
"$harness" "$@" --suite gpu-probe || exit $?
exec "$sanitizer" --tool memcheck --leak-check full --error-exitcode 1 "$harness" "$@" --suite gpu
