// Benchmarks of the train module (host/src/train.cpp, kernels/train.cu).
//
// Diffusion training step (DiffusionTrainer::step): genai c3's model -- x 2 -> 128 -> 128 ->
// 128 -> 2, GELU(tanh), 128-wide time embedding -- at batch 4096 on two_moons: the batch kernel,
// forward, MSE, backward, AdamW and the EMA, all on the device with no host round trip.
// Reported as steps/s. The peer (profiling/peers/train_peers.py) runs tiny-diffusion's training
// loop on the same model in PyTorch: eager, the whole step in a CUDA graph, torch.compile on the
// GPU; eager float32 on the CPU.
//
// Sampling with the network (genai::sample through network_model, DDPM): points x steps per
// second. GPU: 10^5 points x 1000 steps, each step one network forward over all rows (the
// time fill, the embedding, four GEMMs with their epilogues) and the DDPM update: 7 launches a
// step; graph:1 captures the whole 1000-step call in a CUDA graph once and times its launches
// (one launch for the 7000 kernels). CPU: 10^4 points x 20 steps. The peer: the same loop in
// PyTorch (eager, and the step in a CUDA graph on the GPU).
#include <cstdint>
#include <tuple>

#include "profiling/bench_common.hpp"
#if GENAI_WITH_CUDA
#include <cuda_runtime.h>

#include "genai/cuda_check.hpp"
#endif

