#!/usr/bin/env bash
# Fills .carry/ (git-ignored) with what profiling/gpu_check.sh needs on a GPU machine that has
# the CUDA toolkit but no Debian -dev packages and no network. Run it HERE, on a dev machine
# where scripts/setup.sh has installed the packages:
#
#   bash profiling/pack_deps.sh
#
# Layout (a CMake prefix, so -DCMAKE_PREFIX_PATH=.carry/prefix finds the packages' configs):
#   .carry/prefix/include/Random123/           librandom123-dev (header-only)
#   .carry/prefix/include/CLI/                 libcli11-dev (header-only)
#   .carry/prefix/share/cmake/CLI11/           its CMake config
#   .carry/prefix/include/benchmark/           libbenchmark-dev headers
#   .carry/prefix/lib/<multiarch>/libbenchmark.so*, cmake/benchmark/   the library + config
#   .carry/prefix/include/zlib.h, lib/<multiarch>/libz.a   zlib1g-dev (static: gzip IDX files)
#   .carry/prefix/include/nlohmann/, cblas.h   nlohmann-json3-dev (safetensors), the reference
#                                              CBLAS header (nn's CPU GEMMs, libblas.so.3)
#   .carry/googletest/                         GoogleTest sources (/usr/src/googletest), built
#                                              there through -DGENAI_GTEST_SOURCE_DIR
#   .carry/SOURCE_STATE                        commit and diffstat of this tree when packed, for
#                                              the report when the GPU copy has no .git
# Environment: GENAI_CARRY (default .carry), GENAI_CARRY_LIMIT_MIB (default 60).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARRY="${GENAI_CARRY:-$ROOT/.carry}"
LIMIT_MIB="${GENAI_CARRY_LIMIT_MIB:-60}"
PREFIX="$CARRY/prefix"

die() { echo "pack_deps: ERROR: $*" >&2; exit 1; }
command -v dpkg-query > /dev/null || die "dpkg-query not found: this script reads Debian packages"

