// The info module on the GPU: every op against the CPU reference, bad rows reported as on the
// CPU, infinities on the device.
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

constexpr float kInf = std::numeric_limits<float>::infinity();
using test::error_of;

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
                  Shape{5, test::sized<std::int64_t>(100'000, 5000)}}) {
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
