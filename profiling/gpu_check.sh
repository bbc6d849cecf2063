#!/usr/bin/env bash
# The GPU check: a prepared plan sized to a short GPU lease (profiling/README.md, "The GPU
# check"). On the GPU machine, from the repository root, with .carry/ carried:
#
#   bash profiling/gpu_check.sh --out "$OUT"                 plan `first` (the default)
#   bash profiling/gpu_check.sh --plan deep --out "$OUT"     the second call
#
# and on any machine without a GPU (CI runs it after the cpu preset):
#
#   bash profiling/gpu_check.sh --rehearse --out DIR
#
# Plans, each within --total seconds (default 420: 7 minutes wall), in order of value:
#   first  carry (check .carry/), build (sm_90 only), gpu-tests (every GPU test, parity tests
#          first), memcheck (compute-sanitizer over the GPU tests, small sizes), bench (one
#          headline benchmark per family), peers (one headline peer case per family)
#   deep   carry, build (nothing to do when the first call's build is still there), racecheck,
#          initcheck, synccheck, bench (the full GPU table), peers (every case of every script)
# Each phase runs under its own budget: at the budget it is stopped (its whole process group)
# and reported "incomplete at N s", and the later phases still run. Budgets are shared out in
# proportion, so time a phase leaves unused goes to the later ones, and the plan never passes
# its total. GPU tests are the tests whose name contains "Gpu" (suites <Module>Gpu); under the
# sanitizers they run with GENAI_TEST_SMALL=1 (small problem sizes, tests/test_util.hpp).
#
# --rehearse (no GPU): the same phases where they can run -- the carry (packed when missing,
# checked, and a CMake configure that sees only the carried copies), the cpu preset's build
# (build/cpu, reused: nothing is built twice), ctest (its JUnit output reused when newer than
# every test program), the GPU tests (they skip), the sanitizer phases' discovery and runs
# without the tool, genai_bench's CPU cases with a tiny min time, the CPU peers (--quick) --
# and the report, where GPU-only phases are "not available here", never passed.
#
# Options:
#   --plan first|deep      (default first)
#   --out DIR              receives report.md, junit.xml, bench.json, peers.jsonl, logs.tar.gz
#                          (plain files, no folders; default $OUT when set, else
#                          <build dir>/gpu-check-out)
#   --rehearse             no GPU: see above
#   --total S              the plan's wall-clock limit in seconds (default 420)
#   --budget PHASE=S       a phase's own budget (repeatable; defaults below)
#   --phases a,b,...       run only these phases of the plan; the others are "not run"
#   --build-dir DIR        default build/gpu-check (GPU), build/cpu (--rehearse)
#   --jobs N               build and ctest parallelism (default nproc)
# Environment: GENAI_CARRY (default .carry), GENAI_CUDA_ARCHS (default 90),
#   GENAI_SANITIZER_JOBS (runs at once, default 4), GENAI_CHECK_LOG (the log folder, default
#   <build dir>/gpu-check-logs).
# Exit status: 0 when the verdict is PASS (every phase that could run passed), 1 otherwise.
set -uo pipefail

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
ROOT="$(cd "$(dirname "$SELF")/.." && pwd)"
REPORTER="$ROOT/profiling/gpu_report.py"
GPU_REGEX="Gpu"          # ctest -R: test names containing Gpu (suites <Module>Gpu)
GPU_FILTER="*Gpu*"       # the same selection as a gtest filter
PARITY_REGEX="Gpu.*MatchesReference"

