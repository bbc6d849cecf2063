// Langevin module: Brownian motion (7.1), ULA / MALA stationary laws (7.2, 7.4 with the
// errata's exact ULA bias), mode weights with and without annealing, ESS and R-hat against
// processes with known values, the documented noise layout, bad input, and CPU-vs-GPU parity.
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

using test::chains_off;
using test::error_of;
using test::Outputs;
using test::outputs_of;

// Pooled moments over chains and the moment window, from the per-chain Welford outputs of
// dimension j: the mean, the variance of all samples, and the standard error of the mean
// estimated from the spread of the chains' own means (independent chains).
struct Pooled {
  double mean, var, se_mean;
};
Pooled pooled(const LangevinResult& r, std::int64_t chains, std::int64_t d, std::int64_t j) {
  const auto mean = r.mean.to_host(), var = r.var.to_host();
  double m = 0;
  for (std::int64_t c = 0; c < chains; ++c) m += mean[c * d + j];
  m /= chains;
  double within = 0, between = 0;
  for (std::int64_t c = 0; c < chains; ++c) {
    within += var[c * d + j];
    between += (mean[c * d + j] - m) * (mean[c * d + j] - m);
  }
  return {m, (within + between) / chains, std::sqrt(between / (chains - 1) / chains)};
}

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

// ---- targets ---------------------------------------------------------------------------------

// grad log p against central differences of log p (double, step 1e-5: error ~1e-9).
TEST(Langevin, TargetGradientsMatchFiniteDifferences) {
  const LangevinTarget targets[] = {
      LangevinTarget::gaussian({1, -2, 0.5f}, {0.5f, 2, 1}),
      LangevinTarget::gaussian_cholesky({1, -2, 0.5f}, {1.5f, 0, 0, 0.3f, 0.8f, 0, -0.4f, 0.2f, 0.6f}),
      LangevinTarget::mixture(3, {1, 2, 3}, {0, 0, 0, 1, 1, 1, -1, 2, 0}, {0.3f, 1, 2}),
      LangevinTarget::mixture(3, {1, 1}, {0, 0, 0, 1, 1, 1}, {0.3f, 1, 2, 1, 0.5f, 4}),
      LangevinTarget::gmm8().noised(0.7f),
      LangevinTarget::double_well(3, 1.5f, 0.3f)};
  const auto xs = test::normals(30, 5);
  for (const auto& t : targets) {
    const auto packed = detail::pack(t);
    const detail::TargetView v = detail::view(t, packed.data());
    for (int i = 0; i + t.d <= 30; i += static_cast<int>(t.d)) {
      std::vector<double> x(xs.begin() + i, xs.begin() + i + t.d), g(t.d), scratch(t.d);
      v.log_density_grad<double, 0>(0.25, x.data(), g);
      for (int j = 0; j < t.d; ++j) {
        auto xp = x, xm = x;
        xp[j] += 1e-5;
        xm[j] -= 1e-5;
        const double fd = (v.log_density_grad<double, 0>(0.25, xp.data(), scratch) -
                           v.log_density_grad<double, 0>(0.25, xm.data(), scratch)) / 2e-5;
        EXPECT_NEAR(g[j], fd, 1e-6 * std::max(1.0, std::abs(fd))) << "kind " << int(t.kind) << " dim " << j;
      }
    }
  }
}

TEST(Langevin, PresetTargets) {
  const auto g = LangevinTarget::gmm8();
  EXPECT_EQ(g.d, 2);
  EXPECT_EQ(g.K, 8);
  for (int k = 0; k < 8; ++k) {
    EXPECT_NEAR(std::hypot(g.means[2 * k], g.means[2 * k + 1]), 4.0, 1e-6);
    EXPECT_FLOAT_EQ(g.weights[k], 0.125f);
  }
  const auto t = LangevinTarget::two_modes();
  EXPECT_EQ(t.weights, (std::vector<float>{0.8f, 0.2f}));
  EXPECT_EQ(t.means, (std::vector<float>{5, 5, -5, -5}));
  EXPECT_EQ(t.vars, (std::vector<float>{1, 1, 1, 1}));
  EXPECT_EQ(t.noised(2).vars, (std::vector<float>{5, 5, 5, 5}));
}

// ---- the documented noise layout -------------------------------------------------------------

