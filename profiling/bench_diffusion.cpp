// Benchmarks of the diffusion module (kernels/diffusion.cu, cpu_reference/diffusion.cpp).
//
// add_noise (memory-bound): bytes = x0 read + timesteps read (8 per row) + x_t written
// (+ eps written with eps:1) = (8 + 4 eps) n d + 8 n. Each call includes the timestep range
// check (one extra pass over the 8 n timestep bytes, not counted, and one synchronisation) and
// the upload of the two T-entry coefficient tables. peak_frac against the D2D copy.
// ddpm_step (memory-bound): x and the model output read, x_prev written: 12 n d bytes.
// Fused mixture sampler (compute-bound): point_steps (per second) is the rate that matters;
// flop counts the FP32 work of the mixture epsilon and the update with exp as one:
// K (3 d + 5) + 8 d per point-step (gmm8: 96), Philox not counted; roof cuBLAS SGEMM.
// The step-by-step loop (a mixture_epsilon launch and a step launch per step) runs the same
// workload for comparison.
// mixture_epsilon alone (Gpu_MixtureEpsilon): K = 8 equal isotropic components in d dims,
// mu_k ~ N(0, 3^2 I); bytes = x read + eps written (8 n d), flop = K (3 d + 5) per point.
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "genai/diffusion.hpp"
#include "profiling/bench_common.hpp"

