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

// ---- GPU parity ---------------------------------------------------------------------------

class InfoGpu : public test::GpuTest {};

// Every op, both kernel shapes (warp per row for K <= 1024, block per row above), odd sizes,
// validation on and off, on fresh random distributions; outputs poisoned beforehand.
TEST_F(InfoGpu, AllOpsMatchReference) {
  using ref::InfoOp;
  struct Shape {
    std::int64_t rows, K;
  };
  std::uint64_t seed = 100;
  for (Shape s : {Shape{1, 1}, Shape{3, 7}, Shape{129, 33}, Shape{1000, 1024}, Shape{17, 1025},
                  Shape{5, 100'000}}) {
    const auto p = test::random_distributions(s.rows, s.K, ++seed, 2.0f);
    const auto q = test::random_distributions(s.rows, s.K, ++seed, 0.5f);
    auto dp = test::to_device(ctx, p), dq = test::to_device(ctx, q);
    Buffer<float> dout(ctx, s.rows);
    for (InfoOp op : {InfoOp::L1, InfoOp::L2Squared, InfoOp::Entropy, InfoOp::KL,
                      InfoOp::CrossEntropy}) {
      for (bool validate : {true, false}) {
        const InfoOptions opts{.base = LogBase::Bits, .validate = validate};
        test::poison(dout);
        switch (op) {
          case InfoOp::L1: l1_norm(ctx, dp.data(), s.rows, s.K, dout.data()); break;
          case InfoOp::L2Squared: l2_norm_squared(ctx, dp.data(), s.rows, s.K, dout.data()); break;
          case InfoOp::Entropy: entropy(ctx, dp.data(), s.rows, s.K, dout.data(), opts); break;
          case InfoOp::KL:
            kl_divergence(ctx, dp.data(), dq.data(), s.rows, s.K, dout.data(), opts);
            break;
          case InfoOp::CrossEntropy:
            cross_entropy(ctx, dp.data(), dq.data(), s.rows, s.K, dout.data(), opts);
            break;
        }
        std::vector<float> expect(s.rows);
        ref::info_rows(op, p.data(), q.data(), s.rows, s.K, LogBase::Bits, expect.data());
        EXPECT_TRUE(test::close(dout.to_host(), expect, test::tolerance(test::DType::FP32)))
            << "op " << static_cast<int>(op) << " rows " << s.rows << " K " << s.K;
      }
    }
  }
}

TEST_F(InfoGpu, BadRowIsReportedLikeTheCpuAndOutputUntouched) {
  for (std::int64_t K : {8, 4096}) {  // both kernel shapes
    auto p = test::random_distributions(300, K, 7);
    p[211 * K + 3] += 0.01f;  // row 211 now sums to 1.01
    auto dp = test::to_device(ctx, p);
    Buffer<float> dout(ctx, 300);
    dout.fill_bytes(0);
    const std::string m = error_of([&] { entropy(ctx, dp.data(), 300, K, dout.data()); });
    const std::string head = "genai::entropy: argument 'p' row 211 sums to ";
    ASSERT_EQ(m.find(head), 0u) << m;
    EXPECT_NEAR(std::stod(m.substr(head.size())), 1.01, 1e-5) << m;
    for (float v : dout.to_host()) ASSERT_EQ(v, 0.0f);
  }
}

TEST_F(InfoGpu, ZeroQGivesInfinityOnTheDevice) {
  const std::vector<float> p = {0.5f, 0.5f}, q = {1.0f, 0.0f};
  auto dp = test::to_device(ctx, p), dq = test::to_device(ctx, q);
  Buffer<float> dout(ctx, 1);
  kl_divergence(ctx, dp.data(), dq.data(), 1, 2, dout.data());
  EXPECT_EQ(dout.to_host()[0], kInf);
}

}  // namespace
}  // namespace genai
