// The sample-quality metrics against closed forms: MMD^2 of a set with itself, of two Gaussians
// for a known bandwidth (within 5 standard errors of the U-statistic, its variance from the
// closed-form conditional expectation), the median heuristic by brute force; sliced W2^2 of
// shifted sets (exact in one dimension, |delta|^2 / d on average in three), of sets of unequal
// sizes; mode weights of exact mixture draws; bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "genai/metrics.hpp"
#include "tests/test_util.hpp"

namespace genai {
namespace {

TEST(Mmd, IdenticalSetsAreZeroWhenBiasedAndTheUnbiasedOffsetIsExact) {
  const std::int64_t n = 500, d = 3;
  const auto x = test::normals(n * d, 1);
  const MmdResult b = mmd2_rbf(x.data(), n, x.data(), n, d, {.bandwidth = 1.5, .unbiased = false});
  EXPECT_NEAR(b.mmd2, 0.0, 1e-12);
  EXPECT_EQ(b.bandwidth, 1.5);
  // Unbiased on one set twice: 2 A / (n (n-1)) + 2 A / (n (n-1)) - 2 (2 A + n) / n^2 with
  // A = sum_{i<i'} k, which the biased value of x against a far set gives back.
  const MmdResult u = mmd2_rbf(x.data(), n, x.data(), n, d, {.bandwidth = 1.5});
  std::vector<float> far(x);
  for (float& v : far) v += 1000.0f;  // k(x, far) = 0
  const double vb = mmd2_rbf(x.data(), n, far.data(), n, d, {.bandwidth = 1.5, .unbiased = false}).mmd2;
  const double A = (vb * n * n / 2 - n) / 2;  // vb = 2 (2 A + n) / n^2
  const double dn = n;
  EXPECT_NEAR(u.mmd2, 4 * A / (dn * (dn - 1)) - 2 * (2 * A + dn) / (dn * dn), 1e-9);
  EXPECT_LT(u.mmd2, 0.0);
}

// x ~ N(0, s^2 I), y ~ N(delta, s^2 I) in d dimensions, kernel exp(-|a-b|^2 / (2 sigma^2)):
//   E k(x, x') = E k(y, y') = c, E k(x, y) = c exp(-|delta|^2 / (2 (sigma^2 + 2 s^2))),
//   c = (sigma^2 / (sigma^2 + 2 s^2))^(d/2), MMD^2 = 2 c (1 - exp(...)).
// The U-statistic's variance is 4 zeta_1 / n to leading order (n = m), zeta_1 the variance over
// (x, y) of h_1(x, y) = g_x(x) + g_y(y) - g_y(x) - g_x(y), g_a(z) = E_{a'} k(z, a') =
// (sigma^2 / (sigma^2 + s^2))^(d/2) exp(-|z - mean_a|^2 / (2 (sigma^2 + s^2))).
TEST(Mmd, TwoGaussiansMatchTheClosedForm) {
  const std::int64_t n = 4000, d = 2;
  const double s = 1.0, sigma = 1.2;
  const std::vector<double> delta = {0.8, -0.4};
  auto x = test::normals(n * d, 2), y = test::normals(n * d, 3);
  for (std::int64_t r = 0; r < n; ++r)
    for (std::int64_t j = 0; j < d; ++j) y[r * d + j] += static_cast<float>(delta[j]);
  const double v2 = sigma * sigma, s2 = s * s, dd = delta[0] * delta[0] + delta[1] * delta[1];
  const double c = std::pow(v2 / (v2 + 2 * s2), d / 2.0);
  const double expect = 2 * c * (1 - std::exp(-dd / (2 * (v2 + 2 * s2))));
  const double c1 = std::pow(v2 / (v2 + s2), d / 2.0);
  auto g = [&](const float* z, bool about_y) {
    double q = 0;
    for (std::int64_t j = 0; j < d; ++j) {
      const double m = about_y ? delta[j] : 0.0;
      q += (z[j] - m) * (z[j] - m);
    }
    return c1 * std::exp(-q / (2 * (v2 + s2)));
  };
  const std::int64_t N = 200000;
  const auto zx = test::normals(N * d, 4);
  auto zy = test::normals(N * d, 5);
  for (std::int64_t r = 0; r < N; ++r)
    for (std::int64_t j = 0; j < d; ++j) zy[r * d + j] += static_cast<float>(delta[j]);
  double m1 = 0, m2 = 0;
  for (std::int64_t r = 0; r < N; ++r) {
    const float* a = zx.data() + r * d;
    const float* b = zy.data() + r * d;
    const double h = g(a, false) + g(b, true) - g(a, true) - g(b, false);
    m1 += h;
    m2 += h * h;
  }
  const double zeta1 = m2 / N - (m1 / N) * (m1 / N);
  const double se = std::sqrt(4 * zeta1 / n);
  const MmdResult r = mmd2_rbf(x.data(), n, y.data(), n, d, {.bandwidth = sigma});
  EXPECT_NEAR(r.mmd2, expect, 5 * se) << "closed form " << expect << ", SE " << se;
  EXPECT_GT(expect, 10 * se);  // the check has teeth: the value is many SE from 0
}

TEST(Mmd, MedianHeuristicIsTheMedianPairwiseDistance) {
  const std::vector<float> x = {0, 0, 1, 0, 0, 2, 3, 3, -1, 0};  // 5 rows of d = 2
  const std::vector<float> y = {0.5f, 0.5f, 2, 1, -2, 2, 4, 0};  // 4 rows
  std::vector<double> dist;
  std::vector<std::pair<float, float>> pts;
  for (std::size_t i = 0; i < x.size(); i += 2) pts.emplace_back(x[i], x[i + 1]);
  for (std::size_t i = 0; i < y.size(); i += 2) pts.emplace_back(y[i], y[i + 1]);
  for (std::size_t a = 0; a < pts.size(); ++a)
    for (std::size_t b = a + 1; b < pts.size(); ++b)
      dist.push_back(std::hypot(double(pts[a].first) - pts[b].first,
                                double(pts[a].second) - pts[b].second));
  std::sort(dist.begin(), dist.end());  // 36 distances: the mean of the 18th and 19th
  const MmdResult r = mmd2_rbf(x.data(), 5, y.data(), 4, 2);
  EXPECT_DOUBLE_EQ(r.bandwidth, 0.5 * (dist[17] + dist[18]));
  // median_points 4: two rows of each set, 6 distances.
  const MmdResult r4 = mmd2_rbf(x.data(), 5, y.data(), 4, 2, {.median_points = 4});
  std::vector<double> d4;
  const std::vector<std::pair<float, float>> sub = {pts[0], pts[1], pts[5], pts[6]};
  for (std::size_t a = 0; a < 4; ++a)
    for (std::size_t b = a + 1; b < 4; ++b)
      d4.push_back(std::hypot(double(sub[a].first) - sub[b].first, double(sub[a].second) - sub[b].second));
  std::sort(d4.begin(), d4.end());
  EXPECT_DOUBLE_EQ(r4.bandwidth, 0.5 * (d4[2] + d4[3]));
}

TEST(SlicedWasserstein, OneDimensionalShiftIsExactlyTheSquaredShift) {
  const std::int64_t n = 3000;
  const auto x = test::normals(n, 6);
  std::vector<float> y(x);
  for (float& v : y) v += 0.7f;
  EXPECT_NEAR(sliced_wasserstein2(x.data(), n, y.data(), n, 1, {.projections = 3}), 0.49, 1e-6);
  EXPECT_NEAR(sliced_wasserstein2(x.data(), n, x.data(), n, 1), 0.0, 1e-12);
}

// Unequal sizes: {0, 1} against {0, 0.5, 1}; the quantile functions differ by 0.5 on
// (1/3, 2/3): W2^2 = 0.25 / 3 = 1/12.
TEST(SlicedWasserstein, UnequalSizesIntegrateTheQuantileFunctions) {
  const std::vector<float> a = {1, 0}, b = {0.5f, 1, 0};
  EXPECT_NEAR(sliced_wasserstein2(a.data(), 2, b.data(), 3, 1), 1.0 / 12, 1e-12);
  EXPECT_NEAR(sliced_wasserstein2(b.data(), 3, a.data(), 2, 1), 1.0 / 12, 1e-12);
}

// d = 3, y = x + delta: each projection is shifted by theta^T delta, so SW2^2 is the mean of
// (theta^T delta)^2 over the directions: |delta|^2 / 3 on average, the mean of P values of
// variance |delta|^4 (E c^4 - (E c^2)^2) = |delta|^4 (1/5 - 1/9) for c = theta^T u in 3-D.
TEST(SlicedWasserstein, ShiftedSetsGiveTheSquaredShiftOverD) {
  const std::int64_t n = 1000, d = 3, P = 1000;
  const auto x = test::normals(n * d, 7);
  const std::vector<double> delta = {1.0, -2.0, 0.5};
  std::vector<float> y(x);
  for (std::int64_t r = 0; r < n; ++r)
    for (std::int64_t j = 0; j < d; ++j) y[r * d + j] += static_cast<float>(delta[j]);
  const double dd = 1.0 + 4.0 + 0.25;
  const double se = dd * std::sqrt((1.0 / 5 - 1.0 / 9) / P);
  const double got = sliced_wasserstein2(x.data(), n, y.data(), n, d, {.projections = P, .seed = 3});
  EXPECT_NEAR(got, dd / 3, 5 * se);
  EXPECT_NE(got, sliced_wasserstein2(x.data(), n, y.data(), n, d, {.projections = P, .seed = 4}));
}

TEST(ModeWeights, ExactMixtureDrawsRecoverTheWeights) {
  const GaussianMixture m = GaussianMixture::preset("two_modes");
  const std::int64_t n = 20000;
  std::vector<float> x(n * 2);
  mixture_draw(m, n, {11, 0x7e57, 0}, x.data());
  const std::vector<double> w = mode_weights(x.data(), n, m);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_NEAR(w[0], 0.8, 5 * std::sqrt(0.16 / n));
  EXPECT_DOUBLE_EQ(w[0] + w[1], 1.0);
  const std::vector<double> truth(m.weights.begin(), m.weights.end());
  EXPECT_NEAR(total_variation(w, truth), 0.0, 5 * std::sqrt(0.16 / n));
  EXPECT_DOUBLE_EQ(total_variation(std::vector<double>{0.5, 0.5, 0}, std::vector<double>{0, 0.5, 0.5}), 0.5);
  // A point between the modes goes to the heavier one at equal distance.
  const std::vector<float> mid = {0, 0};
  EXPECT_EQ(mode_weights(mid.data(), 1, m), (std::vector<double>{1.0, 0.0}));
}

TEST(Metrics, BadInputNamesTheArgument) {
  const std::vector<float> x = {0, 1, 2, 3}, bad = {0, 1, NAN, 3};
  test::expect_argument_error([&] { mmd2_rbf(x.data(), 1, x.data(), 2, 2); }, "'n' must be >= 2");
  test::expect_argument_error([&] { mmd2_rbf(x.data(), 2, bad.data(), 2, 2); },
                              "argument 'y' entry 2 (row 1, column 0) is nan");
  test::expect_argument_error([&] { mmd2_rbf(x.data(), 2, x.data(), 2, 2, {.bandwidth = -1}); },
                              "opts.bandwidth");
  test::expect_argument_error([&] { mmd2_rbf(x.data(), 2, nullptr, 2, 2); }, "'y' must not be null");
  const std::vector<float> same = {1, 1, 1, 1};
  test::expect_argument_error([&] { mmd2_rbf(same.data(), 2, same.data(), 2, 2); },
                              "median pairwise distance is 0");
  test::expect_argument_error([&] { sliced_wasserstein2(x.data(), 2, x.data(), 2, 0); }, "'d'");
  test::expect_argument_error(
      [&] { sliced_wasserstein2(x.data(), 2, x.data(), 2, 2, {.projections = 0}); },
      "opts.projections");
  test::expect_argument_error([&] { mode_weights(bad.data(), 2, GaussianMixture::preset("gmm8")); },
                              "argument 'x' entry 2");
  test::expect_argument_error(
      [&] { total_variation(std::vector<double>{1}, std::vector<double>{0.5, 0.5}); }, "'q' has 2");
}

}  // namespace
}  // namespace genai