log() { printf '[gpu_check %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { log "ERROR: $*" >&2; exit 2; }

# Default budgets in seconds; per plan they add up to 405, which with RESERVE (the report and
# the logs) is the default total of 420.
default_budget() {  # mode plan phase
  case "$1:$2:$3" in
    gpu:first:carry) echo 10 ;;      gpu:deep:carry) echo 10 ;;
    # Deep, from the first H100 runs: a fresh build 70-91 s; over the 16 GPU test programs
    # (small sizes) racecheck needs more than 170 s, initcheck ~60 s, synccheck 18 s.
    gpu:first:build) echo 150 ;;     gpu:deep:build) echo 100 ;;
    gpu:first:gpu-tests) echo 60 ;;
    gpu:first:memcheck) echo 70 ;;
    gpu:deep:racecheck) echo 120 ;;  gpu:deep:initcheck) echo 70 ;;
    gpu:deep:synccheck) echo 25 ;;
    gpu:first:bench) echo 50 ;;      gpu:deep:bench) echo 60 ;;
    gpu:first:peers) echo 65 ;;      gpu:deep:peers) echo 30 ;;
    # The rehearsal: packing the carry and a configure on a slow machine, a build that is
    # normally there already, the CPU tests; the sanitizer phases share 45 s in either plan.
    rehearse:*:carry) echo 45 ;;     rehearse:*:build) echo 120 ;;
    rehearse:*:cpu-tests) echo 90 ;; rehearse:*:gpu-tests) echo 30 ;;
    rehearse:first:memcheck) echo 45 ;;
    rehearse:deep:racecheck | rehearse:deep:initcheck | rehearse:deep:synccheck) echo 15 ;;
    rehearse:*:bench) echo 45 ;;     rehearse:*:peers) echo 30 ;;
    *) echo 30 ;;
  esac
}
plan_phases() {  # plan mode
  local p
  case "$1" in
    first) p="carry build gpu-tests memcheck bench peers" ;;
    deep) p="carry build racecheck initcheck synccheck bench peers" ;;
    *) die "unknown plan '$1' (first, deep)" ;;
  esac
  # The rehearsal also runs the CPU tests (on the GPU machine CI has run them already).
  [ "$2" = rehearse ] && p="${p/build /build cpu-tests }"
  echo "$p"
}

# ---- the phases (each runs in its own process, under `timeout`, with GC_* exported) -----------

# Carried prefix, as CMake arguments (also used for the rehearsal's carry-only configure).
carry_cmake_args() {
  [ -d "$GC_CARRY/prefix" ] || return 0
  printf '%s\n' "-DCMAKE_PREFIX_PATH=$GC_CARRY/prefix" "-DGENAI_DEPS_PREFIX=$GC_CARRY/prefix"
  [ -f "$GC_CARRY/googletest/CMakeLists.txt" ] &&
    printf '%s\n' "-DGENAI_GTEST_SOURCE_DIR=$GC_CARRY/googletest"
  local cfg check="$GC_LOG/phase-carry.log"
  cfg="$(find "$GC_CARRY/prefix" -name benchmarkConfig.cmake -path '*/cmake/benchmark/*' | head -n 1)"
  [ -n "$cfg" ] || return 0
  # Only when the carried library linked and ran here: the carry phase's pack_deps.sh --check
  # says so, or (that phase not run) the same check now.
  if ! grep -q '^pack_deps: .*benchmark: ' "$check" 2> /dev/null; then
    check="$GC_LOG/carry-check.log"
    GENAI_CARRY="$GC_CARRY" bash "$ROOT/profiling/pack_deps.sh" --check > "$check" 2>&1
  fi
  if grep -q '^pack_deps: benchmark: ok' "$check"; then
    printf '%s\n' "-Dbenchmark_DIR=$(dirname "$cfg")"
  else
    printf '%s\n' "-DGENAI_BUILD_BENCH=OFF"
  fi
}

