// The harness behind bench_common.hpp, the device-peak benchmarks (Gpu_Peak/...) and main().
#include "profiling/bench_common.hpp"

#include "cpu_reference/parallel.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <vector>

#if GENAI_WITH_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "genai/cuda_check.hpp"
#endif

namespace genai::bench {

// ---- bookkeeping ---------------------------------------------------------------------------

namespace {
std::vector<std::function<void()>>& exit_hooks() {
  static std::vector<std::function<void()>> hooks;
  return hooks;
}

void run_exit_hooks() {
  auto& hooks = exit_hooks();
  while (!hooks.empty()) {  // newest first, like destructors
    auto f = std::move(hooks.back());
    hooks.pop_back();
    f();
  }
}

std::string skip_message() { return "no CUDA device: " + gpu_unavailable_reason(); }
}  // namespace

void at_exit(std::function<void()> f) { exit_hooks().push_back(std::move(f)); }

void guarded(benchmark::State& state, const std::function<void()>& body) {
  try {
    body();
  } catch (const std::exception& e) {
    // Leaving the iteration loop through an exception is allowed once an error is recorded.
    if (!state.error_occurred()) state.SkipWithError(e.what());
  }
}

// ---- devices -------------------------------------------------------------------------------

bool gpu_available() {
  static const bool ok = Context::cuda_device_count() > 0;
  return ok;
}

std::string gpu_unavailable_reason() {
  const std::string why = Context::cuda_unavailable_reason();
  return why.empty() ? "none" : why;
}

const Context& gpu_context() {
  static const Context ctx = Context::cuda(0);
  return ctx;
}

bool require_gpu(benchmark::State& state) {
  if (gpu_available()) return true;
  state.SkipWithError(skip_message().c_str());
  return false;
}

// ---- counters ------------------------------------------------------------------------------

namespace {
// `seconds`: the total time the iterations took (the manual time); 0 skips peak_frac.
void set_counters(benchmark::State& state, const Work& work, double seconds, double peak) {
  using benchmark::Counter;
  state.counters["bytes"] = Counter(work.bytes);
  state.counters["bw"] = Counter(work.bytes, Counter::kIsIterationInvariantRate);
  if (work.flop > 0) {
    state.counters["flop"] = Counter(work.flop);
    state.counters["flop_rate"] = Counter(work.flop, Counter::kIsIterationInvariantRate);
  }
  if (peak > 0 && seconds > 0) {
    const double amount = work.roof == Work::Roof::CopyBandwidth ? work.bytes : work.flop;
    state.counters["peak_frac"] =
        Counter(amount * static_cast<double>(state.iterations()) / seconds / peak);
  }
}

// Divides each row of a host [rows x K] array by its sum (in double).
void normalize_rows(float* x, std::int64_t rows, std::int64_t K) {
  for (std::int64_t r = 0; r < rows; ++r) {
    double sum = 0;
    for (std::int64_t k = 0; k < K; ++k) sum += x[r * K + k];
    for (std::int64_t k = 0; k < K; ++k) x[r * K + k] = static_cast<float>(x[r * K + k] / sum);
  }
}
}  // namespace

void time_cpu(benchmark::State& state, const std::function<void()>& op, const Work& work) {
  guarded(state, [&] {
    op();  // warm-up: first-touch page faults, caches, branch predictors
    for (auto _ : state) {
      op();
      benchmark::ClobberMemory();
    }
    set_counters(state, work, 0, 0);
  });
}

#if GENAI_WITH_CUDA

// ---- CUDA helpers --------------------------------------------------------------------------

namespace {

struct Event {
  cudaEvent_t e = nullptr;
  Event() { GENAI_CUDA_CHECK(cudaEventCreate(&e)); }
  ~Event() {
    if (e) cudaEventDestroy(e);
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
};

double seconds_between(const Event& start, const Event& stop) {
  float ms = 0;
  GENAI_CUDA_CHECK(cudaEventElapsedTime(&ms, start.e, stop.e));
  return static_cast<double>(ms) * 1e-3;
}

// Median of `reps` event-timed calls, after `warmup` calls. All calls are queued back to back
// before the host waits, so the GPU never idles at a start event.
double median_seconds(const Context& ctx, const std::function<void()>& op, int warmup,
                      int reps) {
  for (int i = 0; i < warmup; ++i) op();
  GENAI_CUDA_CHECK(cudaStreamSynchronize(ctx.stream()));
  std::vector<Event> start(reps), stop(reps);
  for (int i = 0; i < reps; ++i) {
    GENAI_CUDA_CHECK(cudaEventRecord(start[i].e, ctx.stream()));
    op();
    GENAI_CUDA_CHECK(cudaEventRecord(stop[i].e, ctx.stream()));
  }
  GENAI_CUDA_CHECK(cudaStreamSynchronize(ctx.stream()));
  std::vector<double> t(reps);
  for (int i = 0; i < reps; ++i) t[i] = seconds_between(start[i], stop[i]);
  std::sort(t.begin(), t.end());
  return reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
}

// The harness's own cuBLAS handle (the library's ctx.cublas() keeps its settings untouched).
cublasHandle_t bench_cublas() {
  static const cublasHandle_t handle = [] {
    cublasHandle_t h = nullptr;
    GENAI_CUBLAS_CHECK(cublasCreate(&h));
    GENAI_CUBLAS_CHECK(cublasSetStream(h, gpu_context().stream()));
    at_exit([h] { cublasDestroy(h); });
    return h;
  }();
  return handle;
}

std::size_t free_device_bytes() {
  std::size_t free_b = 0, total_b = 0;
  GENAI_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  return free_b;
}

constexpr std::size_t kMiB = std::size_t{1} << 20;

// The copy of the D2D peak: 1 GiB, or a quarter of the free memory when that is smaller (so
// source + destination take at most half of it), in whole MiB.
std::size_t copy_peak_bytes() {
  const std::size_t n = std::min<std::size_t>(std::size_t{1} << 30, free_device_bytes() / 4);
  if (n < 64 * kMiB)
    throw Error(detail::concat("only ", free_device_bytes() / kMiB,
                               " MiB of device memory free: too little for the copy peak"));
  return n / kMiB * kMiB;
}

struct CopyInputs {
  Buffer<unsigned char> src, dst;
  CopyInputs(const Context& ctx, std::size_t n) : src(ctx, n), dst(ctx, n) {
    src.fill_bytes(0x5A);
    dst.fill_bytes(0);
  }
  void copy(const Context& ctx) {
    GENAI_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), src.bytes(),
                                     cudaMemcpyDeviceToDevice, ctx.stream()));
  }
};

