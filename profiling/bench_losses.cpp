// Benchmarks of the losses module (kernels/losses.cu, cpu_reference/losses.cpp).
//
// cross_entropy_loss, forward and backward fused (mean reduction, the gradient written to its
// own buffer): bytes = N C s read + N C s written (s = 4 for fp32, 2 for bf16) + 8 N of targets
// -- the compulsory traffic; the extra pass over the targets (range check, count for the mean),
// the row-loss workspace and the one-block reduction are not counted. check:1 is the default
// (CrossEntropyOptions::check_targets: one stream synchronisation per call), check:0 the
// asynchronous form a training loop uses. GPU shapes: 8192 x 32768 (a block per row, the row in
// registers), 65536 x 1024 (a warp per row), 2048 x 131072 (a block per row whose tail is
// re-read in the gradient pass), bf16 at 8192 x 32768. peak_frac against the D2D copy.
// vae_loss (squared error, every output): bytes = 12 n D (x, x_recon read, grad written) +
// 16 n d (mu, logvar read, their gradients written) + 12 n (per-sample terms).
// reparameterize: 16 bytes per element (mu, logvar read; z, eps written).
// mse_loss at the tiny-diffusion shape (d = 4): 12 bytes per element + 4 per row.
#include <cstdint>
#include <span>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "genai/losses.hpp"
#include "profiling/bench_common.hpp"

