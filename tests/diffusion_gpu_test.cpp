// The diffusion module on the GPU against the CPU reference, path by path: noising, reverse
// steps, mixture scores and the loss, and the fused mixture sampler.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <vector>

#include "genai/diffusion.hpp"
#include "genai/error.hpp"
#include "diffusion_test_util.hpp"
#include "test_util.hpp"

namespace genai {
namespace {

const Context kCpu = Context::cpu();

using test::diag_mixture_3d;
using test::expect_argument_error;

class DiffusionGpu : public test::GpuTest {};

// Every element within tol x max(1, |ref|) of the reference, element by element: the far points'
// coordinates span ~20 orders of magnitude, where a norm-wise bound would only see the largest.
::testing::AssertionResult close_elementwise(const std::vector<float>& got,
                                             const std::vector<float>& ref, double tol) {
  if (got.size() != ref.size()) return ::testing::AssertionFailure() << "sizes differ";
  for (std::size_t i = 0; i < got.size(); ++i)
    if (!(std::abs(double(got[i]) - ref[i]) <= tol * std::max(1.0, std::abs(double(ref[i])))))
      return ::testing::AssertionFailure() << "element " << i << ": " << got[i] << " vs reference "
                                           << ref[i];
  return ::testing::AssertionSuccess();
}

// 6 components in d dimensions close to the origin (means ~ N(0, 0.05^2), variances in
// [0.5, 1.5]), unequal weights: points ~ N(0, 0.05^2) have q_k ~ 0.005 d and mixed
// responsibilities, and the float rounding of q (~sqrt(d) 2^-24 q) stays far below 1e-5.
GaussianMixture close_mixture(std::int64_t d) {
  GaussianMixture m;
  m.K = 6;
  m.d = d;
  m.weights = test::uniforms(6, 40 + d, 0.5f, 1.5f);
  float sum = 0;
  for (float w : m.weights) sum += w;
  for (float& w : m.weights) w /= sum;
  m.means = test::normals(6 * d, 41 + d, 0.0f, 0.05f);
  m.variances = test::uniforms(6 * d, 42 + d, 0.5f, 1.5f);
  return m;
}

TEST_F(DiffusionGpu, AddNoiseMatchesReference) {
  const NoiseSchedule s({.beta_schedule = BetaSchedule::SquaredCosCapV2});
  for (std::int64_t d : {1, 3, 4, 37}) {
    const std::int64_t n = test::sized<std::int64_t>(1000, 200);
    const auto x0 = test::normals(n * d, 30 + d);
    std::vector<std::int64_t> ts(n);
    for (std::int64_t r = 0; r < n; ++r) ts[r] = (r * 7919) % 1000;
    std::vector<float> xt(n * d), eps(n * d), v(n * d);
    add_noise(kCpu, s, x0.data(), ts.data(), n, d, xt.data(),
              {.seed = 4, .step = 2, .eps_out = eps.data(), .v_out = v.data()});
    auto dx0 = test::to_device(ctx, x0);
    auto dts = test::to_device(ctx, ts);
    Buffer<float> dxt(ctx, n * d), deps(ctx, n * d), dv(ctx, n * d);
    test::poison(dxt);
    test::poison(deps);
    test::poison(dv);
    add_noise(ctx, s, dx0.data(), dts.data(), n, d, dxt.data(),
              {.seed = 4, .step = 2, .eps_out = deps.data(), .v_out = dv.data()});
    // Same Philox numbers and the same correctly rounded operations: bit for bit.
    EXPECT_EQ(deps.to_host(), eps) << d;
    EXPECT_EQ(dxt.to_host(), xt) << d;
    EXPECT_EQ(dv.to_host(), v) << d;
  }
}

TEST_F(DiffusionGpu, BadDeviceTimestepIsReportedLikeTheCpuAndOutputUntouched) {
  const NoiseSchedule s({.num_train_timesteps = 100});
  const std::int64_t n = 3000, d = 2;
  std::vector<std::int64_t> ts(n, 50);
  ts[1234] = 100;
  auto dts = test::to_device(ctx, ts);
  auto dx0 = test::to_device(ctx, test::normals(n * d, 60));
  Buffer<float> out(ctx, n * d);
  test::poison(out);
  expect_argument_error([&] { add_noise(ctx, s, dx0.data(), dts.data(), n, d, out.data()); },
                        "'timesteps' entry 1234 is 100 (must lie in [0, 99])");
  for (float v : out.to_host()) ASSERT_TRUE(std::isnan(v));
}

TEST_F(DiffusionGpu, ReverseStepsMatchReference) {
  const NoiseSchedule s;
  const std::int64_t n = 513, d = 5;
  const auto x = test::normals(n * d, 40), m = test::normals(n * d, 41);
  auto dx = test::to_device(ctx, x);
  auto dm = test::to_device(ctx, m);
  for (bool ddim : {false, true}) {
    const StepOptions o{.prediction_type = PredictionType::VPrediction, .eta = 0.7,
                        .clip_sample = true, .clip_sample_range = 1.5, .seed = 12};
    std::vector<float> out(n * d);
    Buffer<float> dout(ctx, n * d);
    test::poison(dout);
    if (ddim) {
      ddim_step(kCpu, s, 300, 280, m.data(), x.data(), n, d, out.data(), o);
      ddim_step(ctx, s, 300, 280, dm.data(), dx.data(), n, d, dout.data(), o);
    } else {
      ddpm_step(kCpu, s, 300, 280, m.data(), x.data(), n, d, out.data(), o);
      ddpm_step(ctx, s, 300, 280, dm.data(), dx.data(), n, d, dout.data(), o);
    }
    EXPECT_EQ(dout.to_host(), out) << (ddim ? "ddim" : "ddpm");  // the same float operations
  }
}

TEST_F(DiffusionGpu, MixtureScoreAndLossMatchReference) {
  const GaussianMixture m = diag_mixture_3d();
  const std::int64_t n = 2000;
  const auto x = test::normals(n * 3, 50, 0, 2);
  std::vector<float> eps(n * 3);
  mixture_epsilon(kCpu, m, 0.3, x.data(), n, eps.data());
  auto dx = test::to_device(ctx, x);
  Buffer<float> deps(ctx, n * 3);
  test::poison(deps);
  mixture_epsilon(ctx, m, 0.3, dx.data(), n, deps.data());
  EXPECT_TRUE(test::close(deps.to_host(), eps, {1e-5, 1e-5}));  // float vs double sums of 3 terms

  const auto t = test::normals(n * 3, 51);
  std::vector<float> rows(n), grad(n * 3);
  eps_mse_loss(kCpu, eps.data(), t.data(), n, 3, rows.data(), grad.data());
  auto dt = test::to_device(ctx, t);
  Buffer<float> drows(ctx, n), dgrad(ctx, n * 3);
  test::poison(drows);
  test::poison(dgrad);
  auto deps_ref = test::to_device(ctx, eps);
  eps_mse_loss(ctx, deps_ref.data(), dt.data(), n, 3, drows.data(), dgrad.data());
  EXPECT_TRUE(test::close(drows.to_host(), rows, test::tolerance(test::DType::FP32)));
  EXPECT_TRUE(test::close(dgrad.to_host(), grad, test::tolerance(test::DType::FP32)));
}

// mixture_epsilon in place (out == x), as the CPU reference allows: the kernel accumulates in
// `out`, so the launcher must read x from a copy; the result equals the out-of-place call's.
TEST_F(DiffusionGpu, MixtureEpsilonInPlaceEqualsOutOfPlace) {
  const GaussianMixture m = diag_mixture_3d();
  const std::int64_t n = 777;
  const auto x = test::normals(n * 3, 52, 0, 2);
  auto dx = test::to_device(ctx, x);
  Buffer<float> dout(ctx, n * 3);
  test::poison(dout);
  mixture_epsilon(ctx, m, 0.3, dx.data(), n, dout.data());
  mixture_epsilon(ctx, m, 0.3, dx.data(), n, dx.data());
  EXPECT_EQ(dx.to_host(), dout.to_host());
}

// Every kernel of the mixture score (a thread per point for d <= 32: 1, 2, 3, 4, 8, 16, 32; a warp
// per point beyond: registers up to 64, 128, 256 columns, the output row as accumulator past
// 256) against the reference, out of place and in place.
TEST_F(DiffusionGpu, MixtureScoreEveryWidthMatchesReference) {
  for (std::int64_t d : {1, 2, 4, 7, 16, 32, 33, 64, 100, 200, 257, 300}) {
    const GaussianMixture m = close_mixture(d);
    const std::int64_t n = 500;
    const auto x = test::normals(n * d, 50 + d, 0.0f, 0.05f);
    std::vector<float> eps(n * d);
    mixture_epsilon(kCpu, m, 0.3, x.data(), n, eps.data());
    auto dx = test::to_device(ctx, x);
    Buffer<float> deps(ctx, n * d);
    test::poison(deps);
    mixture_epsilon(ctx, m, 0.3, dx.data(), n, deps.data());
    EXPECT_TRUE(test::close(deps.to_host(), eps, test::tolerance(test::DType::FP32))) << "d " << d;
    mixture_epsilon(ctx, m, 0.3, dx.data(), n, dx.data());
    EXPECT_EQ(dx.to_host(), deps.to_host()) << "in place, d " << d;
  }
}

// Far points (test::far_points; the CPU test MixtureScoreFarFromEveryComponentIsFiniteAndOneHot
// checks the reference on them): the float log densities of some or all components are -inf,
// the reference's are finite and one-hot. The kernels must give the reference's score, with
// one float rounding per operation on ~1e-7 relative; bound 1e-5 element by element. Every
// kernel width, score and epsilon.
TEST_F(DiffusionGpu, MixtureScoreFarFromEveryComponentMatchesReference) {
  for (std::int64_t d : {2, 3, 5, 20, 40, 100, 200, 300}) {
    const GaussianMixture m = test::anisotropic_mixture(d);
    const std::int64_t n = 40;
    const auto x = test::far_points(n, d, 70 + d);
    auto dx = test::to_device(ctx, x);
    for (bool eps : {false, true}) {
      std::vector<float> want(n * d);
      Buffer<float> got(ctx, n * d);
      test::poison(got);
      if (eps) {
        mixture_epsilon(kCpu, m, 0.9, x.data(), n, want.data());
        mixture_epsilon(ctx, m, 0.9, dx.data(), n, got.data());
      } else {
        mixture_score(kCpu, m, 0.9, x.data(), n, want.data());
        mixture_score(ctx, m, 0.9, dx.data(), n, got.data());
      }
      EXPECT_TRUE(close_elementwise(got.to_host(), want, 1e-5)) << "d " << d << (eps ? " eps" : "");
    }
  }
}

// The fused sampler and the step-by-step GPU loop from far points (draw_initial_noise off) against
// the CPU loop: every step's score takes the far-point path (the states grow, up to ~2e32).
// Float against double scores, ~1e-7 relative per step over 50 steps; bound 1e-4 element by
// element, as the other sampler cases.
TEST_F(DiffusionGpu, FusedMixtureSamplerFarFromEveryComponentMatchesReference) {
  const NoiseSchedule s;
  for (std::int64_t d : {2, 3, 5, 20})
    for (SamplerKind kind : {SamplerKind::DDPM, SamplerKind::DDIM}) {
      const GaussianMixture m = test::anisotropic_mixture(d);
      const std::int64_t n = 39;  // rows of 2e19, 1e25 and 1e30 only: 3e37 would overflow
      std::vector<float> x0;
      const auto far = test::far_points(4 * 13, d, 80 + d);
      for (std::int64_t r = 0; r < 4 * 13; ++r)
        if (r % 4 != 3) x0.insert(x0.end(), far.begin() + r * d, far.begin() + (r + 1) * d);
      const SamplerOptions o{.sampler = kind, .num_inference_steps = 50,
                             .step = {.eta = kind == SamplerKind::DDIM ? 0.5 : 0.0, .seed = 3},
                             .draw_initial_noise = false};
      auto want = x0;
      sample_mixture(kCpu, s, m, n, want.data(), o);
      auto dx = test::to_device(ctx, x0);
      sample_mixture(ctx, s, m, n, dx.data(), o);
      EXPECT_TRUE(close_elementwise(dx.to_host(), want, 1e-4)) << "fused, d " << d;
      auto dy = test::to_device(ctx, x0);
      sample(ctx, s, mixture_model(m, s), n, d, dy.data(), o);
      EXPECT_TRUE(close_elementwise(dy.to_host(), want, 1e-4)) << "step by step, d " << d;
    }
}

// The fused sampler (whole loop in one launch) and the step-by-step loop on the GPU against the
// CPU loop: the same Philox noise, so the same paths. The mixture score is float on the GPU and
// double on the CPU: test::same_paths says how far those ~1e-7 differences may carry.
TEST_F(DiffusionGpu, FusedMixtureSamplerMatchesReference) {
  const NoiseSchedule s;
  const std::int64_t n = 3000;
  for (const char* target : {"gmm8", "two_modes"})
    for (SamplerKind kind : {SamplerKind::DDPM, SamplerKind::DDIM}) {
      const GaussianMixture m = GaussianMixture::preset(target);
      const SamplerOptions o{.sampler = kind, .num_inference_steps = 100,
                             .step = {.eta = kind == SamplerKind::DDIM ? 0.5 : 0.0, .seed = 9}};
      std::vector<float> x(n * 2);
      sample_mixture(kCpu, s, m, n, x.data(), o);
      Buffer<float> dx(ctx, n * 2);
      test::poison(dx);
      sample_mixture(ctx, s, m, n, dx.data(), o);
      EXPECT_TRUE(test::same_paths(dx.to_host(), x, 2)) << target << " fused";
      Buffer<float> dy(ctx, n * 2);
      test::poison(dy);
      sample(ctx, s, mixture_model(m, s), n, 2, dy.data(), o);
      EXPECT_TRUE(test::same_paths(dy.to_host(), x, 2)) << target << " step by step";
    }
}

// The fused sampler beyond 2D: d = 3 (exact-D kernel), 5 and 20 (the d <= 8 and d <= 16 kernels,
// several Philox blocks per point), diagonal variances, unequal weights, intermediates kept.
TEST_F(DiffusionGpu, FusedMixtureSamplerHighDimMatchesReference) {
  const NoiseSchedule s;
  const std::int64_t n = test::sized<std::int64_t>(1000, 256), steps = 50, keep = 10, K = 6;
  for (std::int64_t d : {3, 5, 20}) {
    GaussianMixture m;
    m.K = K, m.d = d;
    m.weights = test::uniforms(K, 40 + d, 0.5f, 1.5f);
    float sum = 0;
    for (float w : m.weights) sum += w;
    for (float& w : m.weights) w /= sum;
    m.means = test::normals(K * d, 41 + d, 0.0f, 3.0f);
    m.variances = test::uniforms(K * d, 42 + d, 0.2f, 1.5f);
    const std::int64_t records = steps / keep;
    std::vector<float> x(n * d), inter(records * n * d);
    SamplerOptions o{.num_inference_steps = steps, .step = {.seed = 3}, .keep_every = keep,
                     .intermediates = inter.data()};
    sample_mixture(kCpu, s, m, n, x.data(), o);
    Buffer<float> dx(ctx, n * d), dinter(ctx, records * n * d);
    test::poison(dx);
    test::poison(dinter);
    o.intermediates = dinter.data();
    sample_mixture(ctx, s, m, n, dx.data(), o);
    EXPECT_TRUE(test::close(dx.to_host(), x, {1e-4, 1e-4})) << "d = " << d;
    EXPECT_TRUE(test::close(dinter.to_host(), inter, {1e-4, 1e-4})) << "d = " << d;
  }
}

}  // namespace
}  // namespace genai