constexpr int kGemmN = 8192;

// Square GEMM operands, random (not constant: data-dependent power draw would flatter the
// peak). fp16 halves are drawn on the host: sign random, magnitude in [0.25, 1).
struct GemmInputs {
  int n;
  Buffer<float> a, b, c;
  Buffer<std::uint16_t> a16, b16;

  GemmInputs(const Context& ctx, int n_)
      : n(n_), a(ctx, elems()), b(ctx, elems()), c(ctx, elems()), a16(ctx, elems()),
        b16(ctx, elems()) {
    fill_uniform(ctx, a.data(), a.size(), RngKey{11}, -1.0f, 1.0f);
    fill_uniform(ctx, b.data(), b.size(), RngKey{12}, -1.0f, 1.0f);
    c.fill_bytes(0);
    std::vector<std::uint16_t> h(elems());
    std::uint64_t s = 0x9E3779B97F4A7C15ull;
    for (auto* buf : {&a16, &b16}) {
      for (auto& v : h) {  // xorshift64
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        const auto r = static_cast<std::uint16_t>(s >> 40);
        // sign | exponent field 13 or 14 (2^-2 or 2^-1) | 10 random mantissa bits
        v = static_cast<std::uint16_t>((r & 0x8000u) | ((13u + ((r >> 10) & 1u)) << 10) |
                                       (r & 0x3FFu));
      }
      buf->copy_from_host(h);
    }
  }
  std::size_t elems() const { return static_cast<std::size_t>(n) * static_cast<std::size_t>(n); }
  double flop() const { return 2.0 * n * n * static_cast<double>(n); }

