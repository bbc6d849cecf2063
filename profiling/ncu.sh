#!/usr/bin/env bash
# Nsight Compute, full section set, on the kernels whose function names match a regex:
#
#   bash profiling/ncu.sh <kernel-regex> [-- command...]
#   bash profiling/ncu.sh info_kernel
#   bash profiling/ncu.sh fill_kernel -- build/gpu-check/profiling/genai_bench --benchmark_filter=Gpu_Rng/fill_uniform
#
# Without a command: genai_bench filtered to the benchmark of that kernel (the table below;
# GENAI_BENCH_FILTER overrides it), or `genai --device cuda demo` for a kernel with no entry.
# Writes profiling/results/ncu/<kernel>-<date>.ncu-rep and prints its path; read it with
# ncu-ui, or here with: ncu --import <file> --page details.
# Works on the lent GPU machine (nsys does not; see nsys.sh).
#
# Environment:
#   GENAI_BUILD_DIR         where genai_bench / genai were built (default build/gpu-check, then build)
#   GENAI_NCU_LAUNCH_SKIP   matching launches to skip first (default 10 with genai_bench: past the
#                           input generation and the warm-up, so a steady-state call is measured;
#                           0 with any other command)
#   GENAI_NCU_LAUNCH_COUNT  matching launches to profile (default 1)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
case "$1" in -h | --help) usage ;; esac
REGEX="$1"
shift

if [ -d /usr/local/cuda/bin ] && [[ ":$PATH:" != *":/usr/local/cuda/bin:"* ]]; then
  PATH="$PATH:/usr/local/cuda/bin"
fi
command -v ncu > /dev/null || { echo "ncu.sh: ncu (Nsight Compute) not found" >&2; exit 1; }

find_build() {
  local d
  for d in "${GENAI_BUILD_DIR:-}" build/gpu-check build; do
    if [ -n "$d" ] && [ -d "$d" ]; then echo "$d"; return 0; fi
  done
  echo "ncu.sh: no build folder (set GENAI_BUILD_DIR)" >&2
  return 1
}

cmd=()
skip_default=0
if [ $# -ge 1 ]; then
  [ "$1" = "--" ] && shift
  [ $# -ge 1 ] || usage
  cmd=("$@")
else
  BUILD="$(find_build)"
  filter="${GENAI_BENCH_FILTER:-}"
  if [ -z "$filter" ]; then
    case "$REGEX" in
      *info*) filter='Gpu_Info/entropy/rows:16384/K:4096/validate:0/' ;;
      *fill*) filter='Gpu_Rng/fill_normal/' ;;
    esac
  fi
  if [ -n "$filter" ] && [ -x "$BUILD/profiling/genai_bench" ]; then
    # No peak measurement under the profiler: it would only add launches and time.
    export GENAI_BENCH_SKIP_PEAKS=1
    cmd=("$BUILD/profiling/genai_bench" "--benchmark_filter=$filter" --benchmark_min_time=0.01
         --benchmark_repetitions=1)
    skip_default=10
  elif [ -x "$BUILD/cli/genai" ]; then
    demo_out="$(mktemp -d)"
    cmd=("$BUILD/cli/genai" --device cuda demo --out "$demo_out")
  else
    echo "ncu.sh: neither $BUILD/profiling/genai_bench nor $BUILD/cli/genai exists; build first" >&2
    exit 1
  fi
fi

out_dir="$ROOT/profiling/results/ncu"
mkdir -p "$out_dir"
name="$(printf '%s' "$REGEX" | tr -c 'A-Za-z0-9_.-' '_' | sed 's/_\{2,\}/_/g; s/^_//; s/_$//')"
out="$out_dir/${name:-kernel}-$(date -u +%Y%m%d-%H%M%S)"

echo "ncu.sh: ${cmd[*]}" >&2
ncu --set full --import-source yes --target-processes all \
    --kernel-name "regex:$REGEX" \
    --launch-skip "${GENAI_NCU_LAUNCH_SKIP:-$skip_default}" \
    --launch-count "${GENAI_NCU_LAUNCH_COUNT:-1}" \
    --force-overwrite --export "$out" "${cmd[@]}" >&2
if [ ! -f "$out.ncu-rep" ]; then
  echo "ncu.sh: no report written: no launch matched '$REGEX' after the skipped ones?" >&2
  exit 1
fi
echo "$out.ncu-rep"
