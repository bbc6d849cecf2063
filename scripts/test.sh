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
python3 - "$junit" <<'PY'
import sys, xml.etree.ElementTree as ET
cases = ET.parse(sys.argv[1]).getroot().iter("testcase")
n = {"passed": 0, "failed": 0, "skipped": 0}
for c in cases:
    st = c.get("status", "")
    if st == "fail" or c.find("failure") is not None: n["failed"] += 1
    elif st in ("notrun", "disabled") or c.find("skipped") is not None: n["skipped"] += 1
    else: n["passed"] += 1
print(f"{n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped")
PY
exit "$rc"
