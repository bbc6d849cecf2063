#!/usr/bin/env bash
# The full C1 run as a benchmark (the CTest tests run it small): the default `genai c1` --
# Fashion-MNIST, k = 2, 8, 32, the issue's widths, the default epochs -- timed on this machine,
# its report kept, and a summary written to profiling/results/<date>-c1-<device>.md (the
# machine, its load, the commit, the wall time, the claims and the metrics table).
#
#   bash profiling/c1_full.sh [--device cpu|cuda] [other genai c1 options]
#
# Environment (optional): GENAI_CLI (default build/default/cli/genai, else build/cpu/cli/genai),
# GENAI_C1_OUT (the report directory, default build/c1-full), GENAI_REPORT (the summary's path).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CLI="${GENAI_CLI:-}"
if [ -z "$CLI" ]; then
  for c in build/default/cli/genai build/cpu/cli/genai; do [ -x "$c" ] && { CLI="$c"; break; }; done
fi
[ -n "$CLI" ] || { echo "c1_full: no genai program (build the default or cpu preset first)" >&2; exit 1; }
OUT="${GENAI_C1_OUT:-build/c1-full}"
device="auto"
for ((i = 1; i <= $#; i++)); do [ "${!i}" = "--device" ] && { j=$((i + 1)); device="${!j}"; }; done
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s.%N)
"$CLI" c1 --out "$OUT" "$@"
end=$(date +%s.%N)
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
seconds=$(echo "$end - $start" | bc)
where="$(grep -m1 '^`genai c1' "$OUT/c1.md" | sed 's/.*` on \([a-z]*\):.*/\1/')"
REPORT="${GENAI_REPORT:-profiling/results/$(date -u +%Y-%m-%d)-c1-${where:-$device}.md}"
mkdir -p "$(dirname "$REPORT")"
{
  echo "# C1 full run, $(date -u +%Y-%m-%d) on ${where:-$device}"
  echo
  echo "- machine: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores; load average $load_before before, $load_after after"
  echo "- commit: $(git rev-parse --short HEAD)$(git status --porcelain | grep -qv '^??' && echo ' (with local changes)' || true)"
  echo "- command: \`genai c1 --out $OUT $*\`"
  echo "- wall time: $(printf '%.1f' "$seconds") s"
  echo
  sed -n '/^## Reconstruction and codes/,/^Codes:/p' "$OUT/c1.md" | sed '$d'
  sed -n '/^## Claims/,/claims hold/p' "$OUT/c1.md"
  echo
  sed -n '/^## Time/,$p' "$OUT/c1.md"
} > "$REPORT"
echo "c1_full: $(printf '%.1f' "$seconds") s; wrote $REPORT (the report: $OUT/c1.md)"