// One ULA step on N(0, I) in d = 5 (two Philox blocks per chain): x' = x - h x + sqrt(2h/beta) z
// with z lane j % 4 of block c * 2 + j / 4, stream langevin, step first_step.
TEST(Langevin, UlaStepDrawsTheDocumentedNoise) {
  const std::int64_t chains = 3, d = 5;
  const auto x0 = test::normals(chains * d, 11);
  auto x = x0;
  const LangevinOptions o{.step_size = 0.1f, .beta = 2.0f, .steps = 1, .seed = 99, .first_step = 7};
  langevin(kCpu, LangevinTarget::gaussian(std::vector<float>(d, 0), std::vector<float>(d, 1)),
           x.data(), chains, d, o);
  for (std::int64_t c = 0; c < chains; ++c)
    for (std::int64_t j = 0; j < d; ++j) {
      const float z = rng::normal4(99, rng::streams::langevin, c * 2 + j / 4, 7).v[j % 4];
      const double expect = x0[c * d + j] * 0.9 + std::sqrt(2 * 0.1 / 2.0) * z;
      EXPECT_NEAR(x[c * d + j], expect, 1e-6) << c << "," << j;
    }
}

// One MALA step accepts exactly when log u < log alpha, u = lane 0 of block c of stream
// langevin_accept; the proposal is the ULA move above (1-D, N(0,1), large h for rejections).
TEST(Langevin, MalaAcceptsWithTheDocumentedUniform) {
  const std::int64_t chains = 256;
  const auto x0 = test::normals(chains, 12, 0, 2);
  auto x = x0;
  const double h = 1.5;
  const auto r = langevin(kCpu, LangevinTarget::gaussian({0}, {1}), x.data(), chains, 1,
                          {.method = LangevinMethod::MALA, .step_size = 1.5f, .steps = 1, .seed = 5});
  const auto acc = r.accepted.to_host();
  int accepted = 0;
  for (std::int64_t c = 0; c < chains; ++c) {
    const double xc = x0[c];
    const double y = xc - h * xc + std::sqrt(2 * h) * rng::normal4(5, rng::streams::langevin, c, 0).v[0];
    const double fwd = y - xc + h * xc, bwd = xc - y + h * y;
    const double log_alpha = -0.5 * (y * y - xc * xc) - (bwd * bwd - fwd * fwd) / (4 * h);
    const double u = rng::uniform4(5, rng::streams::langevin_accept, c, 0).v[0];
    const bool accept = std::log(u) < log_alpha;
    EXPECT_EQ(acc[c], accept ? 1 : 0) << c;
    EXPECT_NEAR(x[c], accept ? y : xc, 1e-5) << c;
    accepted += accept;
  }
  EXPECT_GT(accepted, 20);   // both outcomes occur
  EXPECT_LT(accepted, 236);
}

// A run split in pieces -- 4 steps, then 6 from first_step = 4 -- is the unsplit 10-step run
// exactly (each proposal is rounded to the float state, so the pieces lose nothing in between):
// the final states, the acceptance counts summed, and the trajectories concatenated (pieces of a
// multiple of thin). The trajectory's record r is the state after step (r + 1) thin. This is
// how `genai langevin` reports progress without changing the paths.
TEST(Langevin, SplitRunIsTheUnsplitRunExactly) {
  const std::int64_t chains = 64, d = 3;
  const auto mix = LangevinTarget::mixture(3, {1, 2}, {1, 1, 1, -1, 0, 2}, {0.5f, 2});
  const auto x0 = test::normals(chains * d, 13);
  for (auto method : {LangevinMethod::ULA, LangevinMethod::MALA}) {
    auto whole = x0, split = x0;
    LangevinOptions o{.method = method, .step_size = 0.4f, .steps = 10, .seed = 3, .thin = 2};
    const auto r = langevin(kCpu, mix, whole.data(), chains, d, o);
    o.steps = 4;
    const auto first = langevin(kCpu, mix, split.data(), chains, d, o);
    o.steps = 6;
    o.first_step = 4;
    const auto second = langevin(kCpu, mix, split.data(), chains, d, o);
    EXPECT_EQ(split, whole);
    auto traj = first.trajectory.to_host();
    const auto rest = second.trajectory.to_host();
    traj.insert(traj.end(), rest.begin(), rest.end());
    EXPECT_EQ(traj, r.trajectory.to_host());
    EXPECT_EQ(traj.size(), std::size_t(5 * chains * d));
    const std::vector<float> last(traj.end() - chains * d, traj.end());
    EXPECT_EQ(last, whole);  // record 4 = after step 10
    if (method == LangevinMethod::MALA) {
      std::int64_t accepted = 0;
      for (std::int64_t c = 0; c < chains; ++c) {
        EXPECT_EQ(first.accepted.data()[c] + second.accepted.data()[c], r.accepted.data()[c]) << c;
        accepted += r.accepted.data()[c];
      }
      EXPECT_GT(accepted, chains * 10 / 4);  // h = 0.4 rejects often: both outcomes occur
      EXPECT_LT(accepted, chains * 10);
    }
  }
}

