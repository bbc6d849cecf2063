// Benchmarks of the Neural ODE layer (host/src/neural_ode.cpp over kernels/neural_ode.cu or
// cpu_reference/neural_ode.cpp, and the MLP's GEMMs): steps per second of the forward and of
// both backwards, and the memory they hold, on torchdiffeq's ode_demo shape -- d = 2, f an MLP
// [h, t] -> 64 -> 64 -> 2 with tanh (4 482 parameters), RK4 over [0, 1], dt = 1 / steps.
// profiling/peers/neural_ode_peers.py runs the same workloads in torchdiffeq (odeint with
// autograd, odeint_adjoint) or, where it is absent, the same steps as plain PyTorch loops.
//
//   <Dev>_NeuralOde/forward    the forward alone (opts.gradient = none: nothing kept)
//   <Dev>_NeuralOde/backprop   backward through the steps, after one untimed forward with a tape
//   <Dev>_NeuralOde/adjoint    the adjoint backward, after one untimed forward
//   <Dev>_NeuralOdeMemory/<backprop|adjoint>/steps:{10,100,1000}  one forward + backward on a
//                              fresh workspace: the bytes it held (4.3: backprop's grow with the
//                              steps, the adjoint's do not)
//
// Counters: steps (RK4 steps per second), sample_steps (batch x steps per second); flop = the
// MLP's GEMMs, 2 batch sum(in out) per MLP forward and twice that per backward (dx and dW): per
// step the forward makes 4 forwards, each backward 4 forwards (re-run) and 4 backwards. bytes:
// per MLP call its activations written and read (batch x (3 + 64 + 64 + 2) floats) and the
// weights read, a forward once and a backward three times; the stage sums are a few batch x d
// passes (negligible). The roof is SGEMM's rate; at these widths (64) the GEMMs are small and
// the CPU is bound by the elementwise passes and OpenBLAS's per-call overhead, the GPU by
// launches (hence the graphs: GPU cases with graphs:1 run on a created stream).
//
// Memory: ws_bytes = NeuralOdeWorkspace::bytes() (the layer's buffers, the MLP's workspace
// excepted); heap_bytes (CPU) = glibc's bytes in use (mallinfo2: arenas and mmapped chunks)
// after the call minus before it, the workspace still alive -- everything the call allocated
// and kept, the MLP's workspace included (buffers only grow, so this is their peak; transient
// allocations freed before the call returns are not seen). pool_bytes (GPU) = the device memory
// pool's high watermark over the call (cudaMemPoolAttrUsedMemHigh, reset before) minus what was
// in use before it: stream-ordered Buffer memory, cuBLASLt's workspace of the MLP included.
#include <malloc.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <tuple>
#include <vector>

#include "genai/neural_ode.hpp"
#include "profiling/bench_common.hpp"
#if GENAI_WITH_CUDA
#include <cuda_runtime.h>

#include "genai/cuda_check.hpp"
#endif

namespace {

namespace bench = genai::bench;
using genai::Buffer;
using genai::Context;
using genai::NeuralOdeGradient;

constexpr std::int64_t kD = 2;
const std::vector<std::int64_t> kSizes{kD + 1, 64, 64, kD};

double gemm_macs() {  // sum_l in_l out_l
  double s = 0;
  for (std::size_t l = 0; l + 1 < kSizes.size(); ++l) s += double(kSizes[l] * kSizes[l + 1]);
  return s;
}
double activation_floats() {
  double s = 0;
  for (const std::int64_t w : kSizes) s += double(w);
  return s;
}

// One workload on ctx: the MLP (seeded), the layer, h0, the trajectory and its gradient. Not
// movable: the layer points at the MLP.
struct Workload {
  genai::Mlp f;
  genai::NeuralOde layer;
  Buffer<float> h0, traj, dtraj, dh0;
  genai::NeuralOdeWorkspace ws;
  std::vector<double> ts{0.0, 1.0};
  std::int64_t batch;

