// The laws the Langevin samplers reach: Brownian motion (7.1), ULA / MALA stationary laws (7.2,
// 7.4 with the errata's exact ULA bias), mode weights with and without annealing, and ESS and
// R-hat against processes with known values.
//
// Every statistical bound below is a multiple of a standard error (SE) stated beside it; the
// draws are fixed by the seeds, so the tests are deterministic, and a wrong sampler (missing
// factor 2 in the noise, no MH correction, wrong annealing) misses the bounds by many SE.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "cpu_reference/langevin.hpp"
#include "genai/langevin.hpp"
#include "langevin_test_util.hpp"
#include "test_util.hpp"

namespace genai {
namespace {

const Context kCpu = Context::cpu();

using test::pooled;
using test::Pooled;

// ---- 7.1 Brownian motion ---------------------------------------------------------------------

// 10000 paths x 2 dimensions = N = 20000 independent coordinates, dt = 0.01, s = 0.5, t = 1.
// SE: E[W_t] sqrt(t/N) = 7.1e-3; Var[W_t] t sqrt(2/N) = 1.0e-2 (t = 1);
// Cov[W_s, W_t]: Var(W_s W_t) = s t + s^2, SE sqrt(0.75/N) = 6.1e-3. Bounds: 5 SE.
TEST(Langevin, BrownianMomentsOfProblem7_1) {
  const std::int64_t paths = 10000, d = 2, steps = 100;
  const float dt = 0.01f;
  std::vector<float> w(paths * (steps + 1) * d);
  brownian_motion(kCpu, w.data(), paths, d, steps, dt, 71);
  auto at = [&](std::int64_t p, std::int64_t s, std::int64_t j) { return double(w[(p * (steps + 1) + s) * d + j]); };
  const double N = paths * d;
  for (std::int64_t s : {50, 100}) {
    const double t = s * dt;
    double m = 0, v = 0;
    for (std::int64_t p = 0; p < paths; ++p)
      for (std::int64_t j = 0; j < d; ++j) {
        m += at(p, s, j);
        v += at(p, s, j) * at(p, s, j);
      }
    m /= N;
    v = v / N - m * m;
    EXPECT_NEAR(m, 0.0, 5 * std::sqrt(t / N)) << "E[W_t], t = " << t;
    EXPECT_NEAR(v, t, 5 * t * std::sqrt(2 / N)) << "Var[W_t], t = " << t;
  }
  double cov = 0;
  for (std::int64_t p = 0; p < paths; ++p)
    for (std::int64_t j = 0; j < d; ++j) cov += at(p, 50, j) * at(p, 100, j);
  EXPECT_NEAR(cov / N, 0.5, 5 * std::sqrt(0.75 / N)) << "Cov[W_0.5, W_1] = min(s, t)";
  // W_0 = 0, and the first increment is sqrt(dt) times the documented Langevin draw.
  for (std::int64_t p : {0, 1, 9999})
    for (std::int64_t j = 0; j < d; ++j) {
      EXPECT_EQ(at(p, 0, j), 0.0);
      const float z = rng::normal4(71, rng::streams::langevin, p, 0).v[j];
      EXPECT_FLOAT_EQ(at(p, 1, j), std::sqrt(dt) * z);
    }
}

// ---- 7.4 done right --------------------------------------------------------------------------

// 2048 chains from x0 = 5 on N(0, 1), h = 0.1; moments over steps 201..2200 (5 * 0.9^200 ~ 4e-9
// of the start is left). ULA is the AR(1) x' = (1-h) x + sqrt(2h) xi, whose stationary variance
// is 2h / (1 - (1-h)^2) = 1 / (1 - h/2) = 1.0526 (the errata), not 1; MALA's MH correction
// makes N(0, 1) exact. SE of the pooled variance: x^2 has lag-k autocorrelation rho^(2k),
// rho = 0.9, so tau = (1 + rho^2)/(1 - rho^2) = 9.5 and SE = sigma^2 sqrt(2 tau / (N T)) =
// 2.3e-3 (N T = 4.1e6 samples); MALA's rare rejections (acceptance > 0.98) raise tau by < 5%.
// Bound: 5 SE = 0.012, while the two answers differ by 0.053. The mean: tau = 19,
// SE = sqrt(19 / (N T)) = 2.2e-3, bound 5 SE.
TEST(Langevin, StationaryVarianceOfProblem7_4UlaBiasedMalaExact) {
  const std::int64_t chains = 2048;
  const double h = 0.1;
  for (auto method : {LangevinMethod::ULA, LangevinMethod::MALA}) {
    std::vector<float> x(chains, 5.0f);
    const auto r = langevin(kCpu, LangevinTarget::gaussian({0}, {1}), x.data(), chains, 1,
                            {.method = method, .step_size = 0.1f, .steps = 2200, .seed = 74,
                             .moments = true, .burn_in = 200});
    const Pooled p = pooled(r, chains, 1, 0);
    const bool ula = method == LangevinMethod::ULA;
    const double expect = ula ? 1 / (1 - h / 2) : 1.0;
    EXPECT_NEAR(p.var, expect, 0.012) << (ula ? "ULA" : "MALA");
    EXPECT_NEAR(p.mean, 0.0, 5 * std::sqrt(19.0 / (chains * 2000.0)));
    if (!ula) {
      double acc = 0;
      for (auto a : r.accepted.to_host()) acc += double(a);
      acc /= chains * 2200.0;
      EXPECT_GT(acc, 0.98);
      EXPECT_LT(acc, 1.0);
    }
  }
}

// A correlated Gaussian through its Cholesky factor: Sigma = L L^T = [[1, 0.8], [0.8, 1]],
// L = [[1, 0], [0.8, 0.6]]. MALA (exact) from x0 = (3, -3), h = 0.2, records every 50 steps
// after 200: the slowest mode (eigenvalue 1.8) keeps (1 - 0.2/1.8)^50 = 3e-3 of its
// correlation between records, so the 4096 x 20 records are independent draws. SE of a
// covariance entry: sqrt((Sigma_ii Sigma_jj + Sigma_ij^2) / n) <= sqrt(2 / 81920) = 4.9e-3;
// bounds 5 SE = 0.025 (the diagonal Gaussian of the same variances has covariance 0).
TEST(Langevin, CholeskyGaussianCovarianceIsLLt) {
  const std::int64_t chains = 4096;
  std::vector<float> x(2 * chains);
  for (std::int64_t c = 0; c < chains; ++c) {
    x[2 * c] = 3;
    x[2 * c + 1] = -3;
  }
  const auto r = langevin(kCpu, LangevinTarget::gaussian_cholesky({1, -1}, {1, 0, 0.8f, 0.6f}), x.data(),
                          chains, 2, {.method = LangevinMethod::MALA, .step_size = 0.2f, .steps = 1200,
                                      .seed = 9, .thin = 50});
  const auto traj = r.trajectory.to_host();
  double m[2] = {0, 0}, c[3] = {0, 0, 0};
  const std::int64_t first = 4, records = 24, n = (records - first) * chains;  // after step 200
  for (std::int64_t i = first * chains; i < records * chains; ++i) {
    m[0] += traj[2 * i];
    m[1] += traj[2 * i + 1];
  }
  m[0] /= n;
  m[1] /= n;
  for (std::int64_t i = first * chains; i < records * chains; ++i) {
    const double a = traj[2 * i] - m[0], b = traj[2 * i + 1] - m[1];
    c[0] += a * a;
    c[1] += a * b;
    c[2] += b * b;
  }
  EXPECT_NEAR(m[0], 1.0, 5 * std::sqrt(1.0 / n));
  EXPECT_NEAR(m[1], -1.0, 5 * std::sqrt(1.0 / n));
  EXPECT_NEAR(c[0] / n, 1.0, 0.025);
  EXPECT_NEAR(c[1] / n, 0.8, 0.025);
  EXPECT_NEAR(c[2] / n, 1.0, 0.025);
}

// ---- 7.2 the Boltzmann law of a double well ----------------------------------------------------

// E(x) = (x^2 - 1)^2 + 0.3 x: global minimum near x = -1, local one near +1. The exact law
// p ~ exp(-beta E) by quadrature, against MALA (which targets it exactly) at beta = 1 and 3.
// Chains start uniform on [-2, 2]; the slower well-to-well rate at beta = 3 (Kramers,
// ~0.9 exp(-2.1) per unit time out of the right well) relaxes the weights within ~8 time
// units, and the run is 100 (2000 steps of h = 0.05), moments over the last 50.
// SE: P(x < 0) from N = 2048 final states, sqrt(p(1-p)/N) <= 1.1e-2; moments: the spread of
// the chains' own means (independent chains) over sqrt(N). Bounds: 5 SE.
TEST(Langevin, DoubleWellBoltzmannLawOfProblem7_2) {
  const double tilt = 0.3;
  auto energy = [&](double x) { return (x * x - 1) * (x * x - 1) + tilt * x; };
  struct Exact {
    double p_left, m1, m2;
  };
  auto exact = [&](double beta) {  // Simpson on [-4, 4]: the tails beyond are < e^-100
    const int n = 40000;
    const double a = -4, step = 8.0 / n;
    double z = 0, left = 0, m1 = 0, m2 = 0;
    for (int i = 0; i <= n; ++i) {
      const double x = a + i * step, w = (i == 0 || i == n ? 1 : (i % 2 ? 4 : 2)) * std::exp(-beta * energy(x));
      z += w;
      if (x < 0) left += w;
      m1 += w * x;
      m2 += w * x * x;
    }
    return Exact{left / z, m1 / z, m2 / z};
  };
  const std::int64_t chains = 2048;
  const auto target = LangevinTarget::double_well(1, 1.0f, float(tilt));
  double p_left_at[2], dist_at[2];
  int i = 0;
  for (double beta : {1.0, 3.0}) {
    auto x = test::uniforms(chains, 72, -2, 2);
    const auto r = langevin(kCpu, target, x.data(), chains, 1,
                            {.method = LangevinMethod::MALA, .step_size = 0.05f, .beta = float(beta),
                             .steps = 2000, .seed = 72, .moments = true, .burn_in = 1000});
    const Exact e = exact(beta);
    double left = 0;
    for (float v : x) left += v < 0;
    left /= chains;
    EXPECT_NEAR(left, e.p_left, 5 * std::sqrt(e.p_left * (1 - e.p_left) / chains)) << "beta " << beta;
    const Pooled p = pooled(r, chains, 1, 0);
    EXPECT_NEAR(p.mean, e.m1, 5 * p.se_mean) << "beta " << beta;
    EXPECT_LT(p.se_mean, 0.012);  // measured 0.005 (beta 1), 0.009 (beta 3): the bound is tight
    // E[x^2]: each chain's window average of x^2 is var_c + mean_c^2; SE from their spread.
    const auto cm = r.mean.to_host(), cv = r.var.to_host();
    std::vector<double> sq(chains);
    double m2 = 0, spread = 0;
    for (std::int64_t c = 0; c < chains; ++c) m2 += sq[c] = cv[c] + double(cm[c]) * cm[c];
    m2 /= chains;
    for (double v : sq) spread += (v - m2) * (v - m2);
    const double se_m2 = std::sqrt(spread / (chains - 1) / chains);
    EXPECT_NEAR(m2, e.m2, 5 * se_m2) << "beta " << beta;
    EXPECT_LT(se_m2, 0.002);  // measured 1.2e-3
    p_left_at[i] = left;
    dist_at[i] = p.var + (p.mean + 1) * (p.mean + 1);  // E[(x - (-1))^2]
    ++i;
  }
  // 7.2(c): as beta grows the law, and the chains, concentrate on the global minimum.
  EXPECT_GT(exact(3).p_left, exact(1).p_left + 0.2);
  EXPECT_GT(exact(30).p_left, 0.9999);
  EXPECT_GT(p_left_at[1], p_left_at[0] + 0.2);  // 25+ SE apart
  EXPECT_LT(dist_at[1], 0.5 * dist_at[0]);
}

// ---- mode weights: plain vs annealed Langevin --------------------------------------------------

// two_modes = 0.8 N((5,5), I) + 0.2 N((-5,-5), I), chains uniform on [-8, 8]^2. Plain ULA
// never crosses between modes 14 sigma apart: each chain keeps the basin it started in, about
// half the square each (the posterior boundary is x + y = -0.14), so the weight of (5,5) is
// ~0.5, not 0.8. Annealed Langevin starts on the sigma_1 = 10 smoothed density, where the
// modes merge, and keeps the split as they separate: ~0.8. SE of a weight: sqrt(0.25/N) =
// 7.8e-3 (N = 4096). Plain: within 5 SE of the fraction of starts on the (5,5) side. Annealed:
// a finite ladder freezes the split while the smoothed modes still overlap a little, which
// biases the weight low. For this ladder (10 levels, T = 100, eps = 0.002, from these starts)
// the expected weight is w* = 0.7812 +- 0.0009, measured apart from this test with 3 x 65536
// chains (independent starts and noise: 0.7827, 0.7800, 0.7810); with T = 1000 it is 0.792,
// so the bias shrinks as the ladder slows. Bound: 4 SE of the difference, 4 sqrt(w*(1 - w*) /
// 4096 + 0.0009^2) = 0.026, while plain Langevin misses w* by 0.28 (43 SE).
TEST(Langevin, AnnealingRecoversModeWeightsPlainLangevinDoesNot) {
  const std::int64_t chains = 4096;
  const auto target = LangevinTarget::two_modes();
  auto weight = [&](const std::vector<float>& x) {
    double w = 0;
    for (std::int64_t c = 0; c < chains; ++c) w += x[2 * c] + x[2 * c + 1] > 0;
    return w / chains;
  };
  auto x = test::uniforms(2 * chains, 8, -8, 8);
  const auto start = x;
  double above = 0;  // the starts on the (5,5) side of the boundary
  for (std::int64_t c = 0; c < chains; ++c) above += start[2 * c] + start[2 * c + 1] > -0.139;
  above /= chains;
  langevin(kCpu, target, x.data(), chains, 2, {.step_size = 0.1f, .steps = 500, .seed = 1});
  const double plain = weight(x);
  EXPECT_NEAR(plain, above, 5 * 7.8e-3);
  EXPECT_LT(plain, 0.6);
  x = start;
  langevin(kCpu, target, x.data(), chains, 2,
           {.method = LangevinMethod::Annealed, .step_size = 0.002f, .steps = 100, .seed = 1,
            .anneal = {.levels = 10, .sigma_first = 10.0f, .sigma_last = 0.1f}});
  const double annealed = weight(x), expected = 0.7812;
  EXPECT_NEAR(annealed, expected,
              4 * std::sqrt(expected * (1 - expected) / chains + 0.0009 * 0.0009));
}

// ---- diagnostics -----------------------------------------------------------------------------

// AR(1) chains x_t = phi x_{t-1} + sqrt(1 - phi^2) e_t started from N(0,1) (stationary):
// integrated autocorrelation tau = (1 + phi)/(1 - phi), so ESS = m n / tau. Relative SE of the
// estimated tau (Sokal): sqrt(2 (2W + 1) / (m n)) with window W ~ 6 tau: 4.4% for phi = 0.9
// (m n = 320000), 0.7% for phi = 0 (a window of a few lags); bounds 15% (3.4 SE) and 4%.
std::vector<float> ar1(std::int64_t draws, std::int64_t chains, double phi, std::uint64_t seed) {
  const auto e = test::normals(draws * chains, seed);
  std::vector<float> x(draws * chains);
  for (std::int64_t c = 0; c < chains; ++c) {
    double v = e[c];
    x[c] = float(v);
    for (std::int64_t t = 1; t < draws; ++t) {
      v = phi * v + std::sqrt(1 - phi * phi) * e[t * chains + c];
      x[t * chains + c] = float(v);
    }
  }
  return x;
}

TEST(Langevin, EssOfAr1ChainsIsChainsTimesDrawsOverTau) {
  const std::int64_t draws = 20000, chains = 16;
  for (double phi : {0.0, 0.9}) {
    const auto x = ar1(draws, chains, phi, 40);
    double ess = 0, rhat = 0;
    effective_sample_size(x.data(), draws, chains, 1, &ess);
    split_rhat(x.data(), draws, chains, 1, &rhat);
    const double expect = draws * chains * (1 - phi) / (1 + phi);
    EXPECT_NEAR(ess / expect, 1.0, phi > 0 ? 0.15 : 0.04) << "phi " << phi << " ess " << ess;
    EXPECT_LT(rhat, 1.01) << "phi " << phi;  // ArviZ's threshold for converged chains
    EXPECT_GT(rhat, 0.999);
  }
}

// Chains stuck in different modes: 4 chains at +5 and 4 at -5 (unit noise). The rank-normalised
// between-chain spread dwarfs the within-chain one: R-hat ~ 1.7, far above 1.01; a single
// chain that jumps between the modes halfway is caught by the split.
TEST(Langevin, RhatOfStuckChainsIsFarAboveOne) {
  const std::int64_t draws = 1000, chains = 8;
  auto x = test::normals(draws * chains, 41);
  for (std::int64_t t = 0; t < draws; ++t)
    for (std::int64_t c = 0; c < chains; ++c) x[t * chains + c] += c < 4 ? 5.0f : -5.0f;
  double rhat = 0;
  split_rhat(x.data(), draws, chains, 1, &rhat);
  EXPECT_GT(rhat, 1.5);
  auto jump = test::normals(draws, 42);
  for (std::int64_t t = draws / 2; t < draws; ++t) jump[t] += 10.0f;
  split_rhat(jump.data(), draws, 1, 1, &rhat);
  EXPECT_GT(rhat, 1.5);
}

// Per dimension: a two-dimensional sample whose dimensions are iid and AR(0.9) gets both right.
TEST(Langevin, DiagnosticsArePerDimension) {
  const std::int64_t draws = 4000, chains = 8;
  const auto a = ar1(draws, chains, 0.0, 43), b = ar1(draws, chains, 0.9, 44);
  std::vector<float> x(2 * draws * chains);
  for (std::size_t i = 0; i < a.size(); ++i) {
    x[2 * i] = a[i];
    x[2 * i + 1] = b[i];
  }
  double ess[2];
  effective_sample_size(x.data(), draws, chains, 2, ess);
  double e0 = 0, e1 = 0;
  effective_sample_size(a.data(), draws, chains, 1, &e0);
  effective_sample_size(b.data(), draws, chains, 1, &e1);
  EXPECT_EQ(ess[0], e0);
  EXPECT_EQ(ess[1], e1);
  EXPECT_GT(ess[0], 5 * ess[1]);
}


}  // namespace
}  // namespace genai
