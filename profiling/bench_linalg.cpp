// Benchmarks of the linalg module (kernels/linalg.cu, cpu_reference/linalg.cpp): the economy SVD
// (S, U and Vt) by each method on the shapes of issue 6, fp32.
//
// Work per call: bytes = the input read once (m n 4); flop = the thin SVD's count
// 6 m n^2 + 20 n^3 (Golub & Van Loan, R-SVD with U_1 and V; m >= n) per matrix, whatever the
// method, so flop_rate is an effective rate that ranks methods on one scale (the Gram method
// does fewer flops, the randomized one far fewer); peak_frac divides it by the measured SGEMM
// rate. Every GPU call includes its devInfo read-back (one stream synchronisation or more):
// that is part of the cost a user pays.
//
// GPU shapes (issue 6): tall-skinny 100000 x 256, square 4096 x 4096, many small 10000 x 16 x 16,
// top-k k = 32 of 50000 x 2000 (oversampling 10, 2 power iterations); and the edges of auto's
// rule (linalg.hpp, svd_method): 10000 x 32 x 32, one 16 x 16, randomized at k = 128 and 480.
// CPU shapes are smaller (LAPACK in float, sgesdd, on the CPU threads): 20000 x 256, 1024 x 1024,
// and, also for the Gram method, 4000 x 256 and 1000 x 16 x 16.
#include <algorithm>
#include <cstdint>
#include <tuple>
#include <vector>

#include "genai/linalg.hpp"
#include "profiling/bench_common.hpp"

namespace {

namespace bench = genai::bench;
using genai::SvdMethod;

struct SvdInputs {
  genai::Buffer<float> X, U, S, Vt;
};

SvdInputs make_inputs(const genai::Context& ctx, std::int64_t batch, std::int64_t m,
                      std::int64_t n, std::int64_t k) {
  const std::int64_t r = k > 0 ? k : std::min(m, n);
  SvdInputs in{genai::Buffer<float>(ctx, batch * m * n), genai::Buffer<float>(ctx, batch * m * r),
               genai::Buffer<float>(ctx, batch * r), genai::Buffer<float>(ctx, batch * r * n)};
  genai::fill_normal(ctx, in.X.data(), batch * m * n, {6, 0, 0});
  return in;
}

bench::Work work_of(std::int64_t batch, std::int64_t m, std::int64_t n) {
  const double M = static_cast<double>(std::max(m, n)), N = static_cast<double>(std::min(m, n));
  bench::Work w;
  w.bytes = 4.0 * batch * m * n;
  w.flop = batch * (6 * M * N * N + 20 * N * N * N);
  w.roof = bench::Work::Roof::Sgemm;
  return w;
}

void call(const genai::Context& ctx, SvdInputs& in, std::int64_t batch, std::int64_t m,
          std::int64_t n, std::int64_t k, SvdMethod method) {
  genai::svd_batched(ctx, in.X.data(), batch, m, n, {.method = method, .k = k},
                     {in.U.data(), in.S.data(), in.Vt.data()});
}

// Args: batch, m, n, k (0: economy), method (SvdMethod as int).
void Gpu_Svd(benchmark::State& state) {
  if (!bench::require_gpu(state)) return;
  bench::guarded(state, [&] {
    const std::int64_t batch = state.range(0), m = state.range(1), n = state.range(2),
                       k = state.range(3);
    const auto method = static_cast<SvdMethod>(state.range(4));
    const genai::Context& ctx = bench::gpu_context();
    auto& in = bench::cached<SvdInputs>(std::tuple{batch, m, n, k},
                                        [&] { return make_inputs(ctx, batch, m, n, k); });
    state.SetLabel(genai::to_string(method));
    bench::time_gpu(state, [&](std::int64_t) { call(ctx, in, batch, m, n, k, method); },
                    work_of(batch, m, n), 1);
  });
}

void Cpu_Svd(benchmark::State& state) {
  bench::guarded(state, [&] {
    const std::int64_t batch = state.range(0), m = state.range(1), n = state.range(2),
                       k = state.range(3);
    const auto method = static_cast<SvdMethod>(state.range(4));
    const genai::Context ctx = genai::Context::cpu();
    auto& in = bench::cached<SvdInputs>(std::tuple{batch, m, n, k},
                                        [&] { return make_inputs(ctx, batch, m, n, k); });
    state.SetLabel(genai::to_string(method));
    bench::time_cpu(state, [&] { call(ctx, in, batch, m, n, k, method); },
                    work_of(batch, m, n));
  });
}

int as_arg(SvdMethod m) { return static_cast<int>(m); }

void gpu_cases(benchmark::internal::Benchmark* b) {
  b->ArgNames({"batch", "m", "n", "k", "method"});
  for (SvdMethod mt : {SvdMethod::auto_, SvdMethod::qr, SvdMethod::jacobi, SvdMethod::gram}) {
    b->Args({1, 100000, 256, 0, as_arg(mt)});
    b->Args({1, 4096, 4096, 0, as_arg(mt)});
  }
  for (SvdMethod mt : {SvdMethod::auto_, SvdMethod::batched_jacobi}) {
    b->Args({10000, 16, 16, 0, as_arg(mt)});
    b->Args({10000, 32, 32, 0, as_arg(mt)});  // gesvdjBatched's largest size
  }
  for (SvdMethod mt : {SvdMethod::qr, SvdMethod::batched_jacobi})  // auto: qr for one matrix
    b->Args({1, 16, 16, 0, as_arg(mt)});
  for (SvdMethod mt : {SvdMethod::auto_, SvdMethod::randomized, SvdMethod::qr})
    b->Args({1, 50000, 2000, 32, as_arg(mt)});
  // The randomized threshold of auto ((k + oversampling) * 4 <= min(m, n)): qr's cost does not
  // depend on k, so these rows against the qr row above place it; 480 is at the limit.
  for (std::int64_t k : {128, 480}) b->Args({1, 50000, 2000, k, as_arg(SvdMethod::randomized)});
}

void cpu_cases(benchmark::internal::Benchmark* b) {
  b->ArgNames({"batch", "m", "n", "k", "method"});
  b->Args({1, 20000, 256, 0, as_arg(SvdMethod::qr)});
  b->Args({1, 1024, 1024, 0, as_arg(SvdMethod::qr)});
  // The plain-C++ Gram method: O(m n^2) Gram matrix plus an O(n^3)-per-sweep Jacobi solver.
  for (SvdMethod mt : {SvdMethod::qr, SvdMethod::gram}) {
    b->Args({1, 4000, 256, 0, as_arg(mt)});
    b->Args({1000, 16, 16, 0, as_arg(mt)});
  }
}

BENCHMARK(Gpu_Svd)->Apply(gpu_cases)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(Cpu_Svd)->Apply(cpu_cases)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