  Workload(const Context& ctx, std::int64_t batch, std::int64_t steps, NeuralOdeGradient g,
           bool graphs)
      : f(ctx, {.sizes = kSizes, .activation = genai::Activation::Tanh}),
        layer(f, {.method = genai::OdeMethod::RK4,
                  .dt = 1.0 / static_cast<double>(steps),
                  .adaptive = false,
                  .gradient = g,
                  .cuda_graphs = graphs}),
        h0(ctx, batch * kD),
        traj(ctx, 2 * batch * kD),
        dtraj(ctx, 2 * batch * kD),
        dh0(ctx, batch * kD),
        batch(batch) {
    f.init(3);
    genai::fill_normal(ctx, h0.data(), batch * kD, {16, genai::rng::streams::user, 0});
    genai::fill_normal(ctx, dtraj.data(), 2 * batch * kD, {17, genai::rng::streams::user, 0});
  }
  Workload(const Workload&) = delete;
  Workload& operator=(const Workload&) = delete;
  genai::NeuralOdeStats forward() { return layer.forward(ws, h0.data(), batch, ts, traj.data()); }
  genai::NeuralOdeStats backward() { return layer.backward(ws, dtraj.data(), dh0.data()); }
};

enum class Mode { Forward, Backprop, Adjoint };

NeuralOdeGradient gradient_of(Mode m) {
  return m == Mode::Forward    ? NeuralOdeGradient::None
         : m == Mode::Backprop ? NeuralOdeGradient::Backprop
                               : NeuralOdeGradient::Adjoint;
}

bench::Work work_of(Mode m, std::int64_t batch, std::int64_t steps) {
  const double calls = 4.0 * static_cast<double>(steps), b = static_cast<double>(batch);
  const double fwd_flop = 2 * b * gemm_macs(),
               fwd_bytes = 4 * (2 * b * activation_floats() + gemm_macs());
  bench::Work w;
  w.flop = calls * (m == Mode::Forward ? fwd_flop : 3 * fwd_flop);
  w.bytes = calls * (m == Mode::Forward ? fwd_bytes : 4 * fwd_bytes);
  w.roof = bench::Work::Roof::Sgemm;
  return w;
}

void set_rates(benchmark::State& state, std::int64_t steps, std::int64_t batch) {
  state.counters["steps"] =
      benchmark::Counter(double(steps), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["sample_steps"] =
      benchmark::Counter(double(steps * batch), benchmark::Counter::kIsIterationInvariantRate);
}

// Timed: the forward (Forward) or the backward after one forward.
void time_mode(Workload& w, Mode m,
               const std::function<void(const std::function<void()>&)>& timer) {
  if (m == Mode::Forward) {
    timer([&] { w.forward(); });
    return;
  }
  w.forward();
  timer([&] { w.backward(); });
}

void Cpu_NeuralOde(benchmark::State& state, Mode m) {
  bench::guarded(state, [&] {
    const std::int64_t steps = state.range(0), batch = state.range(1);
    Workload w(Context::cpu(), batch, steps, gradient_of(m), false);
    time_mode(w, m, [&](const std::function<void()>& op) {
      bench::time_cpu(state, op, work_of(m, batch, steps));
    });
    set_rates(state, steps, batch);
  });
}

std::size_t heap_in_use() {
  const struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

void Cpu_NeuralOdeMemory(benchmark::State& state, Mode m) {
  bench::guarded(state, [&] {
    const std::int64_t steps = state.range(0), batch = state.range(1);
    Workload w(Context::cpu(), batch, steps, gradient_of(m), false);
    const std::size_t before = heap_in_use();
    bench::time_cpu(
        state,
        [&] {
          w.forward();
          w.backward();
        },
        work_of(m, batch, steps));
    state.counters["heap_bytes"] = double(heap_in_use() - before);
    state.counters["ws_bytes"] = double(w.ws.bytes());
    set_rates(state, steps, batch);
  });
}

#if GENAI_WITH_CUDA
// A context on a created stream: the fixed steps' CUDA graphs need one (capture is refused on
// the legacy default stream). It is a blocking stream, so time_gpu's events on the legacy
// stream still bracket its work.
const Context& graph_context() {
  static const Context ctx = [] {
    cudaStream_t s = nullptr;
    GENAI_CUDA_CHECK(cudaStreamCreate(&s));
    return Context::cuda(0, s);
  }();
  return ctx;
}

cudaMemPool_t device_pool() {
  cudaMemPool_t pool = nullptr;
  GENAI_CUDA_CHECK(cudaDeviceGetMemPool(&pool, bench::gpu_context().device_index()));
  return pool;
}
#endif

void Gpu_NeuralOde(benchmark::State& state, Mode m) {
  if (!bench::require_gpu(state)) return;
#if GENAI_WITH_CUDA
  bench::guarded(state, [&] {
    const std::int64_t steps = state.range(0), batch = state.range(1);
    const bool graphs = state.range(2) != 0;
    const Context& ctx = graphs ? graph_context() : bench::gpu_context();
    auto& w = *bench::cached<std::unique_ptr<Workload>>(
        std::tuple{steps, batch, graphs, int(m)},
        [&] { return std::make_unique<Workload>(ctx, batch, steps, gradient_of(m), graphs); });
    time_mode(w, m, [&](const std::function<void()>& op) {
      bench::time_gpu(
          state, [&](std::int64_t) { op(); }, work_of(m, batch, steps));
    });
    set_rates(state, steps, batch);
  });
#else
  (void)m;
#endif
}

void Gpu_NeuralOdeMemory(benchmark::State& state, Mode m) {
  if (!bench::require_gpu(state)) return;
#if GENAI_WITH_CUDA
  bench::guarded(state, [&] {
    const std::int64_t steps = state.range(0), batch = state.range(1);
    const Context& ctx = bench::gpu_context();
    Workload w(ctx, batch, steps, gradient_of(m), false);
    ctx.synchronize();
    const cudaMemPool_t pool = device_pool();
    std::uint64_t used = 0, zero = 0, high = 0;  // the attributes are cuuint64_t (uint64_t)
    GENAI_CUDA_CHECK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &used));
    GENAI_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &zero));
    w.forward();
    w.backward();
    ctx.synchronize();
    GENAI_CUDA_CHECK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &high));
    state.counters["pool_bytes"] = double(high > used ? high - used : 0);
    state.counters["ws_bytes"] = double(w.ws.bytes());
    bench::time_gpu(
        state,
        [&](std::int64_t) {
          w.forward();
          w.backward();
        },
        work_of(m, batch, steps), 1);
    set_rates(state, steps, batch);
  });
