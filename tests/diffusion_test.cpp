// Diffusion: schedule tables, 9.1 moments of x_t, the reverse steps against their formulas,
// samplers recovering Gaussian mixtures with the exact score, the loss gradient, bad input, and
// GPU == CPU path by path.
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

// ---- Gaussian mixtures ---------------------------------------------------------------------

// log p_t of the noised mixture in double, for finite differences.
double log_pt(const GaussianMixture& m, double ab, const double* x) {
  double acc = 0;
  for (std::int64_t k = 0; k < m.K; ++k) {
    double lp = std::log(m.weights[k]);
    for (std::int64_t j = 0; j < m.d; ++j) {
      const double v = ab * m.variances[k * m.d + j] + 1 - ab;
      const double diff = x[j] - std::sqrt(ab) * m.means[k * m.d + j];
      lp += -0.5 * diff * diff / v - 0.5 * std::log(2 * std::numbers::pi * v);
    }
    acc += std::exp(lp);
  }
  return std::log(acc);
}

GaussianMixture diag_mixture_3d() {
  GaussianMixture m;
  m.K = 3;
  m.d = 3;
  m.weights = {0.5f, 0.3f, 0.2f};
  m.means = {1, 0, -1, -2, 1, 0.5f, 0, -1.5f, 2};
  m.variances = {0.5f, 1, 2, 0.3f, 0.3f, 0.7f, 1.5f, 0.2f, 1};
  return m;
}

// Score = gradient of log p_t (central differences, h = 1e-4: truncation ~h^2 |f'''| < 1e-7,
// rounding ~1e-16/h); eps = -sqrt(1 - ab) score.
TEST(Diffusion, MixtureScoreIsTheGradientOfLogDensity) {
  for (const GaussianMixture& m : {diag_mixture_3d(), GaussianMixture::preset("two_modes")}) {
    const std::int64_t n = 20, d = m.d;
    const auto x = test::normals(n * d, 6, 0, 2);
    for (double ab : {0.999, 0.5, 0.01}) {
      std::vector<float> score(n * d), eps(n * d);
      mixture_score(kCpu, m, ab, x.data(), n, score.data());
      mixture_epsilon(kCpu, m, ab, x.data(), n, eps.data());
      for (std::int64_t r = 0; r < n; ++r)
        for (std::int64_t j = 0; j < d; ++j) {
          std::vector<double> xp(x.begin() + r * d, x.begin() + (r + 1) * d), xm = xp;
          const double h = 1e-4;
          xp[j] += h;
          xm[j] -= h;
          const double g = (log_pt(m, ab, xp.data()) - log_pt(m, ab, xm.data())) / (2 * h);
          EXPECT_NEAR(score[r * d + j], g, 1e-5 * std::max(1.0, std::abs(g)));
          EXPECT_NEAR(eps[r * d + j], -std::sqrt(1 - ab) * g, 1e-5 * std::max(1.0, std::abs(g)));
        }
    }
  }
}

// ---- sampling ------------------------------------------------------------------------------

// Unbiased MMD^2 with the RBF kernel exp(-|x-y|^2 / (2 h^2)) between two 2D sets.
double mmd2(const std::vector<float>& a, const std::vector<float>& b, double h) {
  const std::size_t na = a.size() / 2, nb = b.size() / 2;
  auto k = [h](const float* x, const float* y) {
    const double dx = x[0] - y[0], dy = x[1] - y[1];
    return std::exp(-(dx * dx + dy * dy) / (2 * h * h));
  };
  double aa = 0, bb = 0, ab = 0;
  for (std::size_t i = 0; i < na; ++i)
    for (std::size_t j = i + 1; j < na; ++j) aa += 2 * k(&a[2 * i], &a[2 * j]);
  for (std::size_t i = 0; i < nb; ++i)
    for (std::size_t j = i + 1; j < nb; ++j) bb += 2 * k(&b[2 * i], &b[2 * j]);
  for (std::size_t i = 0; i < na; ++i)
    for (std::size_t j = 0; j < nb; ++j) ab += k(&a[2 * i], &b[2 * j]);
  return aa / (na * (na - 1.0)) + bb / (nb * (nb - 1.0)) - 2 * ab / (double(na) * nb);
}

// Fraction of samples nearest to each mixture mean.
std::vector<double> weights_of(const GaussianMixture& m, const std::vector<float>& x) {
  std::vector<double> w(m.K);
  const std::size_t n = x.size() / 2;
  for (std::size_t r = 0; r < n; ++r) {
    std::int64_t best = 0;
    double best_d = 1e300;
    for (std::int64_t k = 0; k < m.K; ++k) {
      const double dx = x[2 * r] - m.means[2 * k], dy = x[2 * r + 1] - m.means[2 * k + 1];
      if (dx * dx + dy * dy < best_d) best_d = dx * dx + dy * dy, best = k;
    }
    w[best] += 1.0 / n;
  }
  return w;
}

