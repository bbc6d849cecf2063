// Benchmarks of the nn module (kernels/nn.cu, cpu_reference/nn.cpp).
//
// Linear layer, y = act(x W^T + b) and its backward (dx, dW, db): compute-bound GEMMs,
// 2 N in out flop forward, 4 N in out backward (dx and dW), against the device's cuBLAS SGEMM
// peak (peak_frac; fp32, no TF32, as ours). bytes = the compulsory traffic (x, W, b, y read or
// written once; backward x, W, dy read, dx, dW, db written).
//   GPU: N x in x out = 16384 x 4096 x 4096 (the GEMM alone is ~0.5 TFLOP) and 4096 x 1024 x
//        1024; act none, relu (RELU_BIAS epilogue) and gelu_tanh (GELU_BIAS).
//   CPU: 4096 x 512 x 512 (OpenBLAS sgemm, its own threads).
//
// MLP forward + backward (Mlp::forward, Mlp::backward: every parameter gradient, no dx) on the
// tiny-diffusion shape: x 2 -> 128 -> 128 -> 128 -> 2 with a 128-wide time embedding
// concatenated to x, batch 4096. Variants: gelu (exact erf, residual hidden blocks:
// tiny-diffusion's own model), relu and gelu_tanh without residual blocks (the fused
// cuBLASLt path: RELU_AUX_BIAS / GELU_AUX_BIAS forward, DRELU_BGRAD / DGELU_BGRAD and BGRADB
// backward). Reported as steps/s (one step = one forward + one backward); flop = 6 N sum(in out)
// (dx of the input layer is not computed: 6 less 2 N in_0 out_0, counted exactly below).
// The peer (profiling/peers/nn_peers.py) runs the same model in PyTorch: eager, CUDA graphs and
// torch.compile on the GPU, eager float32 on the CPU.
//
// MLP training step (below): the same forward and backward plus the MSE loss and an Adam step.
#include <cstdint>
#include <tuple>
#include <vector>

#include "profiling/bench_common.hpp"

namespace {

namespace bench = genai::bench;
using genai::Activation;

constexpr Activation kActs[] = {Activation::None, Activation::ReLU, Activation::GELUTanh,
                                Activation::GELUErf};

// ---- linear layer --------------------------------------------------------------------------

struct LinearInputs {
  genai::Buffer<float> x, W, b, y, z, dy, dx, dW, db;
};

LinearInputs make_linear(const genai::Context& ctx, std::int64_t N, std::int64_t in,
                         std::int64_t out) {
  LinearInputs l{genai::Buffer<float>(ctx, N * in), genai::Buffer<float>(ctx, out * in),
                 genai::Buffer<float>(ctx, out),    genai::Buffer<float>(ctx, N * out),
                 genai::Buffer<float>(ctx, N * out), genai::Buffer<float>(ctx, N * out),
                 genai::Buffer<float>(ctx, N * in), genai::Buffer<float>(ctx, out * in),
                 genai::Buffer<float>(ctx, out)};
  genai::fill_normal(ctx, l.x.data(), N * in, {1});
  genai::init_linear(ctx, out, in, l.W.data(), l.b.data(), genai::Init::PyTorchDefault, 2);
  genai::fill_normal(ctx, l.dy.data(), N * out, {3});
  return l;
}

bench::Work linear_work(std::int64_t N, std::int64_t in, std::int64_t out, bool backward) {
  const double n = N, i = in, o = out;
  bench::Work w;
  w.flop = (backward ? 4 : 2) * n * i * o;
  w.bytes = 4 * (backward ? (n * i + o * i + n * o) + (n * i + o * i + o) : n * i + o * i + o + n * o);
  w.roof = bench::Work::Roof::Sgemm;
  return w;
}

void run_linear(const genai::Context& ctx, LinearInputs& l, std::int64_t N, std::int64_t in,
                std::int64_t out, Activation act, bool backward) {
  const genai::LinearShape s{N, in, out};
  if (!backward) {
    genai::linear_forward(ctx, s, l.x.data(), l.W.data(), l.b.data(), l.y.data(),
                          {.activation = act});
    return;
  }
  genai::linear_backward(ctx, s, l.x.data(), l.W.data(), l.dy.data(), l.dx.data(), l.dW.data(),
                         l.db.data());
}

void Gpu_Linear(benchmark::State& state, bool backward) {
  if (!bench::require_gpu(state)) return;
  bench::guarded(state, [&] {
    const std::int64_t N = state.range(0), in = state.range(1), out = state.range(2);
    const Activation act = kActs[state.range(3)];
    const genai::Context& ctx = bench::gpu_context();
    auto& l = bench::cached<LinearInputs>(std::tuple{N, in, out},
                                          [&] { return make_linear(ctx, N, in, out); });
    bench::time_gpu(state, [&](std::int64_t) { run_linear(ctx, l, N, in, out, act, backward); },
                    linear_work(N, in, out, backward));
  });
}

void Cpu_Linear(benchmark::State& state, bool backward) {
  bench::guarded(state, [&] {
    const std::int64_t N = state.range(0), in = state.range(1), out = state.range(2);
    const Activation act = kActs[state.range(3)];
    const genai::Context ctx = genai::Context::cpu();
    auto& l = bench::cached<LinearInputs>(std::tuple{N, in, out},
                                          [&] { return make_linear(ctx, N, in, out); });
    bench::time_cpu(state, [&] { run_linear(ctx, l, N, in, out, act, backward); },
                    linear_work(N, in, out, backward));
  });
}

void linear_gpu_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "in", "out", "act"});
  for (const auto& s : {std::tuple{16384, 4096, 4096}, std::tuple{4096, 1024, 1024}})
    for (int a : {0, 1, 2}) b->Args({std::get<0>(s), std::get<1>(s), std::get<2>(s), a});
}
void linear_gpu_backward_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "in", "out", "act"});
  b->Args({16384, 4096, 4096, 0});
  b->Args({4096, 1024, 1024, 0});
}
void linear_cpu_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "in", "out", "act"});
  b->Args({4096, 512, 512, 0});
  b->Args({4096, 512, 512, 1});
}