phase_carry() {
  if [ ! -d "$GC_CARRY" ]; then
    if [ "$GC_MODE" = rehearse ]; then
      log "no $GC_CARRY: packing it (profiling/pack_deps.sh)"
      GENAI_CARRY="$GC_CARRY" bash "$ROOT/profiling/pack_deps.sh" || return 1
    else
      note "no $GC_CARRY: the build uses the system's packages"
      return 0
    fi
  else
    GENAI_CARRY="$GC_CARRY" bash "$ROOT/profiling/pack_deps.sh" --check || return 1
  fi
  note "pack_deps.sh --check: every file there, the probes linked against the carry ran"
  [ "$GC_MODE" = rehearse ] || return 0
  # A configure that sees only the carried copies: the system prefixes are ignored by every
  # find_* call, so a dependency missing from the carry fails here, not on the GPU machine.
  local dir="$GC_BUILD-carry" args=() a
  while IFS= read -r a; do args+=("$a"); done < <(carry_cmake_args)
  rm -rf "$dir"
  log "configure against $GC_CARRY/prefix only (system prefixes ignored) in $dir"
  if ! cmake -S "$ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGENAI_CUDA=OFF \
       "-DCMAKE_MAKE_PROGRAM=$(command -v ninja)" "-DCMAKE_CXX_COMPILER=$(command -v c++)" \
       "-DCMAKE_SYSTEM_IGNORE_PREFIX_PATH=/usr;/usr/local;/" \
       "-DCMAKE_IGNORE_PATH=/usr/include;/usr/lib;/usr/lib/x86_64-linux-gnu;/usr/share" \
       "${args[@]}" > "$GC_LOG/carry-configure.log" 2>&1; then
    grep -E 'Error|error|Could NOT|not found' "$GC_LOG/carry-configure.log" | head -n 20 |
      sed 's/^/ERROR: /'
    return 1
  fi
  # Every dependency the configure found must come from the carry, except the compiler's own
  # runtime under /usr/lib/gcc (OpenMP's libgomp, as libstdc++: it comes with the compiler).
  local outside
  outside="$(grep -E '^[A-Za-z0-9_]+(:[A-Z]+)?=/usr/(include|lib|share|src)' "$dir/CMakeCache.txt" |
             grep -vE ':INTERNAL=|^CMAKE_|=/usr/lib/gcc/' || true)"
  if [ -n "$outside" ]; then
    printf '%s\n' "$outside" | sed 's/^/ERROR: found outside the carry: /'
    return 1
  fi
  note "configure with the system prefixes ignored: every dependency found in the carry"
}

phase_build() {
  local args=() a rc=0
  if [ "$GC_MODE" = rehearse ]; then
    # The cpu preset's settings; CI has built build/cpu already, so this is a check of it.
    if [ ! -f "$GC_BUILD/CMakeCache.txt" ]; then
      cmake -S "$ROOT" -B "$GC_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGENAI_CUDA=OFF \
        > "$GC_LOG/configure.log" 2>&1 || return 1
    fi
  else
    command -v nvcc > /dev/null || { log "ERROR: nvcc not found"; return 1; }
    args=(-S "$ROOT" -B "$GC_BUILD" -DCMAKE_BUILD_TYPE=Release -DGENAI_CUDA=ON
          "-DCMAKE_CUDA_ARCHITECTURES=$GC_ARCHS" -DGENAI_BUILD_TESTS=ON -DGENAI_BUILD_CLI=ON
          -DGENAI_BUILD_BENCH=ON)
    [ -f "$GC_BUILD/CMakeCache.txt" ] || args+=(-G Ninja)
    while IFS= read -r a; do args+=("$a"); done < <(carry_cmake_args)
    log "configure: cmake ${args[*]}"
    cmake "${args[@]}" > "$GC_LOG/configure.log" 2>&1 || { tail -n 30 "$GC_LOG/configure.log"; return 1; }
  fi
  log "build $GC_BUILD (-j $GC_JOBS)"
  cmake --build "$GC_BUILD" -j "$GC_JOBS" > "$GC_LOG/build.log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    grep -E 'error|FAILED' "$GC_LOG/build.log" | head -n 30
    return 1
  fi
  if grep -q 'ninja: no work to do' "$GC_LOG/build.log"; then
    note "$(basename "$GC_BUILD") up to date (reused)"
  else
    note "$(grep -c '^\[' "$GC_LOG/build.log") build steps"
  fi
}