  void sgemm() {
    const float one = 1.0f, zero = 0.0f;
    GENAI_CUBLAS_CHECK(cublasSgemm(bench_cublas(), CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one,
                                   a.data(), n, b.data(), n, &zero, c.data(), n));
  }
  void tf32() {
    const float one = 1.0f, zero = 0.0f;
    GENAI_CUBLAS_CHECK(cublasGemmEx(bench_cublas(), CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one,
                                    a.data(), CUDA_R_32F, n, b.data(), CUDA_R_32F, n, &zero,
                                    c.data(), CUDA_R_32F, n, CUBLAS_COMPUTE_32F_FAST_TF32,
                                    CUBLAS_GEMM_DEFAULT));
  }
  void fp16() {
    const float one = 1.0f, zero = 0.0f;
    GENAI_CUBLAS_CHECK(cublasGemmEx(bench_cublas(), CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one,
                                    a16.data(), CUDA_R_16F, n, b16.data(), CUDA_R_16F, n, &zero,
                                    c.data(), CUDA_R_32F, n, CUBLAS_COMPUTE_32F,
                                    CUBLAS_GEMM_DEFAULT));
  }
};

// The largest power-of-two n <= kGemmN whose operands fit in half the free memory.
int gemm_peak_n() {
  const std::size_t budget = free_device_bytes() / 2;
  int n = kGemmN;
  while (n > 1024 && static_cast<std::size_t>(n) * n * (3 * 4 + 2 * 2) > budget) n /= 2;
  return n;
}

std::string format_version(int v) {  // 13000 -> "13.0"
  return detail::concat(v / 1000, ".", (v % 1000) / 10);
}

DevicePeaks measure_peaks() {
  DevicePeaks p;
  const Context& ctx = gpu_context();
  const int dev = ctx.device_index();
  cudaDeviceProp prop{};
  GENAI_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  p.device_name = prop.name;
  // Informational only: an attribute the driver does not report reads as 0.
  const auto attribute = [dev](cudaDeviceAttr a) {
    int v = 0;
    if (cudaDeviceGetAttribute(&v, a, dev) != cudaSuccess) {
      cudaGetLastError();
      v = 0;
    }
    return static_cast<double>(v);
  };
  p.l2_bytes = static_cast<std::size_t>(attribute(cudaDevAttrL2CacheSize));
  p.dram_nominal_bytes_per_s = 2.0 * attribute(cudaDevAttrMemoryClockRate) * 1e3 *
                               attribute(cudaDevAttrGlobalMemoryBusWidth) / 8.0;

  try {
    p.copy_bytes = copy_peak_bytes();
    CopyInputs in(ctx, p.copy_bytes);
    const double t = median_seconds(ctx, [&] { in.copy(ctx); }, 2, 10);
    p.copy_bytes_per_s = 2.0 * static_cast<double>(p.copy_bytes) / t;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "genai_bench: the D2D copy peak was not measured: %s\n", e.what());
  }
  try {
    p.gemm_n = gemm_peak_n();
    GemmInputs g(ctx, p.gemm_n);
    p.sgemm_flop_per_s = g.flop() / median_seconds(ctx, [&] { g.sgemm(); }, 2, 5);
    p.tf32_flop_per_s = g.flop() / median_seconds(ctx, [&] { g.tf32(); }, 2, 5);
    p.fp16_flop_per_s = g.flop() / median_seconds(ctx, [&] { g.fp16(); }, 2, 5);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "genai_bench: the GEMM peaks were not (all) measured: %s\n", e.what());
  }
  return p;
}

