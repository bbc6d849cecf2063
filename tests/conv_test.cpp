// The conv module on the CPU: the implicit-GEMM formulation (genai/detail/conv.hpp, which the
// GPU kernel runs) against the convolution's definition; the double oracle's backward against
// finite differences (conv w.r.t. x, W, b; batch norm w.r.t. x, gamma, beta; pools; the whole
// block); the library (im2col + CBLAS, float) against the oracle; batch norm's running
// statistics against their definition and against PyTorch's numbers; the seed's ResNet block
// test (4.4), the Jacobian I + J_F of 4.2(b), receptive fields (4.1, with the erratum of
// 4.1(b)) by the formula and on the real layers; bad input.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "conv_test_util.hpp"
#include "genai/conv.hpp"
#include "genai/nn.hpp"
#include "test_util.hpp"

namespace genai {
namespace {

using test::Vec;
const Context kCpu = Context::cpu();
const test::Tolerance kFp32 = test::tolerance(test::DType::FP32);


// max |a - b| / max(1, max |b|).
double max_rel(const Vec& a, const Vec& b) {
  double err = 0, scale = 1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return err / scale;
}

double dot(const Vec& a, const Vec& b) { return std::inner_product(a.begin(), a.end(), b.begin(), 0.0); }

// ---- the implicit GEMM -------------------------------------------------------------------------

// Every element of the three GEMMs, from the operand gathers the kernel uses, equals the
// convolution's definition; and the output rows and columns cover each output once.
TEST(ConvImplicitGemm, GathersAreTheConvolution) {
  std::uint64_t seed = 1;
  for (const Conv2dShape& s : test::conv_test_shapes()) {
    SCOPED_TRACE(::testing::Message() << "N" << s.batch << " C" << s.in_channels << " " << s.height
                                      << "x" << s.width << " K" << s.out_channels << " R"
                                      << s.kernel_h << "x" << s.kernel_w << " s" << s.stride_h
                                      << "," << s.stride_w << " p" << s.pad_h << "," << s.pad_w
                                      << " d" << s.dilation_h << "," << s.dilation_w);
    const auto x = test::normals(test::x_size(s), seed++), W = test::normals(test::w_size(s), seed++);
    const auto dy = test::normals(test::y_size(s), seed++);
    const detail::ConvGeometry g = test::geometry_of(s);
    const Vec y = test::conv_forward_d(s, test::to_double(x), test::to_double(W), {});
    const test::ConvGradsD grads =
        test::conv_backward_d(s, test::to_double(x), test::to_double(W), test::to_double(dy));
    std::vector<float> sink(1);
    const struct {
      const char* name;
      detail::ImplicitGemm G;
      const Vec* want;
    } gemms[] = {{"forward", detail::conv_forward_gemm(g, x.data(), W.data(), sink.data()), &y},
                 {"data", detail::conv_data_gemm(g, dy.data(), W.data(), sink.data()), &grads.dx},
                 {"weight", detail::conv_weight_gemm(g, x.data(), dy.data(), sink.data()), &grads.dW}};
    for (const auto& [name, G, want] : gemms) {
      SCOPED_TRACE(name);
      ASSERT_EQ(static_cast<std::size_t>(G.M) * G.N, want->size());
      std::vector<int> seen(want->size(), 0);
      for (std::int64_t m = 0; m < G.M; ++m)
        for (std::int64_t n = 0; n < G.N; ++n) {
          double c = 0;
          for (std::int64_t k = 0; k < G.K; ++k)
            c += static_cast<double>(detail::gemm_operand(G.a, G.divide_a, m, k)) *
                 detail::gemm_operand(G.b, false, n, k);
          const std::int64_t at = G.c.rows.entry(m).off + n * G.c.ldn;
          ASSERT_TRUE(at >= 0 && at < static_cast<std::int64_t>(want->size()));
          ++seen[at];
          ASSERT_NEAR(c, (*want)[at], 1e-12 * (1 + std::abs((*want)[at]))) << "m " << m << " n " << n;
        }
      for (int v : seen) ASSERT_EQ(v, 1);
      // Rows and depths past the end gather zeros.
      EXPECT_EQ(detail::gemm_operand(G.a, G.divide_a, G.M, 0), 0.0f);
      EXPECT_EQ(detail::gemm_operand(G.a, G.divide_a, 0, G.K), 0.0f);
      EXPECT_EQ(detail::gemm_operand(G.b, false, G.N, 0), 0.0f);
    }
  }
}

TEST(ConvImplicitGemm, Tf32RoundingIsNearestTiesAway) {
  auto r = [](float v) {
    return std::bit_cast<float>(detail::tf32_bits(std::bit_cast<std::uint32_t>(v)));
  };
  EXPECT_EQ(r(1.0f), 1.0f);
  EXPECT_EQ(r(1.0f + 0x1p-11f), 1.0f + 0x1p-10f);  // a tie: away from zero
  EXPECT_EQ(r(-(1.0f + 0x1p-11f)), -(1.0f + 0x1p-10f));
  EXPECT_EQ(r(1.0f + 0x1p-11f - 0x1p-23f), 1.0f);  // below the tie: down
  EXPECT_EQ(r(1.0f + 3 * 0x1p-12f), 1.0f + 0x1p-10f);
  EXPECT_TRUE(std::isinf(r(INFINITY)));
  EXPECT_TRUE(std::isnan(r(NAN)));
}

// ---- convolution -----------------------------------------------------------------------------

// The oracle's backward is the gradient of L = sum dy y (central differences: L is linear in
// each argument, so they are exact up to rounding).
TEST(ConvOracle, BackwardIsTheGradient) {
  std::uint64_t seed = 10;
  for (const Conv2dShape& s : test::conv_test_shapes()) {
    const Vec x = test::to_double(test::normals(test::x_size(s), seed++));
    const Vec W = test::to_double(test::normals(test::w_size(s), seed++));
    const Vec b = test::to_double(test::normals(s.out_channels, seed++));
    const Vec dy = test::to_double(test::normals(test::y_size(s), seed++));
    const test::ConvGradsD g = test::conv_backward_d(s, x, W, dy);
    const Vec fx = test::numeric_gradient([&](const Vec& v) { return dot(dy, test::conv_forward_d(s, v, W, b)); }, x, 0.5);
    const Vec fW = test::numeric_gradient([&](const Vec& v) { return dot(dy, test::conv_forward_d(s, x, v, b)); }, W, 0.5);
    const Vec fb = test::numeric_gradient([&](const Vec& v) { return dot(dy, test::conv_forward_d(s, x, W, v)); }, b, 0.5);
    EXPECT_LT(max_rel(g.dx, fx), 1e-12);
    EXPECT_LT(max_rel(g.dW, fW), 1e-12);
    EXPECT_LT(max_rel(g.db, fb), 1e-12);
  }
}

TEST(Conv, ForwardMatchesOracle) {
  std::uint64_t seed = 20;
  for (const Conv2dShape& s : test::conv_test_shapes())
    for (const bool bias : {true, false}) {
      const auto x = test::normals(test::x_size(s), seed++), W = test::normals(test::w_size(s), seed++);
      const auto b = test::normals(s.out_channels, seed++);
      std::vector<float> y(test::y_size(s));
      test::poison(y);
      conv2d_forward(kCpu, s, x.data(), W.data(), bias ? b.data() : nullptr, y.data());
      EXPECT_TRUE(test::close(y, test::conv_forward_d(s, test::to_double(x), test::to_double(W),
                                                      bias ? test::to_double(b) : Vec()),
                              kFp32));
    }
}

TEST(Conv, BackwardMatchesOracle) {
  std::uint64_t seed = 30;
  for (const Conv2dShape& s : test::conv_test_shapes())
    for (const bool accumulate : {false, true}) {
      const auto x = test::normals(test::x_size(s), seed++), W = test::normals(test::w_size(s), seed++);
      const auto dy = test::normals(test::y_size(s), seed++);
      const auto dW0 = test::normals(test::w_size(s), seed++), db0 = test::normals(s.out_channels, seed++);
      std::vector<float> dx(test::x_size(s)), dW = dW0, db = db0;
      test::poison(dx);
      if (!accumulate) test::poison(dW), test::poison(db);
      conv2d_backward(kCpu, s, x.data(), W.data(), dy.data(), dx.data(), dW.data(), db.data(),
                      {.accumulate = accumulate});
      test::ConvGradsD g = test::conv_backward_d(s, test::to_double(x), test::to_double(W), test::to_double(dy));
      if (accumulate)
        for (std::size_t i = 0; i < g.dW.size(); ++i) g.dW[i] += dW0[i];
      if (accumulate)
        for (std::size_t i = 0; i < g.db.size(); ++i) g.db[i] += db0[i];
      EXPECT_TRUE(test::close(dx, g.dx, kFp32));
      EXPECT_TRUE(test::close(dW, g.dW, kFp32));
      EXPECT_TRUE(test::close(db, g.db, kFp32));
    }
}

// Null outputs are not computed (and need no input beyond their own); an empty batch gives
// zero weight gradients.
TEST(Conv, BackwardPartsAndEmptyBatch) {
  const Conv2dShape s = test::conv_test_shapes()[0];
  const auto x = test::normals(test::x_size(s), 40), W = test::normals(test::w_size(s), 41);
  const auto dy = test::normals(test::y_size(s), 42);
  std::vector<float> dx(test::x_size(s)), db(s.out_channels);
  conv2d_backward(kCpu, s, nullptr, W.data(), dy.data(), dx.data(), nullptr, nullptr);
  conv2d_backward(kCpu, s, nullptr, nullptr, dy.data(), nullptr, nullptr, db.data());
  const test::ConvGradsD g = test::conv_backward_d(s, test::to_double(x), test::to_double(W), test::to_double(dy));
  EXPECT_TRUE(test::close(dx, g.dx, kFp32));
  EXPECT_TRUE(test::close(db, g.db, kFp32));
  Conv2dShape empty = s;
  empty.batch = 0;
  std::vector<float> dW(test::w_size(s), 5.0f);
  conv2d_backward(kCpu, empty, nullptr, nullptr, nullptr, nullptr, dW.data(), db.data());
  EXPECT_EQ(dW, std::vector<float>(dW.size(), 0.0f));
  EXPECT_EQ(db, std::vector<float>(db.size(), 0.0f));
}

// ---- batch normalisation ---------------------------------------------------------------------

struct BnCase {
  BatchNormShape s;
  bool training;
};
// (Two values per channel would make the training dx exactly 0: x̂ = ±1 then cancels dy.)
constexpr BnCase kBnCases[] = {{{3, 4, 5}, true}, {{3, 3, 1}, true}, {{4, 2, 6}, false}};

TEST(BatchNormOracle, BackwardIsTheGradient) {
  std::uint64_t seed = 50;
  for (const auto& [s, training] : kBnCases) {
    const std::int64_t n = s.batch * s.channels * s.spatial, C = s.channels;
    const Vec x = test::to_double(test::normals(n, seed++, 1.0f, 2.0f));
    const Vec gamma = test::to_double(test::normals(C, seed++, 1.0f, 0.5f));
    const Vec beta = test::to_double(test::normals(C, seed++));
    const Vec dy = test::to_double(test::normals(n, seed++));
    const Vec rm = test::to_double(test::normals(C, seed++)), rv = test::to_double(test::uniforms(C, seed++, 0.5f, 2.0f));
    auto loss = [&](const Vec& xv, const Vec& gv, const Vec& bv) {
      return dot(dy, test::bn_forward_d(s, xv, gv, bv, training, rm, rv, 1e-5).y);
    };
    const test::BnGradsD g = test::bn_backward_d(s, x, gamma, test::bn_forward_d(s, x, gamma, beta, training, rm, rv, 1e-5), training, 1e-5, dy);
    EXPECT_LT(max_rel(g.dx, test::numeric_gradient([&](const Vec& v) { return loss(v, gamma, beta); }, x, 1e-5)), 1e-8);
    EXPECT_LT(max_rel(g.dgamma, test::numeric_gradient([&](const Vec& v) { return loss(x, v, beta); }, gamma, 1e-5)), 1e-8);
    EXPECT_LT(max_rel(g.dbeta, test::numeric_gradient([&](const Vec& v) { return loss(x, gamma, v); }, beta, 1e-5)), 1e-8);
  }
}

TEST(BatchNorm, ForwardAndBackwardMatchOracle) {
  std::uint64_t seed = 60;
  for (const auto& [s, training] : kBnCases)
    for (const bool affine : {true, false}) {
      SCOPED_TRACE(::testing::Message() << s.batch << "x" << s.channels << "x" << s.spatial
                                        << (training ? " training" : " eval")
                                        << (affine ? " affine" : ""));
      const std::int64_t n = s.batch * s.channels * s.spatial, C = s.channels;
      const auto x = test::normals(n, seed++, 3.0f, 2.0f), dy = test::normals(n, seed++);
      const auto gamma = test::normals(C, seed++, 1.0f, 0.5f), beta = test::normals(C, seed++);
      const auto rm0 = test::normals(C, seed++), rv0 = test::uniforms(C, seed++, 0.5f, 2.0f);
      std::vector<float> y(n), rm = rm0, rv = rv0, mean(C), invstd(C), dx(n), dg(C), db(C);
      test::poison(y);
      batch_norm_forward(kCpu, s, x.data(), affine ? gamma.data() : nullptr,
                         affine ? beta.data() : nullptr, rm.data(), rv.data(), y.data(),
                         {.training = training, .save_mean = mean.data(), .save_invstd = invstd.data()});
      const Vec g = affine ? test::to_double(gamma) : Vec(C, 1.0), b = affine ? test::to_double(beta) : Vec(C, 0.0);
      const test::BnD ref = test::bn_forward_d(s, test::to_double(x), g, b, training,
                                               test::to_double(rm0), test::to_double(rv0), 1e-5);
      EXPECT_TRUE(test::close(y, ref.y, kFp32));
      for (std::int64_t c = 0; c < C; ++c) {
        EXPECT_NEAR(mean[c], ref.mean[c], 1e-6 * (1 + std::abs(ref.mean[c])));
        EXPECT_NEAR(invstd[c], 1 / std::sqrt(ref.var[c] + 1e-5), 1e-6 / std::sqrt(ref.var[c] + 1e-5));
      }
      batch_norm_backward(kCpu, s, x.data(), affine ? gamma.data() : nullptr, mean.data(),
                          invstd.data(), dy.data(), dx.data(), dg.data(), db.data(),
                          {.training = training});
      const test::BnGradsD gr = test::bn_backward_d(s, test::to_double(x), g, ref, training, 1e-5, test::to_double(dy));
      EXPECT_TRUE(test::close(dx, gr.dx, kFp32));
      EXPECT_TRUE(test::close(dg, gr.dgamma, kFp32));
      EXPECT_TRUE(test::close(db, gr.dbeta, kFp32));
    }
}

// running = (1 - m) running + m stat, the variance unbiased (M / (M - 1)); evaluation mode
// leaves them alone and normalises with them.
TEST(BatchNorm, RunningStatisticsFollowTheirDefinition) {
  const BatchNormShape s{5, 3, 4};
  const std::int64_t n = 60, M = 20;
  for (const float momentum : {0.1f, 0.3f, 1.0f, 0.0f}) {
    std::vector<float> rm = {0.5f, -1.0f, 2.0f}, rv = {1.0f, 2.0f, 0.5f}, y(n);
    Vec erm(rm.begin(), rm.end()), erv(rv.begin(), rv.end());
    for (int step = 0; step < 3; ++step) {
      const auto x = test::normals(n, 70 + step, static_cast<float>(step), 1.5f);
      batch_norm_forward(kCpu, s, x.data(), nullptr, nullptr, rm.data(), rv.data(), y.data(),
                         {.momentum = momentum});
      for (int c = 0; c < 3; ++c) {
        double mean = 0, ss = 0;
        for (int b = 0; b < 5; ++b)
          for (int l = 0; l < 4; ++l) mean += x[(b * 3 + c) * 4 + l];
        mean /= M;
        for (int b = 0; b < 5; ++b)
          for (int l = 0; l < 4; ++l) ss += std::pow(x[(b * 3 + c) * 4 + l] - mean, 2);
        erm[c] = (1 - momentum) * erm[c] + momentum * mean;
        erv[c] = (1 - momentum) * erv[c] + momentum * ss / (M - 1);
        EXPECT_NEAR(rm[c], erm[c], 1e-6) << "momentum " << momentum << " step " << step;
        EXPECT_NEAR(rv[c], erv[c], 1e-6) << "momentum " << momentum << " step " << step;
      }
    }
    const std::vector<float> keep_m = rm, keep_v = rv, x = test::normals(n, 80);
    batch_norm_forward(kCpu, s, x.data(), nullptr, nullptr, rm.data(), rv.data(), y.data(),
                       {.training = false});
    EXPECT_EQ(rm, keep_m);
    EXPECT_EQ(rv, keep_v);
    for (int i = 0; i < n; ++i) {
      const int c = (i / 4) % 3;
      EXPECT_NEAR(y[i], (x[i] - rm[c]) / std::sqrt(rv[c] + 1e-5), 1e-5);
    }
  }
}

// torch.nn.BatchNorm1d(2) (momentum 0.1, eps 1e-5) on two batches, then in eval(): these are
// its outputs and running statistics, worked out by hand. Batch 1, x = [[1, 2], [3, 6]]:
// channel means (2, 4), biased variances (1, 4), unbiased (2, 8): running_mean (0.2, 0.4),
// running_var (0.9 + 0.2, 0.9 + 0.8) = (1.1, 1.7), y = +-1 / sqrt(1 + 1e-5), +-2 / sqrt(4 + 1e-5).
// Batch 2, x = [[0, 1], [1, 1], [2, 4]]: means (1, 2), biased variances (2/3, 2), unbiased (1, 3):
// running_mean (0.28, 0.56), running_var (1.09, 1.83). eval() on [[1, 1]]:
// ((1 - 0.28) / sqrt(1.09 + 1e-5), (1 - 0.56) / sqrt(1.83 + 1e-5)) = (0.68963176, 0.32525650).
TEST(BatchNorm, MatchesPyTorchNumbers) {
  std::vector<float> rm = {0.0f, 0.0f}, rv = {1.0f, 1.0f}, y(4);
  const std::vector<float> x1 = {1, 2, 3, 6};
  batch_norm_forward(kCpu, {2, 2, 1}, x1.data(), nullptr, nullptr, rm.data(), rv.data(), y.data());
  const double a = 1 / std::sqrt(1 + 1e-5), b = 2 / std::sqrt(4 + 1e-5);
  const double want1[] = {-a, -b, a, b};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y[i], want1[i], 1e-6);
  EXPECT_NEAR(rm[0], 0.2, 1e-7);
  EXPECT_NEAR(rm[1], 0.4, 1e-7);
  EXPECT_NEAR(rv[0], 1.1, 1e-6);
  EXPECT_NEAR(rv[1], 1.7, 1e-6);
  const std::vector<float> x2 = {0, 1, 1, 1, 2, 4};
  std::vector<float> y2(6);
  batch_norm_forward(kCpu, {3, 2, 1}, x2.data(), nullptr, nullptr, rm.data(), rv.data(), y2.data());
  EXPECT_NEAR(rm[0], 0.28, 1e-6);
  EXPECT_NEAR(rm[1], 0.56, 1e-6);
  EXPECT_NEAR(rv[0], 1.09, 1e-6);
  EXPECT_NEAR(rv[1], 1.83, 1e-6);
  EXPECT_NEAR(y2[0], -1.2247356, 1e-6);  // (0 - 1) / sqrt(2/3 + 1e-5)
  EXPECT_NEAR(y2[5], 1.4142101, 1e-6);   // (4 - 2) / sqrt(2 + 1e-5)
  const std::vector<float> x3 = {1, 1};
  std::vector<float> y3(2);
  batch_norm_forward(kCpu, {1, 2, 1}, x3.data(), nullptr, nullptr, rm.data(), rv.data(), y3.data(),
                     {.training = false});
  EXPECT_NEAR(y3[0], 0.68963176, 1e-6);
  EXPECT_NEAR(y3[1], 0.32525650, 1e-6);
}

// ---- pools -----------------------------------------------------------------------------------

std::vector<Pool2dShape> pool_shapes() {
  return {{.batch = 2, .channels = 3, .height = 6, .width = 7},  // 2x2 / 2, a ragged edge
          {.batch = 1, .channels = 2, .height = 7, .width = 6, .kernel_h = 3, .kernel_w = 3,
           .stride_h = 2, .stride_w = 1, .pad_h = 1, .pad_w = 1},  // overlapping, padded
          {.batch = 2, .channels = 1, .height = 5, .width = 8, .kernel_h = 2, .kernel_w = 4,
           .stride_h = 1, .stride_w = 3, .pad_h = 1, .pad_w = 2}};
}

// Distinct values at least 0.01 apart, so a max pool has no ties and finite differences stay on
// one linear piece.
std::vector<float> distinct_values(std::int64_t n, std::uint64_t seed) {
  std::vector<float> v(n);
  const auto u = test::uniforms(n, seed);
  std::vector<std::int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](auto a, auto b) { return u[a] < u[b]; });
  for (std::int64_t i = 0; i < n; ++i) v[order[i]] = 0.01f * static_cast<float>(i) - 1.0f;
  return v;
}

