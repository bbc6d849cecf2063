#!/usr/bin/env bash
# Installs the Debian packages the build, tests and plots need. Idempotent; quiet when all is there.
#   scripts/setup.sh            the build, tests, demo
#   scripts/setup.sh --peers    also NumPy, SciPy and PyTorch (CPU) for the CPU peers of
#                               profiling/peers/ and profiling/cpu_compare.sh (a few hundred MB)
set -euo pipefail
pkgs=(cmake ninja-build g++ pkg-config
      libgtest-dev libgmock-dev googletest libbenchmark-dev
      librandom123-dev libcli11-dev liblapacke-dev liblapack-dev libopenblas-dev zlib1g-dev
      nlohmann-json3-dev
      gnuplot-nox
      dataset-fashion-mnist)  # 31 MB: the demo's PCA of real images (else built-in ones)
if [ "${1:-}" = "--peers" ]; then pkgs+=(python3-numpy python3-scipy python3-torch); fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "setup: installing ${missing[*]}"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
