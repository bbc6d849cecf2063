// CPU tests of the losses module: the seed's cross-entropy (6.4) and PyTorch's values, label
// smoothing, z-loss, ignore_index, reductions, huge logits, bf16; MSE and BCE with logits; the
// VAE's reparameterisation and loss (8.1(b), 8.2(c), 8.3): KL against Monte Carlo, beta
// scaling; every gradient against central differences of an independent double implementation;
// bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <type_traits>
#include <vector>

#include "cpu_reference/losses.hpp"
#include "genai/detail/losses.hpp"
#include "genai/losses.hpp"
#include "genai/rng.hpp"
#include "tests/parallel_test_util.hpp"
#include "tests/test_util.hpp"

namespace genai {
namespace {

const Context kCpu = Context::cpu();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// ---- independent double implementations (two-pass log-softmax, textbook formulas) -----------

double ce_double(const std::vector<double>& x, const std::vector<std::int64_t>& t,
                 std::int64_t C, const CrossEntropyOptions& o) {
  const auto N = static_cast<std::int64_t>(t.size());
  double total = 0;
  std::int64_t counted = 0;
  for (std::int64_t i = 0; i < N; ++i) {
    if (t[i] == o.ignore_index) continue;
    ++counted;
    double m = -INFINITY;
    for (std::int64_t j = 0; j < C; ++j) m = std::max(m, x[i * C + j]);
    double s = 0;
    for (std::int64_t j = 0; j < C; ++j) s += std::exp(x[i * C + j] - m);
    const double lse = m + std::log(s);
    double smooth = 0;
    for (std::int64_t j = 0; j < C; ++j) smooth += lse - x[i * C + j];
    total += (1 - o.label_smoothing) * (lse - x[i * C + t[i]]) +
             o.label_smoothing * smooth / static_cast<double>(C) + o.z_loss * lse * lse;
  }
  return o.reduction == Reduction::Mean ? total / static_cast<double>(counted) : total;
}

using test::numeric_gradient;

std::vector<double> widen(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// Bytes of a float vector, to check "untouched" exactly (NaN != NaN).
bool same_bytes(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// ---- cross-entropy --------------------------------------------------------------------------

const std::vector<float> kSeedLogits = {2.0f, 1.0f, 0.1f, 0.5f, 2.5f, 0.3f};
const std::vector<std::int64_t> kSeedTargets = {0, 1};

// Problem 6.4's test: F.cross_entropy(logits, targets) = 0.3185398 (torch, float64:
// 0.31853976964918573); sum and none from the same call, and PyTorch's gradient of the mean.
TEST(CrossEntropy, SeedValueAndGradientAsPyTorch) {
  float mean = kNaN, sum = kNaN;
  std::vector<float> rows(2, kNaN), grad(6, kNaN);
  cross_entropy_loss(kCpu, kSeedLogits.data(), kSeedTargets.data(), 2, 3, &mean, grad.data());
  EXPECT_NEAR(mean, 0.31853976964918573, 1e-7);
  EXPECT_LT(std::abs(mean - 0.3185398), 1e-5);  // the seed's assertion
  cross_entropy_loss(kCpu, kSeedLogits.data(), kSeedTargets.data(), 2, 3, &sum, nullptr,
                     {.reduction = Reduction::Sum});
  EXPECT_NEAR(sum, 0.6370795392983715, 1e-7);
  cross_entropy_loss(kCpu, kSeedLogits.data(), kSeedTargets.data(), 2, 3, rows.data(), nullptr,
                     {.reduction = Reduction::None});
  EXPECT_NEAR(rows[0], 0.41703002, 1e-7);
  EXPECT_NEAR(rows[1], 0.22004952, 1e-7);
  const double torch_grad[] = {-0.1704994306, 0.1212164854, 0.0492829452,
                               0.0543018652,  -0.0987604721, 0.0444586070};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(grad[i], torch_grad[i], 1e-7) << i;
}

// F.cross_entropy(..., label_smoothing=0.1) = 0.43687310298251913; with the second row ignored
// and label_smoothing=0.2: 0.6103633496111669, the ignored row's gradient 0 (torch, float64).
TEST(CrossEntropy, LabelSmoothingAndIgnoreIndexAsPyTorch) {
  float loss = kNaN;
  cross_entropy_loss(kCpu, kSeedLogits.data(), kSeedTargets.data(), 2, 3, &loss, nullptr,
                     {.label_smoothing = 0.1f});
  EXPECT_NEAR(loss, 0.43687310298251913, 1e-7);
  const std::vector<std::int64_t> t = {0, -100};
  std::vector<float> grad(6, kNaN);
  cross_entropy_loss(kCpu, kSeedLogits.data(), t.data(), 2, 3, &loss, grad.data(),
                     {.label_smoothing = 0.2f});
  EXPECT_NEAR(loss, 0.6103633496111669, 1e-7);
  const double torch_grad[] = {-0.2076655278, 0.1757663040, 0.0318992237, 0, 0, 0};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(grad[i], torch_grad[i], 1e-7) << i;
}

// Random logits, every option on (smoothing, z-loss, a custom ignore_index on two rows), each
// reduction: the loss against the two-pass double formula, the gradient against its central
// differences (h = 1e-5 on a smooth function: truncation ~1e-10, rounding ~1e-11).
TEST(CrossEntropy, EveryOptionMatchesDoubleFormulaAndFiniteDifferences) {
  const std::int64_t N = 6, C = 11;
  const auto logits = test::normals(N * C, 1, 0.0f, 3.0f);
  const std::vector<std::int64_t> t = {3, -1, 0, 10, -1, 7};
  for (const Reduction r : {Reduction::Mean, Reduction::Sum}) {
    const CrossEntropyOptions o{.reduction = r, .ignore_index = -1, .label_smoothing = 0.15f,
                                .z_loss = 0.01f};
    float loss = kNaN;
    std::vector<float> grad(N * C, kNaN);
    cross_entropy_loss(kCpu, logits.data(), t.data(), N, C, &loss, grad.data(), o);
    const auto f = [&](const std::vector<double>& x) { return ce_double(x, t, C, o); };
    EXPECT_NEAR(loss, f(widen(logits)), 1e-6 * std::abs(f(widen(logits))));
    const auto num = numeric_gradient(f, widen(logits));
    EXPECT_TRUE(test::close(grad, num, {1e-6, 1e-6}));
  }
}

// genai::cross_entropy_loss on the CPU is the float path (ref::cross_entropy_loss_float: float
// exponentials, double sums and formulas); ref::cross_entropy_loss, all double, is the oracle.
// The bound, u = 2^-24, for a row with max m, d_j = x_j - m, p_j its softmax, lse, scale (1 / rows
// counted for the mean):
//   e_j = exp_f(fl(d_j)) within δ_j = u |d_j| + 5u relative (the float difference: u |d_j| in the
//   argument; exp_f within 2 ulp of the rounded e^x, 2.5 of the exact: 5u) or, where exp_f
//   flushes (d_j < ln 2^-126), off by p_j < 2^-126 absolute; the double sum s within
//   Δ = Σ_j p_j δ_j + C 2^-53;
//   lse within Δ; the row loss lse (1 + z lse) - ... within Δ (1 + 2 z |lse|) + 2u |loss| (each
//   side rounded once to float: u each); the gradient scale (p_j gain - hit - floor), gain =
//   1 + 2 z lse, within scale p_j (|gain| (δ_j + Δ) + 2 z Δ) + scale |gain| 2^-126 + 2u |g_j|
//   (the flush), plus one ulp of the
//   dtype for bf16. A row whose loss is infinite (a -inf logit under label smoothing) is so on
//   both.
template <class T>
void check_float_path_bound(std::int64_t N, std::int64_t C, std::uint64_t seed) {
  const double u = std::ldexp(1.0, -24);
  const auto raw = test::normals(N * C, seed, 0.0f, 4.0f);
  std::vector<T> x(N * C);
  std::vector<double> xd(N * C);
  for (std::int64_t e = 0; e < N * C; ++e) {
    x[e] = T(raw[e]);
    xd[e] = static_cast<float>(x[e]);
  }
  x[3] = T(-INFINITY);  // a masked class
  xd[3] = -INFINITY;
  std::vector<std::int64_t> t(N);
  for (std::int64_t i = 0; i < N; ++i) t[i] = i % 9 == 4 ? -1 : (i * 13) % C;
  const CrossEntropyOptions o{.reduction = Reduction::None, .ignore_index = -1,
                              .label_smoothing = 0.1f, .z_loss = 1e-3f};
  std::vector<float> loss(N), want_loss(N);
  std::vector<T> grad(N * C), want_grad(N * C);
  cross_entropy_loss(kCpu, x.data(), t.data(), N, C, loss.data(), grad.data(), o);
  ref::cross_entropy_loss(x.data(), t.data(), N, C, want_loss.data(), want_grad.data(), o);
  const double z = o.z_loss;
  std::vector<double> p(C), delta(C);
  for (std::int64_t i = 0; i < N; ++i) {
    SCOPED_TRACE(::testing::Message() << "row " << i << " of " << N << " x " << C);
    if (t[i] == -1) {
      EXPECT_EQ(loss[i], 0.0f);
      continue;
    }
    const double* r = xd.data() + i * C;
    double m = -INFINITY, s = 0, big_delta = C * std::ldexp(1.0, -53);
    for (std::int64_t j = 0; j < C; ++j) m = std::max(m, r[j]);
    for (std::int64_t j = 0; j < C; ++j) s += p[j] = std::exp(r[j] - m);
    for (std::int64_t j = 0; j < C; ++j) {
      p[j] /= s;
      delta[j] = p[j] > 0 ? u * std::abs(r[j] - m) + 5 * u : 0.0;
      big_delta += p[j] * delta[j];
    }
    const double lse = m + std::log(s), gain = 1 + 2 * z * lse;
    if (std::isinf(want_loss[i]))
      EXPECT_EQ(loss[i], want_loss[i]);
    else
      EXPECT_LE(std::abs(double(loss[i]) - want_loss[i]),
                big_delta * (1 + 2 * z * std::abs(lse)) + 2 * u * std::abs(want_loss[i]));
    for (std::int64_t j = 0; j < C; ++j) {
      const double got = static_cast<float>(grad[i * C + j]), want = static_cast<float>(want_grad[i * C + j]);
      double bound = p[j] * (std::abs(gain) * (delta[j] + big_delta) + 2 * z * big_delta) +
                     std::abs(gain) * std::ldexp(1.0, -126) + 2 * u * std::abs(want);
      if constexpr (std::is_same_v<T, bf16>)
        bound += std::ldexp(std::max(std::abs(got), std::abs(want)), -7);  // one bf16 ulp, at most
      ASSERT_LE(std::abs(got - want), bound) << "class " << j << ": " << got << " vs " << want;
    }
  }
}

TEST(CrossEntropy, FloatPathIsWithinItsBoundOfTheReference) {
  check_float_path_bound<float>(64, 4096, 70);
  check_float_path_bound<float>(100, 37, 71);
  check_float_path_bound<bf16>(32, 1000, 72);
}

// Rows in chunks of 16 on the backend's threads, the mean adding the chunks in order: loss
// and gradient are the same bytes on any thread count (label smoothing, an ignored row).
TEST(CrossEntropy, IsTheSameOnAnyThreadCount) {
  const std::int64_t N = 100, C = 37;
  const auto logits = test::normals(N * C, 60, 0, 3);
  std::vector<std::int64_t> t(N);
  for (std::int64_t i = 0; i < N; ++i) t[i] = (i * 7) % C;
  t[5] = -100;
  test::expect_same_on_any_thread_count([&] {
    std::vector<float> loss(1), grad(N * C);
    cross_entropy_loss(kCpu, logits.data(), t.data(), N, C, loss.data(), grad.data(),
                       {.label_smoothing = 0.1f});
    return std::vector<std::vector<float>>{loss, grad};
  });
}

TEST(CrossEntropy, NoneGivesRowsAndTheGradientOfTheirSum) {
  const std::int64_t N = 5, C = 4;
  const auto logits = test::normals(N * C, 2);
  const std::vector<std::int64_t> t = {0, 3, -100, 2, 1};
  std::vector<float> rows(N, kNaN), g_none(N * C, kNaN), g_sum(N * C, kNaN);
  float sum = kNaN;
  cross_entropy_loss(kCpu, logits.data(), t.data(), N, C, rows.data(), g_none.data(),
                     {.reduction = Reduction::None});
  cross_entropy_loss(kCpu, logits.data(), t.data(), N, C, &sum, g_sum.data(),
                     {.reduction = Reduction::Sum});
  EXPECT_EQ(rows[2], 0.0f);  // ignored row
  double total = 0;
  for (float v : rows) total += v;
  EXPECT_NEAR(total, sum, 1e-6);
  EXPECT_TRUE(same_bytes(g_none, g_sum));
}

// Every row ignored: mean is 0/0 = NaN and sum 0, as F.cross_entropy; gradients 0.
TEST(CrossEntropy, AllRowsIgnored) {
  const std::vector<std::int64_t> t = {-100, -100};
  float mean = 0, sum = kNaN;
  std::vector<float> grad(6, kNaN);
  cross_entropy_loss(kCpu, kSeedLogits.data(), t.data(), 2, 3, &mean, grad.data());
  EXPECT_TRUE(std::isnan(mean));
  for (float g : grad) EXPECT_EQ(g, 0.0f);
  cross_entropy_loss(kCpu, kSeedLogits.data(), t.data(), 2, 3, &sum);
  EXPECT_TRUE(std::isnan(sum));
  cross_entropy_loss(kCpu, kSeedLogits.data(), t.data(), 2, 3, &sum, nullptr,
                     {.reduction = Reduction::Sum});
  EXPECT_EQ(sum, 0.0f);
}

// Logits +-1e4: no overflow. Row [1e4, -1e4, 0] with target 1 has loss 2e4 (lse = 1e4 up to
// e^-1e4), its gradient (1, -1, 0) up to e^-1e4; row [-1e4, -1e4, 1e4] with target 2 has 0.
TEST(CrossEntropy, HugeLogitsStayFinite) {
  const std::vector<float> x = {1e4f, -1e4f, 0.0f, -1e4f, -1e4f, 1e4f};
  const std::vector<std::int64_t> t = {1, 2};
  std::vector<float> rows(2, kNaN), grad(6, kNaN);
  cross_entropy_loss(kCpu, x.data(), t.data(), 2, 3, rows.data(), grad.data(),
                     {.reduction = Reduction::None});
  EXPECT_EQ(rows[0], 2e4f);
  EXPECT_EQ(rows[1], 0.0f);
  const float expect[] = {1, -1, 0, 0, 0, 0};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(grad[i], expect[i]) << i;
}

// -inf logits (a masked class) contribute p = 0 and no NaN.
TEST(CrossEntropy, MinusInfinityLogitsAreMaskedClasses) {
  const std::vector<float> x = {-INFINITY, 1.0f, 1.0f};
  const std::vector<std::int64_t> t = {1};
  float loss = kNaN;
  std::vector<float> grad(3, kNaN);
  cross_entropy_loss(kCpu, x.data(), t.data(), 1, 3, &loss, grad.data());
  EXPECT_NEAR(loss, std::log(2.0), 1e-7);
  EXPECT_EQ(grad[0], 0.0f);
  EXPECT_NEAR(grad[1], -0.5, 1e-7);
  EXPECT_NEAR(grad[2], 0.5, 1e-7);
}

// grad may be the logits' own memory: the in-place result equals the out-of-place one.
TEST(CrossEntropy, GradientInPlaceEqualsOutOfPlace) {
  const std::int64_t N = 7, C = 33;
  auto logits = test::normals(N * C, 3);
  std::vector<std::int64_t> t(N);
  for (std::int64_t i = 0; i < N; ++i) t[i] = (i * 5) % C;
  std::vector<float> grad(N * C, kNaN);
  float a = kNaN, b = kNaN;
  const CrossEntropyOptions o{.label_smoothing = 0.1f, .z_loss = 1e-3f};
  cross_entropy_loss(kCpu, logits.data(), t.data(), N, C, &a, grad.data(), o);
  cross_entropy_loss(kCpu, logits.data(), t.data(), N, C, &b, logits.data(), o);
  EXPECT_EQ(a, b);
  EXPECT_TRUE(same_bytes(grad, logits));
}

// bf16 logits: the loss of the bf16 values computed in double (within float rounding), the
// gradient that of the float call on the same values rounded to bf16 (within half a bf16 ulp).
TEST(CrossEntropy, Bf16MatchesFloatOnTheSameValues) {
  const std::int64_t N = 9, C = 50;
  const auto raw = test::normals(N * C, 4, 0.0f, 2.0f);
  std::vector<bf16> x(N * C), grad(N * C);
  std::vector<float> xf(N * C);
  for (std::int64_t i = 0; i < N * C; ++i) {
    x[i] = bf16(raw[i]);
    xf[i] = static_cast<float>(x[i]);
  }
  std::vector<std::int64_t> t(N);
  for (std::int64_t i = 0; i < N; ++i) t[i] = (i * 7) % C;
  float loss = kNaN, loss_f = kNaN;
  std::vector<float> grad_f(N * C);
  cross_entropy_loss(kCpu, x.data(), t.data(), N, C, &loss, grad.data());
  cross_entropy_loss(kCpu, xf.data(), t.data(), N, C, &loss_f, grad_f.data());
  EXPECT_EQ(loss, loss_f);
  for (std::int64_t i = 0; i < N * C; ++i)
    EXPECT_EQ(grad[i].bits, bf16(grad_f[i]).bits) << i;
}

TEST(CrossEntropy, OutOfRangeTargetIsAnErrorNamingRowAndValue) {
  const std::vector<std::int64_t> high = {0, 3}, negative = {-5, 1};
  float loss = kNaN;
  std::vector<float> grad(6, kNaN);
  const auto grad_before = grad;
  EXPECT_EQ(test::error_of([&] {
              cross_entropy_loss(kCpu, kSeedLogits.data(), high.data(), 2, 3, &loss, grad.data());
            }),
            "genai::cross_entropy_loss: argument 'targets' row 1 is 3 (must be in [0, 3) or "
            "ignore_index -100)");
  EXPECT_NE(test::error_of([&] {
              cross_entropy_loss(kCpu, kSeedLogits.data(), negative.data(), 2, 3, &loss,
                                 grad.data());
            }).find("row 0 is -5"),
            std::string::npos);
  EXPECT_TRUE(std::isnan(loss));
  EXPECT_TRUE(same_bytes(grad, grad_before));
  // -100 is only ignored when it is ignore_index.
  const std::vector<std::int64_t> minus100 = {-100, 1};
  EXPECT_NE(test::error_of([&] {
              cross_entropy_loss(kCpu, kSeedLogits.data(), minus100.data(), 2, 3, &loss, nullptr,
                                 {.ignore_index = -1});
            }).find("row 0 is -100"),
            std::string::npos);
}

// check_targets = false: no error; the bad row's loss and gradient are NaN, the others exact.
TEST(CrossEntropy, UncheckedBadTargetGivesNaNRow) {
  const std::vector<std::int64_t> t = {0, 7};
  std::vector<float> rows(2, 0.0f), grad(6, 0.0f);
  cross_entropy_loss(kCpu, kSeedLogits.data(), t.data(), 2, 3, rows.data(), grad.data(),
                     {.reduction = Reduction::None, .check_targets = false});
  EXPECT_NEAR(rows[0], 0.41703002, 1e-7);
  EXPECT_TRUE(std::isnan(rows[1]));
  for (int j = 0; j < 3; ++j) {
    EXPECT_FALSE(std::isnan(grad[j]));
    EXPECT_TRUE(std::isnan(grad[3 + j]));
  }
}

TEST(CrossEntropy, BadArgumentsNameTheArgument) {
  float loss = 0;
  const auto* x = kSeedLogits.data();
  const auto* t = kSeedTargets.data();
  EXPECT_NE(test::error_of([&] { cross_entropy_loss(kCpu, x, t, 2, 0, &loss); }).find("'C'"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { cross_entropy_loss(kCpu, x, t, -1, 3, &loss); }).find("'N'"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] {
              cross_entropy_loss(kCpu, x, t, 2, 3, &loss, nullptr, {.label_smoothing = 1.5f});
            }).find("'opts.label_smoothing'"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] {
              cross_entropy_loss(kCpu, x, t, 2, 3, &loss, nullptr, {.z_loss = -1.0f});
            }).find("'opts.z_loss'"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { cross_entropy_loss(kCpu, x, t, 2, 3, nullptr); }).find("'loss'"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] {
              cross_entropy_loss(kCpu, x, nullptr, 2, 3, &loss);
            }).find("'targets'"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] {
              cross_entropy_loss(kCpu, static_cast<const float*>(nullptr), t, 2, 3, &loss);
            }).find("'logits'"),
            std::string::npos);
}