TEST(PoolOracle, BackwardIsTheGradient) {
  std::uint64_t seed = 90;
  for (const Pool2dShape& s : pool_shapes())
    for (const bool max : {true, false}) {
      const std::int64_t nx = s.batch * s.channels * s.height * s.width;
      const std::int64_t ny = s.batch * s.channels * s.out_height() * s.out_width();
      const Vec x = test::to_double(distinct_values(nx, seed++)), dy = test::to_double(test::normals(ny, seed++));
      for (const bool cip : {true, false}) {
        const Vec g = test::pool_backward_d(s, test::pool_forward_d(s, x, max, cip), dy, max, cip);
        const Vec f = test::numeric_gradient([&](const Vec& v) { return dot(dy, test::pool_forward_d(s, v, max, cip).y); }, x, 1e-3);
        EXPECT_LT(max_rel(g, f), 1e-9) << (max ? "max" : "avg") << " cip " << cip;
      }
    }
}

TEST(Pool, ForwardAndBackwardMatchOracle) {
  std::uint64_t seed = 100;
  for (const Pool2dShape& s : pool_shapes()) {
    const std::int64_t nx = s.batch * s.channels * s.height * s.width;
    const std::int64_t ny = s.batch * s.channels * s.out_height() * s.out_width();
    const auto x = test::normals(nx, seed++), dy = test::normals(ny, seed++);
    std::vector<float> y(ny), dx(nx);
    std::vector<std::int32_t> idx(ny, -7);
    test::poison(y);
    test::poison(dx);
    max_pool2d_forward(kCpu, s, x.data(), y.data(), idx.data());
    const test::PoolD mref = test::pool_forward_d(s, test::to_double(x), true, true);
    EXPECT_TRUE(test::close(y, mref.y, kFp32));
    EXPECT_EQ(idx, mref.arg);
    max_pool2d_backward(kCpu, s, dy.data(), idx.data(), dx.data());
    EXPECT_TRUE(test::close(dx, test::pool_backward_d(s, mref, test::to_double(dy), true, true), kFp32));
    for (const bool cip : {true, false}) {
      test::poison(y);
      test::poison(dx);
      avg_pool2d_forward(kCpu, s, x.data(), y.data(), {.count_include_pad = cip});
      const test::PoolD aref = test::pool_forward_d(s, test::to_double(x), false, cip);
      EXPECT_TRUE(test::close(y, aref.y, kFp32));
      avg_pool2d_backward(kCpu, s, dy.data(), dx.data(), {.count_include_pad = cip});
      EXPECT_TRUE(test::close(dx, test::pool_backward_d(s, aref, test::to_double(dy), false, cip), kFp32));
    }
  }
}