# One line of the phase's note (shown in the report's phase table).
note() { printf '%s\n' "$*" >> "$GC_LOG/phase-$GC_PHASE.note"; }

phase_cpu_tests() {
  # scripts/test.sh writes its JUnit file there; reuse it when nothing it tested has changed.
  local junit="$GC_BUILD/ctest-junit.xml" newer=""
  if [ -f "$junit" ]; then
    newer="$(find "$GC_BUILD/tests" "$GC_BUILD/cli" "$ROOT/tests" "$ROOT/profiling" -maxdepth 2 \
               -type f \( -perm -u+x -o -name '*.cmake' -o -name '*.py' -o -name '*.sh' \) \
               -newer "$junit" 2> /dev/null | head -n 1)"
  fi
  if [ -f "$junit" ] && [ -z "$newer" ]; then
    cp "$junit" "$GC_LOG/ctest-cpu.xml"
    note "reused $(basename "$GC_BUILD")/ctest-junit.xml (newer than every test program)"
    return 0
  fi
  log "ctest (-j $GC_JOBS)${newer:+; $newer is newer than the last JUnit file}"
  ctest --test-dir "$GC_BUILD" -j "$GC_JOBS" --timeout 300 --output-junit "$GC_LOG/ctest-cpu.xml" \
    > "$GC_LOG/ctest-cpu.log" 2>&1
}

phase_gpu_tests() {
  local j="$GC_JOBS" rc=0
  [ "$GC_MODE" = gpu ] && j=8   # one GPU: a few test processes at once
  log "ctest: parity tests first (-R '$PARITY_REGEX'), then the other GPU tests"
  ctest --test-dir "$GC_BUILD" -R "$PARITY_REGEX" --no-tests=error -j "$j" --timeout 120 \
    --output-junit "$GC_LOG/ctest-gpu-1.xml" > "$GC_LOG/ctest-gpu-1.log" 2>&1 || rc=1
  ctest --test-dir "$GC_BUILD" -R "$GPU_REGEX" -E MatchesReference --no-tests=ignore -j "$j" \
    --timeout 120 --output-junit "$GC_LOG/ctest-gpu-2.xml" > "$GC_LOG/ctest-gpu-2.log" 2>&1 || rc=1
  tail -n 3 "$GC_LOG/ctest-gpu-1.log" "$GC_LOG/ctest-gpu-2.log"
  return "$rc"
}

# Seconds to this phase's deadline, less 2: a run under its own `timeout` (in a process group
# of its own) ends, and says so, before the phase itself is stopped. At least 1 (`timeout 0`
# would mean no limit at all).
seconds_left() {
  local s=$(( GC_DEADLINE - $(date +%s) - 2 ))
  echo $(( s > 1 ? s : 1 ))
}

