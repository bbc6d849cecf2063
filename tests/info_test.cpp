// Norms, entropy, KL and cross-entropy: seed answers (problem set 3.3, 6.1, 6.2), properties,
// bad input, and CPU-vs-GPU parity.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "cpu_reference/info.hpp"
#include "genai/info.hpp"
#include "test_util.hpp"

namespace genai {
namespace {

const Context kCpu = Context::cpu();
constexpr float kInf = std::numeric_limits<float>::infinity();

float one(void (*f)(const Context&, const float*, std::int64_t, std::int64_t, float*),
          std::vector<float> x) {
  float out = NAN;
  f(kCpu, x.data(), 1, static_cast<std::int64_t>(x.size()), &out);
  return out;
}

// 3.3: w = [3, 0.01, -2, 0.001].
TEST(Info, SeedNormsOfProblem3_3) {
  EXPECT_NEAR(one(l1_norm, {3, 0.01f, -2, 0.001f}), 5.011, 1e-6);
  EXPECT_NEAR(one(l2_norm_squared, {3, 0.01f, -2, 0.001f}), 13.000101, 1e-5);  // 13.0001 + 1e-6
}

// 6.1: H(fair coin) = 1 bit, H(0.9, 0.1) = 0.4690 bits, H(always heads) = 0.
TEST(Info, SeedEntropiesOfProblem6_1) {
  const std::vector<float> p = {0.5f, 0.5f, 0.9f, 0.1f, 1.0f, 0.0f};
  std::vector<float> h(3);
  entropy(kCpu, p.data(), 3, 2, h.data());
  EXPECT_NEAR(h[0], 1.0, 1e-6);
  EXPECT_NEAR(h[1], 0.468995594, 1e-6);
  EXPECT_EQ(h[2], 0.0f);
  entropy(kCpu, p.data(), 1, 2, h.data(), {.base = LogBase::Nats});
  EXPECT_NEAR(h[0], std::log(2.0), 1e-6);
}

// 6.2: P = [0.5, 0.5], Q = [0.9, 0.1]: KL(P||Q) = 0.7370 bits, KL(Q||P) = 0.5310 bits.
TEST(Info, SeedKlOfProblem6_2IsAsymmetric) {
  const std::vector<float> p = {0.5f, 0.5f}, q = {0.9f, 0.1f};
  float pq = NAN, qp = NAN;
  kl_divergence(kCpu, p.data(), q.data(), 1, 2, &pq);
  kl_divergence(kCpu, q.data(), p.data(), 1, 2, &qp);
  EXPECT_NEAR(pq, 0.736965594, 1e-6);
  EXPECT_NEAR(qp, 0.531004406, 1e-6);
  EXPECT_GT(pq - qp, 0.2);
}

TEST(Info, CrossEntropyIsEntropyPlusKl) {
  const auto p = test::random_distributions(64, 37, 1), q = test::random_distributions(64, 37, 2);
  std::vector<float> h(64), kl(64), ce(64);
  entropy(kCpu, p.data(), 64, 37, h.data());
  kl_divergence(kCpu, p.data(), q.data(), 64, 37, kl.data());
  cross_entropy(kCpu, p.data(), q.data(), 64, 37, ce.data());
  for (int r = 0; r < 64; ++r) {
    EXPECT_NEAR(ce[r], h[r] + kl[r], 1e-5) << r;
    EXPECT_GE(kl[r], 0.0f);  // Gibbs' inequality
    EXPECT_LE(h[r], std::log2(37.0) + 1e-5);
  }
  kl_divergence(kCpu, p.data(), p.data(), 64, 37, kl.data());
  for (float v : kl) EXPECT_NEAR(v, 0.0, 1e-6);
}

TEST(Info, ZeroQWherePIsPositiveIsInfinite) {
  const std::vector<float> p = {0.5f, 0.5f}, q = {1.0f, 0.0f};
  float v = 0;
  kl_divergence(kCpu, p.data(), q.data(), 1, 2, &v);
  EXPECT_EQ(v, kInf);
  cross_entropy(kCpu, p.data(), q.data(), 1, 2, &v);
  EXPECT_EQ(v, kInf);
  kl_divergence(kCpu, q.data(), p.data(), 1, 2, &v);  // p = 0 terms contribute 0
  EXPECT_NEAR(v, 1.0, 1e-6);
}

using test::error_of;

TEST(Info, BadInputNamesArgumentAndLeavesOutputUntouched) {
  std::vector<float> out = {-7.0f, -7.0f};
  const std::vector<float> good = {0.25f, 0.75f, 0.5f, 0.5f};
  const std::vector<float> negative = {0.25f, 0.75f, 1.5f, -0.5f};
  const std::vector<float> off = {0.25f, 0.75f, 0.5f, 0.6f};
  const std::vector<float> nan = {0.25f, 0.75f, NAN, 0.5f};
  auto untouched = [&] { return out[0] == -7.0f && out[1] == -7.0f; };

  std::string m = error_of([&] { entropy(kCpu, negative.data(), 2, 2, out.data()); });
  EXPECT_NE(m.find("genai::entropy: argument 'p' row 1 entry 1 is -0.5"), std::string::npos) << m;
  EXPECT_TRUE(untouched());
  m = error_of([&] { kl_divergence(kCpu, good.data(), off.data(), 2, 2, out.data()); });
  EXPECT_NE(m.find("argument 'q' row 1 sums to 1.1"), std::string::npos) << m;
  EXPECT_TRUE(untouched());
  m = error_of([&] { cross_entropy(kCpu, nan.data(), good.data(), 2, 2, out.data()); });
  EXPECT_NE(m.find("argument 'p' row 1 entry 0 is nan"), std::string::npos) << m;
  EXPECT_TRUE(untouched());
  m = error_of([&] { entropy(kCpu, good.data(), 2, 0, out.data()); });
  EXPECT_NE(m.find("argument 'K' must be >= 1 (got 0)"), std::string::npos) << m;
  m = error_of([&] { entropy(kCpu, nullptr, 2, 2, out.data()); });
  EXPECT_NE(m.find("argument 'p' must not be null"), std::string::npos) << m;
  m = error_of([&] { kl_divergence(kCpu, good.data(), nullptr, 2, 2, out.data()); });
  EXPECT_NE(m.find("argument 'q' must not be null"), std::string::npos) << m;
  m = error_of([&] { l1_norm(kCpu, good.data(), 2, 2, nullptr); });
  EXPECT_NE(m.find("argument 'out' must not be null"), std::string::npos) << m;
  m = error_of([&] { entropy(kCpu, good.data(), -1, 2, out.data()); });
  EXPECT_NE(m.find("argument 'rows' must be >= 0"), std::string::npos) << m;
  m = error_of([&] { entropy(kCpu, good.data(), 2, 2, out.data(), {.sum_tolerance = 0}); });
  EXPECT_NE(m.find("argument 'opts.sum_tolerance'"), std::string::npos) << m;
  EXPECT_TRUE(untouched());

  // The tolerance is documented and adjustable; validation can be switched off.
  EXPECT_NO_THROW(entropy(kCpu, off.data(), 2, 2, out.data(), {.sum_tolerance = 0.2}));
  EXPECT_NO_THROW(entropy(kCpu, off.data(), 2, 2, out.data(), {.validate = false}));
  // Norms take any real vectors.
  EXPECT_NO_THROW(l1_norm(kCpu, negative.data(), 2, 2, out.data()));
  EXPECT_FLOAT_EQ(out[1], 2.0f);
}

}  // namespace
}  // namespace genai