// ---- MSE and BCE with logits ----------------------------------------------------------------

TEST(ElementLosses, MseValuesRowsAndGradient) {
  const std::int64_t n = 4, d = 5;
  const auto p = test::normals(n * d, 5), y = test::normals(n * d, 6);
  for (const Reduction r : {Reduction::Mean, Reduction::Sum}) {
    const double scale = r == Reduction::Mean ? 1.0 / (n * d) : 1.0;
    float loss = kNaN;
    std::vector<float> rows(n, kNaN), grad(n * d, kNaN);
    mse_loss(kCpu, p.data(), y.data(), n, d, {&loss, rows.data(), grad.data()}, r);
    const auto f = [&](const std::vector<double>& x) {
      double s = 0;
      for (std::int64_t i = 0; i < n * d; ++i) s += (x[i] - y[i]) * (x[i] - y[i]);
      return s * scale;
    };
    EXPECT_NEAR(loss, f(widen(p)), 1e-6 * f(widen(p)));
    for (std::int64_t i = 0; i < n; ++i) {
      double s = 0;
      for (std::int64_t j = 0; j < d; ++j) s += std::pow(double(p[i * d + j]) - y[i * d + j], 2);
      EXPECT_NEAR(rows[i], r == Reduction::Mean ? s / d : s, 1e-6 * s);
    }
    EXPECT_TRUE(test::close(grad, numeric_gradient(f, widen(p)), {1e-6, 1e-6}));
  }
}