// ---- the residual block (4.4, 4.2) -----------------------------------------------------------

// The seed's test: ResidualBlock(64) maps x [1, 64, 32, 32] to the same shape; every output
// element is written and is the oracle's.
TEST(ResidualBlock, SeedShapeTest) {
  ResidualBlock block(kCpu, {.channels = 64});
  block.init(1);
  const std::int64_t n = 1 * 64 * 32 * 32;
  const auto x = test::normals(n, 110);
  std::vector<float> y(n);
  test::poison(y);
  ResidualBlockWorkspace ws;
  block.forward(ws, x.data(), 1, 32, 32, y.data());
  EXPECT_EQ(y.size(), x.size());
  EXPECT_TRUE(std::all_of(y.begin(), y.end(), [](float v) { return std::isfinite(v); }));
  // Training mode: batch statistics, so the running ones (moved by the forward) do not matter.
  EXPECT_TRUE(test::close(y, test::block_forward_d(test::block_d(block), test::to_double(x), 1, 32, 32), kFp32));
}

struct BlockCase {
  std::int64_t N, C, H, W;
  bool relu_after_sum, training;
};
constexpr BlockCase kBlockCases[] = {
    {2, 3, 5, 4, false, true}, {2, 2, 4, 4, true, true}, {3, 2, 3, 5, false, false}};

// A block with random BN parameters and running statistics (so that none is the identity).
ResidualBlock random_block(const Context& ctx, const BlockCase& c, std::uint64_t seed) {
  ResidualBlock b(ctx, {.channels = c.C, .relu_after_sum = c.relu_after_sum});
  b.init(seed);
  b.train(c.training);
  const std::int64_t C = c.C;
  std::vector<float> p(b.parameter_count());
  detail::copy_bytes(kCpu, p.data(), Device::CPU, b.parameters(), ctx.device(), p.size() * 4);
  const auto noise = test::normals(4 * C, seed + 1, 0.0f, 0.3f);
  for (const std::int64_t at : {9 * C * C, 9 * C * C + C, 18 * C * C + 2 * C, 18 * C * C + 3 * C})
    for (std::int64_t i = 0; i < C; ++i) p[at + i] += noise[(at + i) % (4 * C)];
  detail::copy_bytes(kCpu, b.parameters(), ctx.device(), p.data(), Device::CPU, p.size() * 4);
  std::vector<float> r = test::uniforms(4 * C, seed + 2, 0.5f, 1.5f);
  for (std::int64_t i = 0; i < C; ++i) r[i] -= 1.0f, r[2 * C + i] -= 1.0f;  // means around 0
  detail::copy_bytes(kCpu, b.running_stats(), ctx.device(), r.data(), Device::CPU, r.size() * 4);
  return b;
}