namespace {

namespace bench = genai::bench;
using genai::SamplerKind;

struct NoiseInputs {
  std::vector<genai::Buffer<float>> x0, xt, eps;
  std::vector<genai::Buffer<std::int64_t>> ts;
};

NoiseInputs make_noise_inputs(const genai::Context& ctx, std::int64_t n, std::int64_t d,
                              int sets) {
  NoiseInputs in;
  std::vector<std::int64_t> ts(n);
  for (std::int64_t r = 0; r < n; ++r) ts[r] = (r * 7919) % 1000;
  for (int s = 0; s < sets; ++s) {
    in.x0.emplace_back(ctx, static_cast<std::size_t>(n * d));
    genai::fill_normal(ctx, in.x0.back().data(), n * d, {static_cast<std::uint64_t>(s), 0, 0});
    in.xt.emplace_back(ctx, static_cast<std::size_t>(n * d));
    in.eps.emplace_back(ctx, static_cast<std::size_t>(n * d));
    in.ts.emplace_back(ctx, std::span<const std::int64_t>(ts));
  }
  return in;
}

bench::Work noise_work(std::int64_t n, std::int64_t d, bool eps) {
  bench::Work w;
  w.bytes = (8.0 + (eps ? 4.0 : 0.0)) * static_cast<double>(n * d) + 8.0 * static_cast<double>(n);
  return w;
}

void noise_call(const genai::Context& ctx, const genai::NoiseSchedule& s, NoiseInputs& in,
                std::size_t set, std::int64_t n, std::int64_t d, bool eps, std::int64_t call) {
  genai::add_noise(ctx, s, in.x0[set].data(), in.ts[set].data(), n, d, in.xt[set].data(),
                   {.seed = 1, .step = static_cast<std::uint32_t>(call),
                    .eps_out = eps ? in.eps[set].data() : nullptr});
}

void Gpu_AddNoise(benchmark::State& state) {
  if (!bench::require_gpu(state)) return;
  bench::guarded(state, [&] {
    const std::int64_t n = state.range(0), d = state.range(1);
    const bool eps = state.range(2) != 0;
    const genai::Context& ctx = bench::gpu_context();
    const genai::NoiseSchedule s;
    const int sets = bench::l2_rotation_sets(static_cast<std::size_t>(n * d) * sizeof(float));
    auto& in = bench::cached<NoiseInputs>(std::tuple{n, d, sets},
                                          [&] { return make_noise_inputs(ctx, n, d, sets); });
    bench::time_gpu(state, [&](std::int64_t c) {
      noise_call(ctx, s, in, static_cast<std::size_t>(c % sets), n, d, eps, c);
    }, noise_work(n, d, eps));
  });
}

void Cpu_AddNoise(benchmark::State& state) {
  bench::guarded(state, [&] {
    const std::int64_t n = state.range(0), d = state.range(1);
    const bool eps = state.range(2) != 0;
    const genai::Context ctx = genai::Context::cpu();
    const genai::NoiseSchedule s;
    auto& in = bench::cached<NoiseInputs>(std::tuple{n, d},
                                          [&] { return make_noise_inputs(ctx, n, d, 1); });
    bench::time_cpu(state, [&] { noise_call(ctx, s, in, 0, n, d, eps, 0); },
                    noise_work(n, d, eps));
  });
}

void Gpu_DdpmStep(benchmark::State& state) {
  if (!bench::require_gpu(state)) return;
  bench::guarded(state, [&] {
    const std::int64_t n = state.range(0), d = state.range(1);
    const genai::Context& ctx = bench::gpu_context();
    const genai::NoiseSchedule s;
    const int sets = bench::l2_rotation_sets(static_cast<std::size_t>(n * d) * sizeof(float));
    struct In {
      std::vector<genai::Buffer<float>> x, m, out;
    };
    auto& in = bench::cached<In>(std::tuple{n, d, sets}, [&] {
      In r;
      for (int k = 0; k < sets; ++k) {
        r.x.emplace_back(ctx, static_cast<std::size_t>(n * d));
        r.m.emplace_back(ctx, static_cast<std::size_t>(n * d));
        r.out.emplace_back(ctx, static_cast<std::size_t>(n * d));
        genai::fill_normal(ctx, r.x.back().data(), n * d, {static_cast<std::uint64_t>(k), 0, 0});
        genai::fill_normal(ctx, r.m.back().data(), n * d, {static_cast<std::uint64_t>(k), 1, 0});
      }
      return r;
    });
    bench::Work w;
    w.bytes = 12.0 * static_cast<double>(n * d);
    bench::time_gpu(state, [&](std::int64_t c) {
      const auto k = static_cast<std::size_t>(c % sets);
      genai::ddpm_step(ctx, s, 500, 490, in.m[k].data(), in.x[k].data(), n, d, in.out[k].data());
    }, w);
  });
}

bench::Work sampler_work(std::int64_t n, std::int64_t steps, std::int64_t K, std::int64_t d) {
  bench::Work w;
  w.bytes = 8.0 * static_cast<double>(n * d);
  w.flop = static_cast<double>(n) * static_cast<double>(steps) *
           static_cast<double>(K * (3 * d + 5) + 8 * d);
  w.roof = bench::Work::Roof::Sgemm;
  return w;
}

void set_rate(benchmark::State& state, std::int64_t n, std::int64_t steps) {
  state.counters["point_steps"] = benchmark::Counter(
      static_cast<double>(n) * static_cast<double>(steps),
      benchmark::Counter::kIsIterationInvariantRate);
}

// K = 8 equal components N(mu_k, I) in d dims, mu_k ~ N(0, 3^2 I) (seeded by d).
genai::GaussianMixture isotropic8(std::int64_t d) {
  constexpr std::int64_t K = 8;
  std::vector<float> means(K * d);
  genai::fill_normal(genai::Context::cpu(), means.data(), K * d,
                     {static_cast<std::uint64_t>(d), 0, 0});
  for (float& m : means) m *= 3.0f;
  return genai::GaussianMixture::isotropic(std::vector<float>(K, 1.0f / K), means, d,
                                           std::vector<float>(K, 1.0f));
}

// "gmm8" (the 2D preset), or "mix16": isotropic8(16) (the fused kernel's general-d path,
// several Philox blocks per point).
genai::GaussianMixture mixture_of(const std::string& name) {
  return name == "mix16" ? isotropic8(16) : genai::GaussianMixture::preset(name);
}

void Gpu_MixtureEpsilon(benchmark::State& state) {
  if (!bench::require_gpu(state)) return;
  bench::guarded(state, [&] {
    const std::int64_t n = state.range(0), d = state.range(1);
    const genai::Context& ctx = bench::gpu_context();
    const genai::GaussianMixture m = d == 2 ? genai::GaussianMixture::preset("gmm8") : isotropic8(d);
    const int sets = bench::l2_rotation_sets(static_cast<std::size_t>(n * d) * sizeof(float));
    struct In {
      std::vector<genai::Buffer<float>> x, out;
    };
    auto& in = bench::cached<In>(std::tuple{n, d, sets}, [&] {
      In r;
      for (int k = 0; k < sets; ++k) {
        r.x.emplace_back(ctx, static_cast<std::size_t>(n * d));
        r.out.emplace_back(ctx, static_cast<std::size_t>(n * d));
        genai::fill_normal(ctx, r.x.back().data(), n * d, {static_cast<std::uint64_t>(k), 2, 0},
                           0.0f, 3.0f);
      }
      return r;
    });
    bench::Work w;
    w.bytes = 8.0 * static_cast<double>(n * d);
    w.flop = static_cast<double>(n) * static_cast<double>(m.K * (3 * d + 5));
    bench::time_gpu(state, [&](std::int64_t c) {
      const auto k = static_cast<std::size_t>(c % sets);
      genai::mixture_epsilon(ctx, m, 0.5, in.x[k].data(), n, in.out[k].data());
    }, w);
  });
}

// range(2): 1 = sample_mixture (fused on the GPU), 0 = sample() with mixture_model, step by step.
void Gpu_MixtureSampler(benchmark::State& state, SamplerKind kind, const char* target) {
  if (!bench::require_gpu(state)) return;
  bench::guarded(state, [&] {
    const std::int64_t n = state.range(0), steps = state.range(1);
    const bool fused = state.range(2) != 0;
    const genai::Context& ctx = bench::gpu_context();
    const genai::NoiseSchedule s;
    const genai::GaussianMixture m = mixture_of(target);
    auto& x = bench::cached<genai::Buffer<float>>(
        std::tuple{n, m.d}, [&] { return genai::Buffer<float>(ctx, static_cast<std::size_t>(n * m.d)); });
    const genai::Model model = genai::mixture_model(m, s);
    bench::time_gpu(state, [&](std::int64_t c) {
      const genai::SamplerOptions o{.sampler = kind, .num_inference_steps = steps,
                                    .step = {.seed = static_cast<std::uint64_t>(c)}};
      if (fused)
        genai::sample_mixture(ctx, s, m, n, x.data(), o);
      else
        genai::sample(ctx, s, model, n, m.d, x.data(), o);
    }, sampler_work(n, steps, m.K, m.d), 1);
    set_rate(state, n, steps);
  });
}

void Cpu_MixtureSampler(benchmark::State& state, SamplerKind kind) {
  bench::guarded(state, [&] {
    const std::int64_t n = state.range(0), steps = state.range(1);
    const genai::Context ctx = genai::Context::cpu();
    const genai::NoiseSchedule s;
    const genai::GaussianMixture m = genai::GaussianMixture::preset("gmm8");
    std::vector<float> x(n * m.d);
    const genai::SamplerOptions o{.sampler = kind, .num_inference_steps = steps};
    bench::time_cpu(state, [&] { genai::sample_mixture(ctx, s, m, n, x.data(), o); },
                    sampler_work(n, steps, m.K, m.d));
    set_rate(state, n, steps);
  });
}

void gpu_noise_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "d", "eps"});
  for (int eps : {0, 1}) {
    b->Args({1 << 22, 4, eps});    // 64 MiB of 2D..4D points
    b->Args({1 << 16, 256, eps});  // 64 MiB of 256-feature rows
  }
}
void cpu_noise_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "d", "eps"});
  b->Args({1 << 18, 4, 1});
}
void gpu_step_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "d"});
  b->Args({1 << 22, 4});
  b->Args({1 << 16, 256});
}
void gpu_mixture_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "d"});
  // 64 MiB of x each (and 64 MiB of eps written)
  b->Args({1 << 23, 2});    // gmm8, thread per point
  b->Args({1 << 20, 16});   // thread per point, 16 registers of x
  b->Args({1 << 18, 64});   // warp per point, registers
  b->Args({1 << 15, 512});  // warp per point, the output row as accumulator
}
void gpu_sampler_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "steps", "fused"});
  b->Args({1 << 20, 1000, 1});  // the 10^6 2D points x 1000 steps
  b->Args({1 << 20, 100, 1});
  b->Args({1 << 20, 100, 0});   // step by step, for the ratio
}
void cpu_sampler_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "steps"});
  b->Args({4096, 100});
}

BENCHMARK(Cpu_AddNoise)->Apply(cpu_noise_shapes)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Cpu_MixtureSampler, ddpm_gmm8, SamplerKind::DDPM)
    ->Apply(cpu_sampler_shapes)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(Gpu_AddNoise)->Apply(gpu_noise_shapes)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(Gpu_DdpmStep)->Apply(gpu_step_shapes)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(Gpu_MixtureEpsilon)->Apply(gpu_mixture_shapes)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(Gpu_MixtureSampler, ddpm_gmm8, SamplerKind::DDPM, "gmm8")
    ->Apply(gpu_sampler_shapes)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Gpu_MixtureSampler, ddim_gmm8, SamplerKind::DDIM, "gmm8")
    ->Apply(gpu_sampler_shapes)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Gpu_MixtureSampler, ddpm_mix16, SamplerKind::DDPM, "mix16")
    ->Args({1 << 18, 100, 1})->Args({1 << 18, 100, 0})->ArgNames({"n", "steps", "fused"})
    ->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace
