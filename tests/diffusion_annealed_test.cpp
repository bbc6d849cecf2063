// Annealed Langevin on the diffusion schedule's noise levels (challenge C2's "diffusion =
// annealed Langevin"): with the exact score of two_modes it recovers the 0.8 / 0.2 weights and
// each component's law, while plain Langevin (one level, t = 0) from a broad start keeps the
// start's split between the basins (the NCSN toy result); the levels are the samplers'
// timesteps, a run is repeatable and the Philox steps are its own; bad options; a step past the
// stable range is reported as divergence.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "genai/diffusion.hpp"
#include "genai/error.hpp"
#include "genai/metrics.hpp"
#include "test_util.hpp"

namespace genai {
namespace {

const Context kCpu = Context::cpu();

// Mean and variance of the coordinates of the rows assigned to the (5, 5) component.
struct Moments {
  double mean = 0, var = 0;  // var: of one coordinate
  std::int64_t count = 0;
};
Moments upper_moments(const std::vector<float>& x) {
  Moments m;
  double s = 0, s2 = 0;
  for (std::size_t r = 0; r + 1 < x.size(); r += 2)
    if (x[r] + x[r + 1] > 0) {
      s += double(x[r]) + x[r + 1];
      s2 += double(x[r]) * x[r] + double(x[r + 1]) * x[r + 1];
      m.count += 2;
    }
  m.mean = s / m.count;
  m.var = s2 / m.count - m.mean * m.mean;
  return m;
}

TEST(AnnealedLangevin, RecoversTheModeWeightsWherePlainLangevinDoesNot) {
  const GaussianMixture mix = GaussianMixture::preset("two_modes");
  const NoiseSchedule s;
  const Model model = mixture_model(mix, s);
  const std::int64_t n = 4000;
  const double se = std::sqrt(0.16 / n);
  std::vector<float> x(n * 2);
  sample_annealed_langevin(kCpu, s, model, n, 2, x.data(),
                           {.num_levels = 100, .seed = 1});
  const double w = mode_weights(x.data(), n, mix)[0];
  EXPECT_NEAR(w, 0.8, 5 * se);
  // The (5, 5) component's coordinates: mean 5 within 5 SE. (Their variance comes out above 1:
  // ULA's stationary variance v / (1 - h / 2v) at the middle levels, where h_t is largest, is
  // what the small steps of the last levels cannot undo.)
  const Moments m = upper_moments(x);
  EXPECT_NEAR(m.mean, 5.0, 5 * std::sqrt(m.var / double(m.count)));
  // Plain Langevin: 1000 ULA steps of h = 0.1 on the data (level t = 0) from U(-8, 8)^2; the
  // chains stay in the basin they start in, about half in each.
  fill_uniform(kCpu, x.data(), n * 2, {2, 0, 0}, -8.0f, 8.0f);
  sample_annealed_langevin(kCpu, s, model, n, 2, x.data(),
                           {.timesteps = {0}, .steps_per_level = 1000, .step_size = 0.1,
                            .seed = 1, .draw_initial_noise = false});
  const double plain = mode_weights(x.data(), n, mix)[0];
  EXPECT_NEAR(plain, 0.5, 0.05);
  EXPECT_GT(std::abs(plain - 0.8), 20 * se);
}

TEST(AnnealedLangevin, LevelsAreTheSamplersTimestepsAndRunsRepeat) {
  const GaussianMixture mix = GaussianMixture::preset("gmm8");
  const NoiseSchedule s;
  std::vector<std::int64_t> seen;
  const Model inner = mixture_model(mix, s);
  const Model spy = [&](const Context& c, std::int64_t t, const float* x, std::int64_t n,
                        std::int64_t d, float* out) {
    if (seen.empty() || seen.back() != t) seen.push_back(t);
    inner(c, t, x, n, d, out);
  };
  const std::int64_t n = 64;
  std::vector<float> a(n * 2), b(n * 2), c(n * 2);
  const AnnealedLangevinOptions o{.num_levels = 10, .timestep_spacing = TimestepSpacing::Trailing,
                                  .steps_per_level = 3, .seed = 4};
  sample_annealed_langevin(kCpu, s, spy, n, 2, a.data(), o);
  EXPECT_EQ(seen, inference_timesteps(1000, 10, TimestepSpacing::Trailing));
  sample_annealed_langevin(kCpu, s, inner, n, 2, b.data(), o);
  EXPECT_EQ(a, b);
  AnnealedLangevinOptions other = o;
  other.seed = 5;
  sample_annealed_langevin(kCpu, s, inner, n, 2, c.data(), other);
  EXPECT_NE(a, c);
}

TEST(AnnealedLangevin, BadOptionsAndDivergence) {
  const NoiseSchedule s;
  const Model model = mixture_model(GaussianMixture::preset("two_modes"), s);
  std::vector<float> x(8, 1.0f);
  test::expect_argument_error(
      [&] { sample_annealed_langevin(kCpu, s, model, 4, 2, x.data(), {.step_scale = 2}); },
      "'opts.step_scale' must be in (0, 2)");
  test::expect_argument_error(
      [&] { sample_annealed_langevin(kCpu, s, model, 4, 2, x.data(), {.steps_per_level = 0}); },
      "'opts.steps_per_level' must be >= 1");
  test::expect_argument_error(
      [&] { sample_annealed_langevin(kCpu, s, model, 4, 2, x.data(), {.timesteps = {5, 7}}); },
      "must be strictly descending");
  test::expect_argument_error(
      [&] { sample_annealed_langevin(kCpu, s, Model{}, 4, 2, x.data()); }, "'model' must not be empty");
  EXPECT_EQ(x, std::vector<float>(8, 1.0f));
  // h = 5 on a variance-1 component: |1 - h / v| = 4 per step, past float in ~64 steps.
  EXPECT_THROW(sample_annealed_langevin(kCpu, s, model, 4, 2, x.data(),
                                        {.timesteps = {0}, .steps_per_level = 200, .step_size = 5}),
               DivergenceError);
}

}  // namespace
}  // namespace genai