std::vector<float> run_sampler(const GaussianMixture& m, SamplerKind kind, std::int64_t steps,
                               std::int64_t n, std::uint64_t seed, const Model* model = nullptr) {
  const NoiseSchedule s;
  std::vector<float> x(n * m.d);
  const SamplerOptions o{.sampler = kind, .num_inference_steps = steps, .step = {.seed = seed}};
  if (model)
    sample(kCpu, s, *model, n, m.d, x.data(), o);
  else
    sample_mixture(kCpu, s, m, n, x.data(), o);
  return x;
}

// Weight recovery with the exact score, +-1 pp. The CPU reference runs ~0.2-0.5 us per point
// and step on this 2-core machine, so n = 50000 (not 1e5) keeps the binary fast; the binomial
// SE sqrt(w (1 - w) / n) is then 0.18 pp for w = 0.8 and 0.15 pp for w = 1/8, so +-1 pp is still
// > 5 SE. A misassigned point needs a 7-sigma excursion (two_modes) or ~7.6 sigma (gmm8: half
// the 3.06 chord over std 0.2): negligible.
TEST(Diffusion, SamplersRecoverMixtureWeightsAndMoments) {
  const std::int64_t n = 50000;
  struct Case {
    const char* target;
    SamplerKind kind;
    std::int64_t steps;
  };
  for (const Case& c : {Case{"two_modes", SamplerKind::DDPM, 100}, {"two_modes", SamplerKind::DDIM, 50},
                        {"gmm8", SamplerKind::DDPM, 100}, {"gmm8", SamplerKind::DDIM, 50},
                        {"two_modes", SamplerKind::PFOdeHeun, 50}}) {
    const GaussianMixture m = GaussianMixture::preset(c.target);
    const auto x = run_sampler(m, c.kind, c.steps, n, 77);
    const auto w = weights_of(m, x);
    for (std::int64_t k = 0; k < m.K; ++k)
      EXPECT_NEAR(w[k], m.weights[k], 0.01)
          << c.target << " sampler " << int(c.kind) << " k " << k;
    // Mean and variance of the first component (samples within 6 sd of its mean): sampling
    // SE of the mean sqrt(var / (w n)) <= 0.01 (two_modes), of the variance var sqrt(2/(w n)).
    // 50-100 steps add a discretisation bias (measured: mean up to 0.04 toward the origin for
    // DDIM-50, variance +1% for Heun-50, -4% for DDIM-50): allowances 0.05 and 10%. DDPM with
    // fixed_small (beta-tilde, the lower bound of the reverse variance, Ho et al. 2020 3.2)
    // drops Var(x0 | x_t) from every coarse step and underestimates the variance: -8% on
    // two_modes, -25% on gmm8's narrow (sd 0.2) modes at 100 steps, -4% at 1000; for DDPM the
    // test asserts that underestimate, within 30%.
    double s1 = 0, s2 = 0, cnt = 0;
    for (std::int64_t r = 0; r < n; ++r) {
      const double dx = x[2 * r] - m.means[0], dy = x[2 * r + 1] - m.means[1];
      if (dx * dx + dy * dy < 36 * m.variances[0]) s1 += x[2 * r], s2 += x[2 * r] * x[2 * r], ++cnt;
    }
    const double mean = s1 / cnt, var = s2 / cnt - mean * mean, v0 = m.variances[0];
    EXPECT_NEAR(mean, m.means[0], 5 * std::sqrt(v0 / cnt) + 0.05) << c.target;
    const double var_se = v0 * std::sqrt(2 / cnt);
    if (c.kind == SamplerKind::DDPM) {
      EXPECT_LT(var, v0 + 5 * var_se) << c.target;
      EXPECT_GT(var, 0.7 * v0 - 5 * var_se) << c.target;
    } else {
      EXPECT_NEAR(var, v0, 5 * var_se + 0.1 * v0) << c.target;
    }
  }
}