#else
  (void)m;
#endif
}

void cpu_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"steps", "batch"});
  b->Args({100, 256});
}
void cpu_memory_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"steps", "batch"});
  for (const std::int64_t s : {10, 100, 1000}) b->Args({s, 64});
  b->Iterations(1);
}
void gpu_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"steps", "batch", "graphs"});
  for (const std::int64_t batch : {1024, 65536})
    for (const std::int64_t graphs : {0, 1}) b->Args({100, batch, graphs});
}
void gpu_memory_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"steps", "batch"});
  for (const std::int64_t s : {10, 100, 1000}) b->Args({s, 1024});
  b->Iterations(3);
}

BENCHMARK_CAPTURE(Cpu_NeuralOde, forward, Mode::Forward)
    ->Apply(cpu_shapes)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Cpu_NeuralOde, backprop, Mode::Backprop)
    ->Apply(cpu_shapes)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Cpu_NeuralOde, adjoint, Mode::Adjoint)
    ->Apply(cpu_shapes)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Cpu_NeuralOdeMemory, backprop, Mode::Backprop)
    ->Apply(cpu_memory_shapes)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Cpu_NeuralOdeMemory, adjoint, Mode::Adjoint)
    ->Apply(cpu_memory_shapes)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Gpu_NeuralOde, forward, Mode::Forward)
    ->Apply(gpu_shapes)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Gpu_NeuralOde, backprop, Mode::Backprop)
    ->Apply(gpu_shapes)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Gpu_NeuralOde, adjoint, Mode::Adjoint)
    ->Apply(gpu_shapes)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Gpu_NeuralOdeMemory, backprop, Mode::Backprop)
    ->Apply(gpu_memory_shapes)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Gpu_NeuralOdeMemory, adjoint, Mode::Adjoint)
    ->Apply(gpu_memory_shapes)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
