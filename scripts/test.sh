#!/usr/bin/env bash
# Builds and runs the whole test suite: installs missing packages, configures the preset
# (default: CUDA when nvcc is found -- GPU tests then skip without a device -- else CPU only),
# builds, runs CTest, and ends with one summary line: "N passed, N failed, N skipped".
#   scripts/test.sh [preset]      presets: default, cpu, asan, gpu (CMakePresets.json)
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-default}"
bash scripts/setup.sh
jobs="$(nproc)"
cmake --preset "$preset" >/dev/null
echo "test: building preset '$preset' with $jobs jobs"
cmake --build --preset "$preset" -j "$jobs" | grep -vE '^\[[0-9]+/[0-9]+\] ' || true
cmake --build --preset "$preset" -j "$jobs" >/dev/null   # fail here if the build failed
junit="build/$preset/ctest-junit.xml"
set +e
ctest --preset "$preset" -j "$jobs" --output-junit "$(pwd)/$junit" | grep -vE '^ +[0-9]+/[0-9]+ Test +#[0-9]+: .* Passed'
rc=${PIPESTATUS[0]}
set -e
# Summary from CTest's JUnit file: status "run" passed, "fail" failed, "notrun" skipped.
grep -o '<testcase [^>]*status="[a-z]*"' "$junit" | sed 's/.*status="//; s/"$//' |
  awk '{ n[$1]++ } END { printf "%d passed, %d failed, %d skipped\n", n["run"], n["fail"], n["notrun"] + n["disabled"] }'
exit "$rc"