namespace {

namespace bench = genai::bench;
using genai::Buffer;

template <class T>
struct CeInputs {
  std::vector<Buffer<T>> logits, grad;
  std::vector<Buffer<std::int64_t>> targets;
  Buffer<float> loss;
};

template <class T>
CeInputs<T> make_ce(const genai::Context& ctx, std::int64_t N, std::int64_t C, int sets) {
  CeInputs<T> in;
  std::vector<std::int64_t> t(N);
  for (std::int64_t i = 0; i < N; ++i) t[i] = (i * 7919) % C;
  Buffer<float> tmp(ctx, static_cast<std::size_t>(N * C));
  for (int s = 0; s < sets; ++s) {
    genai::fill_normal(ctx, tmp.data(), N * C, {static_cast<std::uint64_t>(s), 0, 0}, 0.0f, 2.0f);
    if constexpr (std::is_same_v<T, float>) {
      in.logits.push_back(std::move(tmp));
      tmp = Buffer<float>(ctx, static_cast<std::size_t>(N * C));
    } else {  // bf16 logits: the same normals rounded, converted on the host
      const auto h = tmp.to_host();
      std::vector<T> b(h.size());
      for (std::size_t i = 0; i < h.size(); ++i) b[i] = T(h[i]);
      in.logits.emplace_back(ctx, std::span<const T>(b));
    }
    in.grad.emplace_back(ctx, static_cast<std::size_t>(N * C));
    in.targets.emplace_back(ctx, std::span<const std::int64_t>(t));
  }
  in.loss = Buffer<float>(ctx, 1);
  return in;
}

template <class T>
bench::Work ce_work(std::int64_t N, std::int64_t C) {
  bench::Work w;
  w.bytes = 2.0 * static_cast<double>(N) * static_cast<double>(C) * sizeof(T) + 8.0 * N;
  return w;
}

template <class T>
void Gpu_CrossEntropy(benchmark::State& state) {
  if (!bench::require_gpu(state)) return;
  bench::guarded(state, [&] {
    const std::int64_t N = state.range(0), C = state.range(1);
    const genai::CrossEntropyOptions o{.check_targets = state.range(2) != 0};
    const genai::Context& ctx = bench::gpu_context();
    const int sets = bench::l2_rotation_sets(static_cast<std::size_t>(N * C) * sizeof(T));
    auto& in = bench::cached<CeInputs<T>>(std::tuple{N, C, sets},
                                          [&] { return make_ce<T>(ctx, N, C, sets); });
    bench::time_gpu(state, [&](std::int64_t c) {
      const auto k = static_cast<std::size_t>(c % sets);
      genai::cross_entropy_loss(ctx, in.logits[k].data(), in.targets[k].data(), N, C,
                                in.loss.data(), in.grad[k].data(), o);
    }, ce_work<T>(N, C));
  });
}

void Cpu_CrossEntropy(benchmark::State& state) {
  bench::guarded(state, [&] {
    const std::int64_t N = state.range(0), C = state.range(1);
    const genai::Context ctx = genai::Context::cpu();
    auto& in = bench::cached<CeInputs<float>>(std::tuple{N, C},
                                              [&] { return make_ce<float>(ctx, N, C, 1); });
    bench::time_cpu(state, [&] {
      genai::cross_entropy_loss(ctx, in.logits[0].data(), in.targets[0].data(), N, C,
                                in.loss.data(), in.grad[0].data());
    }, ce_work<float>(N, C));
  });
}

// ---- VAE, reparameterisation, MSE -------------------------------------------------------------

struct VaeInputs {
  Buffer<float> x, xr, mu, lv, red, tot, rec, kl, gr, gm, gl, z, eps;
};

VaeInputs make_vae(const genai::Context& ctx, std::int64_t n, std::int64_t D, std::int64_t d) {
  const auto big = static_cast<std::size_t>(n * D), small = static_cast<std::size_t>(n * d);
  const auto rows = static_cast<std::size_t>(n);
  VaeInputs in{{ctx, big},   {ctx, big},   {ctx, small}, {ctx, small}, {ctx, 3},
               {ctx, rows},  {ctx, rows},  {ctx, rows},  {ctx, big},   {ctx, small},
               {ctx, small}, {ctx, small}, {ctx, small}};
  genai::fill_uniform(ctx, in.x.data(), n * D, {1, 0, 0});
  genai::fill_normal(ctx, in.xr.data(), n * D, {2, 0, 0});
  genai::fill_normal(ctx, in.mu.data(), n * d, {3, 0, 0});
  genai::fill_normal(ctx, in.lv.data(), n * d, {4, 0, 0}, 0.0f, 0.5f);
  return in;
}

enum class VaeOp { Loss, Reparameterize };

bench::Work vae_work(VaeOp op, std::int64_t n, std::int64_t D, std::int64_t d) {
  bench::Work w;
  w.bytes = op == VaeOp::Loss ? 12.0 * n * D + 16.0 * n * d + 12.0 * n : 16.0 * n * d;
  return w;
}

void vae_call(VaeOp op, const genai::Context& ctx, VaeInputs& in, std::int64_t n, std::int64_t D,
              std::int64_t d, std::int64_t call) {
  if (op == VaeOp::Loss)
    genai::vae_loss(ctx, in.x.data(), in.xr.data(), n, D, in.mu.data(), in.lv.data(), d,
                    {in.red.data(), in.tot.data(), in.rec.data(), in.kl.data(), in.gr.data(),
                     in.gm.data(), in.gl.data()});
  else
    genai::reparameterize(ctx, in.mu.data(), in.lv.data(), n, d, in.z.data(),
                          {.seed = 1, .step = static_cast<std::uint32_t>(call),
                           .eps_out = in.eps.data()});
}

void Gpu_Vae(benchmark::State& state, VaeOp op) {
  if (!bench::require_gpu(state)) return;
  bench::guarded(state, [&] {
    const std::int64_t n = state.range(0), D = state.range(1), d = state.range(2);
    const genai::Context& ctx = bench::gpu_context();
    auto& in = bench::cached<VaeInputs>(std::tuple{n, D, d}, [&] { return make_vae(ctx, n, D, d); });
    bench::time_gpu(state, [&](std::int64_t c) { vae_call(op, ctx, in, n, D, d, c); },
                    vae_work(op, n, D, d));
  });
}

void Cpu_Vae(benchmark::State& state, VaeOp op) {
  bench::guarded(state, [&] {
    const std::int64_t n = state.range(0), D = state.range(1), d = state.range(2);
    const genai::Context ctx = genai::Context::cpu();
    auto& in = bench::cached<VaeInputs>(std::tuple{n, D, d}, [&] { return make_vae(ctx, n, D, d); });
    bench::time_cpu(state, [&] { vae_call(op, ctx, in, n, D, d, 0); }, vae_work(op, n, D, d));
  });
}

void Gpu_MseLoss(benchmark::State& state) {
  if (!bench::require_gpu(state)) return;
  bench::guarded(state, [&] {
    const std::int64_t n = state.range(0), d = state.range(1);
    const genai::Context& ctx = bench::gpu_context();
    // x_recon / x of make_vae serve as prediction / target, mu as the rows' losses.
    auto& in = bench::cached<VaeInputs>(std::tuple{n, d}, [&] { return make_vae(ctx, n, d, 1); });
    bench::Work w;
    w.bytes = 12.0 * n * d + 4.0 * n;
    bench::time_gpu(state, [&](std::int64_t) {
      genai::mse_loss(ctx, in.xr.data(), in.x.data(), n, d,
                      {in.red.data(), in.mu.data(), in.gr.data()});
    }, w);
  });
}

void ce_gpu_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "C", "check"});
  for (const auto& s : {std::pair<int, int>{8192, 32768}, {65536, 1024}, {2048, 131072}})
    for (int check : {0, 1}) b->Args({s.first, s.second, check});
}

BENCHMARK(Cpu_CrossEntropy)->ArgNames({"N", "C"})->Args({1024, 4096})
    ->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Cpu_Vae, loss, VaeOp::Loss)->ArgNames({"n", "D", "d"})->Args({4096, 784, 32})
    ->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Cpu_Vae, reparameterize, VaeOp::Reparameterize)->ArgNames({"n", "D", "d"})
    ->Args({65536, 1, 64})->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK(Gpu_CrossEntropy<float>)->Name("Gpu_CrossEntropy")->Apply(ce_gpu_shapes)
    ->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(Gpu_CrossEntropy<genai::bf16>)->Name("Gpu_CrossEntropyBf16")
    ->ArgNames({"N", "C", "check"})->Args({8192, 32768, 0})
    ->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(Gpu_Vae, loss, VaeOp::Loss)->ArgNames({"n", "D", "d"})->Args({65536, 784, 32})
    ->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(Gpu_Vae, reparameterize, VaeOp::Reparameterize)->ArgNames({"n", "D", "d"})
    ->Args({1 << 20, 1, 64})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(Gpu_MseLoss)->ArgNames({"n", "d"})->Args({1 << 22, 4})
    ->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