namespace {

namespace bench = genai::bench;

genai::DiffusionTrainOptions c3_model(std::int64_t batch) {
  genai::DiffusionTrainOptions o;
  o.batch_size = batch;
  o.steps = 1000000;  // a long planned run: the learning rate stays near its peak
  return o;
}

struct TrainInputs {
  genai::DiffusionTrainer trainer;
};

void set_rate(benchmark::State& state, const char* name, double per_call) {
  state.counters[name] = benchmark::Counter(per_call * static_cast<double>(state.iterations()),
                                            benchmark::Counter::kIsRate);
}

void Gpu_DiffusionTrainStep(benchmark::State& state) {
  if (!bench::require_gpu(state)) return;
  bench::guarded(state, [&] {
    const std::int64_t B = state.range(0);
    const genai::Context& ctx = bench::gpu_context();
    auto& in = bench::cached<TrainInputs>(B, [&] {
      return TrainInputs{genai::DiffusionTrainer(ctx, genai::make_dataset("two_moons", 20000, 0),
                                                 c3_model(B))};
    });
    bench::time_gpu(state, [&](std::int64_t) { in.trainer.step(); }, {});
    set_rate(state, "steps/s", 1);
  });
}

void Cpu_DiffusionTrainStep(benchmark::State& state) {
  bench::guarded(state, [&] {
    const std::int64_t B = state.range(0);
    const genai::Context ctx = genai::Context::cpu();
    auto& in = bench::cached<TrainInputs>(B, [&] {
      return TrainInputs{genai::DiffusionTrainer(ctx, genai::make_dataset("two_moons", 20000, 0),
                                                 c3_model(B))};
    });
    bench::time_cpu(state, [&] { in.trainer.step(); }, {});
    set_rate(state, "steps/s", 1);
  });
}

BENCHMARK(Gpu_DiffusionTrainStep)->ArgName("batch")->Arg(4096)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(Cpu_DiffusionTrainStep)->ArgName("batch")->Arg(4096)->UseRealTime()->Unit(benchmark::kMillisecond);

// ---- sampling with the network ---------------------------------------------------------------

struct SampleInputs {
  std::shared_ptr<genai::Mlp> net;
  genai::Model model;
  genai::Buffer<float> x;
};

SampleInputs make_sampler(const genai::Context& ctx, std::int64_t n) {
  auto net = std::make_shared<genai::Mlp>(ctx, genai::network_options(c3_model(1), 2));
  net->init(1);
  return {net, genai::network_model(net, n), genai::Buffer<float>(ctx, n * 2)};
}

genai::SamplerOptions ddpm(std::int64_t steps) {
  return {.sampler = genai::SamplerKind::DDPM, .num_inference_steps = steps,
          .step = {.seed = 1}, .check_divergence = false};
}

void Gpu_SampleMlp(benchmark::State& state) {
  if (!bench::require_gpu(state)) return;
  bench::guarded(state, [&] {
    const std::int64_t n = state.range(0), steps = state.range(1);
    const genai::NoiseSchedule s;
    if (state.range(2) == 0) {
      const genai::Context& ctx = bench::gpu_context();
      auto& in = bench::cached<SampleInputs>(std::tuple{n, 0}, [&] { return make_sampler(ctx, n); });
      bench::time_gpu(state, [&](std::int64_t) {
        genai::sample(ctx, s, in.model, n, 2, in.x.data(), ddpm(steps));
      }, {}, 1);
      set_rate(state, "point_steps/s", static_cast<double>(n) * static_cast<double>(steps));
      return;
    }
#if GENAI_WITH_CUDA
    // The whole call captured once on a stream of its own, launched on the timing stream.
    struct Graph {
      cudaStream_t stream = nullptr;
      SampleInputs in;
      cudaGraphExec_t exec = nullptr;
      ~Graph() {
        if (exec) cudaGraphExecDestroy(exec);
        in = {};  // its buffers are freed in the order of `stream`: before it goes
        if (stream) cudaStreamDestroy(stream);
      }
    };
    auto& g = bench::cached<std::unique_ptr<Graph>>(std::tuple{n, 1}, [&] {
      auto gr = std::make_unique<Graph>();
      GENAI_CUDA_CHECK(cudaStreamCreate(&gr->stream));
      const genai::Context sctx = genai::Context::cuda(0, gr->stream);
      gr->in = make_sampler(sctx, n);
      genai::sample(sctx, s, gr->in.model, n, 2, gr->in.x.data(), ddpm(1));  // sizes the workspace
      GENAI_CUDA_CHECK(cudaStreamSynchronize(gr->stream));
      cudaGraph_t graph = nullptr;
      GENAI_CUDA_CHECK(cudaStreamBeginCapture(gr->stream, cudaStreamCaptureModeThreadLocal));
      genai::sample(sctx, s, gr->in.model, n, 2, gr->in.x.data(), ddpm(steps));
      GENAI_CUDA_CHECK(cudaStreamEndCapture(gr->stream, &graph));
      GENAI_CUDA_CHECK(cudaGraphInstantiate(&gr->exec, graph, 0));
      GENAI_CUDA_CHECK(cudaGraphDestroy(graph));
      return gr;
    });
    const cudaStream_t timing = bench::gpu_context().stream();
    bench::time_gpu(state, [&](std::int64_t) { GENAI_CUDA_CHECK(cudaGraphLaunch(g->exec, timing)); },
                    {}, 1);
    set_rate(state, "point_steps/s", static_cast<double>(n) * static_cast<double>(steps));
#endif
  });
}

void Cpu_SampleMlp(benchmark::State& state) {
  bench::guarded(state, [&] {
    const std::int64_t n = state.range(0), steps = state.range(1);
    const genai::Context ctx = genai::Context::cpu();
    const genai::NoiseSchedule s;
    auto& in = bench::cached<SampleInputs>(n, [&] { return make_sampler(ctx, n); });
    bench::time_cpu(state, [&] { genai::sample(ctx, s, in.model, n, 2, in.x.data(), ddpm(steps)); }, {});
    set_rate(state, "point_steps/s", static_cast<double>(n) * static_cast<double>(steps));
  });
}

BENCHMARK(Gpu_SampleMlp)
    ->ArgNames({"n", "steps", "graph"})
    ->Args({100000, 1000, 0})
    ->Args({100000, 1000, 1})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(Cpu_SampleMlp)
    ->ArgNames({"n", "steps"})
    ->Args({10000, 20})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