TEST(ResidualBlockOracle, BackwardIsTheGradient) {
  std::uint64_t seed = 120;
  for (const BlockCase& c : kBlockCases) {
    ResidualBlock b = random_block(kCpu, c, seed++);
    const test::BlockD m = test::block_d(b);
    const std::int64_t n = c.N * c.C * c.H * c.W;
    const Vec x = test::to_double(test::normals(n, seed++)), dy = test::to_double(test::normals(n, seed++));
    test::BlockTapeD tape;
    test::block_forward_d(m, x, c.N, c.H, c.W, &tape);
    const test::BlockGradsD g = test::block_backward_d(m, x, tape, c.N, c.H, c.W, dy);
    auto loss_x = [&](const Vec& v) { return dot(dy, test::block_forward_d(m, v, c.N, c.H, c.W)); };
    EXPECT_LT(max_rel(g.dx, test::numeric_gradient(loss_x, x, 1e-6)), 1e-6);
    for (Vec test::BlockD::* field : {&test::BlockD::w1, &test::BlockD::g1, &test::BlockD::b1,
                                      &test::BlockD::w2, &test::BlockD::g2, &test::BlockD::b2}) {
      auto loss = [&](const Vec& v) {
        test::BlockD mm = m;
        mm.*field = v;
        return dot(dy, test::block_forward_d(mm, x, c.N, c.H, c.W));
      };
      const Vec& got = field == &test::BlockD::w1   ? g.dw1
                       : field == &test::BlockD::g1 ? g.dg1
                       : field == &test::BlockD::b1 ? g.db1
                       : field == &test::BlockD::w2 ? g.dw2
                       : field == &test::BlockD::g2 ? g.dg2
                                                    : g.db2;
      EXPECT_LT(max_rel(got, test::numeric_gradient(loss, m.*field, 1e-6)), 1e-6);
    }
  }
}