# compute-sanitizer <tool> over every test program that has GPU tests (small sizes).
phase_sanitizer() {
  local tool="$GC_PHASE" dir="$GC_LOG/san" exe n name san=() jobs="${GENAI_SANITIZER_JOBS:-4}"
  mkdir -p "$dir"
  if [ "$GC_MODE" = rehearse ]; then
    echo none > "$dir/tool.txt"   # no GPU: the same runs without the tool
  else
    command -v compute-sanitizer > /dev/null || { log "ERROR: compute-sanitizer not found"; return 1; }
    echo compute-sanitizer > "$dir/tool.txt"
    san=(compute-sanitizer --tool "$tool" --error-exitcode 86 --print-limit 50)
  fi
  : > "$dir/$tool.programs.tsv"
  local exes=()
  # Every program under the build's tests/ (at any depth; not CMake's own probes, not scripts or
  # libraries); the ones with no test matching the filter are listed and not run.
  while IFS= read -r exe; do exes+=("$exe"); done < <(
    find "$GC_BUILD/tests" -type f -perm -u+x -not -path '*/CMakeFiles/*' -not -name '*.*' \
      2> /dev/null | sort)
  for exe in "${exes[@]}"; do
    name="$(basename "$exe")"
    if ! n="$("$exe" --gtest_list_tests "--gtest_filter=$GPU_FILTER" 2> /dev/null)"; then
      printf '%s\t-1\n' "$name" >> "$dir/$tool.programs.tsv"   # not a test program that starts
      continue
    fi
    n="$(printf '%s\n' "$n" | grep -c '^  ' || true)"
    printf '%s\t%s\n' "$name" "$n" >> "$dir/$tool.programs.tsv"
    [ "$n" -gt 0 ] || continue
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    log "$tool: $name ($n GPU tests)"
    (
      rc=0
      GENAI_TEST_SMALL=1 timeout -k 1 "$(seconds_left)" "${san[@]}" "$exe" \
        "--gtest_filter=$GPU_FILTER" > "$dir/$tool.$name.log" 2>&1 || rc=$?
      echo "$rc" > "$dir/$tool.$name.rc"
    ) &
  done
  wait
}

phase_bench() {
  local bin="$GC_BUILD/profiling/genai_bench" prefix=Gpu_ min=0.1 reps=3 filter rc=0
  if [ ! -x "$bin" ]; then
    note "genai_bench was not built (see the build phase; the carry phase says whether Google Benchmark was usable)"
    return 1
  fi
  [ "$GC_MODE" = rehearse ] && { prefix=Cpu_; min=0.01; reps=1; }
  [ "$GC_PLAN" = deep ] && [ "$GC_MODE" = gpu ] && min=0.05
  if [ "$GC_PLAN" = first ]; then
    filter="$("$bin" --benchmark_list_tests 2> "$GC_LOG/bench.stderr" |
              python3 "$REPORTER" headline --prefix "$prefix")"
    [ -n "$filter" ] || { note "no $prefix benchmark listed"; return 1; }
    note "headline: the first case of each ${prefix}* family"
  else
    filter="^$prefix"
    note "every ${prefix}* benchmark"
  fi
  printf '%s\n' "$filter" > "$GC_LOG/bench-filter.txt"
  printf 'bench_args\t%s repetitions of at least %s s each (the median when more than one)\n' \
    "$reps" "$min" >> "$GC_LOG/meta.tsv"
  log "genai_bench --benchmark_filter='$filter'"
  "$bin" "--benchmark_filter=$filter" "--benchmark_min_time=$min" "--benchmark_repetitions=$reps" \
    --benchmark_report_aggregates_only=true "--benchmark_out=$GC_LOG/bench.json" \
    --benchmark_out_format=json > "$GC_LOG/bench.txt" 2>> "$GC_LOG/bench.stderr" || rc=$?
  echo "$rc" > "$GC_LOG/bench.rc"
  grep -E '_median|ERROR OCCURRED' "$GC_LOG/bench.txt" | head -n 40
  return "$rc"
}

# The headline case of each peer script for the first plan (its --only regex over
# 'peer/case'); a script not named here runs with --quick (a smoke run).
peer_headline() {
  case "$1" in
    langevin) echo '^pytorch eager/ula_gmm8$' ;;
    diffusion) echo '^pytorch eager/ddpm_gmm8$' ;;
    linalg) echo '^torch\.linalg\.svd default/tall$' ;;
    attention) echo '^torch sdpa default/sdpa$' ;;
    train) echo '^torch-eager/diffusion_train_step$' ;;
    autoencoder) echo '^torch-eager/vae_epoch$' ;;
    conv) echo '^torch-cudnn-nhwc-tf32/conv_forward$' ;;
    losses) echo '^pytorch eager/cross_entropy fwd\+bwd$' ;;
    neural_ode) echo '^(torchdiffeq|pytorch cuda loop)/forward$' ;;
    nn) echo '^torch-(eager|cudagraph)/mlp_step$' ;;
    ode) echo '^(torchdiffeq|pytorch cuda loop)/euler' ;;
    optim) echo '^torch\.optim fused/adam$' ;;
  esac
}

