// Diffusion samplers on Gaussian mixtures with the exact score (9.3, 9.4): the score is the
// gradient of the noised log density, DDPM / DDIM / PF-ODE recover mixture weights and moments,
// MMD separates right from wrong samplers, DDIM(eta = 0) equals PF-ODE Euler, and the sampler
// loop honours prediction types, reports progress and keeps intermediates.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <vector>

#include "diffusion_test_util.hpp"
#include "genai/detail/diffusion.hpp"
#include "genai/diffusion.hpp"
#include "genai/error.hpp"
#include "parallel_test_util.hpp"
#include "test_util.hpp"

namespace genai {
namespace {

const Context kCpu = Context::cpu();

using test::diag_mixture_3d;

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

// Points so far from every component that float log densities overflow (|x - c| / sd from 2e19
// to 1e38, test::far_points; from 1e25 on for every component): the double reference stays
// finite, and its responsibilities are one-hot on the component of least Mahalanobis square q
// (the runner-up's log density is more than 100 lower), so the score is -(x - c_k) / v_k of
// that component, to the float rounding of the result (1e-6 relative). The GPU parity cases use
// these points; the float kernels can order the components because their q differ by more
// than 1e-3 relative, asserted here on the data.
TEST(Diffusion, MixtureScoreFarFromEveryComponentIsFiniteAndOneHot) {
  const double ab = 0.9;
  for (std::int64_t d : {2, 3, 5, 20, 40, 100, 200, 300}) {  // the GPU cases' widths
    const GaussianMixture m = test::anisotropic_mixture(d);
    const std::int64_t n = 40;
    const auto x = test::far_points(n, d, 70 + d);
    std::vector<float> score(n * d);
    mixture_score(kCpu, m, ab, x.data(), n, score.data());
    for (std::int64_t r = 0; r < n; ++r) {
      SCOPED_TRACE(::testing::Message() << "d " << d << " row " << r);
      std::vector<double> q(m.K), lp(m.K);
      for (std::int64_t k = 0; k < m.K; ++k) {
        lp[k] = std::log(m.weights[k]);
        for (std::int64_t j = 0; j < d; ++j) {
          const double v = ab * m.variances[k * d + j] + 1 - ab;
          const double u = x[r * d + j] - std::sqrt(ab) * m.means[k * d + j];
          q[k] += u * u / v;
          lp[k] -= 0.5 * std::log(v);
        }
        lp[k] -= 0.5 * q[k];
      }
      std::vector<std::int64_t> order = {0, 1, 2};
      std::sort(order.begin(), order.end(), [&](auto a, auto b) { return lp[a] > lp[b]; });
      const std::int64_t k = order[0], runner_up = order[1];
      ASSERT_GT(lp[k] - lp[runner_up], 100.0);
      ASSERT_GT(q[runner_up] - q[k], 1e-3 * q[k]);
      for (std::int64_t j = 0; j < d; ++j) {
        const double v = ab * m.variances[k * d + j] + 1 - ab;
        const double want = -(x[r * d + j] - std::sqrt(ab) * m.means[k * d + j]) / v;
        ASSERT_TRUE(std::isfinite(score[r * d + j])) << j;
        EXPECT_NEAR(score[r * d + j], want, 1e-6 * std::abs(want)) << j;
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

// The exact law of one coordinate of a sampler's output when the data are N(mu, v) and the model
// is the exact epsilon, E[eps | x_t] = g (x_t - sa mu) with g = sb / (sa^2 v + sb^2): every step
// is then affine in x plus independent noise (detail::StepCoeffs), so from x_T ~ N(0, 1) the
// output is Gaussian with mean and variance given by the recursion below, in double. Heun is
// the two-stage map of genai::sample. This is the discretisation bias of a coarse sampler in
// closed form: e.g. DDPM-100 (fixed_small: beta-tilde, the lower bound of the reverse variance,
// Ho et al. 2020 3.2) gives 0.922 v at v = 1 and 0.764 v at v = 0.04.
struct Law {
  double mean, var;
};
Law gaussian_sampler_law(const NoiseSchedule& s, SamplerKind kind, std::int64_t steps, double mu,
                         double v) {
  const auto ts = inference_timesteps(s.num_train_timesteps(), steps);
  auto eps_of = [&](std::int64_t t) {  // eps(x) = e1 x + e0 at timestep t
    const double ab = s.alphas_cumprod()[t], sa = std::sqrt(ab), sb = std::sqrt(1 - ab);
    const double g = sb / (ab * v + 1 - ab);
    return std::pair{g, -g * sa * mu};
  };
  Law x{0, 1};
  for (std::size_t i = 0; i < ts.size(); ++i) {
    const std::int64_t t = ts[i], prev = i + 1 < ts.size() ? ts[i + 1] : -1;
    const detail::StepCoeffs k = detail::step_coeffs(s, kind, t, prev, {});
    const auto [e1, e0] = eps_of(t);
    double alpha = k.a * (k.p + k.q * e1) + k.b + k.c * (k.r + k.s * e1);
    double beta = (k.a * k.q + k.c * k.s) * e0;
    if (kind == SamplerKind::PFOdeHeun && prev >= 0) {  // x' = b x + c (eps(x) + eps(xe)) / 2
      const double xe1 = k.b + k.c * e1, xe0 = k.c * e0;  // xe = b x + c eps(x, t)
      const auto [f1, f0] = eps_of(prev);
      alpha = k.b + 0.5 * k.c * (e1 + f1 * xe1);
      beta = 0.5 * k.c * (e0 + f1 * xe0 + f0);
    }
    x = {alpha * x.mean + beta, alpha * alpha * x.var + double(k.sigma) * k.sigma};
  }
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
    // Mean and variance of the first component's samples (within 6 sd of its mean) against the
    // exact law of the same sampler on that component alone (gaussian_sampler_law), which holds
    // the coarse sampler's bias (DDPM-100 on gmm8's sd-0.2 modes: -24% variance). Sampling SE
    // of the mean sqrt(v / (w n)), of the variance v sqrt(2 / (w n)); bounds 4 SE. DDPM's noise
    // at the late steps, where a component is 7+ sd from the others, sets its spread, so its
    // law is the component's own. The deterministic flows (DDIM with eta = 0, PF-ODE Heun) carry
    // how x_T split between the modes at the early, overlapping steps into each mode's spread
    // and centre, which the one-component law leaves out: for them the bounds add 0.06 sd to the
    // mean and 5% to the variance (the effect seen here: at most 0.05 sd and 3.7%).
    double s1 = 0, s2 = 0, cnt = 0;
    for (std::int64_t r = 0; r < n; ++r) {
      const double dx = x[2 * r] - m.means[0], dy = x[2 * r + 1] - m.means[1];
      if (dx * dx + dy * dy < 36 * m.variances[0]) s1 += x[2 * r], s2 += x[2 * r] * x[2 * r], ++cnt;
    }
    const double mean = s1 / cnt, var = s2 / cnt - mean * mean, v0 = m.variances[0];
    const Law law = gaussian_sampler_law(NoiseSchedule(), c.kind, c.steps, m.means[0], v0);
    const bool flow = c.kind != SamplerKind::DDPM;
    EXPECT_NEAR(mean, law.mean, 4 * std::sqrt(v0 / cnt) + (flow ? 0.06 * std::sqrt(v0) : 0.0))
        << c.target << " sampler " << int(c.kind);
    EXPECT_NEAR(var, law.var, 4 * law.var * std::sqrt(2 / cnt) + (flow ? 0.05 * v0 : 0.0))
        << c.target << " sampler " << int(c.kind);
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

// Without a progress callback the CPU runs sample_mixture fused (each chunk of rows through
// every step on the backend's threads): the same bits as the step-by-step loop over
// mixture_model, for every one-call sampler, with the initial noise and the intermediates, on any
// thread count.
TEST(Diffusion, FusedMixtureSamplerIsTheStepByStepLoop) {
  const GaussianMixture m = GaussianMixture::preset("gmm8");
  const NoiseSchedule s;
  const std::int64_t n = 600, d = 2, steps = 12;
  for (SamplerKind kind : {SamplerKind::DDPM, SamplerKind::DDIM, SamplerKind::PFOdeEuler}) {
    SCOPED_TRACE(static_cast<int>(kind));
    SamplerOptions o{.sampler = kind, .num_inference_steps = steps,
                     .step = {.eta = 0.5, .clip_sample = true, .seed = 21}, .keep_every = 4};
    auto fused = [&] {
      std::vector<float> x(n * d), inter(3 * n * d);
      SamplerOptions f = o;
      f.intermediates = inter.data();
      sample_mixture(kCpu, s, m, n, x.data(), f);
      return std::vector<std::vector<float>>{x, inter};
    };
    const auto got = fused();
    std::vector<float> x(n * d), inter(3 * n * d);
    SamplerOptions by_step = o;
    by_step.intermediates = inter.data();
    sample(kCpu, s, mixture_model(m, s), n, d, x.data(), by_step);
    EXPECT_EQ(got[0], x);
    EXPECT_EQ(got[1], inter);
    test::expect_same_on_any_thread_count(fused);
  }
}

// A model that returns inf for some samples makes them non-finite: reported as a divergence
// (how many, which sampler), not silently returned; check_divergence = false returns them.
TEST(Diffusion, NonFiniteSamplesAreReportedAsDivergence) {
  const NoiseSchedule s;
  const std::int64_t n = 8, d = 3;
  const Model blows_up = [](const Context&, std::int64_t, const float* x, std::int64_t rows,
                            std::int64_t cols, float* out) {
    for (std::int64_t i = 0; i < rows * cols; ++i) out[i] = i / cols == 2 || i / cols == 5 ? INFINITY : x[i];
  };
  std::vector<float> x(n * d);
  SamplerOptions o{.sampler = SamplerKind::DDIM, .num_inference_steps = 10};
  try {
    sample(kCpu, s, blows_up, n, d, x.data(), o);
    ADD_FAILURE() << "no DivergenceError";
  } catch (const DivergenceError& e) {
    EXPECT_STREQ(e.what(), "genai::sample: 2 of 8 samples are not finite after the 10-step ddim "
                           "loop (first: sample 2); the model's output or the schedule overflowed");
  }
  o.check_divergence = false;
  EXPECT_NO_THROW(sample(kCpu, s, blows_up, n, d, x.data(), o));
  EXPECT_FALSE(std::isfinite(x[2 * d]));
  EXPECT_TRUE(std::isfinite(x[0]));
}

}  // namespace
}  // namespace genai