TEST(ResidualBlock, ForwardBackwardMatchOracle) {
  std::uint64_t seed = 130;
  for (const BlockCase& c : kBlockCases)
    for (const bool accumulate : {false, true}) {
      ResidualBlock b = random_block(kCpu, c, seed++);
      const test::BlockD m = test::block_d(b);
      const std::int64_t n = c.N * c.C * c.H * c.W;
      const auto x = test::normals(n, seed++), dy = test::normals(n, seed++);
      const auto g0 = test::normals(b.parameter_count(), seed++);
      std::vector<float> y(n), dx(n);
      test::poison(y);
      test::poison(dx);
      if (accumulate) std::copy(g0.begin(), g0.end(), b.gradients());
      ResidualBlockWorkspace ws;
      b.forward(ws, x.data(), c.N, c.H, c.W, y.data());
      b.backward(ws, dy.data(), dx.data(), accumulate);
      test::BlockTapeD tape;
      const Vec y_ref = test::block_forward_d(m, test::to_double(x), c.N, c.H, c.W, &tape);
      const test::BlockGradsD g = test::block_backward_d(m, test::to_double(x), tape, c.N, c.H, c.W, test::to_double(dy));
      Vec flat = test::block_flat_grads(g);
      if (accumulate)
        for (std::size_t i = 0; i < flat.size(); ++i) flat[i] += g0[i];
      const std::vector<float> grads(b.gradients(), b.gradients() + b.parameter_count());
      EXPECT_TRUE(test::close(y, y_ref, kFp32));
      EXPECT_TRUE(test::close(dx, g.dx, kFp32));
      EXPECT_TRUE(test::close(grads, flat, kFp32));
      // Training mode moved the running statistics as batch_norm_forward does.
      const test::BlockD after = test::block_d(b);
      for (std::int64_t i = 0; i < c.C; ++i) {
        const double mom = 0.1, M = static_cast<double>(c.N * c.H * c.W);
        const double em = c.training ? (1 - mom) * m.rm1[i] + mom * tape.bn1.mean[i] : m.rm1[i];
        const double ev = c.training ? (1 - mom) * m.rv2[i] + mom * tape.bn2.var[i] * M / (M - 1) : m.rv2[i];
        EXPECT_NEAR(after.rm1[i], em, 1e-6);
        EXPECT_NEAR(after.rv2[i], ev, 1e-5);
      }
    }
}

// 4.2(b): the Jacobian of f(x) = x + F(x) is I + J_F. Rows of J from the library's backward
// (dy = e_i), J_F from central differences of the oracle's F = f - x.
TEST(ResidualBlock, JacobianIsIdentityPlusJF) {
  const BlockCase c{2, 2, 3, 3, false, true};
  ResidualBlock b = random_block(kCpu, c, 140);
  const test::BlockD m = test::block_d(b);
  const std::int64_t n = c.N * c.C * c.H * c.W;
  const auto x = test::normals(n, 141);
  std::vector<float> y(n), dx(n), e(n, 0.0f);
  ResidualBlockWorkspace ws;
  double max_gap = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    b.forward(ws, x.data(), c.N, c.H, c.W, y.data());
    e.assign(n, 0.0f);
    e[i] = 1.0f;
    b.backward(ws, e.data(), dx.data());  // row i of J
    auto Fi = [&](const Vec& v) {
      const Vec out = test::block_forward_d(m, v, c.N, c.H, c.W);
      return out[i] - v[i];  // F(x)_i
    };
    const Vec jf = test::numeric_gradient(Fi, test::to_double(x), 1e-6);
    for (std::int64_t j = 0; j < n; ++j) max_gap = std::max(max_gap, std::abs(dx[j] - ((i == j) + jf[j])));
  }
  EXPECT_LT(max_gap, 2e-5);
}

// ---- receptive fields (4.1) ------------------------------------------------------------------

TEST(ReceptiveField, ProblemSetAnswers) {
  // 4.1(a): three 3x3 convolutions, stride 1, no padding: 3, 5, 7.
  const auto a = receptive_field(parse_field_layers("conv3,conv3,conv3"));
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0].size, 3);
  EXPECT_EQ(a[1].size, 5);
  EXPECT_EQ(a[2].size, 7);
  EXPECT_EQ(a[2].jump, 1);
  // 4.1(b): a 2x2 / stride-2 max pool after the second conv. The pool adds (2 - 1) * 1 = 1
  // (6x6) and doubles the jump, so the third conv adds (3 - 1) * 2 = 4: 10x10. The problem set's
  // answer, 14x14, is an erratum (shared/DESIGN.md, "Seed errata"): pooling doubles the jump for
  // the layers after it, it does not double the field.
  const auto b = receptive_field(parse_field_layers("conv3,conv3,maxpool2,conv3"));
  ASSERT_EQ(b.size(), 4u);
  EXPECT_EQ(b[2].size, 6);
  EXPECT_EQ(b[2].jump, 2);
  EXPECT_EQ(b[3].size, 10);
  EXPECT_EQ(b[3].jump, 2);
  EXPECT_EQ(b[3].start, 0);
  // Padding moves the start, dilation widens: conv3p1 starts at -1; conv3d2 adds 4.
  const auto c = receptive_field(parse_field_layers("conv3p1,conv3d2,conv3s2"));
  EXPECT_EQ(c[0].start, -1);
  EXPECT_EQ(c[1].size, 7);
  EXPECT_EQ(c[2].size, 9);
  EXPECT_EQ(c[2].jump, 2);
}

TEST(ReceptiveField, ParsesAndPrints) {
  const auto layers = parse_field_layers(" Conv3, maxpool2 ,conv3s2p1d2,avgpool3s1p1");
  ASSERT_EQ(layers.size(), 4u);
  EXPECT_EQ(layers[1].kind, FieldLayer::Kind::MaxPool);
  EXPECT_EQ(layers[1].stride, 2);  // a pool's stride defaults to its kernel
  EXPECT_EQ(layers[2].stride, 2);
  EXPECT_EQ(layers[2].padding, 1);
  EXPECT_EQ(layers[2].dilation, 2);
  EXPECT_EQ(layers[3].kind, FieldLayer::Kind::AvgPool);
  std::string joined;
  for (const FieldLayer& l : layers) {
    if (!joined.empty()) joined += ',';
    joined += to_string(l);
  }
  EXPECT_EQ(joined, "conv3,maxpool2,conv3s2p1d2,avgpool3s1p1");
  for (const char* bad : {"", "conv", "conv3,", "pool2", "conv3x", "conv3s0", "conv3s2s2", "conv0"})
    test::expect_argument_error([&] { parse_field_layers(bad); }, "'spec'");
}