# Extra arguments of a headline run: attention's full shape sweep (24 shapes) does not fit the
# first plan's share (stopped at 19 s on an H100); --quick keeps L 512 and 1024, d 64.
peer_headline_args() {
  case "$1" in
    attention) echo '--quick' ;;
  esac
}

phase_peers() {
  local scripts=() s m args left n rc
  while IFS= read -r s; do scripts+=("$s"); done < <(
    find "$ROOT/profiling/peers" -maxdepth 1 -name '*_peers.py' | sort)
  [ ${#scripts[@]} -gt 0 ] || { note "no profiling/peers/*_peers.py"; return 0; }
  n=${#scripts[@]}
  for s in "${scripts[@]}"; do
    m="$(basename "$s" _peers.py)"
    args=(--json "$GC_LOG/peers.jsonl")
    if [ "$GC_MODE" = rehearse ]; then
      args+=(--device cpu --quick)
      echo "--device cpu --quick" > "$GC_LOG/peers.$m.only"
    elif [ "$GC_PLAN" = first ] && [ -n "$(peer_headline "$m")" ]; then
      args+=(--only "$(peer_headline "$m")" --repeats 5 --warmup 2 --budget 2 $(peer_headline_args "$m"))
      peer_headline "$m" > "$GC_LOG/peers.$m.only"
    elif [ "$GC_PLAN" = first ]; then
      args+=(--quick --budget 1)
      echo "--quick (no headline case named in gpu_check.sh)" > "$GC_LOG/peers.$m.only"
    else
      args+=(--repeats 5 --warmup 2 --budget 2)
    fi
    # An equal share of what is left for each script still to run.
    left=$(( $(seconds_left) / n ))
    [ "$left" -ge 1 ] || left=1
    n=$((n - 1))
    log "peers: $m (${left} s): ${args[*]}"
    rc=0
    LD_LIBRARY_PATH="$GC_PEERS_LD_LIBRARY_PATH" timeout -k 1 "$left" python3 "$s" "${args[@]}" \
      > "$GC_LOG/peers.$m.txt" 2>&1 || rc=$?
    echo "$rc" > "$GC_LOG/peers.$m.rc"
  done
}

run_phase_body() {  # the child process: one phase
  case "$GC_PHASE" in
    carry) phase_carry ;;
    build) phase_build ;;
    cpu-tests) phase_cpu_tests ;;
    gpu-tests) phase_gpu_tests ;;
    memcheck | racecheck | initcheck | synccheck) phase_sanitizer ;;
    bench) phase_bench ;;
    peers) phase_peers ;;
    *) log "unknown phase $GC_PHASE"; return 2 ;;
  esac
}

if [ "${1:-}" = "--run-phase" ]; then
  GC_PHASE="$2"
  run_phase_body
  rc=$?
  [ "$rc" -eq 0 ] || exit 1   # never 124/137: those mean "stopped at the budget"
  exit 0
fi

# ---- the plan -----------------------------------------------------------------------------

PLAN=first MODE=gpu TOTAL=420 RESERVE=15 ONLY="" BUILD="" OUTDIR="${OUT:-}"
JOBS="$(nproc)"
declare -A BUDGET=()
while [ $# -gt 0 ]; do
  case "$1" in
    --plan) PLAN="$2"; shift 2 ;;
    --out) OUTDIR="$2"; shift 2 ;;
    --rehearse) MODE=rehearse; shift ;;
    --total) TOTAL="$2"; shift 2 ;;
    --budget) BUDGET["${2%%=*}"]="${2#*=}"; shift 2 ;;
    --phases) ONLY=",$2,"; shift 2 ;;
    --build-dir) BUILD="$2"; shift 2 ;;
    --jobs) JOBS="$2"; shift 2 ;;
    -h | --help) sed -n '2,/^set -uo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (--help lists them)" ;;
  esac