BENCHMARK_CAPTURE(Gpu_Linear, forward, false)
    ->Apply(linear_gpu_args)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(Gpu_Linear, backward, true)
    ->Apply(linear_gpu_backward_args)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(Cpu_Linear, forward, false)
    ->Apply(linear_cpu_args)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Cpu_Linear, backward, true)
    ->Apply(linear_cpu_args)->UseRealTime()->Unit(benchmark::kMillisecond);

// ---- MLP forward + backward ----------------------------------------------------------------

struct MlpInputs {
  genai::Mlp model;
  genai::MlpWorkspace ws;
  genai::Buffer<float> x, t, y, dy;
};

genai::MlpOptions tiny_diffusion(Activation act, bool residual) {
  return {.sizes = {2, 128, 128, 128, 2}, .activation = act, .time_embedding_dim = 128,
          .residual = residual};
}

MlpInputs make_mlp(const genai::Context& ctx, Activation act, bool residual, std::int64_t N) {
  MlpInputs m{genai::Mlp(ctx, tiny_diffusion(act, residual)), {},
              genai::Buffer<float>(ctx, N * 2), genai::Buffer<float>(ctx, N),
              genai::Buffer<float>(ctx, N * 2), genai::Buffer<float>(ctx, N * 2)};
  m.model.init(7);
  genai::fill_normal(ctx, m.x.data(), N * 2, {4});
  genai::fill_uniform(ctx, m.t.data(), N, {5}, 0.0f, 1000.0f);
  genai::fill_normal(ctx, m.dy.data(), N * 2, {6});
  return m;
}

bench::Work mlp_work(const genai::Mlp& m, std::int64_t N) {
  const auto& s = m.options().sizes;
  double macs = 0;
  for (std::size_t l = 0; l + 1 < s.size(); ++l) {
    const double in = l == 0 ? s[0] + m.options().time_embedding_dim : s[l];
    macs += in * s[l + 1];
  }
  const double first = (s[0] + m.options().time_embedding_dim) * s[1];
  bench::Work w;
  w.flop = 2.0 * N * (3 * macs - first);  // forward, dW of every layer, dx of all but the first
  w.bytes = 4.0 * (2 * m.flat_size() + N * (s[0] + 1 + 2 * s.back()));  // params, grads, x, t, y, dy
  w.roof = bench::Work::Roof::Sgemm;
  return w;
}

void mlp_step(MlpInputs& m, std::int64_t N) {
  m.model.forward(m.ws, m.x.data(), m.t.data(), N, m.y.data());
  m.model.backward(m.ws, m.dy.data());
}