// ---- custom (user) targets -------------------------------------------------------------------

// A custom target with the built-in diagonal Gaussian's formulas (TargetView::log_density_grad)
// runs the built-in chains bit for bit: the same step code and Philox layout, d = 5 so that a
// chain draws two Philox blocks per step.
TEST(Langevin, CustomTargetRunsTheBuiltInPathBitForBit) {
  const std::int64_t chains = 128, d = 5;
  const LangevinTarget gaussian = test::parity_gaussian(d);
  const auto custom = LangevinTarget::custom(d, [&](const double* x, double* g) {
    double l = 0;
    for (std::int64_t j = 0; j < d; ++j) {
      const double v = gaussian.vars[j], r = double(gaussian.means[j]) - x[j];
      l += r * r / v;
      g[j] = r / v;
    }
    return -0.5 * l;
  });
  const auto x0 = test::normals(chains * d, 14, 0, 2);
  for (auto method : {LangevinMethod::ULA, LangevinMethod::MALA}) {
    const LangevinOptions o{.method = method, .step_size = 0.2f, .steps = 200, .seed = 9,
                            .moments = true, .burn_in = 50, .thin = 20};
    auto xb = x0, xc = x0;
    const auto rb = langevin(kCpu, gaussian, xb.data(), chains, d, o);
    const auto rc = langevin(kCpu, custom, xc.data(), chains, d, o);
    EXPECT_TRUE(outputs_of(xc, rc) == outputs_of(xb, rb)) << "method " << int(method);
    EXPECT_NE(xc, x0);
  }
}

