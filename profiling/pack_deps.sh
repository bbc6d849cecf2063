#!/usr/bin/env bash
# Fills .carry/ (git-ignored) with what the GPU machine lacks -- it has the CUDA toolkit, CMake,
# ninja, a C++ compiler and python3, but no Debian -dev packages and no network -- and checks it.
# Run it HERE, on a dev machine where scripts/setup.sh has installed the packages:
#
#   bash profiling/pack_deps.sh            fill .carry/ from this machine's packages, then check
#   bash profiling/pack_deps.sh --check    check an existing .carry/ (gpu_check.sh runs this on
#                                          the GPU machine, before it builds)
#
# Layout (a CMake prefix: -DCMAKE_PREFIX_PATH=.carry/prefix finds the packages' configs):
#   prefix/include/Random123/                  librandom123-dev (header-only)
#   prefix/include/CLI/, share/cmake/CLI11/    libcli11-dev (header-only) and its CMake config
#   prefix/include/nlohmann/, share/cmake/nlohmann_json/   nlohmann-json3-dev (header-only)
#   prefix/include/benchmark/, lib/<arch>/libbenchmark.so*, lib/<arch>/cmake/benchmark/
#                                              Google Benchmark (libbenchmark-dev + runtime)
#   prefix/include/lapack*.h, lib/<arch>/liblapacke.so*   LAPACKE (the CPU SVD), with the shared
#                                              libraries it loads: reference LAPACK and BLAS,
#                                              gfortran, quadmath (not OpenBLAS: 36 MB)
#   prefix/include/cblas.h, lib/<arch>/libblas.so, libcblas.so   CBLAS (cblas_sgemm, ...): the
#                                              reference BLAS, which carries the CBLAS symbols
#   prefix/include/zlib.h, lib/<arch>/libz.a   zlib (static, so nothing shadows the machine's
#                                              libz.so.1 at run time)
#   googletest/                                GoogleTest sources, built inside the project's
#                                              build (-DGENAI_GTEST_SOURCE_DIR) by the machine's
#                                              own compiler: no ABI to match
#   MANIFEST                                   the newest glibc symbol version the carried
#                                              libraries need
#   SOURCE_STATE, SOURCE_FILES                 the commit, whether the tree had uncommitted
#                                              changes, and a hash of its files, for the report
#                                              when the GPU copy has no .git
# The check: every expected file is there, no link dangles, this machine's glibc is new enough,
# a probe program compiled against the carried headers links and runs with the carried
# LAPACKE, CBLAS and zlib and loads nothing else from outside the carry but the C/C++ runtime,
# and a Google Benchmark probe links and runs ("pack_deps: benchmark: ok" tells gpu_check.sh
# to build genai_bench against it).
# Environment: GENAI_CARRY (default .carry), GENAI_CARRY_LIMIT_MIB (default 40).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARRY="${GENAI_CARRY:-$ROOT/.carry}"
case "$CARRY" in /*) ;; *) CARRY="$ROOT/$CARRY" ;; esac
LIMIT_MIB="${GENAI_CARRY_LIMIT_MIB:-40}"
PREFIX="$CARRY/prefix"
ARCH=x86_64-linux-gnu
LIB="$PREFIX/lib/$ARCH"

die() { echo "pack_deps: ERROR: $*" >&2; exit 1; }

# ---- check -------------------------------------------------------------------------------------

version_ge() {  # a >= b for dotted versions
  [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" = "$2" ]
}

check() {
  local bad=0 f link
  [ -d "$PREFIX" ] || die "$PREFIX missing: run 'bash profiling/pack_deps.sh' on a dev machine"
  for f in include/Random123/philox.h include/CLI/CLI.hpp include/nlohmann/json.hpp \
           share/cmake/nlohmann_json/nlohmann_jsonConfig.cmake include/lapacke.h \
           include/cblas.h include/zlib.h include/benchmark/benchmark.h \
           "lib/$ARCH/cmake/benchmark/benchmarkConfig.cmake" "lib/$ARCH/libbenchmark.so" \
           "lib/$ARCH/liblapacke.so" "lib/$ARCH/libblas.so" "lib/$ARCH/libcblas.so" \
           "lib/$ARCH/libz.a"; do
    [ -e "$PREFIX/$f" ] || { echo "pack_deps: MISSING prefix/$f"; bad=1; }
  done
  for f in googletest/CMakeLists.txt SOURCE_STATE SOURCE_FILES MANIFEST; do
    [ -e "$CARRY/$f" ] || { echo "pack_deps: MISSING $f"; bad=1; }
  done
  while IFS= read -r link; do
    [ -e "$link" ] || { echo "pack_deps: ERROR: dangling link ${link#"$CARRY"/} -> $(readlink "$link")"; bad=1; }
  done < <(find "$CARRY" -type l)

  local need have
  need="$(sed -n 's/^glibc_min=//p' "$CARRY/MANIFEST" 2> /dev/null)"
  have="$(getconf GNU_LIBC_VERSION 2> /dev/null | awk '{print $2}')"
  if [ -n "$need" ] && [ -n "$have" ]; then
    if version_ge "$have" "$need"; then
      echo "pack_deps: glibc $have here, the carried libraries need >= $need: ok"
    else
      echo "pack_deps: ERROR: glibc $have here, the carried libraries need >= $need"; bad=1
    fi
  fi

  local cxx="${CXX:-}" tmp
  [ -n "$cxx" ] || cxx="$(command -v c++ || command -v g++ || true)"
  [ -n "$cxx" ] || { echo "pack_deps: ERROR: no C++ compiler (c++, g++ or \$CXX) for the probes"; return 1; }
  tmp="$(mktemp -d)"
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" RETURN
  cat > "$tmp/linalg.cpp" << 'EOF'
// The carried LAPACKE, CBLAS and zlib, called once each.
#include <cblas.h>
#include <lapacke.h>
#include <zlib.h>
#include <cmath>
#include <cstdio>
int main() {
  const float a[4] = {1, 2, 3, 4}, b[4] = {1, 0, 0, 1};
  float c[4] = {0, 0, 0, 0};
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 2, 1.f, a, 2, b, 2, 0.f, c, 2);
  double m[4] = {3, 0, 0, 4}, s[2], u[4], vt[4], work[2];
  const int info = LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'A', 'A', 2, 2, m, 2, s, u, 2, vt, 2, work);
  const bool ok = c[3] == 4.f && info == 0 && std::abs(s[0] - 4) < 1e-12 && zlibVersion()[0] != 0;
  std::printf("cblas_sgemm c[3] = %g, LAPACKE_dgesvd info %d s = {%g, %g}, zlib %s\n", c[3], info,
              s[0], s[1], zlibVersion());
  return ok ? 0 : 1;
}
EOF
  cat > "$tmp/bench.cpp" << 'EOF'
#include <benchmark/benchmark.h>
static void BM_probe(benchmark::State& s) { for (auto _ : s) benchmark::DoNotOptimize(s.iterations()); }
BENCHMARK(BM_probe);
BENCHMARK_MAIN();
EOF
  local flags=(-std=c++17 -O1 "-I$PREFIX/include" "-L$LIB" "-Wl,-rpath,$LIB")
  "$cxx" "${flags[@]}" "$tmp/linalg.cpp" -o "$tmp/linalg" -llapacke -lcblas -l:libz.a \
    > "$tmp/linalg.log" 2>&1 &
  local linalg_pid=$!
  "$cxx" "${flags[@]}" "$tmp/bench.cpp" -o "$tmp/bench" -lbenchmark -pthread > "$tmp/bench.log" 2>&1 &
  local bench_pid=$!
  if wait "$linalg_pid" && LD_LIBRARY_PATH="$LIB" "$tmp/linalg" >> "$tmp/linalg.log" 2>&1; then
    # Libraries loaded from outside the carry, other than the C and C++ runtime: none allowed.
    local outside
    outside="$(LD_LIBRARY_PATH="$LIB" ldd "$tmp/linalg" | awk '/=>/ {print $3}' | grep -v "^$CARRY/" |
               grep -vE '/(libc|libm|libstdc\+\+|libgcc_s|libpthread|libdl|librt|ld-linux[^/]*)\.so[.0-9]*$' || true)"
    if [ -n "$outside" ]; then
      echo "pack_deps: ERROR: the probe loads libraries from outside the carry: $(printf '%s' "$outside" | tr '\n' ' ')"; bad=1
    else
      echo "pack_deps: lapacke, cblas, zlib: ok ($(tail -n 1 "$tmp/linalg.log"))"
    fi
  else
    echo "pack_deps: ERROR: the LAPACKE/CBLAS/zlib probe did not build or run:"
    sed 's/^/pack_deps:   /' "$tmp/linalg.log" | tail -n 15
    bad=1
  fi
  if wait "$bench_pid" && LD_LIBRARY_PATH="$LIB" "$tmp/bench" --benchmark_list_tests >> "$tmp/bench.log" 2>&1; then
    echo "pack_deps: benchmark: ok"
  else
    echo "pack_deps: ERROR: benchmark: the carried Google Benchmark does not link or run here:"
    sed 's/^/pack_deps:   /' "$tmp/bench.log" | tail -n 15
    bad=1
  fi
  echo "pack_deps: $CARRY: $(du -sh "$CARRY" | cut -f1), source: $(grep -E '^(commit|state)=' "$CARRY/SOURCE_STATE" 2> /dev/null | paste -sd ' ')"
  return "$bad"
}

if [ "${1:-}" = "--check" ]; then
  check
  exit $?
fi

# ---- fill ----------------------------------------------------------------------------------------

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
  printf 'pack_deps: %-24s %3d files\n' "$pkg" "$n"
}

rm -rf "$CARRY"
mkdir -p "$LIB"

carry_package librandom123-dev
carry_package libcli11-dev
carry_package nlohmann-json3-dev
carry_package libbenchmark-dev
# The shared library itself (libbenchmark.so -> libbenchmark.so.1debian -> libbenchmark.so.1.x)
# is in the runtime package.
runtime_pkg="$(dpkg-query -W -f='${Package}\n' 'libbenchmark1*' 2> /dev/null | head -n 1 || true)"
[ -n "$runtime_pkg" ] || die "the Google Benchmark runtime package (libbenchmark1*) is not installed"
carry_package "$runtime_pkg"
carry_package liblapacke-dev
rm -f "$LIB/liblapacke.a"
carry_package zlib1g-dev
rm -f "$LIB/libz.so"  # a link to the runtime package's file: the static libz.a is carried

# The shared libraries LAPACKE loads (the reference LAPACK and BLAS, whatever the alternatives
# point to here) and the CBLAS header of the reference BLAS, whose libblas.so.3 has cblas_*.
sys=/usr/lib/$ARCH
for lib in "$sys/liblapacke.so.3" "$sys/libtmglib.so.3" "$sys/lapack/liblapack.so.3" \
           "$sys/blas/libblas.so.3" "$sys/libgfortran.so.5" "$sys/libquadmath.so.0"; do
  [ -e "$lib" ] || die "$lib missing (packages liblapacke, liblapack3, libblas3)"
  cp -L "$lib" "$LIB/$(basename "$lib")"
done
ln -sfn liblapacke.so.3 "$LIB/liblapacke.so"
ln -sfn liblapack.so.3 "$LIB/liblapack.so"
ln -sfn libblas.so.3 "$LIB/libblas.so"
ln -sfn libblas.so.3 "$LIB/libcblas.so"
[ "$(nm -D "$LIB/libblas.so.3" | grep -c ' T cblas_[sd]gemm$')" = 2 ] || die "$sys/blas/libblas.so.3 has no cblas_sgemm / cblas_dgemm"
for h in cblas-netlib.h cblas_mangling.h; do
  [ -f "/usr/include/$ARCH/$h" ] || die "/usr/include/$ARCH/$h missing (package libblas-dev)"
done
cp "/usr/include/$ARCH/cblas-netlib.h" "$PREFIX/include/cblas.h"
cp "/usr/include/$ARCH/cblas_mangling.h" "$PREFIX/include/"
echo "pack_deps: LAPACKE + LAPACK + BLAS/CBLAS $(du -ch "$LIB"/lib{lapacke,lapack,blas,tmglib,gfortran,quadmath}.so.* | tail -n 1 | cut -f1)"

# The same libraries under prefix/lib too, where CMake looks on systems without a multiarch
# folder (CMAKE_LIBRARY_ARCHITECTURE empty: find_library searches <prefix>/lib only).
for f in "$LIB"/*; do
  [ -f "$f" ] && ln -sfn "$ARCH/$(basename "$f")" "$PREFIX/lib/$(basename "$f")"
done

[ -f /usr/src/googletest/CMakeLists.txt ] || die "/usr/src/googletest missing (package googletest)"
cp -a /usr/src/googletest "$CARRY/googletest"
echo "pack_deps: googletest sources        $(du -sh "$CARRY/googletest" | cut -f1)"

# The newest glibc symbol version any carried library needs: the GPU machine's must be as new.
glibc_min="$(find "$LIB" -name '*.so*' -type f -exec objdump -T {} + 2> /dev/null |
             grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n 1)"
{
  echo "packed_on=$(uname -n) ($(. /etc/os-release 2> /dev/null && echo "$PRETTY_NAME"))"
  echo "glibc_min=${glibc_min:-0}"
} > "$CARRY/MANIFEST"

# Where this tree stands, for the report when the GPU machine's copy has no .git.
python3 "$ROOT/profiling/gpu_report.py" source-state --root "$ROOT" --write "$CARRY" |
  sed 's/^/pack_deps: source /'

size_kib="$(du -sk "$CARRY" | cut -f1)"
echo "pack_deps: $CARRY: $((size_kib / 1024)) MiB ($(find "$CARRY" -type f | wc -l) files), limit $LIMIT_MIB MiB"
[ "$size_kib" -le $((LIMIT_MIB * 1024)) ] ||
  die "the carry is $((size_kib / 1024)) MiB, over the limit of $LIMIT_MIB MiB (with the tree it must stay under the lease's 64 MiB)"
check || die "the carry just packed does not pass its own check"
echo "pack_deps: on the GPU machine, from the repository root: bash profiling/gpu_check.sh --out \"\$OUT\""