void print_peaks(const DevicePeaks& p) {
  const std::string nominal =
      p.dram_nominal_bytes_per_s > 0
          ? detail::concat(static_cast<long long>(p.dram_nominal_bytes_per_s * 1e-9), " GB/s")
          : std::string("not reported");
  std::fprintf(stderr, "genai_bench: device 0: %s, L2 %.0f MiB, nominal DRAM bandwidth %s\n",
               p.device_name.c_str(), static_cast<double>(p.l2_bytes) / kMiB, nominal.c_str());
  std::fprintf(stderr,
               "genai_bench: peak D2D copy %.1f GB/s (read + write bytes; %.0f MiB copied, median "
               "of 10)",
               p.copy_bytes_per_s * 1e-9, static_cast<double>(p.copy_bytes) / kMiB);
  if (p.dram_nominal_bytes_per_s > 0)
    std::fprintf(stderr, " = %.1f%% of nominal",
                 100.0 * p.copy_bytes_per_s / p.dram_nominal_bytes_per_s);
  std::fprintf(stderr, "\n");
  std::fprintf(stderr,
               "genai_bench: peak cuBLAS GEMM n=%d (median of 5): SGEMM %.1f TFLOP/s, TF32 %.1f "
               "TFLOP/s, FP16 (fp32 accumulate) %.1f TFLOP/s\n",
               p.gemm_n, p.sgemm_flop_per_s * 1e-12, p.tf32_flop_per_s * 1e-12,
               p.fp16_flop_per_s * 1e-12);
}

}  // namespace

const DevicePeaks& device_peaks() {
  static const DevicePeaks peaks = [] {
    DevicePeaks p;
    if (!gpu_available()) return p;
    if (const char* skip = std::getenv("GENAI_BENCH_SKIP_PEAKS"); skip && *skip && *skip != '0') {
      std::fprintf(stderr, "genai_bench: GENAI_BENCH_SKIP_PEAKS is set: no peaks, no peak_frac\n");
      return p;
    }
    try {
      p = measure_peaks();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "genai_bench: device peaks not measured: %s\n", e.what());
    }
    print_peaks(p);
    return p;
  }();
  return peaks;
}

int l2_rotation_sets(std::size_t bytes_per_set) {
  static const std::size_t l2 = [] {
    int v = 0;
    if (!gpu_available()) return std::size_t{0};
    if (cudaDeviceGetAttribute(&v, cudaDevAttrL2CacheSize, gpu_context().device_index()) !=
        cudaSuccess) {
      cudaGetLastError();
      v = 64 << 20;  // unknown: assume a large L2 (more copies, never fewer)
    }
    return static_cast<std::size_t>(v);
  }();
  if (bytes_per_set == 0) return 1;
  const std::size_t sets = (2 * l2 + bytes_per_set - 1) / bytes_per_set;
  return static_cast<int>(std::clamp<std::size_t>(sets, 1, 8));
}

namespace {
double peak_rate(Work::Roof roof) {
  const DevicePeaks& p = device_peaks();
  switch (roof) {
    case Work::Roof::CopyBandwidth: return p.copy_bytes_per_s;
    case Work::Roof::Sgemm: return p.sgemm_flop_per_s;
    case Work::Roof::Tf32Gemm: return p.tf32_flop_per_s;
    case Work::Roof::Fp16Gemm: return p.fp16_flop_per_s;
  }
  return 0;
}

}  // namespace