// BCE against -(y log sigmoid(l) + (1 - y) log(1 - sigmoid(l))) in double for moderate logits,
// soft targets in [0, 1]; gradient by central differences; +-100 logits finite (the loss of a
// confident wrong answer is ~100, of a right one ~e^-100).
TEST(ElementLosses, BceWithLogitsValuesGradientAndStability) {
  const std::int64_t n = 3, d = 7;
  const auto l = test::normals(n * d, 7, 0.0f, 3.0f);
  const auto y = test::uniforms(n * d, 8);
  const auto f = [&](const std::vector<double>& x) {
    double s = 0;
    for (std::int64_t i = 0; i < n * d; ++i) {
      const double sg = 1 / (1 + std::exp(-x[i]));
      s -= y[i] * std::log(sg) + (1 - y[i]) * std::log(1 - sg);
    }
    return s / (n * d);
  };
  float loss = kNaN;
  std::vector<float> grad(n * d, kNaN);
  bce_with_logits_loss(kCpu, l.data(), y.data(), n, d, {.loss = &loss, .grad = grad.data()});
  EXPECT_NEAR(loss, f(widen(l)), 1e-6 * f(widen(l)));
  EXPECT_TRUE(test::close(grad, numeric_gradient(f, widen(l)), {1e-6, 1e-6}));

  const std::vector<float> big = {100.0f, -100.0f, 100.0f, -100.0f}, t = {0, 1, 1, 0};
  std::vector<float> rows(4), g(4);
  bce_with_logits_loss(kCpu, big.data(), t.data(), 4, 1, {.row_loss = rows.data(), .grad = g.data()},
                       Reduction::Sum);
  EXPECT_EQ(rows[0], 100.0f);
  EXPECT_EQ(rows[1], 100.0f);
  EXPECT_NEAR(rows[2], 3.7e-44, 1e-44);
  EXPECT_EQ(g[0], 1.0f);
  EXPECT_EQ(g[1], -1.0f);
  EXPECT_EQ(g[2], 0.0f);
}

