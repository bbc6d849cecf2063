#!/usr/bin/env bash
# The main job: installs missing packages, builds `genai` (CUDA when nvcc is found, CPU-only
# otherwise) and runs `genai demo` on the best device present. Extra arguments go to the demo,
# e.g. scripts/demo.sh --device cpu --out demo-out
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset default >/dev/null
cmake --build --preset default -j "$(nproc)" --target genai | grep -vE '^\[[0-9]+/[0-9]+\] ' || true
cmake --build --preset default -j "$(nproc)" --target genai >/dev/null
exec build/default/cli/genai demo --out "${GENAI_DEMO_OUT:-out/demo}" "$@"
