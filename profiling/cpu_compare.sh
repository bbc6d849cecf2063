#!/usr/bin/env bash
# The CPU side by side, on any machine (no GPU needed), from anywhere in the repository:
#
#   bash profiling/cpu_compare.sh
#
# Builds genai_bench without CUDA, runs its CPU benchmarks twice -- on one thread
# (GENAI_NUM_THREADS=1, OpenBLAS on one thread too) and on the backend's default thread count
# (the machine's cores) -- each the median of GENAI_BENCH_REPS repetitions, then the CPU peers of
# profiling/peers/ (NumPy and PyTorch CPU, float64 and float32) on the same workloads, once on
# one thread and once with the libraries' default threads, and writes the report
# profiling/results/<date>-cpu.md: the machine, its load average before and after, the commit,
# and one table with every peer row beside ours, one-thread against one-thread and all threads
# against the peers' defaults, each time with the spread (fastest-slowest repetition or call) and
# the ratio peer seconds / ours. The numbers are wall clock: run it on a quiet machine, or say
# what the load was.
#
# Environment (all optional):
#   PYTHON              the interpreter with numpy / torch (default: the first of python3,
#                       /usr/bin/python3 that imports numpy). Debian: python3-numpy,
#                       python3-torch (`scripts/setup.sh --peers` installs them).
#   GENAI_BUILD_DIR     build folder (default build/cpu-compare)
#   GENAI_BENCH_REPS    --benchmark_repetitions (default 5)
#   GENAI_BENCH_FILTER  --benchmark_filter (default Cpu_)
#   GENAI_PEERS         peer scripts to run (default "langevin diffusion linalg attention losses
#                       optim nn ode train")
#   GENAI_REPORT        report path (default profiling/results/<date>-cpu.md)
#   GENAI_BASELINE_BENCH  another genai_bench (e.g. built from an older commit): also run on one
#                       thread in the same session, for a before / after column
#   OMP_WAIT_POLICY     passive unless set: for ours and the peers alike (PyTorch uses libgomp
#                       too). libgomp's default spins after every parallel loop, which on a
#                       machine whose cores are shared (a VM, CI) costs more than a second thread
#                       gains (profiling/NOTES.md, issue 18)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BUILD="${GENAI_BUILD_DIR:-build/cpu-compare}"
REPS="${GENAI_BENCH_REPS:-5}"
FILTER="${GENAI_BENCH_FILTER:-Cpu_}"
PEERS="${GENAI_PEERS:-langevin diffusion linalg attention losses optim nn ode train}"
REPORT="${GENAI_REPORT:-profiling/results/$(date -u +%Y-%m-%d)-cpu.md}"
LOG="$BUILD/cpu-compare-logs"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"

log() { printf '[cpu_compare %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# The first python3 with NumPy and PyTorch, else the first with NumPy (PyTorch rows then skip).
if [ -z "${PYTHON:-}" ]; then
  for want in 'import numpy, torch' 'import numpy'; do
    for p in python3 /usr/bin/python3; do
      if command -v "$p" >/dev/null && "$p" -c "$want" 2>/dev/null; then PYTHON="$p"; break 2; fi
    done
  done
fi
[ -n "${PYTHON:-}" ] || { log "no python3 with numpy: run 'scripts/setup.sh --peers'"; exit 1; }

log "build genai_bench (CPU only) in $BUILD"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGENAI_CUDA=OFF \
      -DGENAI_BUILD_TESTS=OFF -DGENAI_BUILD_CLI=OFF > /dev/null
cmake --build "$BUILD" --target genai_bench > /dev/null
rm -rf "$LOG" && mkdir -p "$LOG"

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
# ours BENCH NAME [one]: BENCH's CPU benchmarks into $LOG/NAME.{json,txt}; "one": on one thread
# (ours and OpenBLAS's).
ours() {
  local threads=()
  [ "${3:-}" = one ] && threads=(env GENAI_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1)
  log "$1 --benchmark_filter=$FILTER ($REPS repetitions${3:+, one thread})"
  "${threads[@]}" "$1" --benchmark_filter="$FILTER" --benchmark_repetitions="$REPS" \
    --benchmark_out="$LOG/$2.json" --benchmark_out_format=json > "$LOG/$2.txt" 2> "$LOG/$2.err"
}
ours "$BUILD/profiling/genai_bench" bench-one one
ours "$BUILD/profiling/genai_bench" bench-all
[ -n "${GENAI_BASELINE_BENCH:-}" ] && ours "$GENAI_BASELINE_BENCH" before-one one

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

load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
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
  echo "- load average (1, 5, 15 min): $load_before before, $load_after after"
  echo "- OMP_WAIT_POLICY=$OMP_WAIT_POLICY for ours and the peers"
  echo "- ours: genai_bench $FILTER, median of $REPS repetitions (fastest-slowest in brackets), on"
  echo "  one thread (GENAI_NUM_THREADS=1, OpenBLAS on one thread) and on all threads ($(nproc)),"
  echo "  wall clock; peers: median of their timed calls (fastest-slowest)"
  [ -n "${GENAI_BASELINE_BENCH:-}" ] && echo "- before: $GENAI_BASELINE_BENCH on one thread, same session"
  echo "- ratio = peer seconds / our seconds: > 1 means ours is faster"
  echo
  echo "## Peers and ours, one thread and all threads"
  echo
  if [ -s "$LOG/peers-1.jsonl" ] && [ -s "$LOG/peers-default.jsonl" ]; then
    before=()
    [ -s "$LOG/before-one.json" ] && before=(--before "$LOG/before-one.json")
    "$PYTHON" profiling/peers/common.py threads "$LOG/peers-1.jsonl" "$LOG/peers-default.jsonl" \
      "$LOG/bench-one.json" "$LOG/bench-all.json" "${before[@]}"
  fi
  echo
  for run in bench-one bench-all before-one; do
    [ -s "$LOG/$run.txt" ] || continue
    echo "## genai_bench (CPU), $run"
    echo
    echo '```'
    grep -E '_median|^-|^Benchmark' "$LOG/$run.txt" || cat "$LOG/$run.txt"
    echo '```'
    echo
  done
} > "$REPORT"
log "report: $REPORT"