TEST(ElementLosses, BadArgumentsNameTheArgument) {
  const std::vector<float> a(4, 1.0f);
  float loss;
  EXPECT_NE(test::error_of([&] {
              mse_loss(kCpu, a.data(), a.data(), 2, 2, {.loss = &loss}, Reduction::None);
            }).find("'reduction'"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { mse_loss(kCpu, a.data(), a.data(), 2, 2, {}); }).find("'out'"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] {
              bce_with_logits_loss(kCpu, nullptr, a.data(), 2, 2, {.loss = &loss});
            }).find("'logits'"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] {
              mse_loss(kCpu, a.data(), a.data(), 2, 0, {.loss = &loss});
            }).find("'d'"),
            std::string::npos);
}

// ---- VAE ------------------------------------------------------------------------------------

// exp_rn within 2 ulp of exp on a sweep of the normal range, exact at 0, +inf / 0 / NaN beyond.
TEST(Vae, ExponentialIsWithinTwoUlp) {
  double worst = 0;
  for (float x = -87.3f; x < 88.7f; x += 0.0137f) {
    const double e = std::exp(static_cast<double>(x));
    const double ulp = std::nextafter(static_cast<float>(e), INFINITY) - static_cast<float>(e);
    worst = std::max(worst, std::abs(detail::exp_rn(x) - e) / ulp);
  }
  EXPECT_LE(worst, 2.0);
  EXPECT_EQ(detail::exp_rn(0.0f), 1.0f);
  EXPECT_EQ(detail::exp_rn(89.0f), INFINITY);
  EXPECT_EQ(detail::exp_rn(-88.0f), 0.0f);
  EXPECT_TRUE(std::isnan(detail::exp_rn(kNaN)));
}