# Copies the files of a Debian package that live under /usr/include, /usr/lib or
# /usr/share/cmake into $PREFIX (with /usr stripped), keeping symlinks as symlinks.
carry_package() {
  local pkg="$1" f rel n=0
  dpkg-query -W -f='${Status}' "$pkg" 2> /dev/null | grep -q 'install ok installed' ||
    die "package $pkg is not installed (run scripts/setup.sh)"
  while IFS= read -r f; do
    case "$f" in
      /usr/include/* | /usr/lib/* | /usr/share/cmake/*) ;;
      *) continue ;;
    esac
    case "$f" in */pkgconfig/* | */doc/*) continue ;; esac
    [ -d "$f" ] && [ ! -L "$f" ] && continue
    rel="${f#/usr/}"
    mkdir -p "$PREFIX/$(dirname "$rel")"
    cp -P "$f" "$PREFIX/$rel"
    n=$((n + 1))
  done < <(dpkg-query -L "$pkg")
  printf 'pack_deps: %-22s %3d files\n' "$pkg" "$n"
}

rm -rf "$CARRY"
mkdir -p "$PREFIX"

carry_package librandom123-dev
carry_package libcli11-dev
carry_package libbenchmark-dev
# The shared library itself (libbenchmark.so -> libbenchmark.so.1debian -> libbenchmark.so.1.x)
# is in the runtime package.
runtime_pkg="$(dpkg-query -W -f='${Package}\n' 'libbenchmark1*' 2> /dev/null | head -n 1 || true)"
[ -n "$runtime_pkg" ] || die "the Google Benchmark runtime package (libbenchmark1*) is not installed"
carry_package "$runtime_pkg"

# GoogleTest sources: built on the GPU machine with its own compiler.
# LAPACKE (the CPU SVD of linalg): headers, and the shared libraries it loads. LAPACK and BLAS
# are the small reference builds (Debian's lapack/ and blas/ folders), not OpenBLAS, to keep the
# carry small; the C library itself stays the machine's. gpu_check.sh puts this folder on
# LD_LIBRARY_PATH.
carry_package liblapacke-dev
lapack_dir="$PREFIX/lib/x86_64-linux-gnu"
mkdir -p "$lapack_dir"
rm -f "$lapack_dir/liblapacke.a"
sys=/usr/lib/x86_64-linux-gnu
for lib in "$sys/liblapacke.so.3" "$sys/libtmglib.so.3" "$sys/lapack/liblapack.so.3" \
           "$sys/blas/libblas.so.3" "$sys/libgfortran.so.5" "$sys/libquadmath.so.0"; do
  [ -e "$lib" ] || die "$lib missing (packages liblapacke, liblapack3, libblas3)"
  cp -L "$lib" "$lapack_dir/$(basename "$lib")"
done
ln -sfn liblapacke.so.3 "$lapack_dir/liblapacke.so"
echo "pack_deps: LAPACKE runtime         $(du -sh "$lapack_dir" | cut -f1) (with the other carried libraries)"

# zlib (gzip IDX files): zlib.h, zconf.h and the static libz.a (built position-independent), so
# nothing shadows the machine's own libz.so.1 at run time; ZLIB_ROOT=$PREFIX finds them first.
carry_package zlib1g-dev
rm -f "$lapack_dir/libz.so"  # a link to the runtime package's file: not carried

# nlohmann-json (safetensors headers, header-only) and CBLAS (nn's CPU GEMMs): the reference
# BLAS carried above has the cblas_* symbols; its header and an unversioned link for find_library.
carry_package nlohmann-json3-dev
cblas_h=/usr/include/x86_64-linux-gnu/cblas-netlib.h
[ -f "$cblas_h" ] || die "$cblas_h missing (package libblas-dev)"
cp "$cblas_h" "$PREFIX/include/cblas.h"
cp /usr/include/x86_64-linux-gnu/cblas_mangling.h "$PREFIX/include/"
ln -sfn libblas.so.3 "$lapack_dir/libblas.so"

[ -f /usr/src/googletest/CMakeLists.txt ] || die "/usr/src/googletest missing (package googletest)"
cp -a /usr/src/googletest "$CARRY/googletest"
echo "pack_deps: googletest sources      $(du -sh "$CARRY/googletest" | cut -f1)"

# Checks: every link resolves inside the carry, the configs are where CMake looks.
while IFS= read -r link; do
  [ -e "$link" ] || die "dangling link in the carry: $link -> $(readlink "$link")"
done < <(find "$CARRY" -type l)
[ -f "$PREFIX/include/Random123/philox.h" ] || die "Random123 headers not carried"
[ -f "$PREFIX/include/CLI/CLI.hpp" ] || die "CLI11 headers not carried"
[ -f "$PREFIX/include/lapacke.h" ] || die "LAPACKE headers not carried"
[ -f "$PREFIX/include/zlib.h" ] && [ -f "$lapack_dir/libz.a" ] || die "zlib not carried"
[ -f "$PREFIX/include/nlohmann/json.hpp" ] || die "nlohmann-json headers not carried"
[ -f "$PREFIX/include/cblas.h" ] || die "the CBLAS header not carried"
find "$PREFIX" -path '*/cmake/benchmark/benchmarkConfig.cmake' | grep -q . ||
  die "benchmarkConfig.cmake not carried"

# Where this tree stands, for the report when the GPU machine's copy has no .git.
{
  echo "packed_at=$(date -u '+%F %H:%M UTC')"
  if git -C "$ROOT" rev-parse --verify -q HEAD > /dev/null 2>&1; then
    echo "commit=$(git -C "$ROOT" rev-parse HEAD)"
    dirty="$(git -C "$ROOT" status --porcelain --untracked-files=normal 2> /dev/null || true)"
    if [ -z "$dirty" ]; then
      echo "state=clean"
    else
      echo "state=uncommitted"
      echo "diffstat:"
      git -C "$ROOT" diff --stat HEAD 2> /dev/null | tail -n 40 || true
      printf '%s\n' "$dirty" | grep '^??' | sed 's/^?? /new file: /' | head -n 40 || true
    fi
  else
    echo "commit=unknown"
    echo "state=unknown"
  fi
} > "$CARRY/SOURCE_STATE"

size_kib="$(du -sk "$CARRY" | cut -f1)"
echo "pack_deps: $CARRY: $(du -sh "$CARRY" | cut -f1) ($(find "$CARRY" -type f | wc -l) files)"
[ "$size_kib" -le $((LIMIT_MIB * 1024)) ] || die "the carry is over ${LIMIT_MIB} MiB"
echo "pack_deps: on the GPU machine, from the repository root: bash profiling/gpu_check.sh"
