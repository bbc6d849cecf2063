#!/usr/bin/env bash
# The whole GPU check, run ON a machine with an NVIDIA GPU, from anywhere in the repository:
#
#   bash profiling/gpu_check.sh
#
# Phases: build (configure with CUDA + build everything), test (the full ctest suite),
# sanitize (compute-sanitizer memcheck / racecheck / initcheck / synccheck over the GPU tests),
# bench (genai_bench), peers (the GPU peer scripts of profiling/peers/ on the same workloads),
# report (profiling/results/<date>-<gpu>.md from whatever the other phases left in the log folder). Dependencies the machine lacks (no Debian -dev packages, no network)
# come from .carry/, filled on a dev machine by `bash profiling/pack_deps.sh`.
#
# Environment (all optional):
#   GENAI_PHASES             phases to run, in order (default "build test sanitize bench peers");
#                            the report is always written last. E.g. split over calls:
#                            GENAI_PHASES="build test", then "sanitize bench", then "peers".
#   GENAI_CUDA_ARCHS         CMAKE_CUDA_ARCHITECTURES (default 90: H100 / H200)
#   GENAI_BUILD_DIR          build folder (default build/gpu-check)
#   GENAI_CARRY              carried dependencies (default .carry)
#   GENAI_JOBS               build and ctest parallelism (default: nproc)
#   GENAI_SANITIZER_FILTER   gtest filter for the sanitizer runs
#                            (default '*Gpu*:*GPU*:*Cuda*:*CUDA*:*MatchesReference*')
#   GENAI_SANITIZER_JOBS     sanitizer runs at once (default 8)
#   GENAI_SANITIZER_TIMEOUT  seconds per sanitizer run (default 180; a timeout is inconclusive)
#   GENAI_BENCH_MIN_TIME     --benchmark_min_time in seconds (default 0.2)
#   GENAI_BENCH_REPS         --benchmark_repetitions (default 5; the table shows the median)
#   GENAI_BENCH_FILTER       --benchmark_filter (default: all)
#   GENAI_PEERS              peer scripts to run (default "langevin diffusion linalg attention")
#   GENAI_PEERS_BUDGET       --budget seconds per peer case (default 20)
#   GENAI_COMMIT             the commit to record when the tree has no usable .git
#   OUT                      when set, the report and the logs are copied to $OUT/gpu-check/
#
# Exit status: 0 when the build, every test and every sanitizer run passed; 1 otherwise
# (a failed benchmark run is reported but does not fail the check).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PHASES="${GENAI_PHASES:-build test sanitize bench peers}"
ARCHS="${GENAI_CUDA_ARCHS:-90}"
BUILD="${GENAI_BUILD_DIR:-build/gpu-check}"
CARRY="${GENAI_CARRY:-.carry}"
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
case "$CARRY" in /*) ;; *) CARRY="$ROOT/$CARRY" ;; esac
PREFIX="$CARRY/prefix"
JOBS="${GENAI_JOBS:-$(nproc)}"
SAN_FILTER="${GENAI_SANITIZER_FILTER:-*Gpu*:*GPU*:*Cuda*:*CUDA*:*MatchesReference*}"
SAN_JOBS="${GENAI_SANITIZER_JOBS:-8}"
SAN_TIMEOUT="${GENAI_SANITIZER_TIMEOUT:-180}"
BENCH_MIN_TIME="${GENAI_BENCH_MIN_TIME:-0.2}"
BENCH_REPS="${GENAI_BENCH_REPS:-5}"
BENCH_FILTER="${GENAI_BENCH_FILTER:-}"
PEERS="${GENAI_PEERS:-langevin diffusion linalg attention}"
PEERS_BUDGET="${GENAI_PEERS_BUDGET:-20}"
LOG="$BUILD/gpu-check-logs"
STATUS="$LOG/status"   # one file per phase: "<ok|failed|skipped> <seconds> <detail>"

log() { printf '[gpu_check %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { log "ERROR: $*"; exit 1; }
set_status() { mkdir -p "$STATUS"; printf '%s %s %s\n' "$2" "$3" "${4:-}" > "$STATUS/$1"; }

# ---- tools ---------------------------------------------------------------------------------
for d in /usr/local/cuda/bin /usr/local/cuda/compute-sanitizer; do
  if [ -d "$d" ] && [[ ":$PATH:" != *":$d:"* ]]; then PATH="$PATH:$d"; fi
done
export PATH
# Carried shared libraries (LAPACKE and the LAPACK/BLAS it loads, Google Benchmark): for the
# linker at build time and for the programs at run time.
if [ -d "$PREFIX/lib/x86_64-linux-gnu" ]; then
  export LD_LIBRARY_PATH="$PREFIX/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
command -v cmake >/dev/null || die "cmake not found"
command -v python3 >/dev/null || die "python3 not found (needed for the report)"

# ---- phases --------------------------------------------------------------------------------

phase_build() {
  local t0=$SECONDS rc=0
  rm -rf "$LOG"   # a fresh build starts a fresh set of results
  mkdir -p "$LOG" "$STATUS"
  command -v nvcc >/dev/null || die "nvcc not found (looked in PATH and /usr/local/cuda/bin)"

  local args=(-S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGENAI_CUDA=ON
              "-DCMAKE_CUDA_ARCHITECTURES=$ARCHS" -DGENAI_BUILD_TESTS=ON -DGENAI_BUILD_CLI=ON
              -DGENAI_BUILD_BENCH=ON)
  if [ ! -f "$BUILD/CMakeCache.txt" ] && command -v ninja >/dev/null; then args+=(-G Ninja); fi

  # Dependencies: the carried copies (CMAKE_PREFIX_PATH is searched before the system paths),
  # and the system's for whatever is not carried.
  local missing=() prefixes=()
  if [ -d "$PREFIX" ]; then
    prefixes+=("$PREFIX")
    args+=("-DGENAI_DEPS_PREFIX=$PREFIX")
  fi
  if [ ! -f /usr/include/Random123/philox.h ] && [ ! -f "$PREFIX/include/Random123/philox.h" ]; then
    missing+=(Random123)
  fi
  if [ ! -f /usr/include/CLI/CLI.hpp ] && [ ! -f "$PREFIX/include/CLI/CLI.hpp" ]; then
    missing+=(CLI11)
  fi
  if [ -f "$CARRY/googletest/CMakeLists.txt" ]; then
    args+=("-DGENAI_GTEST_SOURCE_DIR=$CARRY/googletest")
    # Also build and install GoogleTest from those sources once, into the build folder, so that
    # find_package(GTest) finds a package (GTest::gtest, GTest::gtest_main) and the tests never
    # depend on how a GoogleTest source tree names its targets.
    local gt_prefix="$BUILD/deps/googletest"
    if [ ! -f "$gt_prefix/.installed" ]; then
      log "GoogleTest: building the carried sources into $gt_prefix"
      local gt_gen=()
      command -v ninja > /dev/null && gt_gen=(-G Ninja)
      rm -rf "$BUILD/deps/googletest-build"
      if cmake -S "$CARRY/googletest" -B "$BUILD/deps/googletest-build" "${gt_gen[@]}" \
           -DCMAKE_BUILD_TYPE=Release "-DCMAKE_INSTALL_PREFIX=$gt_prefix" -DINSTALL_GTEST=ON \
           -DBUILD_GMOCK=ON > "$LOG/googletest.log" 2>&1 &&
         cmake --build "$BUILD/deps/googletest-build" -j "$JOBS" >> "$LOG/googletest.log" 2>&1 &&
         cmake --install "$BUILD/deps/googletest-build" >> "$LOG/googletest.log" 2>&1; then
        touch "$gt_prefix/.installed"
      else
        log "WARNING: GoogleTest did not build from $CARRY/googletest (see $LOG/googletest.log);"
        log "         falling back to GENAI_GTEST_SOURCE_DIR"
      fi
    fi
    if [ -f "$gt_prefix/.installed" ]; then prefixes+=("$gt_prefix"); fi
  elif [ ! -f /usr/src/googletest/CMakeLists.txt ] && [ ! -f /usr/include/gtest/gtest.h ]; then
    missing+=(GoogleTest)
  fi
  if [ ${#prefixes[@]} -gt 0 ]; then
    local joined
    joined="$(IFS=';'; printf '%s' "${prefixes[*]}")"
    args+=("-DCMAKE_PREFIX_PATH=$joined")
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    log "missing dependencies: ${missing[*]}"
    log "on a dev machine run 'bash profiling/pack_deps.sh' and carry .carry/ here"
    set_status build failed $((SECONDS - t0)) "missing dependencies: ${missing[*]}"
    return 1
  fi

  # Google Benchmark: the carried shared library must load here (it was built for Debian 12);
  # if it does not, build without genai_bench rather than fail the whole check.
  local bench_cfg
  bench_cfg="$(find "$PREFIX" -name benchmarkConfig.cmake -path '*/cmake/benchmark/*' 2>/dev/null | head -n 1 || true)"
  if [ -n "$bench_cfg" ]; then
    local cfg_dir lib_dir probe="$BUILD/benchmark-probe"
    cfg_dir="$(dirname "$bench_cfg")"
    lib_dir="$(dirname "$(dirname "$cfg_dir")")"
    mkdir -p "$probe"
    printf '%s\n' '#include <benchmark/benchmark.h>' \
      'static void BM_probe(benchmark::State& s) { for (auto _ : s) benchmark::DoNotOptimize(s.iterations()); }' \
      'BENCHMARK(BM_probe);' 'BENCHMARK_MAIN();' > "$probe/probe.cpp"
    if "${CXX:-c++}" -std=c++17 -I"$PREFIX/include" "$probe/probe.cpp" -o "$probe/probe" \
         -L"$lib_dir" -lbenchmark -pthread -Wl,-rpath,"$lib_dir" > "$LOG/benchmark-probe.log" 2>&1 &&
       "$probe/probe" --benchmark_list_tests >> "$LOG/benchmark-probe.log" 2>&1; then
      args+=("-Dbenchmark_DIR=$cfg_dir")
      log "Google Benchmark: carried copy ($cfg_dir)"
    else
      args+=(-DGENAI_BUILD_BENCH=OFF)
      log "WARNING: the carried Google Benchmark does not link or load here; genai_bench skipped"
      log "         (see $LOG/benchmark-probe.log)"
    fi
  fi

  log "configure: ${args[*]}"
  if ! cmake "${args[@]}" > "$LOG/configure.log" 2>&1; then
    tail -n 40 "$LOG/configure.log"
    set_status build failed $((SECONDS - t0)) "configure failed"
    return 1
  fi
  grep -E '^-- genai' "$LOG/configure.log" || true
  log "build (-j $JOBS)"
  cmake --build "$BUILD" -j "$JOBS" > "$LOG/build.log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    grep -E 'error|Error' "$LOG/build.log" | head -n 40 || true
    tail -n 20 "$LOG/build.log"
    set_status build failed $((SECONDS - t0)) "build failed (rc $rc)"
    return 1
  fi
  local warnings
  warnings="$(grep -c 'warning' "$LOG/build.log" || true)"
  log "build ok in $((SECONDS - t0)) s ($warnings lines mentioning warnings)"
  set_status build ok $((SECONDS - t0)) "$warnings warning lines"
}

phase_test() {
  local t0=$SECONDS rc=0
  [ -f "$BUILD/CTestTestfile.cmake" ] || die "no build in $BUILD: run the build phase first"
  mkdir -p "$LOG" "$STATUS"
  rm -f "$LOG/ctest.log" "$LOG/ctest-junit.xml"
  log "ctest (-j $JOBS)"
  ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS" --timeout 600 \
        --output-junit "$LOG/ctest-junit.xml" > "$LOG/ctest.log" 2>&1 || rc=$?
  grep -E 'tests passed|tests failed|The following tests|Failed|\*\*\*' "$LOG/ctest.log" | tail -n 40 || true
  if [ "$rc" -eq 0 ]; then set_status test ok $((SECONDS - t0)); else set_status test failed $((SECONDS - t0)) "ctest rc $rc"; fi
  return "$rc"
}

# One compute-sanitizer run; writes "<exe>\t<tool>\t<verdict>\t<detail>" to a .verdict file.
sanitize_one() {
  local exe="$1" tool="$2" name out rc=0 verdict detail
  name="$(basename "$exe")"
  out="$LOG/sanitizer/$name.$tool"
  timeout --kill-after=15 "$SAN_TIMEOUT" compute-sanitizer --tool "$tool" --error-exitcode 86 \
    "$exe" --gtest_filter="$SAN_FILTER" > "$out.log" 2>&1 || rc=$?
  local passed skipped summary
  passed="$(sed -n 's/.*\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out.log" | tail -n 1)"
  skipped="$(sed -n 's/.*\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$out.log" | tail -n 1)"
  if [ "$tool" = racecheck ]; then
    summary="$(grep -o 'RACECHECK SUMMARY: [0-9]* hazards\? displayed ([0-9]* errors\?, [0-9]* warnings\?)' "$out.log" | tail -n 1 || true)"
  else
    summary="$(grep -o 'ERROR SUMMARY: [0-9]* errors\?' "$out.log" | tail -n 1 || true)"
  fi
  local errors
  errors="$(printf '%s' "$summary" | sed -n 's/.*ERROR SUMMARY: \([0-9]*\).*/\1/p; s/.*(\([0-9]*\) error.*/\1/p' | head -n 1)"
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    verdict=timeout; detail="no verdict within ${SAN_TIMEOUT} s (inconclusive)"
  elif [ -z "$summary" ]; then
    verdict=fail; detail="no summary line (exit $rc)"
  elif [ "${errors:-0}" -ne 0 ] || [ "$rc" -eq 86 ]; then
    verdict=fail; detail="$summary"
  elif [ "$rc" -ne 0 ]; then
    verdict=fail; detail="$summary, but the tests failed under the tool (exit $rc)"
  elif [ "${passed:-0}" -eq 0 ]; then
    verdict=fail; detail="$summary, but no test ran to completion (${skipped:-0} skipped): nothing was checked"
  else
    verdict=clean; detail="$summary; ${passed} tests passed"
    if [ "${skipped:-0}" -ne 0 ]; then detail="$detail, ${skipped} skipped"; fi
  fi
  printf '%s\t%s\t%s\t%s\n' "$name" "$tool" "$verdict" "$detail" > "$out.verdict"
  log "  $name $tool: $verdict ($detail)"
}

