// Shared harness of genai_bench: timing, work counters, the device's measured peaks.
//
// Conventions (profiling/README.md has the long form):
//   * GPU benchmarks are registered with ->UseManualTime() and time each call with CUDA events
//     after a warm-up (time_gpu). Calls are kept one deep in flight, so the GPU never idles
//     between the start event and the kernel while the host launches it.
//   * CPU benchmarks are registered with ->UseRealTime() and time with the wall clock (time_cpu).
//   * Every benchmark reports, per call: `bytes` moved (and `flop` where it means something);
//     as rates over the measured time: `bw` (bytes/s, printed with SI prefixes, so 2.95T/s is
//     2950 GB/s) and `flop_rate` (flop/s); on the GPU also `peak_frac`, the achieved rate over
//     the device's peak measured in the same run (D2D copy bandwidth for memory-bound kernels,
//     cuBLAS SGEMM for compute-bound ones).
//   * Memory-bound GPU inputs are at least 64 MiB, and rotated across several copies when one
//     copy is not at least twice the L2 cache (l2_rotation_sets), so no call reads from L2 what
//     the previous call left there.
//   * Without a usable CUDA device (or in a CPU-only build) GPU benchmarks call
//     state.SkipWithError("no CUDA device: ...") and return; they never crash.
#pragma once

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "genai/genai.hpp"

namespace genai::bench {

// ---- devices -------------------------------------------------------------------------------

// genai::Context::cuda_device_count() > 0 (checked once).
bool gpu_available();
// Why gpu_available() is false, in words.
std::string gpu_unavailable_reason();
// The first CUDA device, created on first use. Requires gpu_available().
const Context& gpu_context();
// If no GPU is usable: state.SkipWithError("no CUDA device: <reason>") and false.
bool require_gpu(benchmark::State& state);

// The device's peaks, measured once, on first use, and printed to stderr. A rate that could
// not be measured is 0 (and the reason is printed). GENAI_BENCH_SKIP_PEAKS=1 in the
// environment skips the measurement (all 0, no peak_frac), e.g. under Nsight Compute.
struct DevicePeaks {
  std::string device_name;
  std::size_t l2_bytes = 0;
  double dram_nominal_bytes_per_s = 0;  // 2 * memory clock * bus width (data sheet figure)
  // cudaMemcpy device-to-device of copy_bytes: read + write bytes per second.
  std::size_t copy_bytes = 0;
  double copy_bytes_per_s = 0;
  // cuBLAS GEMM, n = gemm_n, square, column-major, 2 n^3 flop per call.
  int gemm_n = 0;
  double sgemm_flop_per_s = 0;  // cublasSgemm, fp32 on the CUDA cores
  double tf32_flop_per_s = 0;   // cublasGemmEx, fp32 data, CUBLAS_COMPUTE_32F_FAST_TF32
  double fp16_flop_per_s = 0;   // cublasGemmEx, fp16 A/B, fp32 C and accumulation
};
const DevicePeaks& device_peaks();

// How many copies of a `bytes_per_set` input to rotate through so that consecutive calls touch
// at least 2x the L2 cache (1 when one copy is already that large; at most 8).
int l2_rotation_sets(std::size_t bytes_per_set);

// ---- timing and counters -------------------------------------------------------------------

struct Work {
  double bytes = 0;  // bytes that must cross DRAM (or host memory) per call
  double flop = 0;   // floating-point operations per call, 0 when not meaningful
  // The roof peak_frac compares with: bytes against the copy bandwidth (memory-bound
  // kernels), or flop against a cuBLAS GEMM rate.
  enum class Roof { CopyBandwidth, Sgemm, Tf32Gemm, Fp16Gemm } roof = Roof::CopyBandwidth;
};

// One call of the measured operation; `call` counts calls from 0 (warm-up included), for
// rotating inputs: use set call % sets.
using GpuOp = std::function<void(std::int64_t call)>;

// Runs `op` `warmup` times, then once per benchmark iteration, timing each call with CUDA
// events on gpu_context().stream() and reporting it with state.SetIterationTime. Sets the
// counters of `work`. Benchmarks using it must be registered with ->UseManualTime().
// Exceptions (genai::Error, CUDA errors) become state.SkipWithError.
void time_gpu(benchmark::State& state, const GpuOp& op, const Work& work, int warmup = 3);

// Runs `op` once as warm-up, then once per iteration under the wall clock (register with
// ->UseRealTime()). Sets the counters of `work` (no peak fraction on the CPU).
void time_cpu(benchmark::State& state, const std::function<void()>& op, const Work& work);

// Runs `body`; an exception becomes state.SkipWithError(what) instead of ending the program.
void guarded(benchmark::State& state, const std::function<void()>& body);

// ---- inputs --------------------------------------------------------------------------------

// `rows` random discrete distributions of K entries, row-major, on ctx's device: Philox
// uniforms on (0, 1] from `seed`, each row divided by its sum (so every entry is > 0 and each
// row sums to 1 within float rounding, well inside InfoOptions::sum_tolerance).
Buffer<float> random_distributions(const Context& ctx, std::int64_t rows, std::int64_t K,
                                   std::uint64_t seed);

// Registers `f` to run at the end of main(), before the CUDA runtime shuts down (for device
// memory kept alive between benchmark runs).
void at_exit(std::function<void()> f);

// One value of type T kept alive between the calls Google Benchmark makes of one benchmark
// function (it calls it several times while sizing the run, and once per repetition), rebuilt
// by make() when `key` differs from the last call's. One slot per call site, so memory held is
// one workload per site; released by at_exit.
template <class T, class Key, class Make>
T& cached(const Key& key, Make&& make) {
  struct Slot {
    Key key{};
    std::unique_ptr<T> value;
  };
  static Slot slot;
  static const bool registered = (at_exit([] { slot.value.reset(); }), true);
  (void)registered;
  if (!slot.value || !(slot.key == key)) {
    slot.value.reset();  // free the old workload before building the new one
    slot.value = std::make_unique<T>(std::forward<Make>(make)());
    slot.key = key;
  }
  return *slot.value;
}

}  // namespace genai::bench
