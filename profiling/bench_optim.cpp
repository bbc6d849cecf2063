// Benchmarks of the optim module (kernels/optim.cu, cpu_reference/optim.cpp).
//
// adam_step over a parameter list of `params` fp32 elements cut into `tensors` equal tensors:
// bytes = 28 per parameter (reads p, g, m, v; writes p, m, v), 36 with AMSGrad (v_max read and
// written) -- the compulsory traffic; peak_frac against the D2D copy, goal >= 0.9. GPU: 64 Mi
// parameters as 1 tensor, 16 tensors and 1024 tensors (16 launches of 64), AMSGrad on 16, AdamW
// (decoupled decay) on 16. sgd_step with momentum: 20 bytes per parameter (p, g, b read; p, b
// written). CPU: 4 Mi parameters in 16 tensors, as profiling/peers/optim_peers.py runs
// torch.optim.Adam (foreach and for-loop) on the CPU.
#include <cstdint>
#include <tuple>
#include <vector>

#include "genai/optim.hpp"
#include "profiling/bench_common.hpp"

namespace {

namespace bench = genai::bench;
using genai::Buffer;

struct Params {
  std::vector<Buffer<float>> p, g, m, v, v_max;
  std::vector<genai::AdamTensor> adam;
  std::vector<genai::SgdTensor> sgd;
};

Params make_params(const genai::Context& ctx, std::int64_t params, std::int64_t tensors) {
  Params in;
  const std::int64_t size = params / tensors;
  for (std::int64_t i = 0; i < tensors; ++i) {
    for (auto* a : {&in.p, &in.g, &in.m, &in.v, &in.v_max}) {
      a->emplace_back(ctx, static_cast<std::size_t>(size));
      a->back().fill_bytes(0);
    }
    const auto seed = static_cast<std::uint64_t>(i);
    genai::fill_normal(ctx, in.p.back().data(), size, {seed, 0, 0});
    genai::fill_normal(ctx, in.g.back().data(), size, {seed, 1, 0});
    in.adam.push_back({in.p.back().data(), in.g.back().data(), in.m.back().data(),
                       in.v.back().data(), in.v_max.back().data(), size});
    in.sgd.push_back({in.p.back().data(), in.g.back().data(), in.m.back().data(), size});
  }
  return in;
}

enum class Kind { Adam, AdamW, Amsgrad, SgdMomentum };

bench::Work optim_work(Kind kind, std::int64_t params) {
  bench::Work w;
  const double per = kind == Kind::Amsgrad ? 36.0 : (kind == Kind::SgdMomentum ? 20.0 : 28.0);
  w.bytes = per * static_cast<double>(params);
  return w;
}

// One step; the step counter grows with the calls, as in training.
void step(Kind kind, const genai::Context& ctx, Params& in, std::int64_t call) {
  const std::int64_t t = call + 1;
  switch (kind) {
    case Kind::Adam: genai::adam_step(ctx, in.adam, t); break;
    case Kind::AdamW:
      genai::adam_step(ctx, in.adam, t, {.weight_decay = 0.01f, .decoupled_weight_decay = true});
      break;
    case Kind::Amsgrad: genai::adam_step(ctx, in.adam, t, {.amsgrad = true}); break;
    case Kind::SgdMomentum: genai::sgd_step(ctx, in.sgd, t, {.lr = 0.01f, .momentum = 0.9f}); break;
  }
}

void Gpu_Optim(benchmark::State& state, Kind kind) {
  if (!bench::require_gpu(state)) return;
  bench::guarded(state, [&] {
    const std::int64_t params = state.range(0), tensors = state.range(1);
    const genai::Context& ctx = bench::gpu_context();
    auto& in = bench::cached<Params>(std::tuple{params, tensors},
                                     [&] { return make_params(ctx, params, tensors); });
    bench::time_gpu(state, [&](std::int64_t c) { step(kind, ctx, in, c); },
                    optim_work(kind, params));
  });
}

void Cpu_Optim(benchmark::State& state, Kind kind) {
  bench::guarded(state, [&] {
    const std::int64_t params = state.range(0), tensors = state.range(1);
    const genai::Context ctx = genai::Context::cpu();
    auto& in = bench::cached<Params>(std::tuple{params, tensors},
                                     [&] { return make_params(ctx, params, tensors); });
    std::int64_t call = 0;
    bench::time_cpu(state, [&] { step(kind, ctx, in, call++); }, optim_work(kind, params));
  });
}

constexpr std::int64_t kGpuParams = std::int64_t{1} << 26;
constexpr std::int64_t kCpuParams = std::int64_t{1} << 22;

BENCHMARK_CAPTURE(Cpu_Optim, adam, Kind::Adam)->ArgNames({"params", "tensors"})
    ->Args({kCpuParams, 16})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Cpu_Optim, sgd_momentum, Kind::SgdMomentum)->ArgNames({"params", "tensors"})
    ->Args({kCpuParams, 16})->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_CAPTURE(Gpu_Optim, adam, Kind::Adam)->ArgNames({"params", "tensors"})
    ->Args({kGpuParams, 1})->Args({kGpuParams, 16})->Args({kGpuParams, 1024})
    ->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(Gpu_Optim, adamw, Kind::AdamW)->ArgNames({"params", "tensors"})
    ->Args({kGpuParams, 16})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(Gpu_Optim, amsgrad, Kind::Amsgrad)->ArgNames({"params", "tensors"})
    ->Args({kGpuParams, 16})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(Gpu_Optim, sgd_momentum, Kind::SgdMomentum)->ArgNames({"params", "tensors"})
    ->Args({kGpuParams, 16})->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