done
PHASES="$(plan_phases "$PLAN" "$MODE")" || exit 2
[ "$TOTAL" -gt $((RESERVE * 2)) ] 2> /dev/null || RESERVE=$((TOTAL / 4))
if [ -z "$BUILD" ]; then
  if [ "$MODE" = rehearse ]; then BUILD=build/cpu; else BUILD=build/gpu-check; fi
fi
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
CARRY="${GENAI_CARRY:-$ROOT/.carry}"
case "$CARRY" in /*) ;; *) CARRY="$ROOT/$CARRY" ;; esac
[ -n "$OUTDIR" ] || OUTDIR="$BUILD/gpu-check-out"
case "$OUTDIR" in /*) ;; *) OUTDIR="$PWD/$OUTDIR" ;; esac
LOG="${GENAI_CHECK_LOG:-$BUILD/gpu-check-logs}"
T0="$(date +%s)"

for d in /usr/local/cuda/bin /usr/local/cuda/compute-sanitizer; do
  if [ -d "$d" ] && [[ ":$PATH:" != *":$d:"* ]]; then PATH="$PATH:$d"; fi
done
# The carried shared libraries (LAPACKE and the LAPACK/BLAS it loads, Google Benchmark), for
# the linker and for every program the phases run.
# The peer scripts run with the machine's own (PyTorch, JAX and NumPy bring theirs).
export GC_PEERS_LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}"
if [ -d "$CARRY/prefix/lib/x86_64-linux-gnu" ]; then
  export LD_LIBRARY_PATH="$CARRY/prefix/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export PATH
command -v python3 > /dev/null || die "python3 not found (the report needs it)"
command -v cmake > /dev/null || die "cmake not found"

rm -rf "$LOG"
mkdir -p "$LOG" "$OUTDIR"
rm -f "$OUTDIR"/{report.md,junit.xml,bench.json,peers.jsonl,logs.tar.gz}  # none left from before
export GC_MODE="$MODE" GC_PLAN="$PLAN" GC_LOG="$LOG" GC_BUILD="$BUILD" GC_CARRY="$CARRY"
export GC_JOBS="$JOBS" GC_ARCHS="${GENAI_CUDA_ARCHS:-90}"

gpu="unknown" cc="" driver="" driver_cuda="" nvcc_v="none"
[ "$MODE" = rehearse ] && gpu="none"
if [ "$MODE" = gpu ] && command -v nvidia-smi > /dev/null; then
  IFS=, read -r gpu driver cc < <(nvidia-smi --query-gpu=name,driver_version,compute_cap \
    --format=csv,noheader 2> /dev/null | head -n 1) || true
  driver_cuda="$(nvidia-smi 2> /dev/null | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -n 1)"
fi
command -v nvcc > /dev/null && nvcc_v="$(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
cpu_model="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2> /dev/null | head -n 1)"
trim() { printf '%s' "$1" | sed 's/^ *//; s/ *$//'; }
{
  printf 'plan\t%s\nmode\t%s\ntotal_s\t%s\nroot\t%s\ncarry\t%s\n' "$PLAN" "$MODE" "$TOTAL" "$ROOT" "$CARRY"
  printf 'gpu\t%s\ncompute_capability\t%s\n' "$(trim "${gpu:-unknown}")" "$(trim "$cc")"
  printf 'driver\t%s\ndriver_cuda\t%s\n' "$(trim "$driver")" "$driver_cuda"
  printf 'nvcc\t%s\narchs\t%s\ngpu_filter\t%s\n' "$nvcc_v" "$GC_ARCHS" "$GPU_FILTER"
  printf 'host\t%s, %s cores, %s\n' "$(uname -sr)" "$(nproc)" "${cpu_model:-?}"
  printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
} > "$LOG/meta.tsv"

