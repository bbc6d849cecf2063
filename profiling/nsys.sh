#!/usr/bin/env bash
# Nsight Systems timeline (CUDA API + kernels + the library's NVTX ranges, domain "genai"):
#
#   bash profiling/nsys.sh                   # genai --device cuda demo
#   bash profiling/nsys.sh build/gpu-check/profiling/genai_bench --benchmark_filter=Gpu_Info
#
# Writes profiling/results/nsys/<program>-<date>.nsys-rep and prints its path; open it in
# nsys-ui, or summarise it here: nsys stats <file>.
# NOTE: nsys does not work on the lent GPU machine of this project; use profiling/ncu.sh
# there. This script is for a workstation with a GPU and Nsight Systems installed.
# Environment: GENAI_BUILD_DIR (default build/gpu-check, then build).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -d /usr/local/cuda/bin ] && [[ ":$PATH:" != *":/usr/local/cuda/bin:"* ]]; then
  PATH="$PATH:/usr/local/cuda/bin"
fi
command -v nsys > /dev/null || { echo "nsys.sh: nsys (Nsight Systems) not found" >&2; exit 1; }

if [ $# -ge 1 ]; then
  cmd=("$@")
else
  BUILD=""
  for d in "${GENAI_BUILD_DIR:-}" build/gpu-check build; do
    if [ -n "$d" ] && [ -x "$d/cli/genai" ]; then BUILD="$d"; break; fi
  done
  [ -n "$BUILD" ] || { echo "nsys.sh: no genai program built (set GENAI_BUILD_DIR)" >&2; exit 1; }
  cmd=("$BUILD/cli/genai" --device cuda demo --out "$(mktemp -d)")
fi

out_dir="$ROOT/profiling/results/nsys"
mkdir -p "$out_dir"
out="$out_dir/$(basename "${cmd[0]}")-$(date -u +%Y%m%d-%H%M%S)"
echo "nsys.sh: ${cmd[*]}" >&2
nsys profile --trace=cuda,nvtx --force-overwrite=true --output "$out" "${cmd[@]}" >&2
echo "$out.nsys-rep"