// The field checked on the real layers: one output's gradient (one-hot dy) back-propagated
// through the convolutions (all weights positive, so nothing cancels) and the pool as an
// average pool of the same geometry (a max pool's gradient reaches one input per window)
// reaches exactly a field-sized square of inputs. With the max pool it reaches a subset.
std::int64_t reached_inputs(const std::vector<FieldLayer>& layers, std::int64_t size,
                            bool pool_as_average, std::int64_t* side = nullptr) {
  const Context& ctx = kCpu;
  std::vector<std::int64_t> sizes = {size};
  for (const FieldLayer& l : layers)
    sizes.push_back(detail::conv_out_size(sizes.back(), l.kernel, l.stride, l.padding, l.dilation));
  std::vector<std::vector<float>> acts(layers.size() + 1);
  acts[0] = test::uniforms(size * size, 150, 0.1f, 1.0f);
  std::vector<std::vector<std::int32_t>> idx(layers.size());
  const std::vector<float> W = test::uniforms(9 * 9, 151, 0.1f, 1.0f);  // up to 9x9, 1 channel
  auto conv_shape = [&](std::size_t i) {
    const FieldLayer& l = layers[i];
    return Conv2dShape{.batch = 1, .in_channels = 1, .height = sizes[i], .width = sizes[i],
                       .out_channels = 1, .kernel_h = l.kernel, .kernel_w = l.kernel,
                       .stride_h = l.stride, .stride_w = l.stride, .pad_h = l.padding,
                       .pad_w = l.padding, .dilation_h = l.dilation, .dilation_w = l.dilation};
  };
  auto pool_shape = [&](std::size_t i) {
    const FieldLayer& l = layers[i];
    return Pool2dShape{.batch = 1, .channels = 1, .height = sizes[i], .width = sizes[i],
                       .kernel_h = l.kernel, .kernel_w = l.kernel, .stride_h = l.stride,
                       .stride_w = l.stride, .pad_h = l.padding, .pad_w = l.padding};
  };
  for (std::size_t i = 0; i < layers.size(); ++i) {
    acts[i + 1].resize(sizes[i + 1] * sizes[i + 1]);
    idx[i].resize(acts[i + 1].size());
    if (layers[i].kind == FieldLayer::Kind::Conv)
      conv2d_forward(ctx, conv_shape(i), acts[i].data(), W.data(), nullptr, acts[i + 1].data());
    else if (layers[i].kind == FieldLayer::Kind::MaxPool && !pool_as_average)
      max_pool2d_forward(ctx, pool_shape(i), acts[i].data(), acts[i + 1].data(), idx[i].data());
    else
      avg_pool2d_forward(ctx, pool_shape(i), acts[i].data(), acts[i + 1].data());
  }
  const std::int64_t last = sizes.back();
  std::vector<float> g(last * last, 0.0f);
  g[(last / 2) * last + last / 2] = 1.0f;  // one output in the middle
  for (std::size_t i = layers.size(); i-- > 0;) {
    std::vector<float> gi(sizes[i] * sizes[i]);
    if (layers[i].kind == FieldLayer::Kind::Conv)
      conv2d_backward(ctx, conv_shape(i), nullptr, W.data(), g.data(), gi.data(), nullptr, nullptr);
    else if (layers[i].kind == FieldLayer::Kind::MaxPool && !pool_as_average)
      max_pool2d_backward(ctx, pool_shape(i), g.data(), idx[i].data(), gi.data());
    else
      avg_pool2d_backward(ctx, pool_shape(i), g.data(), gi.data());
    g = std::move(gi);
  }
  std::int64_t count = 0, h0 = size, h1 = -1, w0 = size, w1 = -1;
  for (std::int64_t h = 0; h < size; ++h)
    for (std::int64_t w = 0; w < size; ++w)
      if (g[h * size + w] != 0.0f) {
        ++count;
        h0 = std::min(h0, h), h1 = std::max(h1, h), w0 = std::min(w0, w), w1 = std::max(w1, w);
      }
  if (side) *side = (h1 - h0 + 1) * 1000 + (w1 - w0 + 1);  // the bounding box, rows * 1000 + cols
  return count;
}

TEST(ReceptiveField, EmpiricalOnTheLayers) {
  std::int64_t box = 0;
  const auto a = parse_field_layers("conv3,conv3,conv3");
  EXPECT_EQ(reached_inputs(a, 16, true, &box), 7 * 7);  // 4.1(a)
  EXPECT_EQ(box, 7007);
  const auto b = parse_field_layers("conv3,conv3,maxpool2,conv3");
  EXPECT_EQ(reached_inputs(b, 20, true, &box), 10 * 10);  // 4.1(b): 10x10 (the seed's 14x14 is an erratum)
  EXPECT_EQ(box, 10010);
  const std::int64_t through_max = reached_inputs(b, 20, false, &box);
  EXPECT_GT(through_max, 0);
  EXPECT_LE(through_max, 10 * 10);  // one input per pooling window: inside the field
  EXPECT_LE(box / 1000, 10);
  EXPECT_LE(box % 1000, 10);
  for (const char* spec : {"conv3p1,conv3d2,avgpool3s2p1,conv5s2", "conv5s2,conv3,avgpool2,conv3"}) {
    const auto layers = parse_field_layers(spec);
    const std::int64_t size = receptive_field(layers).back().size;
    EXPECT_EQ(reached_inputs(layers, 48, true, &box), size * size) << spec;
    EXPECT_EQ(box, size * 1000 + size) << spec;
  }
}

// `genai receptive-field` prints the table and 4.1(b)'s field; a bad layer exits 2, named.
TEST(ReceptiveField, Command) {
  const char* exe = std::getenv("GENAI_CLI");
  if (!exe || !*exe) GTEST_SKIP() << "the genai program is not built (GENAI_BUILD_CLI=OFF)";
  int status = -1;
  auto run = [&](const std::string& layers) {
    std::string out;
    char buf[256];
    FILE* pipe = popen((std::string(exe) + " receptive-field --layers " + layers + " 2>&1").c_str(), "r");
    while (std::fgets(buf, sizeof buf, pipe)) out += buf;
    status = WEXITSTATUS(pclose(pipe));
    return out;
  };
  std::string out = run("conv3,conv3,maxpool2,conv3");
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("maxpool2            2      2       0        1      6      2      0\n"), std::string::npos) << out;
  EXPECT_NE(out.find("one output sees 10 x 10 input pixels; neighbouring outputs are 2 apart"), std::string::npos) << out;
  out = run("conv3,pool2");
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find("layer 2 'pool2': unknown layer"), std::string::npos) << out;
}