void time_gpu(benchmark::State& state, const GpuOp& op, const Work& work, int warmup) {
  if (!require_gpu(state)) return;
  guarded(state, [&] {
    const double peak = peak_rate(work.roof);  // measured now if this is the first GPU benchmark
    const Context& ctx = gpu_context();
    const cudaStream_t stream = ctx.stream();
    std::int64_t call = 0;
    for (; call < warmup; ++call) op(call);
    GENAI_CUDA_CHECK(cudaStreamSynchronize(stream));

    // One timed call always in flight: iteration i queues call i + 1, then waits for call i.
    // The GPU reaches call i + 1's start event while the host is still waiting, so no launch
    // latency falls between the events. The call queued by the last iteration is not reported.
    Event start[2], stop[2];
    int cur = 0;
    GENAI_CUDA_CHECK(cudaEventRecord(start[cur].e, stream));
    op(call++);
    GENAI_CUDA_CHECK(cudaEventRecord(stop[cur].e, stream));
    double total = 0;
    for (auto _ : state) {
      const int next = cur ^ 1;
      GENAI_CUDA_CHECK(cudaEventRecord(start[next].e, stream));
      op(call++);
      GENAI_CUDA_CHECK(cudaEventRecord(stop[next].e, stream));
      GENAI_CUDA_CHECK(cudaEventSynchronize(stop[cur].e));
      const double s = seconds_between(start[cur], stop[cur]);
      state.SetIterationTime(s);
      total += s;
      cur = next;
    }
    GENAI_CUDA_CHECK(cudaEventSynchronize(stop[cur].e));
    GENAI_CUDA_CHECK(cudaGetLastError());
    set_counters(state, work, total, peak);
  });
}

Buffer<float> random_distributions(const Context& ctx, std::int64_t rows, std::int64_t K,
                                   std::uint64_t seed) {
  const auto n = static_cast<std::size_t>(rows * K);
  Buffer<float> raw(ctx, n);
  fill_uniform(ctx, raw.data(), rows * K, RngKey{seed});
  if (!ctx.is_cuda()) {
    normalize_rows(raw.data(), rows, K);
    return raw;
  }
  // On the device: row sums with the library's l1_norm, their inverses on the host, then
  // p = raw * diag(1 / sums) with cuBLAS (raw row-major [rows x K] = column-major K x rows).
  Buffer<float> scale(ctx, static_cast<std::size_t>(rows));
  l1_norm(ctx, raw.data(), rows, K, scale.data());
  std::vector<float> inv = scale.to_host();
  for (float& v : inv) v = 1.0f / v;
  scale.copy_from_host(inv);
  Buffer<float> p(ctx, n);
  GENAI_CUBLAS_CHECK(cublasSdgmm(bench_cublas(), CUBLAS_SIDE_RIGHT, static_cast<int>(K),
                                 static_cast<int>(rows), raw.data(), static_cast<int>(K),
                                 scale.data(), 1, p.data(), static_cast<int>(K)));
  ctx.synchronize();  // `raw` and `scale` are freed on return
  return p;
}

