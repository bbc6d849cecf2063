// Benchmarks of the Langevin module (kernels/langevin.cu, cpu_reference/langevin.cpp):
// chain-steps per second of ULA and MALA on gmm8 (d = 2, K = 8) and on a 64-dimensional
// 8-component mixture.
//
// bytes: the state read and written once (2 * chains * d * 4); for d > 8 (the workspace path)
// plus, as a lower bound, the 4 work arrays read and written once per step (8 * chains * d * 4
// per step). For d <= 8 everything else stays in registers.
// flop: the FP32 operations of log_density_grad and the update, counted in the source, with
// exp and log as one each: (12 d + 4) per mixture component plus 5 d, i.e. (12 d + 4) K + 5 d
// per chain-step (gmm8: 234). Not counted: Philox's integer rounds (one Philox4x32-10 per 4
// dimensions per step) and Box-Muller, a large part of the cost. The roof is cuBLAS SGEMM's
// FP32 rate, which a kernel of exps and divisions cannot reach: peak_frac says how far from the
// FP32 pipes it is. chain_steps (per second) is the rate that matters.
// Each call also runs the initial-state finiteness check (one pass over x and a sync).
// Brownian paths (Gpu_Brownian): out [paths x (steps + 1) x d] written once, bytes =
// 4 paths (steps + 1) d (~269 MB in each case); one Philox normal4 per path, step and 4
// dimensions, not counted as flop; peak_frac against the copy bandwidth.
#include <cstdint>
#include <tuple>
#include <vector>

#include "genai/langevin.hpp"
#include "profiling/bench_common.hpp"

namespace {

namespace bench = genai::bench;
using genai::LangevinMethod;
using genai::LangevinTarget;

LangevinTarget mixture64() {
  const std::int64_t d = 64, K = 8;
  std::vector<float> means(K * d);
  genai::fill_normal(genai::Context::cpu(), means.data(), K * d, {64, 0, 0}, 0.0f, 3.0f);
  return LangevinTarget::mixture(d, std::vector<float>(K, 1.0f), means, std::vector<float>(K, 1.0f));
}

LangevinTarget target_of(std::int64_t d) { return d == 2 ? LangevinTarget::gmm8() : mixture64(); }

bench::Work work_of(std::int64_t chains, std::int64_t d, std::int64_t K, std::int64_t steps) {
  const double state = static_cast<double>(chains) * static_cast<double>(d) * sizeof(float);
  bench::Work w;
  w.bytes = 2 * state + (d > 8 ? 8 * state * static_cast<double>(steps) : 0.0);
  w.flop = static_cast<double>(chains) * static_cast<double>(steps) *
           static_cast<double>((12 * d + 4) * K + 5 * d);
  w.roof = bench::Work::Roof::Sgemm;
  return w;
}

void set_rate(benchmark::State& state, std::int64_t chains, std::int64_t steps) {
  state.counters["chain_steps"] = benchmark::Counter(
      static_cast<double>(chains) * static_cast<double>(steps),
      benchmark::Counter::kIsIterationInvariantRate);
}

void Gpu_Langevin(benchmark::State& state, LangevinMethod method) {
  if (!bench::require_gpu(state)) return;
  bench::guarded(state, [&] {
    const std::int64_t chains = state.range(0), d = state.range(1), steps = state.range(2);
    const genai::Context& ctx = bench::gpu_context();
    const LangevinTarget target = target_of(d);
    auto& x = bench::cached<genai::Buffer<float>>(std::tuple{chains, d}, [&] {
      genai::Buffer<float> b(ctx, static_cast<std::size_t>(chains * d));
      genai::fill_normal(ctx, b.data(), chains * d, {1, 0, 0}, 0.0f, 2.0f);
      return b;
    });
    const genai::LangevinOptions o{.method = method, .step_size = 0.02f, .steps = steps};
    bench::time_gpu(state, [&](std::int64_t call) {
      genai::LangevinOptions oc = o;
      oc.first_step = static_cast<std::uint32_t>(call * steps);  // fresh noise every call
      genai::langevin(ctx, target, x.data(), chains, d, oc);
    }, work_of(chains, d, target.K, steps));
    set_rate(state, chains, steps);
  });
}

void Cpu_Langevin(benchmark::State& state, LangevinMethod method) {
  bench::guarded(state, [&] {
    const std::int64_t chains = state.range(0), d = state.range(1), steps = state.range(2);
    const genai::Context ctx = genai::Context::cpu();
    const LangevinTarget target = target_of(d);
    std::vector<float> x(chains * d);
    genai::fill_normal(ctx, x.data(), chains * d, {1, 0, 0}, 0.0f, 2.0f);
    const genai::LangevinOptions o{.method = method, .step_size = 0.02f, .steps = steps};
    bench::time_cpu(state, [&] { genai::langevin(ctx, target, x.data(), chains, d, o); },
                    work_of(chains, d, target.K, steps));
    set_rate(state, chains, steps);
  });
}

void Gpu_Brownian(benchmark::State& state) {
  if (!bench::require_gpu(state)) return;
  bench::guarded(state, [&] {
    const std::int64_t paths = state.range(0), d = state.range(1), steps = state.range(2);
    const genai::Context& ctx = bench::gpu_context();
    const std::int64_t n = paths * (steps + 1) * d;
    auto& out = bench::cached<genai::Buffer<float>>(std::tuple{n}, [&] {
      return genai::Buffer<float>(ctx, static_cast<std::size_t>(n));
    });
    bench::Work w;
    w.bytes = 4.0 * static_cast<double>(n);
    bench::time_gpu(state, [&](std::int64_t call) {
      genai::brownian_motion(ctx, out.data(), paths, d, steps, 0.01f,
                             static_cast<std::uint64_t>(call));
    }, w);
  });
}

void gpu_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"chains", "d", "steps"});
  b->Args({1 << 20, 2, 100});   // 10^6 chains on gmm8
  b->Args({1 << 16, 64, 100});  // 64-dimensional mixture, workspace path
}
void cpu_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"chains", "d", "steps"});
  b->Args({4096, 2, 100});
}

BENCHMARK_CAPTURE(Cpu_Langevin, ula_gmm8, LangevinMethod::ULA)
    ->Apply(cpu_shapes)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Cpu_Langevin, mala_gmm8, LangevinMethod::MALA)
    ->Apply(cpu_shapes)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Gpu_Langevin, ula, LangevinMethod::ULA)
    ->Apply(gpu_shapes)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Gpu_Langevin, mala, LangevinMethod::MALA)
    ->Apply(gpu_shapes)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(Gpu_Brownian)
    ->ArgNames({"paths", "d", "steps"})
    ->Args({1 << 16, 1, 1024})
    ->Args({1 << 16, 4, 256})
    ->Args({1 << 12, 64, 256})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
