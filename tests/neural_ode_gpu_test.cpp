// The Neural ODE layer on the GPU against the CPU path (which tests/neural_ode_test.cpp checks
// against the double oracle and finite differences): the same MLP (initialisation from Philox:
// the same bits on both), the same steps; the MLP's GEMMs sum in another order (cuBLASLt
// against OpenBLAS), so the comparisons are fp32's. Every fixed-step method with t as a column
// or not, forward and both backwards; adaptive dopri5 (the host decides the GPU's steps from
// the same norms: the same steps but where a norm is within rounding of 1); and the CUDA graphs
// of a created stream against plain launches, over several calls on one workspace.
#include <gtest/gtest.h>

#include <vector>

#include "genai/neural_ode.hpp"
#include "neural_ode_test_util.hpp"
#include "test_util.hpp"
#if GENAI_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace genai {
namespace {

class NeuralOdeGpu : public test::GpuTest {};

const test::Tolerance kFp32 = test::tolerance(test::DType::FP32);
constexpr OdeMethod kFixed[] = {OdeMethod::Euler, OdeMethod::Midpoint, OdeMethod::RK4,
                                OdeMethod::RK4_38, OdeMethod::Dopri5};

// The layer of options o on a fresh MLP of `ctx` (seeded: the same weights everywhere), run
// forward and backward.
test::NodeRun run_on(const Context& ctx, const NeuralOdeOptions& o, const std::vector<float>& h0,
                     std::int64_t batch, const std::vector<double>& ts,
                     const std::vector<float>& w) {
  Mlp f = test::field(ctx, 2, {32, 32}, o.time, 5);
  NeuralOde layer(f, o);
  return test::run_layer(layer, h0, batch, ts, w);
}

void expect_same_run(const test::NodeRun& gpu, const test::NodeRun& cpu,
                     const test::Tolerance& tol) {
  EXPECT_TRUE(test::close(gpu.traj, cpu.traj, tol));
  EXPECT_TRUE(test::close(gpu.dh0, cpu.dh0, tol));
  EXPECT_TRUE(test::close(gpu.grads, cpu.grads, tol));
  EXPECT_EQ(gpu.forward.steps, cpu.forward.steps);
  EXPECT_EQ(gpu.backward.steps, cpu.backward.steps);
}

TEST_F(NeuralOdeGpu, FixedStepForwardAndGradientsMatchReference) {
  const std::int64_t batch = test::sized(1000, 16);
  const std::vector<double> ts{0.0, 0.3, 1.0};
  const auto h0 = test::normals(batch * 2, 1);
  const auto w = test::normals(ts.size() * batch * 2, 2);
  // Under the sanitizers (small runs) RK4 only: the 24 runs did not finish racecheck in 170 s.
  const std::vector<OdeMethod> methods = test::small_run()
                                             ? std::vector<OdeMethod>{OdeMethod::RK4}
                                             : std::vector<OdeMethod>(std::begin(kFixed), std::end(kFixed));
  for (OdeMethod m : methods)
    for (NeuralOdeTime time : {NeuralOdeTime::Concat, NeuralOdeTime::None})
      for (NeuralOdeGradient g :
           {NeuralOdeGradient::None, NeuralOdeGradient::Backprop, NeuralOdeGradient::Adjoint}) {
        SCOPED_TRACE(to_string(m) + ", time " + to_string(time) + ", gradient " + to_string(g));
        const NeuralOdeOptions o{
            .method = m, .dt = 0.1, .adaptive = false, .time = time, .gradient = g};
        expect_same_run(run_on(ctx, o, h0, batch, ts, w),
                        run_on(Context::cpu(), o, h0, batch, ts, w), kFp32);
      }
}

// Adaptive dopri5, forward and both backwards; both backends within rtol of the solution, so
// within a few rtol of each other even where a decision differs.
TEST_F(NeuralOdeGpu, AdaptiveDopri5MatchesReference) {
  const std::int64_t batch = test::sized(1000, 16);
  const std::vector<double> ts{0.0, 0.5, 1.5, 2.0};
  const auto h0 = test::normals(batch * 2, 3, 0.0f, 2.0f);
  const auto w = test::normals(ts.size() * batch * 2, 4);
  for (NeuralOdeGradient g : {NeuralOdeGradient::Backprop, NeuralOdeGradient::Adjoint}) {
    SCOPED_TRACE(to_string(g));
    const NeuralOdeOptions o{
        .method = OdeMethod::Dopri5, .rtol = 1e-5, .atol = 1e-7, .gradient = g};
    const test::NodeRun gpu = run_on(ctx, o, h0, batch, ts, w);
    const test::NodeRun cpu = run_on(Context::cpu(), o, h0, batch, ts, w);
    const test::Tolerance tol{10 * o.rtol, 10 * o.rtol};
    EXPECT_TRUE(test::close(gpu.traj, cpu.traj, tol));
    EXPECT_TRUE(test::close(gpu.dh0, cpu.dh0, tol));
    EXPECT_TRUE(test::close(gpu.grads, cpu.grads, tol));
    EXPECT_NEAR(double(gpu.forward.steps), double(cpu.forward.steps), 1.0);
  }
}

#if GENAI_WITH_CUDA
// On a created stream the fixed steps replay as CUDA graphs (captured at a call's second step,
// kept in the workspace): the same numbers as plain launches and as the CPU, over three calls
// on one workspace (the later ones replay the graphs from their first step), for the forward
// and the adjoint.
TEST_F(NeuralOdeGpu, CudaGraphStepsMatchReference) {
  const std::int64_t batch = test::sized(512, 16);
  const std::vector<double> ts{0.0, 0.25, 1.0};
  const auto h0 = test::normals(batch * 2, 5);
  const auto w = test::normals(ts.size() * batch * 2, 6);
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  {
    const Context sctx = Context::cuda(0, stream);
    for (OdeMethod m : {OdeMethod::RK4, OdeMethod::Dopri5}) {
      SCOPED_TRACE(to_string(m));
      NeuralOdeOptions o{
          .method = m, .dt = 0.02, .adaptive = false, .gradient = NeuralOdeGradient::Adjoint};
      const test::NodeRun cpu = run_on(Context::cpu(), o, h0, batch, ts, w);
      o.cuda_graphs = false;
      const test::NodeRun plain = run_on(sctx, o, h0, batch, ts, w);
      expect_same_run(plain, cpu, kFp32);
      EXPECT_EQ(plain.forward.graph_steps, 0);
      o.cuda_graphs = true;
      Mlp f = test::field(sctx, 2, {32, 32}, o.time, 5);
      NeuralOde layer(f, o);
      NeuralOdeWorkspace ws;
      const std::int64_t n = batch * 2;
      Buffer<float> h(sctx, std::span<const float>(h0)), traj(sctx, ts.size() * n), dh0(sctx, n);
      Buffer<float> dtraj(sctx, std::span<const float>(w));
      for (int call = 0; call < 3; ++call) {
        SCOPED_TRACE(call);
        test::poison(traj);
        test::poison(dh0);
        const NeuralOdeStats fs = layer.forward(ws, h.data(), batch, ts, traj.data());
        const NeuralOdeStats bs = layer.backward(ws, dtraj.data(), dh0.data());
        // The first call captures at its second step; later calls replay from the first.
        EXPECT_EQ(fs.graph_steps, call == 0 ? fs.steps - 1 : fs.steps);
        EXPECT_EQ(bs.graph_steps, call == 0 ? bs.steps - 1 : bs.steps);
        EXPECT_EQ(fs.steps, cpu.forward.steps);
        EXPECT_EQ(fs.nfev, cpu.forward.nfev);
        EXPECT_EQ(bs.vjp, cpu.backward.vjp);
        EXPECT_TRUE(test::close(traj.to_host(), plain.traj, kFp32));
        EXPECT_TRUE(test::close(dh0.to_host(), plain.dh0, kFp32));
        std::vector<float> g(f.flat_size());
        detail::copy_bytes(sctx, g.data(), Device::CPU, f.gradients(), Device::CUDA,
                           g.size() * sizeof(float));
        EXPECT_TRUE(test::close(g, plain.grads, kFp32));
      }
    }
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  }
  cudaStreamDestroy(stream);
}
#endif

}  // namespace
}  // namespace genai
