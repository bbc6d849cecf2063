// Diffusion: schedule tables, 9.1 moments of x_t, the reverse steps against their formulas, the
// loss gradient and bad input. Samplers on Gaussian mixtures: tests/diffusion_samplers_test.cpp;
// GPU == CPU path by path: tests/diffusion_gpu_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <vector>

#include "genai/diffusion.hpp"
#include "genai/error.hpp"
#include "test_util.hpp"

namespace genai {
namespace {

const Context kCpu = Context::cpu();

using test::expect_argument_error;

// ---- schedules -----------------------------------------------------------------------------

// alpha_bar at the last step of diffusers' schedules with T = 1000 (float64 cumprod of the
// betas defined in DDPMScheduler; scaled_linear with Stable Diffusion's 0.00085 / 0.012).
TEST(Diffusion, ScheduleTablesMatchDiffusers) {
  const NoiseSchedule lin;
  ASSERT_EQ(lin.num_train_timesteps(), 1000);
  EXPECT_DOUBLE_EQ(lin.betas()[0], 1e-4);
  EXPECT_DOUBLE_EQ(lin.betas()[999], 0.02);
  EXPECT_NEAR(lin.alphas_cumprod()[999], 4.0358297653756754e-05, 1e-15);
  EXPECT_NEAR(lin.alphas_cumprod()[499], 0.07858724288177821, 1e-12);

  const NoiseSchedule sl({.beta_schedule = BetaSchedule::ScaledLinear,
                          .beta_start = 0.00085, .beta_end = 0.012});
  EXPECT_NEAR(sl.alphas_cumprod()[999], 0.004660098513077234, 1e-12);

  const NoiseSchedule sig({.beta_schedule = BetaSchedule::Sigmoid});
  EXPECT_NEAR(sig.alphas_cumprod()[999], 3.968181990533219e-05, 1e-15);
  EXPECT_NEAR(sig.alphas_cumprod()[499], 0.30193105660219516, 1e-12);

  // Cosine: the product telescopes to f((t+1)/T) / f(0) until the 0.999 cap bites (only the
  // last beta, 1 - f(1)/f(0.999) = 1, is capped).
  const NoiseSchedule cos({.beta_schedule = parse_beta_schedule("squaredcos_cap_v2")});
  auto f = [](double s) { return std::pow(std::cos((s + 0.008) / 1.008 * std::numbers::pi / 2), 2); };
  EXPECT_DOUBLE_EQ(cos.betas()[999], 0.999);
  EXPECT_LT(cos.betas()[998], 0.999);
  for (int t : {0, 10, 499, 900, 998})
    EXPECT_NEAR(cos.alphas_cumprod()[t], f((t + 1) / 1000.0) / f(0), 1e-12) << t;
  EXPECT_NEAR(cos.alphas_cumprod()[999], 2.4287669070348567e-09, 1e-15);

  for (const NoiseSchedule* s : {&lin, &sl, &sig, &cos})
    for (int t = 0; t < 1000; ++t) {
      const double ab = s->alphas_cumprod()[t];
      ASSERT_DOUBLE_EQ(s->alphas()[t], 1 - s->betas()[t]);
      ASSERT_DOUBLE_EQ(s->sqrt_alphas_cumprod()[t], std::sqrt(ab));
      ASSERT_DOUBLE_EQ(s->sqrt_one_minus_alphas_cumprod()[t], std::sqrt(1 - ab));
      ASSERT_DOUBLE_EQ(s->snr()[t], ab / (1 - ab));
      if (t > 0) {
        ASSERT_LT(ab, s->alphas_cumprod()[t - 1]);
      }
    }
}

TEST(Diffusion, InferenceTimestepsMatchDiffusersSpacings) {
  using V = std::vector<std::int64_t>;
  EXPECT_EQ(inference_timesteps(1000, 10), (V{900, 800, 700, 600, 500, 400, 300, 200, 100, 0}));
  EXPECT_EQ(inference_timesteps(1000, 10, TimestepSpacing::Leading, 1),
            (V{901, 801, 701, 601, 501, 401, 301, 201, 101, 1}));
  EXPECT_EQ(inference_timesteps(1000, 10, TimestepSpacing::Trailing),
            (V{999, 899, 799, 699, 599, 499, 399, 299, 199, 99}));
  // numpy: round(linspace(0, 999, 10))[::-1]; 111, 222, ... are 111.0, 222.0 exactly.
  EXPECT_EQ(inference_timesteps(1000, 10, TimestepSpacing::Linspace),
            (V{999, 888, 777, 666, 555, 444, 333, 222, 111, 0}));
  // numpy: round(arange(1000, 0, -1000/7)) - 1 = [999, 856, 713, 570, 428, 285, 142].
  EXPECT_EQ(inference_timesteps(1000, 7, TimestepSpacing::Trailing),
            (V{999, 856, 713, 570, 428, 285, 142}));
  EXPECT_EQ(inference_timesteps(1000, 1000).front(), 999);
  EXPECT_EQ(parse_timestep_spacing("trailing"), TimestepSpacing::Trailing);
  EXPECT_EQ(parse_variance_type("fixed_large"), VarianceType::FixedLarge);
  EXPECT_EQ(parse_prediction_type("v_prediction"), PredictionType::VPrediction);
  EXPECT_EQ(parse_beta_schedule("cosine"), BetaSchedule::SquaredCosCapV2);
  EXPECT_EQ(parse_sampler("pf-ode"), SamplerKind::PFOdeHeun);
}

// 9.1(c): the discrete linear schedule is the VP-SDE with beta(t) = 0.1 + 19.9 t sampled at
// 1/T: sum beta_i = 10.05 = int_0^1 beta, so log alpha_bar_T = sum log(1 - beta_i) differs from
// -10.05 only by -sum (beta_i^2/2 + ...) = -0.067.
TEST(Diffusion, ContinuousVpAndVeMarginals) {
  EXPECT_DOUBLE_EQ(vp_alpha_bar(0), 1.0);
  EXPECT_NEAR(vp_alpha_bar(1), std::exp(-10.05), 1e-15);
  EXPECT_NEAR(vp_alpha_bar(0.5), std::exp(-0.05 - 0.25 * 19.9 / 2), 1e-15);
  const NoiseSchedule lin;
  double sq = 0;
  for (double b : lin.betas()) sq += b * b / 2 + b * b * b / 3;
  EXPECT_NEAR(std::log(lin.alphas_cumprod()[999]), std::log(vp_alpha_bar(1)) - sq, 1e-4);
  EXPECT_DOUBLE_EQ(ve_sigma(0), 0.01);
  EXPECT_NEAR(ve_sigma(1), 50.0, 1e-12);
  EXPECT_NEAR(ve_sigma(0.5), std::sqrt(0.01 * 50), 1e-12);
}

// ---- forward noising -----------------------------------------------------------------------

struct Moments {
  std::vector<double> mean, var;
};
Moments column_moments(const std::vector<float>& x, std::int64_t n, std::int64_t d) {
  Moments m{std::vector<double>(d), std::vector<double>(d)};
  for (std::int64_t j = 0; j < d; ++j) {
    double s = 0, s2 = 0;
    for (std::int64_t r = 0; r < n; ++r) s += x[r * d + j];
    const double mu = s / n;
    for (std::int64_t r = 0; r < n; ++r) s2 += (x[r * d + j] - mu) * (x[r * d + j] - mu);
    m.mean[j] = mu;
    m.var[j] = s2 / (n - 1);
  }
  return m;
}

// 9.1: x_t | x0 ~ N(sqrt(ab) x0, (1 - ab) I), for every schedule and early/middle/late t.
// Standard errors with n rows: mean sqrt((1-ab)/n), sample variance (1-ab) sqrt(2/(n-1));
// bounds 5 SE (two-sided 5.7e-7 each; fixed seeds).
TEST(Diffusion, NoisedMomentsMatchAnalyticPerSchedule) {
  const std::int64_t n = 40000, d = 4;
  const std::vector<float> row = {1.0f, -2.0f, 0.5f, 3.0f};
  std::vector<float> x0(n * d);
  for (std::int64_t r = 0; r < n; ++r) std::copy(row.begin(), row.end(), x0.begin() + r * d);
  for (const char* name : {"linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"}) {
    const NoiseSchedule s({.beta_schedule = parse_beta_schedule(name)});
    for (std::int64_t t : {10, 500, 900}) {
      const std::vector<std::int64_t> ts(n, t);
      std::vector<float> xt(n * d);
      add_noise(kCpu, s, x0.data(), ts.data(), n, d, xt.data(), {.seed = static_cast<std::uint64_t>(11 + t)});
      const Moments m = column_moments(xt, n, d);
      const double ab = s.alphas_cumprod()[t];
      for (std::int64_t j = 0; j < d; ++j) {
        EXPECT_NEAR(m.mean[j], std::sqrt(ab) * row[j], 5 * std::sqrt((1 - ab) / n))
            << name << " t " << t << " col " << j;
        EXPECT_NEAR(m.var[j], 1 - ab, 5 * (1 - ab) * std::sqrt(2.0 / (n - 1)))
            << name << " t " << t << " col " << j;
      }
    }
  }
}

// 9.1(a): x_T ~ N(0, I) up to the mean sqrt(ab_T) x0 (0.019 for x0 = 3 on the linear
// schedule): mean within 5 SE (1/sqrt(n)) of it, variance within 5 SE of 1, and the
// off-diagonal correlation within 5/sqrt(n) of 0.
TEST(Diffusion, LastTimestepIsStandardNormal) {
  const std::int64_t n = 40000, d = 2;
  const NoiseSchedule s;
  std::vector<float> x0(n * d, 3.0f), xt(n * d);
  const std::vector<std::int64_t> ts(n, 999);
  add_noise(kCpu, s, x0.data(), ts.data(), n, d, xt.data(), {.seed = 5});
  const Moments m = column_moments(xt, n, d);
  const double shift = std::sqrt(s.alphas_cumprod()[999]) * 3.0;
  double cov = 0;
  for (std::int64_t r = 0; r < n; ++r) cov += (xt[r * d] - m.mean[0]) * (xt[r * d + 1] - m.mean[1]);
  for (int j = 0; j < d; ++j) {
    EXPECT_NEAR(m.mean[j], shift, 5 / std::sqrt(double(n)));
    EXPECT_NEAR(m.var[j], 1.0, 5 * std::sqrt(2.0 / n));
  }
  EXPECT_NEAR(cov / n, 0.0, 5 / std::sqrt(double(n)));
}

// The Philox layout of rng.hpp (element j of row r: lane j%4 of block r*ceil(d/4) + j/4),
// x_t, eps and v exactly, and a caller's noise used as given.
TEST(Diffusion, AddNoiseUsesDocumentedNoiseAndFormula) {
  const std::int64_t n = 5, d = 6, nb = 2;
  const NoiseSchedule s;
  const auto x0 = test::normals(n * d, 1);
  const std::vector<std::int64_t> ts = {0, 999, 17, 500, 3};
  std::vector<float> xt(n * d), eps(n * d), v(n * d);
  add_noise(kCpu, s, x0.data(), ts.data(), n, d, xt.data(),
            {.seed = 9, .step = 4, .eps_out = eps.data(), .v_out = v.data()});
  for (std::int64_t r = 0; r < n; ++r)
    for (std::int64_t j = 0; j < d; ++j) {
      const std::int64_t i = r * d + j;
      const float z = rng::normal4(9, rng::streams::diffusion_noise, r * nb + j / 4, 4).v[j % 4];
      ASSERT_EQ(eps[i], z) << i;
      const double sa = s.sqrt_alphas_cumprod()[ts[r]], sb = s.sqrt_one_minus_alphas_cumprod()[ts[r]];
      EXPECT_NEAR(xt[i], sa * x0[i] + sb * z, 1e-6) << i;
      EXPECT_NEAR(v[i], sa * z - sb * x0[i], 1e-6) << i;
    }
  const auto mine = test::normals(n * d, 2);
  std::vector<float> xt2(n * d), eps2(n * d);
  add_noise(kCpu, s, x0.data(), ts.data(), n, d, xt2.data(),
            {.noise = mine.data(), .eps_out = eps2.data()});
  EXPECT_EQ(eps2, mine);
  for (std::int64_t i = 0; i < n * d; ++i)
    EXPECT_NEAR(xt2[i], s.sqrt_alphas_cumprod()[ts[i / d]] * x0[i] +
                            s.sqrt_one_minus_alphas_cumprod()[ts[i / d]] * mine[i], 1e-6);
}

// ---- reverse steps -------------------------------------------------------------------------

// diffusers' DDPMScheduler.step / DDIMScheduler.step written out in double, for comparison.
double x0_of(PredictionType p, double ab, double x, double m) {
  switch (p) {
    case PredictionType::Epsilon: return (x - std::sqrt(1 - ab) * m) / std::sqrt(ab);
    case PredictionType::Sample: return m;
    case PredictionType::VPrediction: return std::sqrt(ab) * x - std::sqrt(1 - ab) * m;
  }
  return NAN;
}

TEST(Diffusion, DdpmAndDdimStepsMatchTheirFormulas) {
  const NoiseSchedule s;
  const std::int64_t n = 7, d = 3, nb = 1;
  const auto x = test::normals(n * d, 3), m = test::normals(n * d, 4);
  for (PredictionType pt :
       {PredictionType::Epsilon, PredictionType::Sample, PredictionType::VPrediction})
    for (bool clip : {false, true})
      for (auto [t, prev] : {std::pair<int, int>{500, 480}, {20, 0}, {7, -1}}) {
        const double ab = s.alphas_cumprod()[t], abp = prev >= 0 ? s.alphas_cumprod()[prev] : 1.0;
        const double at = ab / abp, bt = 1 - at;
        for (VarianceType vt : {VarianceType::FixedSmall, VarianceType::FixedLarge}) {
          const StepOptions o{.prediction_type = pt, .variance_type = vt, .clip_sample = clip,
                              .clip_sample_range = 0.8, .seed = 21};
          std::vector<float> out(n * d);
          ddpm_step(kCpu, s, t, prev, m.data(), x.data(), n, d, out.data(), o);
          for (std::int64_t i = 0; i < n * d; ++i) {
            double x0 = x0_of(pt, ab, x[i], m[i]);
            if (clip) x0 = std::clamp(x0, -0.8, 0.8);
            const double var = vt == VarianceType::FixedSmall ? (1 - abp) / (1 - ab) * bt : bt;
            const double z = rng::normal4(21, rng::streams::diffusion_sampler, (i / d) * nb, t)
                                 .v[i % d];
            const double want = std::sqrt(abp) * bt / (1 - ab) * x0 +
                                std::sqrt(at) * (1 - abp) / (1 - ab) * x[i] +
                                (prev >= 0 ? std::sqrt(var) * z : 0.0);
            ASSERT_NEAR(out[i], want, 1e-5 * std::max(1.0, std::abs(want)))
                << "ddpm t " << t << " i " << i;
          }
        }
        for (double eta : {0.0, 0.5, 1.0}) {
          const StepOptions o{.prediction_type = pt, .eta = eta, .clip_sample = clip,
                              .clip_sample_range = 0.8, .seed = 22};
          std::vector<float> out(n * d);
          ddim_step(kCpu, s, t, prev, m.data(), x.data(), n, d, out.data(), o);
          for (std::int64_t i = 0; i < n * d; ++i) {
            const double x0u = x0_of(pt, ab, x[i], m[i]);
            const double e = (x[i] - std::sqrt(ab) * x0u) / std::sqrt(1 - ab);
            const double x0 = clip ? std::clamp(x0u, -0.8, 0.8) : x0u;
            const double sd = eta * std::sqrt((1 - abp) / (1 - ab) * (1 - ab / abp));
            const double z = rng::normal4(22, rng::streams::diffusion_sampler, (i / d) * nb, t)
                                 .v[i % d];
            const double want = std::sqrt(abp) * x0 + std::sqrt(1 - abp - sd * sd) * e + sd * z;
            ASSERT_NEAR(out[i], want, 1e-5 * std::max(1.0, std::abs(want)))
                << "ddim t " << t << " eta " << eta << " i " << i;
          }
        }
      }
}

// The three prediction types are one model written three ways: given the true x0 and eps of
// x_t, epsilon, sample and v_prediction give the same DDIM step (to float rounding).
TEST(Diffusion, PredictionTypesAgreeOnTheSameModel) {
  const NoiseSchedule s({.beta_schedule = BetaSchedule::SquaredCosCapV2});
  const std::int64_t n = 64, d = 2, t = 600, prev = 400;
  const auto x0 = test::normals(n * d, 5);
  std::vector<float> xt(n * d), eps(n * d), v(n * d);
  const std::vector<std::int64_t> ts(n, t);
  add_noise(kCpu, s, x0.data(), ts.data(), n, d, xt.data(),
            {.seed = 3, .eps_out = eps.data(), .v_out = v.data()});
  std::vector<float> a(n * d), b(n * d), c(n * d);
  ddim_step(kCpu, s, t, prev, eps.data(), xt.data(), n, d, a.data(), {});
  ddim_step(kCpu, s, t, prev, x0.data(), xt.data(), n, d, b.data(),
            {.prediction_type = PredictionType::Sample});
  ddim_step(kCpu, s, t, prev, v.data(), xt.data(), n, d, c.data(),
            {.prediction_type = PredictionType::VPrediction});
  EXPECT_TRUE(test::close(b, a, {1e-5, 1e-5}));
  EXPECT_TRUE(test::close(c, a, {1e-5, 1e-5}));
}

// ---- loss ----------------------------------------------------------------------------------

// grad = dL/dpred of L = mean_r row_loss[r]: central differences (L is quadratic, so exact up
// to rounding: ~1e-7 / h relative with h = 1e-2).
TEST(Diffusion, EpsMseLossGradientMatchesFiniteDifferences) {
  const std::int64_t n = 4, d = 3;
  auto pred = test::normals(n * d, 10);
  const auto target = test::normals(n * d, 11);
  std::vector<float> rows(n), grad(n * d);
  eps_mse_loss(kCpu, pred.data(), target.data(), n, d, rows.data(), grad.data());
  double expect = 0;
  for (std::int64_t i = 0; i < n * d; ++i) expect += std::pow(double(pred[i]) - target[i], 2);
  double total = 0;
  for (float r : rows) total += r;
  EXPECT_NEAR(total / n, expect / (n * d), 1e-6);
  auto L = [&](const std::vector<float>& p) {
    std::vector<float> rl(n);
    eps_mse_loss(kCpu, p.data(), target.data(), n, d, rl.data());
    double t = 0;
    for (float r : rl) t += r;
    return t / n;
  };
  for (std::int64_t i = 0; i < n * d; ++i) {
    const float h = 1e-2f;
    auto pp = pred, pm = pred;
    pp[i] += h;
    pm[i] -= h;
    const double fd = (L(pp) - L(pm)) / (double(pp[i]) - pm[i]);
    EXPECT_NEAR(grad[i], fd, 1e-4) << i;
  }
}

// ---- bad input -----------------------------------------------------------------------------

TEST(Diffusion, BadInputNamesArgumentAndLeavesOutputUntouched) {
  expect_argument_error([] { NoiseSchedule({.num_train_timesteps = 0}); },
                        "'opts.num_train_timesteps' must be >= 1");
  expect_argument_error([] { NoiseSchedule({.beta_start = 0}); }, "'opts.beta_start'");
  expect_argument_error([] { NoiseSchedule({.beta_end = 1.0}); }, "'opts.beta_end'");
  expect_argument_error([] { NoiseSchedule::from_betas({0.1, 1.5}); },
                        "'betas' entry 1 is 1.5");
  expect_argument_error([] { NoiseSchedule::from_betas({}); }, "'T' must be >= 1");
  expect_argument_error([] { parse_beta_schedule("cosin"); }, "'cosin' is unknown");
  expect_argument_error([] { parse_sampler("euler"); }, "valid: ddpm, ddim");
  expect_argument_error([] { parse_prediction_type("eps"); }, "'eps' is unknown");
  expect_argument_error([] { GaussianMixture::preset("gmm9"); }, "'gmm9' is unknown");
  expect_argument_error([] { inference_timesteps(100, 101); }, "'num_inference_steps'");
  expect_argument_error([] { inference_timesteps(100, 10, TimestepSpacing::Leading, 20); },
                        "'steps_offset'");

  const NoiseSchedule s({.num_train_timesteps = 100});
  const std::int64_t n = 3, d = 2;
  const std::vector<float> x(n * d, 0.5f);
  std::vector<float> out(n * d, 7.0f);
  const std::vector<float> untouched = out;
  for (std::int64_t bad : {-1, 100}) {
    const std::vector<std::int64_t> ts = {5, bad, 7};
    expect_argument_error(
        [&] { add_noise(kCpu, s, x.data(), ts.data(), n, d, out.data()); },
        "'timesteps' entry 1 is " + std::to_string(bad));
  }
  const std::vector<std::int64_t> ok = {1, 2, 3};
  expect_argument_error([&] { add_noise(kCpu, s, x.data(), ok.data(), n, 0, out.data()); },
                        "'d' must be >= 1");
  expect_argument_error([&] { add_noise(kCpu, s, nullptr, ok.data(), n, d, out.data()); },
                        "'x0' must not be null");
  expect_argument_error(
      [&] { ddpm_step(kCpu, s, 100, 50, x.data(), x.data(), n, d, out.data()); }, "'t'");
  expect_argument_error(
      [&] { ddim_step(kCpu, s, 50, 50, x.data(), x.data(), n, d, out.data()); },
      "'prev_t' must lie in [-1, 49]");
  expect_argument_error(
      [&] { ddim_step(kCpu, s, 50, 10, x.data(), x.data(), n, d, out.data(), {.eta = -1}); },
      "'opts.eta'");
  expect_argument_error([&] {
    ddpm_step(kCpu, s, 50, 10, x.data(), x.data(), n, d, out.data(),
              {.clip_sample = true, .clip_sample_range = 0});
  }, "'opts.clip_sample_range'");

  const GaussianMixture gm = GaussianMixture::preset("two_modes");
  SamplerOptions unsorted;
  unsorted.timesteps = {90, 50, 60, 0};
  expect_argument_error([&] { sample_mixture(kCpu, s, gm, n, out.data(), unsorted); },
                        "'opts.timesteps' must be strictly descending (entry 2 is 60 after 50)");
  SamplerOptions outside;
  outside.timesteps = {100, 50};
  expect_argument_error([&] { sample_mixture(kCpu, s, gm, n, out.data(), outside); },
                        "'opts.timesteps' must lie in [0, 99] (got 100)");
  expect_argument_error(
      [&] { sample_mixture(kCpu, s, gm, n, out.data(), {.num_inference_steps = 0}); },
      "'num_inference_steps' must be >= 1");
  expect_argument_error([&] { sample_mixture(kCpu, s, gm, n, out.data(), {.keep_every = 1}); },
                        "'opts.intermediates' must not be null");
  expect_argument_error([&] { sample(kCpu, s, Model{}, n, d, out.data()); }, "'model'");
  // A model rejecting its input throws from inside the loop, after x_T was drawn into x3.
  std::vector<float> x3(n * 3);
  expect_argument_error([&] { sample(kCpu, s, mixture_model(gm, s), n, 3, x3.data()); },
                        "must equal the mixture's d = 2 (got 3)");

  GaussianMixture bad = gm;
  bad.means.pop_back();
  expect_argument_error([&] { mixture_epsilon(kCpu, bad, 0.5, x.data(), n, out.data()); },
                        "'mixture.means' has 3 entries, K x d = 4");
  bad = gm;
  bad.weights = {0.5f, 0.6f};
  expect_argument_error([&] { mixture_score(kCpu, bad, 0.5, x.data(), n, out.data()); },
                        "'mixture.weights' sum to");
  bad = gm;
  bad.variances[1] = 0;
  expect_argument_error([&] { mixture_score(kCpu, bad, 0.5, x.data(), n, out.data()); },
                        "'mixture.variances' entry 1 is 0");
  expect_argument_error([&] { mixture_score(kCpu, gm, 0.0, x.data(), n, out.data()); },
                        "'alpha_bar' must lie in (0, 1]");
  EXPECT_EQ(out, untouched);
}

}  // namespace
}  // namespace genai