void set_steps_per_second(benchmark::State& state) {
  state.counters["steps/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// One benchmark body for a step of the MLP on either backend: make(ctx, act, residual, N) once
// per shape (args act, residual, N), step(inputs, N) timed, work(inputs, N) counted, steps/s.
template <class Inputs>
void mlp_benchmark(benchmark::State& state, bool gpu,
                   Inputs (*make)(const genai::Context&, Activation, bool, std::int64_t),
                   void (*step)(Inputs&, std::int64_t),
                   bench::Work (*work)(const Inputs&, std::int64_t)) {
  if (gpu && !bench::require_gpu(state)) return;
  bench::guarded(state, [&] {
    const Activation act = kActs[state.range(0)];
    const bool residual = state.range(1) != 0;
    const std::int64_t N = state.range(2);
    const genai::Context ctx = gpu ? bench::gpu_context() : genai::Context::cpu();
    auto& in = bench::cached<Inputs>(std::tuple{gpu, state.range(0), residual, N},
                                     [&] { return make(ctx, act, residual, N); });
    if (gpu)
      bench::time_gpu(state, [&](std::int64_t) { step(in, N); }, work(in, N));
    else
      bench::time_cpu(state, [&] { step(in, N); }, work(in, N));
    set_steps_per_second(state);
  });
}

bench::Work mlp_step_work(const MlpInputs& m, std::int64_t N) { return mlp_work(m.model, N); }

void Gpu_MlpStep(benchmark::State& state) {
  mlp_benchmark<MlpInputs>(state, true, make_mlp, mlp_step, mlp_step_work);
}
void Cpu_MlpStep(benchmark::State& state) {
  mlp_benchmark<MlpInputs>(state, false, make_mlp, mlp_step, mlp_step_work);
}

// act: index into kActs (3 gelu, 1 relu, 2 gelu_tanh).
void mlp_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"act", "residual", "N"});
  b->Args({3, 1, 4096});
  b->Args({1, 0, 4096});
  b->Args({2, 0, 4096});
}

BENCHMARK(Gpu_MlpStep)->Apply(mlp_args)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(Cpu_MlpStep)->Apply(mlp_args)->UseRealTime()->Unit(benchmark::kMillisecond);

// ---- one training step: forward, MSE loss, backward, Adam ------------------------------------

// The MLP step above plus the loss against a fixed target (genai::mse_loss: the mean, its
// gradient as dy, the loss kept on the device) and one Adam step over the flat parameter buffer
// (one tensor, one launch; 28 bytes per parameter more). The peer: the same step in PyTorch
// (F.mse_loss, torch.optim.Adam: eager, CUDA graph with capturable Adam, torch.compile; CPU
// eager).
struct MlpTrainInputs {
  MlpInputs m;
  genai::Buffer<float> target, grad, rows, loss, exp_avg, exp_avg_sq;
  std::int64_t step = 0;
};

MlpTrainInputs make_mlp_train(const genai::Context& ctx, Activation act, bool residual,
                              std::int64_t N) {
  MlpTrainInputs s{make_mlp(ctx, act, residual, N), genai::Buffer<float>(ctx, N * 2),
                   genai::Buffer<float>(ctx, N * 2), genai::Buffer<float>(ctx, N),
                   genai::Buffer<float>(ctx, 1), {}, {}};
  genai::fill_normal(ctx, s.target.data(), N * 2, {8});
  for (auto* b : {&s.exp_avg, &s.exp_avg_sq}) {
    *b = genai::Buffer<float>(ctx, s.m.model.flat_size());
    b->fill_bytes(0);
  }
  return s;
}

void mlp_train_step(MlpTrainInputs& s, std::int64_t N) {
  auto& m = s.m;
  const genai::Context& ctx = m.model.context();
  m.model.forward(m.ws, m.x.data(), m.t.data(), N, m.y.data());
  genai::mse_loss(ctx, m.y.data(), s.target.data(), N, 2,
                  {.loss = s.loss.data(), .row_loss = s.rows.data(), .grad = s.grad.data()});
  m.model.backward(m.ws, s.grad.data());
  const genai::AdamTensor p{m.model.parameters(), m.model.gradients(), s.exp_avg.data(),
                            s.exp_avg_sq.data(), nullptr, m.model.flat_size()};
  genai::adam_step(ctx, {&p, 1}, ++s.step, {.lr = 1e-4f});
}

bench::Work mlp_train_work(const MlpTrainInputs& s, std::int64_t N) {
  bench::Work w = mlp_work(s.m.model, N);
  w.bytes += 28.0 * static_cast<double>(s.m.model.flat_size()) + 4.0 * N * 2;  // Adam, the target
  return w;
}

void Gpu_MlpTrainStep(benchmark::State& state) {
  mlp_benchmark<MlpTrainInputs>(state, true, make_mlp_train, mlp_train_step, mlp_train_work);
}
void Cpu_MlpTrainStep(benchmark::State& state) {
  mlp_benchmark<MlpTrainInputs>(state, false, make_mlp_train, mlp_train_step, mlp_train_work);
}

// gelu_tanh (the fused cuBLASLt path, genai c3's model) and tiny-diffusion's exact GELU with
// residual blocks.
void mlp_train_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"act", "residual", "N"});
  b->Args({2, 0, 4096});
  b->Args({3, 1, 4096});
}

BENCHMARK(Gpu_MlpTrainStep)->Apply(mlp_train_args)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(Cpu_MlpTrainStep)->Apply(mlp_train_args)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