phase_sanitize() {
  local t0=$SECONDS
  mkdir -p "$LOG" "$STATUS"
  rm -rf "$LOG/sanitizer"
  mkdir -p "$LOG/sanitizer"
  command -v compute-sanitizer >/dev/null || {
    set_status sanitize failed $((SECONDS - t0)) "compute-sanitizer not found"
    return 1
  }
  local exes=() exe n
  while IFS= read -r exe; do exes+=("$exe"); done < <(find "$BUILD/tests" -maxdepth 1 -type f -name '*_test' -perm -u+x 2>/dev/null | sort)
  [ ${#exes[@]} -gt 0 ] || { set_status sanitize failed 0 "no test executables in $BUILD/tests"; return 1; }
  log "compute-sanitizer over ${#exes[@]} test programs, filter '$SAN_FILTER', $SAN_JOBS at once"
  for exe in "${exes[@]}"; do
    n="$("$exe" --gtest_list_tests --gtest_filter="$SAN_FILTER" 2>/dev/null | grep -c '^  ' || true)"
    if [ "${n:-0}" -eq 0 ]; then
      for tool in memcheck racecheck initcheck synccheck; do
        printf '%s\t%s\t%s\t%s\n' "$(basename "$exe")" "$tool" none "no test matches the filter" \
          > "$LOG/sanitizer/$(basename "$exe").$tool.verdict"
      done
      continue
    fi
    for tool in memcheck racecheck initcheck synccheck; do
      while [ "$(jobs -rp | wc -l)" -ge "$SAN_JOBS" ]; do wait -n || true; done
      sanitize_one "$exe" "$tool" &
    done
  done
  wait
  if cut -f3 "$LOG"/sanitizer/*.verdict | grep -qx fail; then
    set_status sanitize failed $((SECONDS - t0)) "sanitizer errors"
    return 1
  fi
  set_status sanitize ok $((SECONDS - t0))
}

phase_bench() {
  local t0=$SECONDS rc=0 bin="$BUILD/profiling/genai_bench"
  mkdir -p "$LOG" "$STATUS"
  rm -f "$LOG"/bench.*
  if [ ! -x "$bin" ]; then
    log "WARNING: $bin was not built (no usable Google Benchmark); no benchmark table"
    set_status bench skipped 0 "genai_bench not built"
    return 0
  fi
  local args=("--benchmark_min_time=$BENCH_MIN_TIME" "--benchmark_repetitions=$BENCH_REPS"
              --benchmark_report_aggregates_only=true --benchmark_format=console
              "--benchmark_out=$LOG/bench.json" --benchmark_out_format=json)
  [ -n "$BENCH_FILTER" ] && args+=("--benchmark_filter=$BENCH_FILTER")
  log "genai_bench ${args[*]}"
  timeout --kill-after=15 420 "$bin" "${args[@]}" > "$LOG/bench.txt" 2> "$LOG/bench.stderr" || rc=$?
  # The medians only (mean, stddev and CV are in bench.txt and bench.json).
  grep -E '^Benchmark|_median|ERROR OCCURRED' "$LOG/bench.txt" | awk '!seen[$0]++' || true
  grep '^genai_bench:' "$LOG/bench.stderr" || true
  if [ "$rc" -eq 0 ]; then
    set_status bench ok $((SECONDS - t0))
  else
    tail -n 20 "$LOG/bench.stderr"
    set_status bench failed $((SECONDS - t0)) "genai_bench exit $rc"
  fi
  return 0
}

# The peers of profiling/peers/ (PyTorch, JAX, CuPy on the GPU) on genai_bench's workloads, each
# script under a time limit; results as JSON lines for the report's side-by-side table.
phase_peers() {
  local t0=$SECONDS failed=()
  mkdir -p "$LOG" "$STATUS"
  rm -f "$LOG"/peers.*
  for m in $PEERS; do
    local script="$ROOT/profiling/peers/${m}_peers.py"
    [ -f "$script" ] || continue
    log "peers: $m"
    timeout --kill-after=15 540 python3 "$script" --json "$LOG/peers.jsonl" \
      --budget "$PEERS_BUDGET" > "$LOG/peers.$m.txt" 2>&1 || failed+=("$m")
  done
  if [ ${#failed[@]} -eq 0 ]; then
    set_status peers ok $((SECONDS - t0))
  else
    set_status peers failed $((SECONDS - t0)) "failed or timed out: ${failed[*]}"
  fi
  return 0
}

# ---- the report ----------------------------------------------------------------------------

source_state() {  # prints "commit<TAB>state<TAB>note" and the diffstat below it
  if git -C "$ROOT" rev-parse --verify -q HEAD > /dev/null 2>&1; then
    local head dirty
    head="$(git -C "$ROOT" rev-parse HEAD)"
    dirty="$(git -C "$ROOT" status --porcelain --untracked-files=normal 2>/dev/null || true)"
    if [ -z "$dirty" ]; then
      printf '%s\tclean\tgit in this tree\n' "$head"
    else
      printf '%s\tuncommitted\tgit in this tree; uncommitted changes on top of this commit\n' "$head"
      git -C "$ROOT" diff --stat HEAD 2>/dev/null | tail -n 40 || true
      printf '%s\n' "$dirty" | grep '^??' | sed 's/^?? /new file: /' | head -n 40 || true
    fi
  elif [ -n "${GENAI_COMMIT:-}" ]; then
    printf '%s\tgiven\tGENAI_COMMIT (no .git in this tree)\n' "$GENAI_COMMIT"
  elif [ -f "$CARRY/SOURCE_STATE" ]; then
    local c s p
    c="$(sed -n 's/^commit=//p' "$CARRY/SOURCE_STATE")"
    s="$(sed -n 's/^state=//p' "$CARRY/SOURCE_STATE")"
    p="$(sed -n 's/^packed_at=//p' "$CARRY/SOURCE_STATE")"
    printf '%s\t%s\trecorded by pack_deps.sh at %s (no .git in this tree)\n' "${c:-unknown}" "${s:-unknown}" "${p:-?}"
    sed -n '/^diffstat:$/,$p' "$CARRY/SOURCE_STATE" | tail -n +2
  else
    printf 'unknown\tunknown\tno .git, no GENAI_COMMIT, no .carry/SOURCE_STATE\n'
  fi
}

write_report() {
  mkdir -p "$LOG" "$ROOT/profiling/results"
  local gpu="unknown" driver="unknown" smi_cuda="unknown" cc="" nvcc_v="unknown"
  if command -v nvidia-smi > /dev/null 2>&1; then
    local q
    q="$(nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader 2>/dev/null | head -n 1 || true)"
    if [ -n "$q" ]; then
      gpu="$(printf '%s' "$q" | cut -d, -f1 | sed 's/^ *//; s/ *$//')"
      driver="$(printf '%s' "$q" | cut -d, -f2 | sed 's/^ *//; s/ *$//')"
      cc="$(printf '%s' "$q" | cut -d, -f3 | sed 's/^ *//; s/ *$//')"
    fi
    smi_cuda="$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -n 1 || true)"
  fi
  if command -v nvcc > /dev/null 2>&1; then
    nvcc_v="$(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p' | head -n 1)"
  fi
  local slug date_ report
  slug="$(printf '%s' "$gpu" | tr '[:upper:]' '[:lower:]' | sed 's/[^a-z0-9]\{1,\}/-/g; s/^-//; s/-$//')"
  date_="$(date -u +%F)"
  report="$ROOT/profiling/results/$date_-${slug:-unknown-gpu}.md"
  source_state > "$LOG/source_state.txt"
  {
    printf 'date\t%s\n' "$(date -u '+%F %H:%M UTC')"
    printf 'gpu\t%s\n' "$gpu"
    printf 'compute_capability\t%s\n' "${cc:-unknown}"
    printf 'driver\t%s\n' "$driver"
    printf 'driver_cuda\t%s\n' "${smi_cuda:-unknown}"
    printf 'nvcc\t%s\n' "$nvcc_v"
    printf 'archs\t%s\n' "$ARCHS"
    printf 'host\t%s, %s cores\n' "$(uname -sr)" "$(nproc)"
    printf 'sanitizer_filter\t%s\n' "$SAN_FILTER"
    printf 'bench_args\t%s repetitions of min_time %s s\n' "$BENCH_REPS" "$BENCH_MIN_TIME"
    printf 'logs\t%s\n' "${LOG#"$ROOT"/}"
  } > "$LOG/meta.tsv"
  python3 - "$LOG" "$report" "$ROOT" <<'PY'
import json, os, re, sys, xml.etree.ElementTree as ET

log, report, root = sys.argv[1], sys.argv[2], sys.argv[3]
def read(name, default=""):
    p = os.path.join(log, name)
    return open(p, encoding="utf-8", errors="replace").read() if os.path.exists(p) else default

meta = dict(l.split("\t", 1) for l in read("meta.tsv").splitlines() if "\t" in l)
src_lines = read("source_state.txt").splitlines()
commit, state, note = (src_lines[0].split("\t") + ["", "", ""])[:3] if src_lines else ("unknown", "unknown", "")
diffstat = src_lines[1:]

status = {}
sdir = os.path.join(log, "status")
for ph in ("build", "test", "sanitize", "bench", "peers"):
    p = os.path.join(sdir, ph)
    if os.path.exists(p):
        parts = open(p).read().strip().split(" ", 2)
        status[ph] = (parts + ["", "", ""])[:3]
    else:
        status[ph] = ["not run", "", ""]

out = []
w = out.append
failed_any = any(status[p][0] == "failed" for p in ("build", "test", "sanitize"))
w(f"# GPU check {meta.get('date', '')[:10]} -- {meta.get('gpu', 'unknown GPU')}")
w("")
w(f"**Verdict: {'FAIL' if failed_any else 'PASS'}** "
  f"(build {status['build'][0]}, tests {status['test'][0]}, sanitizers {status['sanitize'][0]}, "
  f"benchmarks {status['bench'][0]}, peers {status['peers'][0]})")
w("")
w("| | |")
w("|---|---|")
commit_cell = f"`{commit}`" + (" + uncommitted changes" if state == "uncommitted" else "")
w(f"| commit | {commit_cell} ({note}) |")
w(f"| date | {meta.get('date', '')} |")
w(f"| device | {meta.get('gpu', '')} (compute capability {meta.get('compute_capability', '')}) |")
w(f"| driver | {meta.get('driver', '')} (supports CUDA {meta.get('driver_cuda', '')}) |")
w(f"| CUDA toolkit (nvcc) | {meta.get('nvcc', '')}, CMAKE_CUDA_ARCHITECTURES={meta.get('archs', '')} |")
bench = None
if os.path.exists(os.path.join(log, "bench.json")):
    try:
        bench = json.load(open(os.path.join(log, "bench.json")))
    except ValueError:
        bench = None
if bench:
    ctx = bench.get("context", {})
    w(f"| CUDA runtime (genai_bench) | {ctx.get('cuda_runtime_version', '?')}, driver API {ctx.get('cuda_driver_version', '?')} |")
w(f"| host | {meta.get('host', '')} |")
for ph in ("build", "test", "sanitize", "bench", "peers"):
    s = status[ph]
    w(f"| {ph} | {s[0]}" + (f", {s[1]} s" if s[1] else "") + (f" -- {s[2]}" if s[2] else "") + " |")
if diffstat:
    w("")
    w("<details><summary>uncommitted changes (diffstat)</summary>")
    w("")
    w("```")
    out.extend(diffstat)
    w("```")
    w("</details>")

if status["build"][0] == "failed":
    errs = [l for l in (read("configure.log") + read("build.log")).splitlines()
            if re.search(r"error|Error|FAILED", l)]
    if errs:
        w("")
        w("## Build errors")
        w("")
        w("```")
        out.extend(l[:300] for l in errs[:30])
        w("```")

# ---- tests
w("")
w("## Tests (ctest)")
w("")
junit = os.path.join(log, "ctest-junit.xml")
if os.path.exists(junit):
    try:
        root = ET.parse(junit).getroot()
        passed, failed, skipped = [], [], []
        for tc in root.iter("testcase"):
            name = tc.get("name", "?")
            st = tc.get("status", "")
            sk = tc.find("skipped")
            so = tc.findtext("system-out") or ""
            if tc.find("failure") is not None or st == "fail":
                failed.append((name, "failed"))
            elif st == "disabled":
                skipped.append((name, "disabled"))
            elif st == "notrun":
                msg = sk.get("message", "") if sk is not None else ""
                if msg == "SKIP_REGULAR_EXPRESSION_MATCHED":
                    # GTEST_SKIP() prints "<file>:<line>: Skipped" and the reason below it.
                    lines = so.splitlines()
                    reason = "skipped"
                    for i, line in enumerate(lines):
                        if line.rstrip().endswith("Skipped") and i + 1 < len(lines):
                            reason = lines[i + 1].strip() or reason
                            break
                    skipped.append((name, reason[:200]))
                else:
                    failed.append((name, f"not run: {msg}"))
            else:
                passed.append(name)
        total = len(passed) + len(failed) + len(skipped)
        w(f"{total} tests: **{len(passed)} passed, {len(failed)} failed, {len(skipped)} skipped**.")
        if failed:
            w("")
            w("Failures:")
            w("")
            for n, why in failed:
                w(f"- `{n}` -- {why}")
        if skipped:
            w("")
            w("Skipped:")
            w("")
            for n, why in skipped[:100]:
                w(f"- `{n}` -- {why.replace('|', '/')}")
    except ET.ParseError as e:
        w(f"ctest JUnit output unreadable: {e}")
else:
    w("Not run (no ctest JUnit output).")
ctl = read("ctest.log")
m = re.search(r"^\d+% tests passed.*$", ctl, re.M)
if m:
    w("")
    w(f"ctest: `{m.group(0).strip()}`")

# ---- sanitizers
w("")
w("## compute-sanitizer")
w("")
sd = os.path.join(log, "sanitizer")
rows = []
if os.path.isdir(sd):
    for f in sorted(os.listdir(sd)):
        if f.endswith(".verdict"):
            parts = open(os.path.join(sd, f)).read().rstrip("\n").split("\t")
            if len(parts) == 4:
                rows.append(parts)
if rows:
    w(f"GPU tests only (`--gtest_filter='{meta.get('sanitizer_filter', '')}'`); a verdict is clean "
      "when the tool's summary shows 0 errors and the tests passed under it.")
    w("")
    w("| program | tool | verdict | detail |")
    w("|---|---|---|---|")
    order = {"memcheck": 0, "racecheck": 1, "initcheck": 2, "synccheck": 3}
    for exe, tool, verdict, detail in sorted(rows, key=lambda r: (r[0], order.get(r[1], 9))):
        v = {"clean": "clean", "fail": "**FAIL**", "timeout": "timeout", "none": "no GPU tests"}.get(verdict, verdict)
        w(f"| {exe} | {tool} | {v} | {detail.replace('|', '/')} |")
else:
    w("Not run.")

# ---- benchmarks
w("")
w("## Benchmarks (genai_bench)")
w("")
peaks = [l for l in read("bench.stderr").splitlines() if l.startswith("genai_bench:")]
if peaks:
    w("Device peaks measured in this run:")
    w("")
    for l in peaks:
        w(f"- {l[len('genai_bench:'):].strip()}")
    w("")
if bench:
    groups = {}
    for b in bench.get("benchmarks", []):
        key = b.get("run_name", b.get("name", "?"))
        g = groups.setdefault(key, {})
        if b.get("error_occurred"):
            g["error"] = b.get("error_message", "error")
        elif b.get("run_type") == "aggregate":
            g[b.get("aggregate_name", "?")] = b
        else:
            g.setdefault("iterations", []).append(b)
    def si_time(v, unit):
        return f"{v:.4g} {unit}"

    w(f"Median of {meta.get('bench_args', '')}; GPU time from CUDA events, CPU time from the wall "
      "clock. GB/s counts compulsory bytes (read + written); % of peak is against the D2D copy "
      "for memory-bound rows and against the matching cuBLAS GEMM for GEMM rows.")
    w("")
    w("| benchmark | time | CV | bytes/call | GB/s | TFLOP/s | % of peak |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    skipped_b = []
    for name, g in groups.items():
        short = re.sub(r"/(manual_time|real_time)$", "", name)
        if "error" in g and not any(k in g for k in ("median", "iterations")):
            skipped_b.append((short, g["error"]))
            continue
        b = g.get("median") or (g.get("iterations") or [None])[0]
        if b is None:
            continue
        cv = g.get("cv")
        cv_s = f"{100 * cv['real_time']:.1f}%" if cv and "real_time" in cv else ""
        bw = b.get("bw")
        fr = b.get("flop_rate")
        pk = b.get("peak_frac")
        by = b.get("bytes")
        w(f"| `{short}` | {si_time(b['real_time'], b.get('time_unit', 'ns'))} | {cv_s} | "
          f"{'' if by is None else f'{by / 2**20:.1f} MiB'} | "
          f"{'' if bw is None else f'{bw / 1e9:.1f}'} | {'' if fr is None else f'{fr / 1e12:.2f}'} | "
          f"{'' if pk is None else f'{100 * pk:.1f}%'} |")
    if skipped_b:
        w("")
        w("Did not run:")
        w("")
        for n, e in skipped_b:
            w(f"- `{n}` -- {e}")
else:
    w("No benchmark results" + (f" ({status['bench'][2]})." if status["bench"][2] else "."))

# ---- peers
w("")
w("## Peers (profiling/peers/, same workloads)")
w("")
peers_file = os.path.join(log, "peers.jsonl")
if os.path.exists(peers_file):
    import subprocess
    args = [sys.executable, os.path.join(root, "profiling", "peers", "common.py"),
            "compare", peers_file]
    if os.path.exists(os.path.join(log, "bench.json")):
        args.append(os.path.join(log, "bench.json"))
    res = subprocess.run(args, capture_output=True, text=True)
    w("ratio = peer seconds / our seconds (> 1: ours faster)." if res.returncode == 0 else
      f"compare failed: {res.stderr.strip()}")
    w("")
    w("\n".join(res.stdout.splitlines()[2:]))
else:
    w("Not run" + (f" ({status['peers'][2]})." if status["peers"][2] else "."))

w("")
w(f"Logs: `{meta.get('logs', '')}/` on the GPU machine (configure, build, ctest, sanitizer and "
  "benchmark output, bench.json), copied to `$OUT/gpu-check/logs/` when OUT is set.")
open(report, "w").write("\n".join(out) + "\n")
print(report)
PY
}

# ---- main ----------------------------------------------------------------------------------

log "repository $ROOT, build $BUILD, phases: $PHASES"
overall=0
for phase in $PHASES; do
  case "$phase" in
    build) phase_build || { overall=1; log "build failed: skipping the remaining phases"; break; } ;;
    test) phase_test || overall=1 ;;
    sanitize) phase_sanitize || overall=1 ;;
    bench) phase_bench || true ;;
    peers) phase_peers || true ;;
    report) ;;
    *) die "unknown phase '$phase' (build test sanitize bench peers report)" ;;
  esac
done
# Phases from earlier runs count too (GENAI_PHASES split over several sessions).
for phase in build test sanitize; do
  if [ -f "$STATUS/$phase" ] && [ "$(cut -d' ' -f1 "$STATUS/$phase")" = failed ]; then overall=1; fi
done

report_path=""
if report_path="$(write_report)" && [ -f "$report_path" ]; then
  log "report: $report_path"
else
  log "ERROR: the report could not be written"
  overall=1
fi
if [ -n "${OUT:-}" ]; then
  rm -rf "$OUT/gpu-check/logs"
  mkdir -p "$OUT/gpu-check"
  if [ -n "$report_path" ] && [ -f "$report_path" ]; then cp "$report_path" "$OUT/gpu-check/"; fi
  cp -r "$LOG" "$OUT/gpu-check/logs"
  log "copied the report and logs to $OUT/gpu-check/"
fi
if [ "$overall" -ne 0 ]; then log "GPU check FAILED"; else log "GPU check passed"; fi
exit "$overall"