// eps is fill_normal's numbers for (seed, vae_reparameterize, step); z = mu + exp(lv/2) eps
// within float rounding of double; z may overwrite mu.
TEST(Vae, ReparameterizeDrawsTheDocumentedNumbers) {
  const std::int64_t n = 5, d = 7;
  auto mu = test::normals(n * d, 9);
  const auto lv = test::normals(n * d, 10);
  std::vector<float> z(n * d, kNaN), eps(n * d, kNaN), expect(n * d);
  reparameterize(kCpu, mu.data(), lv.data(), n, d, z.data(), {.seed = 42, .step = 3,
                                                              .eps_out = eps.data()});
  fill_normal(kCpu, expect.data(), n * d, {42, rng::streams::vae_reparameterize, 3});
  EXPECT_TRUE(same_bytes(eps, expect));
  for (std::int64_t i = 0; i < n * d; ++i) {
    const double s = std::exp(0.5 * lv[i]) * eps[i];
    EXPECT_NEAR(z[i], mu[i] + s, 4e-7 * (std::abs(mu[i]) + std::abs(s))) << i;
  }
  reparameterize(kCpu, mu.data(), lv.data(), n, d, mu.data(), {.seed = 42, .step = 3});
  EXPECT_TRUE(same_bytes(mu, z));
}

