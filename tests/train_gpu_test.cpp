// The train module on the GPU against the CPU reference: the batch kernel bit for bit (every
// prediction type, d = 2 and a d that leaves a ragged Philox block); whole training steps --
// forward, loss, backward, AdamW, EMA -- from one seed, their losses, weights, moving average
// and moments within float tolerance; a run saved and resumed on the GPU equal to the
// uninterrupted GPU run bit for bit (cuBLAS gives the same bits run to run on one device); a
// step captured in a CUDA graph (capture fails on any host round trip) equal to the step run
// directly; the trained network as a sampler's model, and annealed Langevin on the schedule's
// levels, against the CPU. Skipped, saying why, without a device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "genai/diffusion.hpp"
#include "genai/train.hpp"
#include "tests/test_util.hpp"
#include "tests/train_test_util.hpp"
#if GENAI_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace genai {
namespace {

const Context kCpu = Context::cpu();

class TrainGpu : public test::GpuTest {};

bool same_bytes(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Differences from a start: what the steps changed.
std::vector<float> minus(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> d(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return d;
}

std::vector<float> root(std::vector<float> v) {
  for (float& x : v) x = std::sqrt(x);
  return v;
}

TEST_F(TrainGpu, TrainingBatchMatchesReferenceBitForBit) {
  for (const std::int64_t d : {2, 7}) {
    const std::int64_t n = 3001;
    Dataset data{"random", n, d, 0, test::normals(n * d, 10 + d, 0, 3)};
    for (const PredictionType type :
         {PredictionType::Epsilon, PredictionType::Sample, PredictionType::VPrediction}) {
      DiffusionTrainOptions o = test::small_training(10, test::sized(1000, 100), 16);
      o.prediction_type = type;
      DiffusionTrainer cpu(kCpu, data, o), gpu(ctx, data, o);
      for (int k = 0; k < 3; ++k) {
        cpu.step();
        gpu.step();
        const auto a = cpu.last_batch(), b = gpu.last_batch();
        EXPECT_TRUE(same_bytes(a.x_t, b.x_t)) << "d " << d << " step " << k;
        EXPECT_TRUE(same_bytes(a.target, b.target)) << "d " << d << " step " << k;
        EXPECT_TRUE(same_bytes(a.t, b.t)) << "d " << d << " step " << k;
      }
    }
  }
}

// Three whole steps on each backend from one seed. Adam's first steps move each weight by about
// lr sign(g), which jumps where g crosses 0: a gradient that is 0 to float rounding could move
// a weight +lr on one backend and -lr on the other. adam_eps = 1e-3 (>> the gradients' float
// noise) makes the step Lipschitz in g (constant lr / eps), so float-level gradient differences
// stay float-level in the weights. Tolerance: cuBLASLt's GELU(tanh) epilogue's own tanh (as in
// the nn module's GPU tests, the tf32 bound 3e-4) where the network uses it, fp32 with ReLU.
TEST_F(TrainGpu, TrainingStepsMatchReference) {
  const Dataset data = make_dataset("two_moons", 4096, 1);
  for (const Activation act : {Activation::GELUTanh, Activation::ReLU}) {
    DiffusionTrainOptions o = test::small_training(20, test::sized(512, 128), 64);
    o.activation = act;
    o.adam_eps = 1e-3f;
    const test::Tolerance tol = test::tolerance(act == Activation::ReLU ? test::DType::FP32
                                                                       : test::DType::TF32);
    DiffusionTrainer cpu(kCpu, data, o), gpu(ctx, data, o);
    const std::vector<float> w0 = cpu.weights();
    ASSERT_TRUE(same_bytes(gpu.weights(), w0));  // init_linear: the same bits
    for (int k = 0; k < 3; ++k) {
      cpu.step();
      gpu.step();
    }
    const std::string what = to_string(act);
    EXPECT_TRUE(test::close(gpu.losses(), cpu.losses(), tol)) << what;
    EXPECT_TRUE(test::close(minus(gpu.weights(), w0), minus(cpu.weights(), w0), tol)) << what;
    EXPECT_TRUE(test::close(minus(gpu.ema_weights(), w0), minus(cpu.ema_weights(), w0), tol)) << what;
    EXPECT_TRUE(test::close(gpu.exp_avg(), cpu.exp_avg(), tol)) << what;
    // sqrt(v): the gradients' own scale, so the same relative bound (v doubles their error).
    EXPECT_TRUE(test::close(root(gpu.exp_avg_sq()), root(cpu.exp_avg_sq()), tol)) << what;
  }
}

TEST_F(TrainGpu, ResumedRunEqualsTheUninterruptedRunBitForBit) {
  const test::TempDir dir;
  const Dataset data = make_dataset("swiss_roll", 4000, 2);
  const DiffusionTrainOptions o = test::small_training(30, test::sized(512, 64), 32);
  DiffusionTrainer whole(ctx, data, o), first(ctx, data, o);
  for (int i = 0; i < 30; ++i) whole.step();
  for (int i = 0; i < 12; ++i) first.step();
  first.save(dir / "gpu.safetensors");
  DiffusionTrainer resumed = DiffusionTrainer::resume(ctx, data, dir / "gpu.safetensors");
  for (int i = 0; i < 18; ++i) resumed.step();
  EXPECT_TRUE(same_bytes(resumed.weights(), whole.weights()));
  EXPECT_TRUE(same_bytes(resumed.ema_weights(), whole.ema_weights()));
  EXPECT_TRUE(same_bytes(resumed.exp_avg(), whole.exp_avg()));
  EXPECT_TRUE(same_bytes(resumed.exp_avg_sq(), whole.exp_avg_sq()));
  EXPECT_TRUE(same_bytes(resumed.losses(), whole.losses()));
}

#if GENAI_WITH_CUDA
// Step 2 captured into a CUDA graph and launched once equals step 2 run directly: the step
// enqueues work only (a synchronisation or a host copy would fail the capture).
TEST_F(TrainGpu, TrainingStepCapturesInACudaGraph) {
  const Dataset data = make_dataset("gmm8", 2000, 3);
  const DiffusionTrainOptions o = test::small_training(10, test::sized(256, 64), 32);
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  {  // the trainers free their buffers on `stream`: they go before it does
    const Context sctx = Context::cuda(0, stream);
    DiffusionTrainer direct(sctx, data, o), graphed(sctx, data, o);
    direct.step();
    direct.step();
    graphed.step();  // sizes the workspace and plans the GEMMs
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    graphed.step();
    ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
    ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    EXPECT_TRUE(same_bytes(graphed.weights(), direct.weights()));
    EXPECT_TRUE(same_bytes(graphed.ema_weights(), direct.ema_weights()));
    EXPECT_TRUE(same_bytes(graphed.losses(), direct.losses()));
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
  }
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  cudaStreamDestroy(stream);
}
#endif

// DDPM through the network as a Model (ReLU: fp32 GEMMs throughout) and annealed Langevin on
// the schedule's levels through the exact mixture score, on both backends from one seed.
TEST_F(TrainGpu, NetworkModelAndAnnealedLangevinMatchReference) {
  MlpOptions mo{.sizes = {2, 64, 64, 2}, .activation = Activation::ReLU, .time_embedding_dim = 16};
  auto net_cpu = std::make_shared<Mlp>(kCpu, mo);
  auto net_gpu = std::make_shared<Mlp>(ctx, mo);
  net_cpu->init(4);
  net_gpu->init(4);
  const NoiseSchedule s;
  const std::int64_t n = test::sized(5000, 500);
  const SamplerOptions so{.num_inference_steps = 20, .step = {.seed = 9}};
  std::vector<float> want(n * 2);
  sample(kCpu, s, network_model(net_cpu, 1000), n, 2, want.data(), so);
  Buffer<float> got(ctx, n * 2);
  test::poison(got);
  sample(ctx, s, network_model(net_gpu, 1000), n, 2, got.data(), so);
  EXPECT_TRUE(test::close(got.to_host(), want, {1e-4, 1e-4})) << "DDPM through the network";

  const Model exact = mixture_model(GaussianMixture::preset("two_modes"), s);
  const AnnealedLangevinOptions al{.num_levels = 20, .steps_per_level = 3, .seed = 2};
  sample_annealed_langevin(kCpu, s, exact, n, 2, want.data(), al);
  test::poison(got);
  sample_annealed_langevin(ctx, s, exact, n, 2, got.data(), al);
  EXPECT_TRUE(test::same_paths(got.to_host(), want, 2)) << "annealed Langevin";
}

}  // namespace
}  // namespace genai