log "plan $PLAN ($MODE), total ${TOTAL} s, phases: $PHASES; build $BUILD; out $OUTDIR"
selected=()
for ph in $PHASES; do
  if [ -z "$ONLY" ] || [[ "$ONLY" == *",$ph,"* ]]; then selected+=("$ph"); fi
done
own_sum=0
for ph in "${selected[@]}"; do
  own_sum=$((own_sum + ${BUDGET[$ph]:-$(default_budget "$MODE" "$PLAN" "$ph")}))
done
: > "$LOG/phases.tsv"
for ph in $PHASES; do
  if [ -n "$ONLY" ] && [[ "$ONLY" != *",$ph,"* ]]; then
    printf '%s\tnot-run\t0\t\t\tnot selected (--phases)\n' "$ph" >> "$LOG/phases.tsv"
    continue
  fi
  own=${BUDGET[$ph]:-$(default_budget "$MODE" "$PLAN" "$ph")}
  avail=$((TOTAL - ($(date +%s) - T0) - RESERVE))
  # This phase's share of the time left, in proportion to its own budget: never less than its
  # own budget while the phases before it kept to theirs (time they left unused goes to the
  # later phases), never more than what is left, and never more than a budget given with
  # --budget.
  budget=$(( own_sum > 0 ? avail * own / own_sum : 0 ))
  [ "$budget" -le "$avail" ] || budget=$avail
  if [ -n "${BUDGET[$ph]:-}" ] && [ "$budget" -gt "$own" ]; then budget=$own; fi
  own_sum=$((own_sum - own))
  # Too little time to be worth starting (unless that is all it asked for).
  if [ "$budget" -lt 1 ] || { [ "$budget" -lt 3 ] && [ "$budget" -lt "$own" ]; }; then
    printf '%s\tnot-run\t0\t%s\t\tno time left in the plan\n' "$ph" "$budget" >> "$LOG/phases.tsv"
    log "$ph: not run (no time left)"
    continue
  fi
  log "$ph: start (budget ${budget} s)"
  t=$(date +%s)
  GC_PHASE="$ph" GC_DEADLINE=$((t + budget)) \
    timeout -k 5 "$budget" bash "$SELF" --run-phase "$ph" > "$LOG/phase-$ph.log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - t ))
  state="done"
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then state=incomplete; fi
  note_text="$(paste -sd ';' "$LOG/phase-$ph.note" 2> /dev/null | sed 's/;/; /g')"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$ph" "$state" "$secs" "$budget" "$rc" "$note_text" >> "$LOG/phases.tsv"
  if [ "$state" = incomplete ]; then
    log "$ph: incomplete at ${secs} s (stopped at its budget)"
  else
    log "$ph: finished in ${secs} s (exit $rc)"
  fi
  if [ "$rc" -ne 0 ]; then tail -n 15 "$LOG/phase-$ph.log" | sed 's/^/    /'; fi
done

# ---- the report and what comes back ---------------------------------------------------------
left=$((TOTAL - ($(date +%s) - T0)))
[ "$left" -ge 5 ] || left=5
verdict=1
timeout -k 2 "$left" python3 "$REPORTER" report --log "$LOG" --out "$OUTDIR" && verdict=0
for f in bench.json peers.jsonl; do
  [ -f "$LOG/$f" ] && cp "$LOG/$f" "$OUTDIR/$f"
done
cp "$OUTDIR/report.md" "$LOG/report.md" 2> /dev/null
timeout -k 2 "$(( left > 10 ? left - 5 : 5 ))" python3 "$REPORTER" pack-logs --log "$LOG" \
  --out "$OUTDIR/logs.tar.gz" --limit-mib 15 || log "WARNING: logs.tar.gz not written"
log "done in $(( $(date +%s) - T0 )) s; in $OUTDIR: $(find "$OUTDIR" -maxdepth 1 -type f -printf '%f ')"
exit "$verdict"