// KL(N(mu, sigma^2) || N(0, I)) in closed form against the Monte Carlo mean of
// log q(z) - log p(z) over 2^18 reparameterised samples; the bound is 5 standard errors of that
// mean (estimated from the samples).
TEST(Vae, KlMatchesMonteCarloWithinFiveStandardErrors) {
  const std::vector<float> mu1 = {0.5f, -1.0f, 0.2f}, lv1 = {-0.7f, 0.3f, 0.0f};
  const std::int64_t n = 1 << 18, d = 3;
  std::vector<float> mu(n * d), lv(n * d), z(n * d), x(n), recon(n);
  for (std::int64_t i = 0; i < n * d; ++i) {
    mu[i] = mu1[i % d];
    lv[i] = lv1[i % d];
  }
  float kl = kNaN;
  vae_loss(kCpu, x.data(), recon.data(), 1, 1, mu1.data(), lv1.data(), d,
           {.kl = &kl});
  reparameterize(kCpu, mu.data(), lv.data(), n, d, z.data(), {.seed = 7});
  double sum = 0, sum2 = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    double log_ratio = 0;
    for (std::int64_t k = 0; k < d; ++k) {
      const double zk = z[i * d + k], var = std::exp(double(lv1[k]));
      log_ratio += -0.5 * std::pow(zk - mu1[k], 2) / var - 0.5 * lv1[k] + 0.5 * zk * zk;
    }
    sum += log_ratio;
    sum2 += log_ratio * log_ratio;
  }
  const double mc = sum / n, se = std::sqrt((sum2 / n - mc * mc) / n);
  double closed = 0;
  for (int k = 0; k < 3; ++k)
    closed += 0.5 * (std::exp(double(lv1[k])) + mu1[k] * mu1[k] - 1 - lv1[k]);
  EXPECT_NEAR(kl, closed, 1e-6);
  EXPECT_LT(std::abs(mc - closed), 5 * se) << "mc " << mc << " closed " << closed << " se " << se;
  EXPECT_GT(se, 0.0);
}