namespace {
void add_device_context() {
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  cudaGetLastError();
  benchmark::AddCustomContext("cuda_runtime_version", format_version(runtime));
  benchmark::AddCustomContext("cuda_driver_version", driver ? format_version(driver) : "none");
  if (!gpu_available()) {
    benchmark::AddCustomContext("cuda_device", "none (" + gpu_unavailable_reason() + ")");
    return;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
    benchmark::AddCustomContext("cuda_device", detail::concat(prop.name, " (sm_", prop.major,
                                                              prop.minor, ", ",
                                                              prop.multiProcessorCount, " SMs)"));
}

// ---- the peaks as benchmarks: the same operations through the harness (peak_frac ~ 1
// checks that time_gpu and the one-off peak measurement agree) -------------------------------

enum class PeakOp { Copy, Sgemm, Tf32, Fp16 };

void Gpu_Peak(benchmark::State& state, PeakOp op) {
  if (!require_gpu(state)) return;
  guarded(state, [&] {
    const Context& ctx = gpu_context();
    Work work;
    if (op == PeakOp::Copy) {
      // The size of the measured peak; not cached, so the 2 GiB are freed when this ends.
      const std::size_t measured = device_peaks().copy_bytes;
      const std::size_t n = measured ? measured : copy_peak_bytes();
      CopyInputs in(ctx, n);
      work.bytes = 2.0 * static_cast<double>(n);
      time_gpu(state, [&](std::int64_t) { in.copy(ctx); }, work);
      return;
    }
    const int n = static_cast<int>(state.range(0));
    auto& g = cached<GemmInputs>(n, [&] { return GemmInputs(ctx, n); });
    work.flop = g.flop();
    const double nn = static_cast<double>(n) * n;
    switch (op) {
      case PeakOp::Sgemm:
        work.bytes = 3 * nn * 4;
        work.roof = Work::Roof::Sgemm;
        time_gpu(state, [&](std::int64_t) { g.sgemm(); }, work);
        break;
      case PeakOp::Tf32:
        work.bytes = 3 * nn * 4;
        work.roof = Work::Roof::Tf32Gemm;
        time_gpu(state, [&](std::int64_t) { g.tf32(); }, work);
        break;
      default:
        work.bytes = 2 * nn * 2 + nn * 4;
        work.roof = Work::Roof::Fp16Gemm;
        time_gpu(state, [&](std::int64_t) { g.fp16(); }, work);
        break;
    }
  });
}
}  // namespace

#else  // CPU-only build: no device, every GPU benchmark skips

const DevicePeaks& device_peaks() {
  static const DevicePeaks peaks;
  return peaks;
}

int l2_rotation_sets(std::size_t) { return 1; }

void time_gpu(benchmark::State& state, const GpuOp&, const Work&, int) {
  state.SkipWithError(skip_message().c_str());
}

Buffer<float> random_distributions(const Context& ctx, std::int64_t rows, std::int64_t K,
                                   std::uint64_t seed) {
  const auto n = static_cast<std::size_t>(rows * K);
  Buffer<float> raw(ctx, n);
  fill_uniform(ctx, raw.data(), rows * K, RngKey{seed});
  normalize_rows(raw.data(), rows, K);  // a CPU-only build has only CPU contexts
  return raw;
}

namespace {
void add_device_context() {
  benchmark::AddCustomContext("cuda_device", "none (" + gpu_unavailable_reason() + ")");
}

enum class PeakOp { Copy, Sgemm, Tf32, Fp16 };

void Gpu_Peak(benchmark::State& state, PeakOp) { state.SkipWithError(skip_message().c_str()); }
}  // namespace

#endif

namespace {
BENCHMARK_CAPTURE(Gpu_Peak, d2d_copy, PeakOp::Copy)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(Gpu_Peak, sgemm_cublas, PeakOp::Sgemm)
    ->ArgName("n")->Arg(8192)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(Gpu_Peak, gemm_tf32_cublas, PeakOp::Tf32)
    ->ArgName("n")->Arg(8192)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(Gpu_Peak, gemm_fp16_cublas, PeakOp::Fp16)
    ->ArgName("n")->Arg(8192)->UseManualTime()->Unit(benchmark::kMicrosecond);
}  // namespace

}  // namespace genai::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("genai_version", GENAI_VERSION);
  benchmark::AddCustomContext("genai_with_cuda", GENAI_WITH_CUDA ? "yes" : "no");
  // The CPU benchmarks' thread count (GENAI_NUM_THREADS, else OMP_NUM_THREADS, else the cores).
  benchmark::AddCustomContext("genai_cpu_threads",
                              std::to_string(genai::ref::num_threads()) +
                                  (genai::ref::have_openmp() ? "" : " (built without OpenMP: 1)"));
  genai::bench::add_device_context();
  benchmark::RunSpecifiedBenchmarks();
  genai::bench::run_exit_hooks();  // device memory and handles, before the runtime shuts down
  benchmark::Shutdown();
  return 0;
}