// MALA on the banana (a target no built-in covers): x0 ~ N(0, 1), x1 | x0 ~ N(x0^2 / 2, 1), so
// E = (0, 1/2) and Var = (1, 3/2). 2048 chains from N(0, I), h = 0.1, moments over steps
// 201..2200. The chains are independent, so the SE of a pooled moment is the spread of the
// chains' own estimates over sqrt(chains); bounds 5 SE (about 0.01 for the means). MALA's
// correction makes the law exact for any proposal, so this checks the custom target's log p and
// the sampler; its gradient's use is checked bit for bit above.
TEST(Langevin, CustomBananaHasItsKnownMoments) {
  const std::int64_t chains = 2048, d = 2;
  auto x = test::normals(chains * d, 15);
  const auto r = langevin(kCpu, test::banana_target({1.0f, 0.5f}), x.data(), chains, d,
                          {.method = LangevinMethod::MALA, .step_size = 0.1f, .steps = 2200,
                           .seed = 16, .moments = true, .burn_in = 200});
  const auto mean = r.mean.to_host(), var = r.var.to_host();
  const double expect_mean[] = {0.0, 0.5}, expect_var[] = {1.0, 1.5};
  for (std::int64_t j = 0; j < d; ++j) {
    const Pooled p = pooled(r, chains, d, j);
    EXPECT_NEAR(p.mean, expect_mean[j], 5 * p.se_mean) << "dim " << j;
    EXPECT_LT(p.se_mean, 0.01) << "dim " << j;
    // Per chain: the mean square about the true mean; pooled, and its SE over chains.
    double s = 0, s2 = 0;
    for (std::int64_t c = 0; c < chains; ++c) {
      const double dm = mean[c * d + j] - expect_mean[j], m2 = var[c * d + j] + dm * dm;
      s += m2;
      s2 += m2 * m2;
    }
    const double m2 = s / chains, se = std::sqrt((s2 / chains - m2 * m2) / (chains - 1));
    EXPECT_NEAR(m2, expect_var[j], 5 * se) << "dim " << j;
    EXPECT_LT(se, 0.02) << "dim " << j;
  }
  double acc = 0;
  for (auto a : r.accepted.to_host()) acc += double(a);
  EXPECT_GT(acc / (chains * 2200.0), 0.9);  // h = 0.1 on unit scales: few rejections
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
// biases the weight low; for this ladder (10 levels, T = 100, eps = 0.002) it is 0.014 (mean of
// seeds 1-3: 0.791, 0.788, 0.779). Bound: |w - 0.8| < 0.015 + 2.5 SE = 0.035, while plain
// Langevin misses 0.8 by 0.3 (38 SE).
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
  const double annealed = weight(x);
  EXPECT_NEAR(annealed, 0.8, 0.035);
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

// ---- bad input -------------------------------------------------------------------------------

TEST(Langevin, BadInputNamesTheArgumentAndLeavesStatesUntouched) {
  const auto target = LangevinTarget::two_modes();
  std::vector<float> x = {1, 2, 3, 4};
  const auto before = x;
  auto run = [&](std::int64_t chains, std::int64_t d, LangevinOptions o) {
    return error_of([&] { langevin(kCpu, target, x.data(), chains, d, o); });
  };
  const LangevinOptions ok{.steps = 10};
  auto with = [&](auto&& change) {
    LangevinOptions o = ok;
    change(o);
    return o;
  };
  std::string m = run(2, 2, with([](auto& o) { o.step_size = 0; }));
  EXPECT_NE(m.find("genai::langevin: argument 'opts.step_size' must be finite and > 0 (got 0)"), std::string::npos) << m;
  m = run(2, 2, with([](auto& o) { o.step_size = -0.1f; }));
  EXPECT_NE(m.find("'opts.step_size'"), std::string::npos) << m;
  m = run(2, 2, with([](auto& o) { o.beta = 0; }));
  EXPECT_NE(m.find("argument 'opts.beta' must be finite and > 0"), std::string::npos) << m;
  m = run(2, 2, with([](auto& o) { o.beta = -1; }));
  EXPECT_NE(m.find("'opts.beta'"), std::string::npos) << m;
  m = run(0, 2, ok);
  EXPECT_NE(m.find("argument 'chains' must be >= 1 (got 0)"), std::string::npos) << m;
  m = run(1, 4, ok);
  EXPECT_NE(m.find("argument 'd' is 4 but the target has d = 2"), std::string::npos) << m;
  m = run(2, 2, with([](auto& o) { o.steps = 0; }));
  EXPECT_NE(m.find("'opts.steps'"), std::string::npos) << m;
  m = run(2, 2, with([](auto& o) {
    o.moments = true;
    o.burn_in = 10;
  }));
  EXPECT_NE(m.find("'opts.burn_in'"), std::string::npos) << m;
  m = run(2, 2, with([](auto& o) {
    o.method = LangevinMethod::Annealed;
    o.anneal.sigma_last = 50;
  }));
  EXPECT_NE(m.find("'opts.anneal.sigma_last'"), std::string::npos) << m;
  // A ladder longer than the int the chain code keeps, run one level at a time: refused.
  m = run(2, 2, with([](auto& o) {
    o.method = LangevinMethod::Annealed;
    o.anneal.levels = std::int64_t{1} << 40;
    o.anneal.first_level = (std::int64_t{1} << 40) - 1;
  }));
  EXPECT_NE(m.find("argument 'opts.anneal.levels' is too large"), std::string::npos) << m;
  // 10^9 steps of 10^6 chains in 2-D, every step recorded: 8e15 bytes, refused before allocating.
  m = error_of([&] {
    langevin(kCpu, target, x.data(), 1'000'000, 2, {.steps = 1'000'000'000, .thin = 1});
  });
  EXPECT_NE(m.find("argument 'opts.thin'"), std::string::npos) << m;
  EXPECT_NE(m.find("more than opts.max_trajectory_bytes"), std::string::npos) << m;
  m = run(2, 2, with([](auto& o) {
    o.thin = 1;
    o.max_trajectory_bytes = 100;  // 10 records x 2 x 2 floats = 160 bytes
  }));
  EXPECT_NE(m.find("'opts.thin'"), std::string::npos) << m;
  EXPECT_EQ(x, before);
  x[3] = NAN;
  m = run(2, 2, ok);
  EXPECT_NE(m.find("argument 'x' chain 1 dimension 1 is not finite"), std::string::npos) << m;
  x[3] = INFINITY;
  EXPECT_NE(run(2, 2, ok).find("argument 'x'"), std::string::npos);
  x[3] = 4;
  EXPECT_EQ(x, before);
  m = error_of([&] { langevin(kCpu, target, nullptr, 2, 2, ok); });
  EXPECT_NE(m.find("argument 'x' must not be null"), std::string::npos) << m;
  m = error_of([&] {
    langevin(kCpu, LangevinTarget::double_well(2), x.data(), 2, 2, {.method = LangevinMethod::Annealed});
  });
  EXPECT_NE(m.find("argument 'target' is a double well"), std::string::npos) << m;

  // Targets.
  m = error_of([] { LangevinTarget::gaussian({0, 1}, {1, 0}); });
  EXPECT_NE(m.find("genai::LangevinTarget::gaussian: argument 'var' entry 1 is 0"), std::string::npos) << m;
  m = error_of([] { LangevinTarget::gaussian({0, 1}, {1}); });
  EXPECT_NE(m.find("argument 'var' has 1 entries, mean 2"), std::string::npos) << m;
  m = error_of([] { LangevinTarget::mixture(2, {1, -1}, {0, 0, 1, 1}, {1, 1}); });
  EXPECT_NE(m.find("argument 'weights' entry 1 is -1"), std::string::npos) << m;
  m = error_of([] { LangevinTarget::mixture(2, {1, 1}, {0, 0, 1}, {1, 1}); });
  EXPECT_NE(m.find("argument 'means' has 3 entries (need K x d = 4)"), std::string::npos) << m;
  m = error_of([] { LangevinTarget::mixture(2, {1, 1}, {0, 0, 1, NAN}, {1, 1}); });
  EXPECT_NE(m.find("argument 'means' entry 3 is nan"), std::string::npos) << m;
  m = error_of([] { LangevinTarget::gaussian_cholesky({0, 0}, {1, 0, 0.5f, 0}); });
  EXPECT_NE(m.find("genai::LangevinTarget::gaussian_cholesky: argument 'L' entry (1, 1) is 0 (the diagonal"),
            std::string::npos) << m;
  m = error_of([] { LangevinTarget::gaussian_cholesky({0, 0}, {1, 0, 0.5f}); });
  EXPECT_NE(m.find("argument 'L' has 3 entries (need d x d = 4)"), std::string::npos) << m;
  m = error_of([&] {
    langevin(kCpu, LangevinTarget::gaussian_cholesky({0, 0}, {1, 0, 0, 1}), x.data(), 2, 2,
             {.method = LangevinMethod::Annealed});
  });
  EXPECT_NE(m.find("argument 'target' is a Cholesky Gaussian"), std::string::npos) << m;
  m = error_of([] { LangevinTarget::double_well(1, 0); });
  EXPECT_NE(m.find("argument 'height'"), std::string::npos) << m;
  m = error_of([] { LangevinTarget::gmm8().noised(-1); });
  EXPECT_NE(m.find("argument 'sigma'"), std::string::npos) << m;
  const auto banana = test::banana_target({1.0f, 0.5f});
  m = error_of([&] { langevin(kCpu, banana, x.data(), 2, 2, {.method = LangevinMethod::Annealed}); });
  EXPECT_NE(m.find("argument 'target' is a custom target: annealing needs"), std::string::npos) << m;
  m = error_of([&] { langevin(kCpu, banana, x.data(), 1, 4, ok); });
  EXPECT_NE(m.find("argument 'd' is 4 but the target has d = 2"), std::string::npos) << m;
  m = error_of([&] { langevin(kCpu, banana, x.data(), 2, 2, with([](auto& o) { o.beta = 0; })); });
  EXPECT_NE(m.find("genai::langevin: argument 'opts.beta' must be finite and > 0"), std::string::npos) << m;
  m = error_of([&] { banana.noised(1); });
  EXPECT_NE(m.find("argument 'this' is a custom target: noised() takes"), std::string::npos) << m;
  m = error_of([] { LangevinTarget::custom(0, [](const double*, double*) { return 0.0; }); });
  EXPECT_NE(m.find("genai::LangevinTarget::custom: argument 'd' must be >= 1 (got 0)"), std::string::npos) << m;
  m = error_of([] { LangevinTarget::custom(2, nullptr); });
  EXPECT_NE(m.find("argument 'f' is empty"), std::string::npos) << m;
  LangevinTarget empty = banana;
  empty.log_density_grad = nullptr;
  m = error_of([&] { langevin(kCpu, empty, x.data(), 2, 2, ok); });
  EXPECT_NE(m.find("argument 'target.log_density_grad' is empty"), std::string::npos) << m;
  EXPECT_EQ(x, before);
  LangevinTarget broken = LangevinTarget::gmm8();
  broken.vars.pop_back();
  m = error_of([&] { langevin(kCpu, broken, x.data(), 2, 2, ok); });
  EXPECT_NE(m.find("argument 'target' has 8 weights, 16 means and 15 variances"), std::string::npos) << m;

  // Brownian motion and diagnostics.
  float w[8];
  m = error_of([&] { brownian_motion(kCpu, w, 1, 1, 3, 0.0f, 1); });
  EXPECT_NE(m.find("genai::brownian_motion: argument 'dt'"), std::string::npos) << m;
  m = error_of([&] { brownian_motion(kCpu, w, 0, 1, 3, 0.1f, 1); });
  EXPECT_NE(m.find("argument 'paths'"), std::string::npos) << m;
  double out;
  m = error_of([&] { split_rhat(w, 3, 1, 1, &out); });
  EXPECT_NE(m.find("genai::split_rhat: argument 'draws' must be >= 4 (got 3)"), std::string::npos) << m;
  m = error_of([&] { effective_sample_size(w, 8, 0, 1, &out); });
  EXPECT_NE(m.find("argument 'chains'"), std::string::npos) << m;
}

// Annealed runs split by levels (anneal.first_level / level_count, first_step = steps done) are
// the whole run exactly too; a level range outside the ladder is refused, naming the argument.
TEST(Langevin, SplitAnnealedRunIsTheUnsplitRunExactly) {
  const std::int64_t chains = 64, d = 3;
  const auto mix = LangevinTarget::mixture(3, {1, 2}, {1, 1, 1, -1, 0, 2}, {0.5f, 2});
  const auto x0 = test::normals(chains * d, 14);
  auto whole = x0, split = x0;
  LangevinOptions o{.method = LangevinMethod::Annealed, .step_size = 0.05f, .steps = 5, .seed = 8,
                    .anneal = {.levels = 4, .sigma_first = 5.0f, .sigma_last = 0.5f}, .thin = 5};
  const auto r = langevin(kCpu, mix, whole.data(), chains, d, o);
  EXPECT_EQ(r.total_steps, 20);
  o.anneal.level_count = 1;  // level 0
  const auto first = langevin(kCpu, mix, split.data(), chains, d, o);
  EXPECT_EQ(first.total_steps, 5);
  o.anneal.first_level = 1;  // levels 1..3
  o.anneal.level_count = 0;
  o.first_step = 5;
  const auto second = langevin(kCpu, mix, split.data(), chains, d, o);
  EXPECT_EQ(second.total_steps, 15);
  EXPECT_EQ(split, whole);
  EXPECT_NE(split, x0);
  auto traj = first.trajectory.to_host();
  const auto rest = second.trajectory.to_host();
  traj.insert(traj.end(), rest.begin(), rest.end());
  EXPECT_EQ(traj, r.trajectory.to_host());

  o.anneal.first_level = 4;
  EXPECT_EQ(error_of([&] { langevin(kCpu, mix, split.data(), chains, d, o); }),
            "genai::langevin: argument 'opts.anneal.first_level' must be in [0, 3] (got 4)");
  o.anneal.first_level = 2;
  o.anneal.level_count = 3;
  EXPECT_EQ(error_of([&] { langevin(kCpu, mix, split.data(), chains, d, o); }),
            "genai::langevin: argument 'opts.anneal.level_count' must be in [0, 2] from "
            "first_level 2 (got 3)");
  EXPECT_EQ(split, whole);  // refused calls leave x alone
}

// ---- parity of the float chain code with the double reference -------------------------------

std::int64_t total_steps(const LangevinOptions& o) {
  return o.steps * (o.method == LangevinMethod::Annealed ? o.anneal.levels : 1);
}

// The kernels' code path -- detail::run_chain in float -- run on the host.
Outputs float_path(const LangevinTarget& target, std::vector<float> x, std::int64_t chains,
                   const LangevinOptions& o) {
  const int d = static_cast<int>(target.d);
  const std::int64_t records = o.thin > 0 ? total_steps(o) / o.thin : 0;
  Outputs out{std::move(x), std::vector<float>(records * chains * d, NAN), {}, {}, {}};
  if (o.moments) out.mean = out.var = std::vector<float>(chains * d, NAN);
  if (o.method == LangevinMethod::MALA) out.accepted.assign(chains, -1);
  const auto packed = detail::pack(target);
  const detail::TargetView view = detail::view(target, packed.data());
  const detail::ChainSetup s{o.method, o.step_size, o.beta, o.steps,
                          static_cast<int>(o.method == LangevinMethod::Annealed ? o.anneal.levels : 1),
                          o.anneal.sigma_first, o.anneal.sigma_last, o.seed, o.first_step, chains, d,
                          o.burn_in, o.thin, records > 0 ? out.trajectory.data() : nullptr,
                          o.moments ? out.mean.data() : nullptr, o.moments ? out.var.data() : nullptr,
                          o.method == LangevinMethod::MALA ? out.accepted.data() : nullptr};
  std::vector<float> work(6 * d);
  float *a = work.data(), *y = a + d, *gx = y + d, *gy = gx + d, *mu = gy + d, *m2 = mu + d;
  for (std::int64_t c = 0; c < chains; ++c)
    detail::run_chain<float, 0>(view, s, c, out.x.data() + c * d, a, y, gx, gy, mu, m2);
  return out;
}

// The parity cases of the GPU tests below, with the same tolerances: float against double is
// rounding only, amplified where the drift expands (between mixture modes: up to ~7x per step
// near gmm8's centre), and a MALA decision flips where log u and log alpha agree to rounding
// (expected count: chain-steps x ~1e-6). Measured on the host float path: worst in-tolerance
// error 2e-6 (ULA Gaussian) and 4e-5 (mixtures, MALA, annealed), 3 of 5000 double-well MALA
// chains off. The GPU contracts the targets' arithmetic to FMAs and has its own exp/log ulps,
// hence tolerances 50x and 25x those errors, and at most 1% of chains off; any error in the shared code, the noise
// layout or the launch puts nearly every chain off.
struct ParityCase {
  const char* name;
  LangevinTarget target;
  std::int64_t chains;
  LangevinOptions opts;
  double tol;
};

std::vector<ParityCase> parity_cases(bool small) {
  std::vector<ParityCase> cases;
  const std::int64_t n = small ? 512 : 4096;
  for (std::int64_t d : {1, 2, 3, 4, 5, 8}) {
    cases.push_back({"ULA Gaussian", test::parity_gaussian(d), n,
                     {.step_size = 0.05f, .steps = 300, .seed = 1, .moments = true, .burn_in = 100, .thin = 50}, 1e-4});
  }
  cases.push_back({"MALA Cholesky Gaussian", LangevinTarget::gaussian_cholesky({1, 0, -1}, {1, 0, 0, 0.5f, 0.8f, 0, -0.3f, 0.2f, 0.6f}),
                   n, {.method = LangevinMethod::MALA, .step_size = 0.05f, .steps = 300, .seed = 6, .thin = 100}, 1e-3});
  cases.push_back({"ULA 6-D Cholesky Gaussian", LangevinTarget::gaussian_cholesky(std::vector<float>(6, 0.5f), [] {
                     std::vector<float> L(36, 0.0f);
                     for (int i = 0; i < 6; ++i)
                       for (int k = 0; k <= i; ++k) L[i * 6 + k] = k == i ? 1.0f : 0.2f;
                     return L;
                   }()),
                   n, {.step_size = 0.02f, .steps = 300, .seed = 7, .moments = true}, 1e-4});
  cases.push_back({"ULA 13-D mixture", LangevinTarget::mixture(13, {1, 2, 3}, test::normals(39, 61), {1.0f, 2.0f, 0.5f}),
                   n, {.step_size = 0.02f, .steps = 200, .seed = 2, .moments = true, .thin = 40}, 1e-3});
  cases.push_back({"MALA gmm8", LangevinTarget::gmm8(), n,
                   {.method = LangevinMethod::MALA, .step_size = 0.05f, .steps = 300, .seed = 3, .moments = true, .burn_in = 100}, 1e-3});
  cases.push_back({"MALA double well, beta 3", LangevinTarget::double_well(3, 1.0f, 0.3f), n,
                   {.method = LangevinMethod::MALA, .step_size = 0.05f, .beta = 3.0f, .steps = 400, .seed = 4}, 1e-3});
  cases.push_back({"Annealed two_modes", LangevinTarget::two_modes(), n,
                   {.method = LangevinMethod::Annealed, .step_size = 0.01f, .steps = 50, .seed = 5,
                    .anneal = {.levels = 8, .sigma_first = 20.0f, .sigma_last = 0.1f}, .thin = 100}, 1e-3});
  return cases;
}

TEST(Langevin, FloatChainCodeStaysWithinParityTolerance) {
  for (const ParityCase& p : parity_cases(true)) {
    const std::int64_t d = p.target.d;
    const auto x0 = test::normals(p.chains * d, 600 + d, 0, 2);
    auto x = x0;
    const auto r = langevin(kCpu, p.target, x.data(), p.chains, d, p.opts);
    EXPECT_LE(chains_off(float_path(p.target, x0, p.chains, p.opts), outputs_of(x, r), p.chains, d, p.tol),
              p.chains / 100) << p.name << ", d = " << d;
  }
}

// ---- GPU parity ------------------------------------------------------------------------------

class LangevinGpu : public test::GpuTest {};

// Every parity case (every register-resident d, the workspace path for d = 5 and 13, every
// method and target kind) on the device against the CPU reference. The call allocates its
// outputs, so the stream-ordered pool they come from is poisoned first: an element the kernel
// forgets is NaN (or at least garbage) and fails.
TEST_F(LangevinGpu, EverySamplerMatchesReference) {
  for (const ParityCase& p : parity_cases(false)) {
    const std::int64_t d = p.target.d, n = p.chains * d;
    const auto x0 = test::normals(n, 600 + d, 0, 2);
    auto x = x0;
    const auto r = langevin(kCpu, p.target, x.data(), p.chains, d, p.opts);
    Buffer<float> dx(ctx, std::span<const float>(x0));
    {
      const std::int64_t records = p.opts.thin > 0 ? total_steps(p.opts) / p.opts.thin : 0;
      Buffer<float> a(ctx, records * n), b(ctx, n), c(ctx, n);
      Buffer<std::int64_t> e(ctx, p.chains);
      test::poison(a);
      test::poison(b);
      test::poison(c);
      test::poison(e);
    }
    const auto rg = langevin(ctx, p.target, dx.data(), p.chains, d, p.opts);
    EXPECT_LE(chains_off(outputs_of(dx.to_host(), rg), outputs_of(x, r), p.chains, d, p.tol),
              p.chains / 100) << p.name << ", d = " << d;
  }
}

TEST_F(LangevinGpu, BrownianMotionMatchesReference) {
  const std::int64_t paths = 1001, d = 3, steps = 64;
  const std::size_t n = paths * (steps + 1) * d;
  Buffer<float> dw(ctx, n);
  test::poison(dw);
  brownian_motion(ctx, dw.data(), paths, d, steps, 0.01f, 7);
  std::vector<float> cpu(n);
  brownian_motion(Context::cpu(), cpu.data(), paths, d, steps, 0.01f, 7);
  // One rounding per step apart (the device may fuse W + sqrt(dt) z): at most 64 ulps of
  // |W| <= ~4.5, 1.5e-5; bounds 1e-5 relative norm and 1e-5 x max |W|.
  EXPECT_TRUE(test::close(dw.to_host(), cpu, {1e-5, 1e-5}));
}

TEST_F(LangevinGpu, NonFiniteInitialStateIsRejectedBeforeRunning) {
  std::vector<float> x = {1, 2, 3, NAN, 5, 6};
  Buffer<float> dx(ctx, std::span<const float>(x));
  const std::string m = error_of([&] { langevin(ctx, LangevinTarget::two_modes(), dx.data(), 3, 2, {}); });
  EXPECT_NE(m.find("argument 'x' chain 1 dimension 1 is not finite"), std::string::npos) << m;
  const auto after = dx.to_host();
  EXPECT_EQ(after[0], 1.0f);
  EXPECT_EQ(after[5], 6.0f);
}

}  // namespace
}  // namespace genai