// The total is reconstruction + beta KL for every beta; the gradients in mu and logvar scale
// with beta, the reconstruction's does not (8.2(c)); Mean is Sum / n.
TEST(Vae, BetaScalesOnlyTheKlTerm) {
  const std::int64_t n = 6, D = 10, d = 4;
  const auto x = test::uniforms(n * D, 11), xr = test::normals(n * D, 12);
  const auto mu = test::normals(n * d, 13), lv = test::normals(n * d, 14, 0.0f, 0.5f);
  std::vector<float> red1(3), red4(3), reds(3), tot(n), rec(n), kl(n);
  std::vector<float> gr1(n * D), gm1(n * d), gl1(n * d), gr4(n * D), gm4(n * d), gl4(n * d);
  vae_loss(kCpu, x.data(), xr.data(), n, D, mu.data(), lv.data(), d,
           {red1.data(), tot.data(), rec.data(), kl.data(), gr1.data(), gm1.data(), gl1.data()});
  vae_loss(kCpu, x.data(), xr.data(), n, D, mu.data(), lv.data(), d,
           {.reduced = red4.data(), .grad_recon = gr4.data(), .grad_mu = gm4.data(),
            .grad_logvar = gl4.data()},
           {.beta = 4.0f});
  vae_loss(kCpu, x.data(), xr.data(), n, D, mu.data(), lv.data(), d, {.reduced = reds.data()},
           {.beta = 4.0f, .reduction = Reduction::Sum});
  double sum_rec = 0, sum_kl = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    EXPECT_NEAR(tot[i], rec[i] + kl[i], 1e-5 * tot[i]);
    EXPECT_GT(kl[i], 0.0f);
    sum_rec += rec[i];
    sum_kl += kl[i];
  }
  EXPECT_NEAR(red1[1], sum_rec / n, 1e-6 * red1[1]);
  EXPECT_NEAR(red1[2], sum_kl / n, 1e-6 * red1[2]);
  EXPECT_EQ(red4[1], red1[1]);
  EXPECT_EQ(red4[2], red1[2]);
  EXPECT_NEAR(red4[0], red1[1] + 4 * red1[2], 1e-6 * red4[0]);
  EXPECT_NEAR(reds[0], n * red4[0], 1e-6 * reds[0]);
  for (std::int64_t i = 0; i < n * D; ++i) EXPECT_EQ(gr4[i], gr1[i]);
  for (std::int64_t i = 0; i < n * d; ++i) {
    EXPECT_NEAR(gm4[i], 4 * gm1[i], 1e-6 * std::abs(gm4[i]));
    EXPECT_NEAR(gl4[i], 4 * gl1[i], 1e-6 * std::abs(gl4[i]) + 1e-12);
  }
}

