// Langevin module, the mechanics: target gradients, the documented noise layout, split runs,
// custom (user) targets, bad input, and the float chain code (the kernels' path) against the
// double reference. The laws the samplers reach: tests/langevin_laws_test.cpp; GPU parity:
// tests/langevin_gpu_test.cpp.
//
// Every statistical bound below is a multiple of a standard error (SE) stated beside it; the
// draws are fixed by the seeds, so the tests are deterministic.
#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <regex>
#include <string>
#include <vector>

#include "cpu_reference/langevin.hpp"
#include "genai/langevin.hpp"
#include "langevin_test_util.hpp"
#include "parallel_test_util.hpp"
#include "test_util.hpp"

namespace genai {
namespace {

const Context kCpu = Context::cpu();

using test::chains_off;
using test::error_of;
using test::Outputs;
using test::outputs_of;
using test::parity_cases;
using test::ParityCase;
using test::total_steps;
using test::float_path;
using test::pooled;
using test::Pooled;

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

// The CPU chains take a mixture's log-variances from a table filled once per level (the same
// log of the same v), and ULA and annealed runs on a mixture step 16 chains at a time in lanes:
// their outputs are those of TargetView::log_density_grad evaluated in double chain after chain
// (run_chain<double>), bit for bit, for ULA, MALA and an annealed ladder (the table refilled at
// every level), with moments, burn-in and a trajectory; d = 2 (the lanes' compile-time d), 3
// and 5 (two Philox blocks per chain), chain counts that leave a partial group of lanes.
// (The float states hide a double difference far below their rounding; a relative error of
// 1e-6 in one log fails this test.)
TEST(Langevin, MixtureLogVarianceTableIsTheFormulaBitForBit) {
  struct Shape {
    std::int64_t chains, d;
  };
  for (const Shape sh : {Shape{96, 3}, Shape{100, 2}, Shape{37, 5}}) {
    const std::int64_t chains = sh.chains, d = sh.d;
    SCOPED_TRACE(::testing::Message() << chains << " chains, d " << d);
    const auto means = test::normals(2 * d, 16, 0, 1.5f);
    const auto mix = LangevinTarget::mixture(d, {1, 2}, means, {0.5f, 2});
    const auto x0 = test::normals(chains * d, 15);
    for (const LangevinOptions& o :
         {LangevinOptions{.method = LangevinMethod::ULA, .step_size = 0.1f, .steps = 40, .seed = 4,
                          .moments = true, .burn_in = 7, .thin = 8},
          LangevinOptions{.method = LangevinMethod::MALA, .step_size = 0.3f, .steps = 40, .seed = 5,
                          .moments = true, .thin = 8},
          LangevinOptions{.method = LangevinMethod::Annealed, .step_size = 0.02f, .steps = 10,
                          .seed = 6, .anneal = {.levels = 4, .sigma_first = 2.0f, .sigma_last = 0.1f},
                          .moments = true, .thin = 5}}) {
      auto x = x0;
      const auto r = langevin(kCpu, mix, x.data(), chains, d, o);
      EXPECT_TRUE(outputs_of(x, r) == test::host_path<double>(mix, x0, chains, o))
          << "method " << int(o.method);
      EXPECT_NE(x, x0);
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
// The chains run in chunks on the backend's threads: states, trajectory, moments and MALA's
// acceptances, and Brownian paths, are the same bytes on any thread count.
TEST(Langevin, ChainsAreTheSameOnAnyThreadCount) {
  const Context cpu = Context::cpu();
  const std::int64_t chains = 200, d = 2;
  const std::vector<float> x0 = test::normals(chains * d, 61);
  for (LangevinMethod method : {LangevinMethod::ULA, LangevinMethod::MALA}) {
    test::expect_same_on_any_thread_count([&] {
      std::vector<float> x = x0;
      LangevinResult r = langevin(cpu, LangevinTarget::gmm8(), x.data(), chains, d,
                                  {.method = method, .step_size = 0.02f, .steps = 30, .seed = 3,
                                   .moments = true, .thin = 10});
      std::vector<float> acc;
      for (std::int64_t a : r.accepted.to_host()) acc.push_back(static_cast<float>(a));
      return std::vector<std::vector<float>>{x, r.trajectory.to_host(), r.mean.to_host(),
                                             r.var.to_host(), acc};
    });
  }
  test::expect_same_on_any_thread_count([&] {
    std::vector<float> w(130 * 11 * 3);
    brownian_motion(cpu, w.data(), 130, 3, 10, 0.1f, 4);
    return w;
  });
}

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
// ULA's stability limit h < 2 v_min (x' - mu = (1 - h/v)(x - mu) + noise on a Gaussian of
// variance v), annealed Langevin's eps < 4 sigma_L^2 (v_min + sigma_1^2) / sigma_1^2, none for
// MALA, the double well and custom targets.
TEST(Langevin, StepLimitsOfTheGaussianTargets) {
  EXPECT_DOUBLE_EQ(langevin_step_limit(LangevinTarget::gaussian({0, 0}, {4, 0.5f}),
                                       LangevinMethod::ULA), 1.0);
  EXPECT_DOUBLE_EQ(langevin_step_limit(LangevinTarget::gmm8(), LangevinMethod::ULA), 0.5);
  // L = [[2, 0], [1, 1]]: L L^T = [[4, 2], [2, 2]], eigenvalues 3 -+ sqrt(5).
  EXPECT_NEAR(langevin_step_limit(LangevinTarget::gaussian_cholesky({0, 0}, {2, 0, 1, 1}),
                                  LangevinMethod::ULA),
              2 * (3 - std::sqrt(5.0)), 1e-12);
  const AnnealSchedule a{.levels = 10, .sigma_first = 10.0f, .sigma_last = 0.1f};
  const double s1 = a.sigma_first, sl = a.sigma_last;
  EXPECT_DOUBLE_EQ(langevin_step_limit(LangevinTarget::two_modes(), LangevinMethod::Annealed, a),
                   4 * sl * sl * (1 + s1 * s1) / (s1 * s1));
  EXPECT_TRUE(std::isinf(langevin_step_limit(LangevinTarget::gmm8(), LangevinMethod::MALA)));
  EXPECT_TRUE(std::isinf(langevin_step_limit(LangevinTarget::double_well(1), LangevinMethod::ULA)));
  // The limit is sharp: just below it a Gaussian chain stays finite for 2000 steps, at it the
  // mean part no longer contracts and the refusal names the limit.
  auto x = test::normals(64, 41);
  EXPECT_NO_THROW(langevin(kCpu, LangevinTarget::gaussian({0}, {0.5f}), x.data(), 64, 1,
                           {.step_size = 0.99f, .steps = 2000}));
  const std::string m = error_of([&] {
    langevin(kCpu, LangevinTarget::gaussian({0}, {0.5f}), x.data(), 64, 1, {.step_size = 1.0f});
  });
  EXPECT_NE(m.find("argument 'opts.step_size' is 1, at or past the stability limit 1 of ULA"),
            std::string::npos) << m;
}

// Chains that run away (a double well has no Gaussian limit) throw DivergenceError saying how
// many, during which steps and levels, and that no limit is known; the states are left as they
// ended and check_divergence = false returns them.
TEST(Langevin, DivergenceIsReportedWithItsStepsAndChains) {
  const LangevinTarget well = LangevinTarget::double_well(1);
  auto x = test::normals(100, 42, 0, 2);
  try {
    langevin(kCpu, well, x.data(), 100, 1, {.step_size = 1.0f, .steps = 50, .first_step = 7});
    ADD_FAILURE() << "no DivergenceError";
  } catch (const DivergenceError& e) {
    const std::string m = e.what();
    EXPECT_TRUE(std::regex_search(m, std::regex("^genai::langevin: [0-9]+ of 100 chains diverged "
                                                "\\(states not finite\\) during steps 7..56, ULA with "
                                                "step size 1 \\(first: chain [0-9]+\\); no stability "
                                                "limit is known for this target")))
        << m;
  }
  x = test::normals(100, 42, 0, 2);
  EXPECT_NO_THROW(langevin(kCpu, well, x.data(), 100, 1,
                           {.step_size = 1.0f, .steps = 50, .check_divergence = false}));
  EXPECT_TRUE(std::any_of(x.begin(), x.end(), [](float v) { return !std::isfinite(v); }));
}

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

TEST(Langevin, FloatChainCodeStaysWithinParityTolerance) {
  for (const ParityCase& p : parity_cases(true)) {
    const std::int64_t d = p.target.d;
    const auto x0 = test::normals(p.chains * d, 600 + d, 0, 2);
    auto x = x0;
    const auto r = langevin(kCpu, p.target, x.data(), p.chains, d, p.opts);
    EXPECT_LE(chains_off(float_path(p.target, x0, p.chains, p.opts), outputs_of(x, r), p.chains, d, p.tol),
              p.max_off) << p.name << ", d = " << d;
  }
}

// The Brownian kernel's Philox block count is ceil(d / 4) (the reference's) for every d that
// brownian_motion accepts, up to INT_MAX, where d + 3 overflows an int.
TEST(Langevin, BrownianBlockCountCoversEveryDimension) {
  for (const std::int64_t d : {1, 2, 3, 4, 5, 8, 9, 130, INT_MAX - 4, INT_MAX - 3, INT_MAX - 2,
                               INT_MAX - 1, INT_MAX})
    EXPECT_EQ(detail::brownian_blocks(static_cast<int>(d)), (d + 3) / 4) << "d " << d;
}

}  // namespace
}  // namespace genai