// ---- bad input -------------------------------------------------------------------------------

TEST(Conv, BadInputNamesTheArgumentAndWritesNothing) {
  const Conv2dShape s = test::conv_test_shapes()[0];
  const auto x = test::normals(test::x_size(s), 160), W = test::normals(test::w_size(s), 161);
  std::vector<float> y(test::y_size(s), 7.0f), dx(test::x_size(s), 7.0f);
  auto bad = [&](Conv2dShape t, const char* what) {
    test::expect_argument_error([&] { conv2d_forward(kCpu, t, x.data(), W.data(), nullptr, y.data()); }, what);
  };
  Conv2dShape t = s;
  t.in_channels = 0, bad(t, "shape.in_channels");
  t = s, t.stride_h = 0, bad(t, "shape.stride_h");
  t = s, t.pad_w = -1, bad(t, "shape.pad_w");
  t = s, t.dilation_w = 0, bad(t, "shape.dilation_w");
  t = s, t.kernel_h = 10, bad(t, "'shape' has no output");
  t = s, t.height = std::int64_t{1} << 28, bad(t, "shape.height");
  t = s, t.batch = 1 << 20, t.height = 1 << 10, t.width = 1 << 10, bad(t, "'x'");
  test::expect_argument_error([&] { conv2d_forward(kCpu, s, x.data(), nullptr, nullptr, y.data()); }, "'W'");
  test::expect_argument_error([&] { conv2d_forward(kCpu, s, nullptr, W.data(), nullptr, y.data()); }, "'x'");
  test::expect_argument_error(
      [&] { conv2d_forward(kCpu, s, x.data(), W.data(), nullptr, y.data(), {.math = static_cast<ConvMath>(9)}); },
      "opts.math");
  test::expect_argument_error(
      [&] { conv2d_backward(kCpu, s, x.data(), W.data(), nullptr, dx.data(), nullptr, nullptr); }, "'dy'");
  test::expect_argument_error(
      [&] { conv2d_backward(kCpu, s, nullptr, W.data(), x.data(), nullptr, dx.data(), nullptr); }, "'x'");
  EXPECT_EQ(y, std::vector<float>(y.size(), 7.0f));
  EXPECT_EQ(dx, std::vector<float>(dx.size(), 7.0f));
}

TEST(BatchNorm, BadInputNamesTheArgumentAndWritesNothing) {
  const auto x = test::normals(12, 170);
  std::vector<float> y(12, 7.0f), rm(3, 0.0f), rv(3, 1.0f);
  auto fwd = [&](BatchNormShape s, float* m, float* v, BatchNormOptions o) {
    return [&, s, m, v, o] { batch_norm_forward(kCpu, s, x.data(), nullptr, nullptr, m, v, y.data(), o); };
  };
  test::expect_argument_error(fwd({2, 0, 2}, rm.data(), rv.data(), {}), "shape.channels");
  test::expect_argument_error(fwd({1, 3, 1}, rm.data(), rv.data(), {}), "training needs more than 1");
  test::expect_argument_error(fwd({2, 3, 2}, nullptr, nullptr, {.training = false}), "running_mean");
  test::expect_argument_error(fwd({2, 3, 2}, rm.data(), nullptr, {}), "running_var");
  test::expect_argument_error(fwd({2, 3, 2}, rm.data(), rv.data(), {.momentum = 1.5f}), "opts.momentum");
  test::expect_argument_error(fwd({2, 3, 2}, rm.data(), rv.data(), {.eps = 0.0f}), "opts.eps");
  EXPECT_EQ(y, std::vector<float>(12, 7.0f));
  EXPECT_EQ(rm, std::vector<float>(3, 0.0f));
  test::expect_argument_error(
      [&] { batch_norm_backward(kCpu, {2, 3, 2}, x.data(), nullptr, nullptr, rv.data(), x.data(), y.data(), nullptr, nullptr); },
      "save_mean");
}

TEST(Pool, BadInputNamesTheArgument) {
  const auto x = test::normals(36, 180);
  std::vector<float> y(36);
  auto fwd = [&](Pool2dShape s) { return [&, s] { max_pool2d_forward(kCpu, s, x.data(), y.data()); }; };
  test::expect_argument_error(fwd({.batch = 1, .channels = 1, .height = 6, .width = 6, .kernel_h = 0}), "shape.kernel_h");
  test::expect_argument_error(fwd({.batch = 1, .channels = 1, .height = 6, .width = 6, .pad_h = 2}), "shape.pad_h");
  test::expect_argument_error(fwd({.batch = 1, .channels = 1, .height = 1, .width = 6}), "'shape' has no output");
  test::expect_argument_error(
      [&] { max_pool2d_backward(kCpu, {.batch = 1, .channels = 1, .height = 6, .width = 6}, x.data(), nullptr, y.data()); },
      "'indices'");
}

TEST(ResidualBlock, BadInputNamesTheArgument) {
  test::expect_argument_error([] { ResidualBlock(kCpu, {.channels = 0}); }, "opts.channels");
  test::expect_argument_error([] { ResidualBlock(kCpu, {.channels = 4, .eps = -1.0f}); }, "opts.eps");
  ResidualBlock b(kCpu, {.channels = 2});
  ResidualBlockWorkspace ws;
  std::vector<float> x(8), y(8);
  test::expect_argument_error([&] { b.backward(ws, y.data(), nullptr); }, "'ws'");
  test::expect_argument_error([&] { b.forward(ws, x.data(), 1, 1, 1, y.data()); }, "training needs more than 1");
  test::expect_argument_error([&] { b.forward(ws, x.data(), 1, 2, 2, x.data()); }, "'y' must not be x");
  ResidualBlock other(kCpu, {.channels = 2});
  b.forward(ws, x.data(), 1, 2, 2, y.data());
  test::expect_argument_error([&] { other.backward(ws, y.data(), nullptr); }, "'ws'");
}

}  // namespace
}  // namespace genai
