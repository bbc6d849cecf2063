#!/usr/bin/env bash
# The CPU side by side, on any machine (no GPU needed), from anywhere in the repository:
#
#   bash profiling/cpu_compare.sh
#
# Builds genai_bench without CUDA, runs its CPU benchmarks (the CPU reference, one thread,
# median of GENAI_BENCH_REPS repetitions), then the CPU peers of profiling/peers/ (NumPy and
# PyTorch CPU, float64 and float32) on the same workloads -- once on one thread (like for like)
# and once with the libraries' default threads -- and writes the report
# profiling/results/<date>-cpu.md: the machine, the commit, and every peer row beside our
# median with the ratio peer seconds / ours. Run it on a quiet machine: the numbers are wall
# clock.
#
# Environment (all optional):
#   PYTHON              the interpreter with numpy / torch (default: the first of python3,
#                       /usr/bin/python3 that imports numpy). Debian: python3-numpy,
#                       python3-torch (`scripts/setup.sh --peers` installs them).
#   GENAI_BUILD_DIR     build folder (default build/cpu-compare)
#   GENAI_BENCH_REPS    --benchmark_repetitions (default 5)
#   GENAI_BENCH_FILTER  --benchmark_filter (default Cpu_)
#   GENAI_PEERS         peer scripts to run (default "langevin diffusion linalg attention losses optim
#                       train")
#   GENAI_REPORT        report path (default profiling/results/<date>-cpu.md)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BUILD="${GENAI_BUILD_DIR:-build/cpu-compare}"
REPS="${GENAI_BENCH_REPS:-5}"
FILTER="${GENAI_BENCH_FILTER:-Cpu_}"
PEERS="${GENAI_PEERS:-langevin diffusion linalg attention losses optim train}"
REPORT="${GENAI_REPORT:-profiling/results/$(date -u +%Y-%m-%d)-cpu.md}"
LOG="$BUILD/cpu-compare-logs"

log() { printf '[cpu_compare %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

if [ -z "${PYTHON:-}" ]; then
  for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null && "$p" -c 'import numpy' 2>/dev/null; then PYTHON="$p"; break; fi
  done
fi
[ -n "${PYTHON:-}" ] || { log "no python3 with numpy: run 'scripts/setup.sh --peers'"; exit 1; }

log "build genai_bench (CPU only) in $BUILD"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGENAI_CUDA=OFF \
      -DGENAI_BUILD_TESTS=OFF -DGENAI_BUILD_CLI=OFF > /dev/null
cmake --build "$BUILD" --target genai_bench > /dev/null
rm -rf "$LOG" && mkdir -p "$LOG"

log "genai_bench --benchmark_filter=$FILTER ($REPS repetitions)"
"$BUILD/profiling/genai_bench" --benchmark_filter="$FILTER" --benchmark_repetitions="$REPS" \
  --benchmark_report_aggregates_only=true --benchmark_out="$LOG/bench.json" \
  --benchmark_out_format=json > "$LOG/bench.txt" 2> "$LOG/bench.err"

for threads in 1 default; do
  for m in $PEERS; do
    script="profiling/peers/${m}_peers.py"
    [ -f "$script" ] || continue
    log "$script --device cpu (threads: $threads)"
    args=(--device cpu --json "$LOG/peers-$threads.jsonl")
    [ "$threads" = 1 ] && args+=(--threads 1)
    "$PYTHON" "$script" "${args[@]}" > "$LOG/$m-$threads.txt" 2>&1 ||
      log "WARNING: $script failed (see $LOG/$m-$threads.txt)"
  done
done

commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty="$(git status --porcelain 2>/dev/null | grep -qv '^??' && echo ' (with local changes)' || true)"
cpu="$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
versions="$("$PYTHON" - <<'EOF'
import importlib
out = []
for name in ("numpy", "scipy", "torch"):
    try:
        out.append(f"{name} {importlib.import_module(name).__version__}")
    except Exception:
        out.append(f"{name} missing")
print(", ".join(out))
EOF
)"
mkdir -p "$(dirname "$REPORT")"
{
  echo "# CPU side by side: genai-kernels' CPU reference and its CPU peers"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit$dirty"
  echo "- machine: $cpu, $(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB"
  echo "- peers: $versions (Python $("$PYTHON" -c 'import platform; print(platform.python_version())'))"
  echo "- ours: genai_bench $FILTER, median of $REPS repetitions, one thread, wall clock"
  echo "- ratio = peer seconds / our seconds: > 1 means ours is faster"
  echo
  echo "## Peers on one thread (like for like: our CPU reference is single-threaded)"
  echo
  [ -s "$LOG/peers-1.jsonl" ] && "$PYTHON" profiling/peers/common.py compare "$LOG/peers-1.jsonl" "$LOG/bench.json" | sed '1,2d'
  echo
  echo "## Peers with their default thread count"
  echo
  [ -s "$LOG/peers-default.jsonl" ] && "$PYTHON" profiling/peers/common.py compare "$LOG/peers-default.jsonl" "$LOG/bench.json" | sed '1,2d'
  echo
  echo "## genai_bench (CPU)"
  echo
  echo '```'
  grep -E '_median|^-|^Benchmark' "$LOG/bench.txt" || cat "$LOG/bench.txt"
  echo '```'
} > "$REPORT"
log "report: $REPORT"