// MMD^2 to true samples (1500 vs 1500, RBF h = 1). Under the null (two independent true sets)
// the unbiased estimate has mean 0 and a standard deviation measured here from 6 replicate
// pairs; the bound is 5 of those SDs. The exact-score samplers stay under it; a sign error in
// the model's epsilon and a missing square root (sqrt(1-ab) eps replaced by (1-ab) eps) exceed
// it severalfold.
TEST(Diffusion, MmdSeparatesCorrectFromWrongSamplers) {
  const GaussianMixture m = GaussianMixture::preset("two_modes");
  const std::int64_t n = 1500;
  auto truth = [&](std::uint64_t seed) {
    std::vector<float> x(n * 2);
    mixture_draw(m, n, {seed, 0, 0}, x.data());
    return x;
  };
  double sd = 0;
  for (std::uint64_t r = 0; r < 6; ++r) sd += std::pow(mmd2(truth(100 + 2 * r), truth(101 + 2 * r), 1.0), 2);
  sd = std::sqrt(sd / 6);  // the null mean is 0
  const double bound = 5 * sd;
  const auto ref = truth(7);
  const double ddpm = mmd2(run_sampler(m, SamplerKind::DDPM, 100, n, 1), ref, 1.0);
  const double ddim = mmd2(run_sampler(m, SamplerKind::DDIM, 50, n, 2), ref, 1.0);
  EXPECT_LT(ddpm, bound);
  EXPECT_LT(ddim, bound);

  const NoiseSchedule s;
  const Model exact = mixture_model(m, s);
  const Model sign_error = [&](const Context& c, std::int64_t t, const float* x, std::int64_t k,
                               std::int64_t d, float* out) {
    exact(c, t, x, k, d, out);
    for (std::int64_t i = 0; i < k * d; ++i) out[i] = -out[i];
  };
  const Model missing_sqrt = [&](const Context& c, std::int64_t t, const float* x, std::int64_t k,
                                 std::int64_t d, float* out) {
    exact(c, t, x, k, d, out);
    const float f = static_cast<float>(std::sqrt(1 - s.alphas_cumprod()[t]));
    for (std::int64_t i = 0; i < k * d; ++i) out[i] *= f;
  };
  const double sign = mmd2(run_sampler(m, SamplerKind::DDIM, 50, n, 3, &sign_error), ref, 1.0);
  const double root = mmd2(run_sampler(m, SamplerKind::DDPM, 100, n, 4, &missing_sqrt), ref, 1.0);
  EXPECT_GT(sign, 4 * bound);
  EXPECT_GT(root, 4 * bound);
  std::printf("MMD^2: null sd %.2e, bound %.2e; DDPM %.2e, DDIM %.2e; sign error %.2e, "
              "missing sqrt %.2e\n", sd, bound, ddpm, ddim, sign, root);
}

// DDIM with eta = 0 draws no noise: the step seed does not matter, and it is the Euler
// discretisation of the probability-flow ODE (the same numbers up to float rounding).
TEST(Diffusion, DdimEtaZeroIsDeterministicAndEqualsPfOdeEuler) {
  const GaussianMixture m = GaussianMixture::preset("gmm8");
  const NoiseSchedule s;
  const std::int64_t n = 500;
  const auto xT = test::normals(n * 2, 8);
  auto run = [&](SamplerKind kind, std::uint64_t seed) {
    std::vector<float> x = xT;
    sample_mixture(kCpu, s, m, n, x.data(),
                   {.sampler = kind, .num_inference_steps = 40, .step = {.seed = seed},
                    .draw_initial_noise = false});
    return x;
  };
  const auto a = run(SamplerKind::DDIM, 1);
  EXPECT_EQ(a, run(SamplerKind::DDIM, 2));
  EXPECT_TRUE(test::close(run(SamplerKind::PFOdeEuler, 3), a, {1e-4, 1e-4}));
  // DDPM does draw noise: another seed, another result.
  EXPECT_NE(run(SamplerKind::DDPM, 1), run(SamplerKind::DDPM, 2));
}