// Gradients of the reduced total in x_recon, mu and logvar against central differences of the
// textbook negative ELBO in double, for both reconstructions.
TEST(Vae, GradientsMatchFiniteDifferences) {
  const std::int64_t n = 3, D = 6, d = 2;
  const auto x = test::uniforms(n * D, 15), xr = test::normals(n * D, 16);
  const auto mu = test::normals(n * d, 17), lv = test::normals(n * d, 18, 0.0f, 0.5f);
  for (const Reconstruction rc : {Reconstruction::SquaredError, Reconstruction::BernoulliLogits}) {
    const VaeLossOptions o{.beta = 0.7f, .reconstruction = rc};
    // elbo(v) with v = [x_recon | mu | logvar]
    const auto f = [&](const std::vector<double>& v) {
      double s = 0;
      for (std::int64_t i = 0; i < n * D; ++i) {
        if (rc == Reconstruction::SquaredError) {
          s += std::pow(v[i] - x[i], 2);
        } else {
          const double p = 1 / (1 + std::exp(-v[i]));
          s -= x[i] * std::log(p) + (1 - x[i]) * std::log(1 - p);
        }
      }
      for (std::int64_t k = 0; k < n * d; ++k) {
        const double m = v[n * D + k], l = v[n * D + n * d + k];
        s += o.beta * 0.5 * (std::exp(l) + m * m - 1 - l);
      }
      return s / n;
    };
    std::vector<double> v = widen(xr);
    v.insert(v.end(), mu.begin(), mu.end());
    v.insert(v.end(), lv.begin(), lv.end());
    std::vector<float> red(3), gr(n * D, kNaN), gm(n * d, kNaN), gl(n * d, kNaN);
    vae_loss(kCpu, x.data(), xr.data(), n, D, mu.data(), lv.data(), d,
             {.reduced = red.data(), .grad_recon = gr.data(), .grad_mu = gm.data(),
              .grad_logvar = gl.data()},
             o);
    EXPECT_NEAR(red[0], f(v), 1e-6 * f(v));
    std::vector<float> g = gr;
    g.insert(g.end(), gm.begin(), gm.end());
    g.insert(g.end(), gl.begin(), gl.end());
    EXPECT_TRUE(test::close(g, numeric_gradient(f, v), {1e-6, 1e-6}));
  }
}

TEST(Vae, BadArgumentsNameTheArgument) {
  const std::vector<float> a(8, 0.5f);
  float red[3];
  EXPECT_NE(test::error_of([&] {
              vae_loss(kCpu, a.data(), a.data(), 2, 4, a.data(), a.data(), 4, {.reduced = red},
                       {.beta = -1.0f});
            }).find("'opts.beta'"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] {
              vae_loss(kCpu, a.data(), a.data(), 2, 4, a.data(), a.data(), 4, {.reduced = red},
                       {.reduction = Reduction::None});
            }).find("'opts.reduction'"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] {
              vae_loss(kCpu, a.data(), a.data(), 2, 4, nullptr, a.data(), 4, {.reduced = red});
            }).find("'mu'"),
            std::string::npos);
  std::vector<float> z(8);
  EXPECT_NE(test::error_of([&] {
              reparameterize(kCpu, a.data(), nullptr, 2, 4, z.data());
            }).find("'logvar'"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { reparameterize(kCpu, a.data(), a.data(), 2, 0, z.data()); })
                .find("'d'"),
            std::string::npos);
}

}  // namespace
}  // namespace genai
