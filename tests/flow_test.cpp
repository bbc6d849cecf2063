// Change of variables: 5.2's log-normal (its formula, and sampled as a Langevin target), 5.3's
// composition with the inverses in the right order (the erratum), gradients, the continuous
// version along an ODE (exact trace and Hutchinson's estimate), and 9.3(c): the probability-flow
// ODE of the exact mixture score gives the mixture's own log density.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <string>
#include <vector>

#include "genai/flow.hpp"
#include "genai/langevin.hpp"
#include "test_util.hpp"

namespace genai {
namespace {

using test::error_of;
constexpr double kLog2Pi = 1.8378770664093453;  // log(2 pi)

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// 5.2: z ~ N(0, 1), x = e^z is log-normal, p(x) = exp(-(log x)^2 / 2) / (x sqrt(2 pi)); its
// score is -(1 + log x) / x; no mass at x <= 0.
TEST(Flow, LogNormalIsTheOneMapFlowExp) {
  const Flow flow(1, {FlowMap::exp()});
  const std::vector<double> x = {0.05, 0.3, 1.0, 2.0, 10.0, 0.0, -1.0};
  std::vector<double> lp(x.size()), g(x.size());
  flow.log_prob(x.data(), static_cast<std::int64_t>(x.size()), lp.data(), g.data());
  for (std::size_t i = 0; i < 5; ++i) {
    const double l = std::log(x[i]);
    EXPECT_NEAR(lp[i], -0.5 * l * l - l - 0.5 * kLog2Pi, 1e-13) << x[i];
    EXPECT_NEAR(g[i], -(1 + l) / x[i], 1e-12 * std::abs(g[i]) + 1e-13) << x[i];
  }
  EXPECT_EQ(lp[5], -INFINITY);
  EXPECT_EQ(lp[6], -INFINITY);
  EXPECT_EQ(g[6], 0.0);
}

// 5.2 by sampling: MALA on the flow's log-normal density (a custom Langevin target) from exact
// draws x = e^z. E[x] = sqrt(e), Var[x] = (e - 1) e. The chains are independent, so the spread
// of the per-chain means gives the standard error of the pooled mean; the pooled variance's is
// that of s_c - 2 mu m_c over the chains (delta method; s_c a chain's mean of x^2). Bounds: 5 SE.
// (The variance's SE is large: x^2 is heavy-tailed, E[x^4] = e^8.)
TEST(Flow, LogNormalSampledByMalaHasItsMoments) {
  const Flow flow(1, {FlowMap::exp()});
  const LangevinTarget target = LangevinTarget::custom(1, [&](const double* x, double* g) {
    double lp;
    flow.log_prob(x, 1, &lp, g);
    return lp;
  });
  const std::int64_t chains = 4096;
  std::vector<float> x = test::normals(chains, 52);
  for (float& v : x) v = std::exp(v);
  const LangevinResult r = langevin(Context::cpu(), target, x.data(), chains, 1,
                                    {.method = LangevinMethod::MALA, .step_size = 0.4f,
                                     .steps = 1500, .seed = 52, .moments = true});
  const auto mean = r.mean.to_host(), var = r.var.to_host();
  const auto acc = r.accepted.to_host();
  double m = 0, s2 = 0, accepted = 0;
  for (std::int64_t c = 0; c < chains; ++c) {
    m += mean[c];
    s2 += var[c] + double(mean[c]) * mean[c];
    accepted += acc[c];
  }
  m /= chains;
  s2 /= chains;
  const double v = s2 - m * m;
  double sm = 0, sv = 0;
  for (std::int64_t c = 0; c < chains; ++c) {
    const double dm = mean[c] - m, dv = var[c] + double(mean[c]) * mean[c] - 2 * m * mean[c] - (s2 - 2 * m * m);
    sm += dm * dm;
    sv += dv * dv;
  }
  const double se_m = std::sqrt(sm / (chains - 1) / chains), se_v = std::sqrt(sv / (chains - 1) / chains);
  const double e = std::numbers::e;
  EXPECT_GT(accepted / (chains * 1500.0), 0.5);
  EXPECT_LT(se_m, 0.02);  // the test has power: 1.2% of E[x], 7.5% of Var[x]
  EXPECT_LT(se_v, 0.35);
  EXPECT_NEAR(m, std::sqrt(e), 5 * se_m);
  EXPECT_NEAR(v, (e - 1) * e, 5 * se_v);
}

// 5.3: x = f3(f2(f1(z))) with f1(z) = a z + c, f2 = exp, f3(u) = A u + b in d = 2. In closed
// form: u = A^{-1}(x - b) (> 0), z = (log u - c) / a and
// log p(x) = log N(z) - sum_j log|a_j| - sum_j log u_j - log|det A|
// (exp's Jacobian at w = log u is diag(u)). Inverting in the problem set's order,
// f3^{-1}(f2^{-1}(f1^{-1}(x))) (the erratum), lands outside exp's range or on a point the flow
// does not map back to x.
TEST(Flow, CompositionInvertsTheLastMapFirst) {
  const std::vector<double> a = {0.5, -2.0}, c = {0.3, 1.0}, A = {2.0, 0.5, -0.3, 1.5}, b = {1.0, -2.0};
  const Flow flow(2, {FlowMap::scale_shift(a, c), FlowMap::exp(), FlowMap::affine(A, b)});
  const auto z0 = test::normals(2 * 50, 53);
  const std::vector<double> z(z0.begin(), z0.end());
  std::vector<double> x(z.size()), back(z.size()), lp(50), fwd_ld(50), inv_ld(50);
  flow.forward(z.data(), 50, x.data(), fwd_ld.data());
  flow.inverse(x.data(), 50, back.data(), inv_ld.data());
  flow.log_prob(x.data(), 50, lp.data());
  const double det = A[0] * A[3] - A[1] * A[2];
  for (int r = 0; r < 50; ++r) {
    const double* xr = &x[2 * r];
    const double u0 = (A[3] * (xr[0] - b[0]) - A[1] * (xr[1] - b[1])) / det;
    const double u1 = (-A[2] * (xr[0] - b[0]) + A[0] * (xr[1] - b[1])) / det;
    const double w0 = (std::log(u0) - c[0]) / a[0], w1 = (std::log(u1) - c[1]) / a[1];
    const double want = -0.5 * (w0 * w0 + w1 * w1) - kLog2Pi - std::log(std::abs(a[0] * a[1])) -
                        std::log(u0) - std::log(u1) - std::log(std::abs(det));
    EXPECT_NEAR(lp[r], want, 1e-11) << r;
    EXPECT_NEAR(back[2 * r], z[2 * r], 1e-11) << r;
    EXPECT_NEAR(back[2 * r + 1], z[2 * r + 1], 1e-11) << r;
    EXPECT_NEAR(inv_ld[r], fwd_ld[r], 1e-11) << r;
  }
  // The wrong order: f1^{-1} first, then f2^{-1}, then f3^{-1}.
  const Flow f1(2, {FlowMap::scale_shift(a, c)}), f2(2, {FlowMap::exp()}), f3(2, {FlowMap::affine(A, b)});
  int defined = 0;
  for (int r = 0; r < 50; ++r) {
    std::vector<double> w(2), u(2), wrong(2), again(2);
    f1.inverse(&x[2 * r], 1, w.data());
    f2.inverse(w.data(), 1, u.data());  // NaN where w is not > 0
    f3.inverse(u.data(), 1, wrong.data());
    flow.forward(wrong.data(), 1, again.data());
    defined += !std::isnan(again[0]);
    EXPECT_FALSE(std::hypot(again[0] - x[2 * r], again[1] - x[2 * r + 1]) < 1e-3) << r;
  }
  EXPECT_GT(defined, 0);
}

// A density integrates to 1: p(x) of x = sigmoid(2 z + 0.5) on (0, 1), and of x = 3 e^z - 1 on
// (-1, inf) (the midpoint rule in u = log(x + 1)).
TEST(Flow, DensitiesIntegrateToOne) {
  const Flow unit(1, {FlowMap::scale_shift({2.0}, {0.5}), FlowMap::sigmoid()});
  const Flow shifted(1, {FlowMap::exp(), FlowMap::scale_shift({3.0}, {-1.0})});
  const int cells = 200000;
  double total = 0, total2 = 0;
  for (int i = 0; i < cells; ++i) {
    const double x = (i + 0.5) / cells, u = -20 + 40.0 * (i + 0.5) / cells, y = std::exp(u) - 1;
    double lp, lq;
    unit.log_prob(&x, 1, &lp);
    shifted.log_prob(&y, 1, &lq);
    total += std::exp(lp) / cells;
    total2 += std::exp(lq) * std::exp(u) * 40.0 / cells;  // dx = e^u du
  }
  EXPECT_NEAR(total, 1.0, 1e-6);
  EXPECT_NEAR(total2, 1.0, 1e-6);
  const double below = -1.5;
  double lq;
  shifted.log_prob(&below, 1, &lq);
  EXPECT_EQ(lq, -INFINITY);
}

// d log p / dx through every kind of map, against central differences in double.
TEST(Flow, GradientMatchesFiniteDifferences) {
  const std::int64_t d = 3;
  const Flow flow(d, {FlowMap::affine({1.0, 0.2, -0.4, 0.3, 1.5, 0.1, -0.2, 0.6, 0.8}, {0.1, -0.3, 0.2}),
                      FlowMap::sigmoid(), FlowMap::scale_shift({0.5, 0.8, 0.6}, {0.2, 0.1, 0.3}),
                      FlowMap::logit(), FlowMap::exp()});
  const auto z0 = test::normals(d * 20, 54);
  const std::vector<double> z(z0.begin(), z0.end());
  std::vector<double> x(z.size()), g(z.size()), lp(20);
  flow.forward(z.data(), 20, x.data());
  flow.log_prob(x.data(), 20, lp.data(), g.data());
  for (int r = 0; r < 20; ++r)
    for (int j = 0; j < d; ++j) {
      std::vector<double> xp(x.begin() + r * d, x.begin() + r * d + d), xm = xp;
      const double h = 1e-6 * std::max(1.0, std::abs(xp[j]));
      xp[j] += h;
      xm[j] -= h;
      double lpp, lpm;
      flow.log_prob(xp.data(), 1, &lpp);
      flow.log_prob(xm.data(), 1, &lpm);
      const double fd = (lpp - lpm) / (2 * h);
      EXPECT_NEAR(g[r * d + j], fd, 1e-5 * std::max(1.0, std::abs(fd))) << r << ", " << j;
    }
}

TEST(Flow, BadInputIsRefusedNamingTheArgument) {
  EXPECT_TRUE(contains(error_of([] { FlowMap::scale_shift({1.0, 0.0}, {0.0, 0.0}); }),
                       "genai::FlowMap::scale_shift: argument 'scale' entry 1 is 0"));
  EXPECT_TRUE(contains(error_of([] { FlowMap::affine({1.0, 2.0, 3.0}, {0.0, 0.0}); }),
                       "genai::FlowMap::affine: argument 'A' has 3 entries (need d x d = 4)"));
  EXPECT_TRUE(contains(error_of([] { Flow(2, {FlowMap::affine({1.0, 2.0, 2.0, 4.0}, {0.0, 0.0})}); }),
                       "genai::Flow: argument 'maps[0]' (affine) has a singular matrix A"));
  EXPECT_TRUE(contains(error_of([] { Flow(3, {FlowMap::exp(), FlowMap::scale_shift({1.0}, {0.0})}); }),
                       "argument 'maps[1]' has 1 + 1 parameters: not a map of R^3"));
  EXPECT_TRUE(contains(error_of([] { Flow(0, {}); }), "genai::Flow: argument 'd' must be >= 1 (got 0)"));
  const Flow flow(1, {FlowMap::exp()});
  double x = 1, out = 0;
  EXPECT_TRUE(contains(error_of([&] { flow.log_prob(&x, 0, &out); }), "genai::Flow::log_prob: argument 'n' must be >= 1"));
  EXPECT_TRUE(contains(error_of([&] { flow.log_prob(&x, 1, nullptr); }), "argument 'out' must not be null"));
}

// ---- continuous --------------------------------------------------------------------------------

// dy/dt = M y: tr(df/dy) = tr M, so the log-density changes by -tr(M) (t1 - t0), exactly as the
// discrete flow x = e^{M t} y (an affine map, log|det e^{Mt}| = tr(M) t) says. Hutchinson's
// estimate v^T M v with Rademacher v is unbiased (its mean over rows is tr M within 5 standard
// errors) and exact on the diagonal part.
TEST(Cnf, LinearFlowChangesTheDensityByTheTrace) {
  const std::int64_t d = 3, batch = 2000;
  const std::vector<double> M = {-0.5, 1.0, 0.2, -1.0, 0.1, 0.3, 0.4, -0.2, -0.8};
  const double trace = M[0] + M[4] + M[8];
  const CnfFunction f = [&](const CnfEval& e) {
    for (std::int64_t i = 0; i < e.n; ++i)
      for (std::int64_t j = 0; j < d; ++j) {
        double acc = 0;
        for (std::int64_t k = 0; k < d; ++k) acc += M[j * d + k] * e.y[i * d + k];
        e.dydt[i * d + j] = acc;
      }
    for (std::int64_t p = 0; p < e.probes; ++p)
      for (std::int64_t i = 0; i < e.n; ++i)
        for (std::int64_t j = 0; j < d; ++j) {
          double acc = 0;
          for (std::int64_t k = 0; k < d; ++k) acc += M[j * d + k] * e.v[(p * e.n + i) * d + k];
          e.jv[(p * e.n + i) * d + j] = acc;
        }
  };
  const auto y0f = test::normals(batch * d, 55);
  std::vector<double> y(y0f.begin(), y0f.end()), delta(batch);
  cnf_integrate(f, y.data(), batch, d, 0.0, 2.0, delta.data());
  for (std::int64_t r = 0; r < batch; ++r) EXPECT_NEAR(delta[r], -2 * trace, 1e-7) << r;

  std::vector<double> yh(y0f.begin(), y0f.end()), dh(batch);
  cnf_integrate(f, yh.data(), batch, d, 0.0, 2.0, dh.data(), {.hutchinson = true, .probes = 1, .seed = 3});
  double mean = 0, sq = 0;
  for (double v : dh) mean += v / batch;
  for (double v : dh) sq += (v - mean) * (v - mean);
  const double se = std::sqrt(sq / (batch - 1) / batch);
  EXPECT_GT(se, 0.0);  // the estimate does vary
  EXPECT_NEAR(mean, -2 * trace, 5 * se);
  // The same flow (the steps differ: the error norm includes the log-density's component).
  for (std::int64_t i = 0; i < batch * d; ++i) EXPECT_NEAR(yh[i], y[i], 1e-6);
}

// The mixture's score and its divergence (closed form) against central differences of log p and
// of the score, at a few noise levels.
TEST(Cnf, MixtureScoreAndTraceMatchFiniteDifferences) {
  const GaussianMixture m = GaussianMixture::isotropic({0.3f, 0.7f}, {1.0f, -1.0f, -2.0f, 0.5f}, 2, {0.3f, 0.8f});
  const std::vector<double> x = {0.2, -0.4, 1.5, 0.7, -1.0, 0.1};
  for (double ab : {1.0, 0.5, 0.05}) {
    std::vector<double> lp(3), s(6), tr(3);
    mixture_score_trace(m, ab, x.data(), 3, lp.data(), s.data(), tr.data());
    for (int r = 0; r < 3; ++r) {
      double fd_trace = 0;
      for (int j = 0; j < 2; ++j) {
        const double h = 1e-5;
        std::vector<double> xp(x.begin() + 2 * r, x.begin() + 2 * r + 2), xm = xp;
        xp[j] += h;
        xm[j] -= h;
        double lpp, lpm, sp[2], sm[2];
        mixture_score_trace(m, ab, xp.data(), 1, &lpp, sp, nullptr);
        mixture_score_trace(m, ab, xm.data(), 1, &lpm, sm, nullptr);
        EXPECT_NEAR(s[2 * r + j], (lpp - lpm) / (2 * h), 1e-7) << ab << ", " << r;
        fd_trace += (sp[j] - sm[j]) / (2 * h);
      }
      EXPECT_NEAR(tr[r], fd_trace, 1e-6) << ab << ", " << r;
    }
  }
}

// 9.3(c): the PF-ODE of the exact score transports the mixture p_0 to p_t, so integrating the
// instantaneous change of variables from a point to t = 1 and adding log p_1 at the end gives
// log p_0 at the point -- the model's likelihood as score-based models compute it. Points: draws
// of the mixture and points between its modes. The closed-form trace, the trace from Jacobian-
// vector products and the N(0, I) prior (the model's; off by p_1's distance from N(0, I), here
// at most sqrt(alpha_bar(1)) |mu| |x_1| ~ 0.03 |x_1| nats, x_1 ~ N(0, I)) all agree with the truth.
TEST(Cnf, ProbabilityFlowLikelihoodIsTheMixtureDensity) {
  for (const char* name : {"gmm8", "two_modes"}) {
    const GaussianMixture m = GaussianMixture::preset(name);
    std::vector<float> drawn(2 * 6);
    mixture_draw(m, 6, {56, 0, 0}, drawn.data());
    std::vector<double> x(drawn.begin(), drawn.end());
    for (double v : {0.0, 0.0, 1.0, -2.0, 3.0, 3.0}) x.push_back(v);
    const std::int64_t n = static_cast<std::int64_t>(x.size()) / 2;
    std::vector<double> truth(n), ll(n), ll_jvp(n), ll_prior(n);
    mixture_score_trace(m, 1.0, x.data(), n, truth.data(), nullptr, nullptr);
    const PfOdeOptions o{.cnf = {.ode = {.rtol = 1e-8, .atol = 1e-10}}};
    pf_ode_log_likelihood(m, x.data(), n, ll.data(), o);
    PfOdeOptions oj = o;
    oj.jvp_trace = true;
    pf_ode_log_likelihood(m, x.data(), n, ll_jvp.data(), oj);
    PfOdeOptions op = o;
    op.exact_prior = false;
    pf_ode_log_likelihood(m, x.data(), n, ll_prior.data(), op);
    for (std::int64_t r = 0; r < n; ++r) {
      EXPECT_NEAR(ll[r], truth[r], 1e-5) << name << " point " << r;
      EXPECT_NEAR(ll_jvp[r], ll[r], 1e-7) << name << " point " << r;
      EXPECT_NEAR(ll_prior[r], truth[r], 0.1) << name << " point " << r;
    }
  }
}

// Hutchinson's estimate of the same likelihood is unbiased: over 400 independent probe draws
// (rows of one point) its mean is within 5 standard errors of the exact value.
TEST(Cnf, HutchinsonLikelihoodIsUnbiased) {
  const GaussianMixture m = GaussianMixture::preset("two_modes");
  const std::int64_t n = 400;
  std::vector<double> x(2 * n);
  for (std::int64_t r = 0; r < n; ++r) x[2 * r] = 4.0, x[2 * r + 1] = 5.5;
  double truth;
  mixture_score_trace(m, 1.0, x.data(), 1, &truth, nullptr, nullptr);
  PfOdeOptions o{.jvp_trace = true, .cnf = {.ode = {.rtol = 1e-7, .atol = 1e-9}, .hutchinson = true, .probes = 1, .seed = 9}};
  std::vector<double> ll(n);
  pf_ode_log_likelihood(m, x.data(), n, ll.data(), o);
  double mean = 0, sq = 0;
  for (double v : ll) mean += v / n;
  for (double v : ll) sq += (v - mean) * (v - mean);
  const double se = std::sqrt(sq / (n - 1) / n);
  EXPECT_GT(se, 1e-4);
  EXPECT_NEAR(mean, truth, 5 * se);
}

TEST(Cnf, BadInputIsRefusedNamingTheArgument) {
  const GaussianMixture m = GaussianMixture::preset("gmm8");
  double x[2] = {0, 0}, out = 0;
  EXPECT_TRUE(contains(error_of([&] { pf_ode_log_likelihood(m, x, 1, &out, {.beta_min = 0}); }),
                       "genai::pf_ode_log_likelihood: argument 'opts.beta_min' must be finite and > 0"));
  EXPECT_TRUE(contains(error_of([&] { mixture_score_trace(m, 0.0, x, 1, &out, nullptr, nullptr); }),
                       "genai::mixture_score_trace: argument 'alpha_bar' must be in (0, 1] (got 0)"));
  EXPECT_TRUE(contains(error_of([&] {
    cnf_integrate([](const CnfEval&) {}, x, 1, 2, 0, 1, &out, {.hutchinson = true, .probes = 0});
  }), "genai::cnf_integrate: argument 'opts.probes' must be >= 1 (got 0)"));
  EXPECT_TRUE(contains(error_of([&] { cnf_integrate(CnfFunction{}, x, 1, 2, 0, 1, &out); }),
                       "genai::cnf_integrate: argument 'f' is empty"));
}

}  // namespace
}  // namespace genai