// The sampler loop honours prediction_type: the exact epsilon model rewritten as a sample (x0)
// or v model gives the same DDIM and Heun trajectories from the same x_T (float rounding of
// the conversions, amplified mildly over 20 steps: bound 1e-4).
TEST(Diffusion, SamplerLoopHonoursPredictionType) {
  const GaussianMixture m = GaussianMixture::preset("two_modes");
  const NoiseSchedule s;
  const std::int64_t n = 300, d = 2;
  const auto xT = test::normals(n * d, 13);
  const Model eps_model = mixture_model(m, s);
  auto as = [&](PredictionType type) -> Model {
    return [&, type](const Context& c, std::int64_t t, const float* x, std::int64_t k,
                     std::int64_t dd, float* out) {
      eps_model(c, t, x, k, dd, out);
      const double ab = s.alphas_cumprod()[t];
      for (std::int64_t i = 0; i < k * dd; ++i) {
        const double x0 = (x[i] - std::sqrt(1 - ab) * out[i]) / std::sqrt(ab);
        out[i] = static_cast<float>(type == PredictionType::Sample
                                        ? x0
                                        : std::sqrt(ab) * out[i] - std::sqrt(1 - ab) * x0);
      }
    };
  };
  for (SamplerKind kind : {SamplerKind::DDIM, SamplerKind::PFOdeHeun}) {
    auto run = [&](const Model& model, PredictionType type) {
      std::vector<float> x = xT;
      sample(kCpu, s, model, n, d, x.data(),
             {.sampler = kind, .num_inference_steps = 20, .step = {.prediction_type = type},
              .draw_initial_noise = false});
      return x;
    };
    const auto ref = run(eps_model, PredictionType::Epsilon);
    EXPECT_TRUE(test::close(run(as(PredictionType::Sample), PredictionType::Sample), ref,
                            {1e-4, 1e-4})) << int(kind);
    EXPECT_TRUE(test::close(run(as(PredictionType::VPrediction), PredictionType::VPrediction),
                            ref, {1e-4, 1e-4})) << int(kind);
  }
}

TEST(Diffusion, SamplerLoopReportsProgressAndKeepsIntermediates) {
  const GaussianMixture m = GaussianMixture::preset("two_modes");
  const NoiseSchedule s;
  const std::int64_t n = 10, d = 2, steps = 9;
  const auto xT = test::normals(n * d, 12);
  std::vector<std::int64_t> seen;
  SamplerOptions o{.sampler = SamplerKind::DDPM, .num_inference_steps = steps,
                   .step = {.seed = 5}, .draw_initial_noise = false, .keep_every = 3,
                   .progress = [&](std::int64_t done, std::int64_t total) {
                     EXPECT_EQ(total, steps);
                     seen.push_back(done);
                   }};
  ASSERT_EQ(intermediate_count(s, o), 3);
  std::vector<float> inter(3 * n * d), x = xT;
  test::poison(inter);
  o.intermediates = inter.data();
  sample_mixture(kCpu, s, m, n, x.data(), o);
  EXPECT_EQ(seen, (std::vector<std::int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9}));
  // The same loop by hand: mixture epsilon, then ddpm_step to the next inference timestep.
  const auto ts = inference_timesteps(1000, steps);
  std::vector<float> y = xT, eps(n * d);
  for (std::int64_t i = 0; i < steps; ++i) {
    mixture_epsilon(kCpu, m, s.alphas_cumprod()[ts[i]], y.data(), n, eps.data());
    ddpm_step(kCpu, s, ts[i], i + 1 < steps ? ts[i + 1] : -1, eps.data(), y.data(), n, d,
              y.data(), {.seed = 5});
    if ((i + 1) % 3 == 0) {
      EXPECT_EQ(std::vector<float>(inter.begin() + (i / 3) * n * d,
                                   inter.begin() + (i / 3 + 1) * n * d), y) << i;
    }
  }
  EXPECT_EQ(x, y);
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

template <class F>
void expect_argument_error(F&& f, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning " << fragment;
  } catch (const ArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

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

// ---- GPU == CPU, path by path --------------------------------------------------------------

class DiffusionGpu : public test::GpuTest {};

TEST_F(DiffusionGpu, AddNoiseMatchesReference) {
  const NoiseSchedule s({.beta_schedule = BetaSchedule::SquaredCosCapV2});
  for (std::int64_t d : {1, 3, 4, 37}) {
    const std::int64_t n = 1000;
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

// The fused sampler (whole loop in one launch) and the step-by-step loop on the GPU against the
// CPU loop: the same Philox noise, so the same paths. The mixture score is float on the GPU and
// double on the CPU; the reverse process contracts those ~1e-7 differences, the bound 1e-4
// (relative norm and max-abs) leaves a margin of 100.
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
      EXPECT_TRUE(test::close(dx.to_host(), x, {1e-4, 1e-4})) << target << " fused";
      Buffer<float> dy(ctx, n * 2);
      test::poison(dy);
      sample(ctx, s, mixture_model(m, s), n, 2, dy.data(), o);
      EXPECT_TRUE(test::close(dy.to_host(), x, {1e-4, 1e-4})) << target << " step by step";
    }
}

// The fused sampler beyond 2D: d = 3 (exact-D kernel), 5 and 20 (the d <= 8 and d <= 16 kernels,
// several Philox blocks per point), diagonal variances, unequal weights, intermediates kept.
TEST_F(DiffusionGpu, FusedMixtureSamplerHighDimMatchesReference) {
  const NoiseSchedule s;
  const std::int64_t n = 1000, steps = 50, keep = 10, K = 6;
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
