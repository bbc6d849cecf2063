// conv on the GPU against the double oracle of conv_test_util.hpp (the CPU tests check that
// oracle against finite differences): the implicit-GEMM convolution forward, data and weight
// gradients (TF32 tensor cores and fp32 CUDA cores; tile edges, strides, dilations, the split
// weight gradient), batch norm (training, evaluation, running statistics, backward), both
// pools, and the residual block forward + backward.
//
// Tolerances. FP32 math: the fp32 bound of test_util.hpp. TF32 math: the same fp32 bound
// against the oracle run on TF32-rounded operands (detail::tf32_bits, what cvt.rna gives the
// tensor cores; the products of two TF32 values are exact in fp32, so only the fp32 sums
// differ), and, against the unrounded oracle, at most twice the error of that rounded oracle
// (the FlashAttention rule of shared/DESIGN.md). The block in TF32 is checked by that rule only
// (its intermediate activations are rounded on the GPU from fp32 values, in the oracle from
// double ones).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "conv_test_util.hpp"
#include "genai/conv.hpp"
#include "test_util.hpp"

namespace genai {
namespace {

using test::Vec;

class ConvGpu : public test::GpuTest {};

const test::Tolerance kFp32 = test::tolerance(test::DType::FP32);

template <class T>
std::vector<T> host(const Buffer<T>& b) {
  return b.to_host();
}

// ||a - b|| / ||b|| and max |a - b| / max(1, max |b|).
struct Err {
  double rel, max;
};
Err error_of(const std::vector<float>& a, const Vec& b) {
  double d2 = 0, b2 = 0, m = 0, bm = 1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    d2 += (a[i] - b[i]) * (a[i] - b[i]);
    b2 += b[i] * b[i];
    m = std::max(m, std::abs(a[i] - b[i]));
    bm = std::max(bm, std::abs(b[i]));
  }
  return {std::sqrt(d2 / std::max(b2, 1e-300)), m / bm};
}
Err error_of(const Vec& a, const Vec& b) { return error_of(std::vector<float>(a.begin(), a.end()), b); }

// TF32 against the exact oracle: no worse than twice the TF32-rounded oracle's own error.
::testing::AssertionResult within_twice(const std::vector<float>& got, const Vec& rounded_ref,
                                        const Vec& exact) {
  const Err ours = error_of(got, exact), naive = error_of(rounded_ref, exact);
  if (ours.rel <= 2 * naive.rel + 1e-7 && ours.max <= 2 * naive.max + 1e-7)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "error " << ours.rel << " / " << ours.max
                                       << " (relative norm / max), TF32-rounded oracle's "
                                       << naive.rel << " / " << naive.max;
}

// The CPU shapes, plus tile edges (M not a multiple of 128, 70 and 96 output channels: a second,
// partial column tile, depths not a multiple of 32), a strided data gradient over several
// tiles, the headline 3x3 / 64 channels, and a weight gradient deep enough to be split.
std::vector<Conv2dShape> gpu_shapes() {
  auto v = test::conv_test_shapes();
  v.push_back({.batch = test::sized(4, 2), .in_channels = 64, .height = 14, .width = 14,
               .out_channels = 64});
  v.push_back({.batch = 3, .in_channels = 19, .height = 11, .width = 13, .out_channels = 70});
  v.push_back({.batch = 2, .in_channels = 8, .height = 17, .width = 15, .out_channels = 96,
               .stride_h = 2, .stride_w = 2});
  v.push_back({.batch = test::sized(16, 4), .in_channels = 16, .height = 32, .width = 32,
               .out_channels = 32});
  return v;
}

const char* name(ConvMath m) { return m == ConvMath::TF32 ? "tf32" : "fp32"; }

TEST_F(ConvGpu, ForwardMatchesReference) {
  std::uint64_t seed = 1;
  for (const Conv2dShape& s : gpu_shapes())
    for (const ConvMath math : {ConvMath::TF32, ConvMath::FP32})
      for (const bool bias : {true, false}) {
        SCOPED_TRACE(::testing::Message() << name(math) << " N" << s.batch << " C" << s.in_channels
                                          << " " << s.height << "x" << s.width << " K"
                                          << s.out_channels << " stride " << s.stride_h
                                          << (bias ? " bias" : ""));
        const auto x = test::normals(test::x_size(s), seed++), W = test::normals(test::w_size(s), seed++);
        const auto b = test::normals(s.out_channels, seed++);
        const auto xd = test::to_device(ctx, x), Wd = test::to_device(ctx, W), bd = test::to_device(ctx, b);
        Buffer<float> y(ctx, test::y_size(s));
        test::poison(y);
        conv2d_forward(ctx, s, xd.data(), Wd.data(), bias ? bd.data() : nullptr, y.data(), {.math = math});
        const Vec bb = bias ? test::to_double(b) : Vec();
        const Vec exact = test::conv_forward_d(s, test::to_double(x), test::to_double(W), bb);
        if (math == ConvMath::FP32) {
          EXPECT_TRUE(test::close(host(y), exact, kFp32));
          continue;
        }
        const Vec rounded = test::conv_forward_d(s, test::round_tf32(test::to_double(x)),
                                                 test::round_tf32(test::to_double(W)), bb);
        EXPECT_TRUE(test::close(host(y), rounded, kFp32));
        EXPECT_TRUE(within_twice(host(y), rounded, exact));
      }
}

TEST_F(ConvGpu, BackwardMatchesReference) {
  std::uint64_t seed = 100;
  for (const Conv2dShape& s : gpu_shapes())
    for (const ConvMath math : {ConvMath::TF32, ConvMath::FP32})
      for (const bool accumulate : {false, true}) {
        SCOPED_TRACE(::testing::Message() << name(math) << " N" << s.batch << " C" << s.in_channels
                                          << " " << s.height << "x" << s.width << " K"
                                          << s.out_channels << " stride " << s.stride_h
                                          << (accumulate ? " accumulate" : ""));
        const auto x = test::normals(test::x_size(s), seed++), W = test::normals(test::w_size(s), seed++);
        const auto dy = test::normals(test::y_size(s), seed++);
        const auto dW0 = test::normals(test::w_size(s), seed++), db0 = test::normals(s.out_channels, seed++);
        const auto xd = test::to_device(ctx, x), Wd = test::to_device(ctx, W), dyd = test::to_device(ctx, dy);
        Buffer<float> dx(ctx, test::x_size(s)), dW = test::to_device(ctx, dW0), db = test::to_device(ctx, db0);
        test::poison(dx);
        if (!accumulate) test::poison(dW), test::poison(db);
        conv2d_backward(ctx, s, xd.data(), Wd.data(), dyd.data(), dx.data(), dW.data(), db.data(),
                        {.math = math, .accumulate = accumulate});
        const Vec xv = test::to_double(x), Wv = test::to_double(W), dyv = test::to_double(dy);
        test::ConvGradsD exact = test::conv_backward_d(s, xv, Wv, dyv);
        test::ConvGradsD rounded = math == ConvMath::TF32
                                       ? test::conv_backward_d(s, test::round_tf32(xv), test::round_tf32(Wv),
                                                               test::round_tf32(dyv))
                                       : exact;
        for (test::ConvGradsD* g : {&exact, &rounded})
          if (accumulate) {
            for (std::size_t i = 0; i < g->dW.size(); ++i) g->dW[i] += dW0[i];
            for (std::size_t i = 0; i < g->db.size(); ++i) g->db[i] += db0[i];
          }
        EXPECT_TRUE(test::close(host(dx), rounded.dx, kFp32));
        EXPECT_TRUE(test::close(host(dW), rounded.dW, kFp32));
        EXPECT_TRUE(test::close(host(db), exact.db, kFp32));  // sums of dy: no products
        if (math == ConvMath::TF32) {
          EXPECT_TRUE(within_twice(host(dx), rounded.dx, exact.dx));
          EXPECT_TRUE(within_twice(host(dW), rounded.dW, exact.dW));
        }
      }
}

struct BnCase {
  BatchNormShape s;
  bool training, affine;
};

// Wide planes (L >= 256), short ones (L = 1, 17), more images than partial-sum splits (20, 37),
// planes not a multiple of 4 (scalar loads), and the headline plane 56 x 56.
TEST_F(ConvGpu, BatchNormMatchesReference) {
  const BnCase cases[] = {{{20, 3, 300}, true, true},   {{37, 5, 1}, true, false},
                          {{3, 4, 17}, true, true},     {{test::sized(8, 2), 16, 3136}, true, true},
                          {{6, 3, 64}, false, true},    {{5, 2, 7}, false, false}};
  std::uint64_t seed = 200;
  for (const auto& [s, training, affine] : cases) {
    SCOPED_TRACE(::testing::Message() << s.batch << "x" << s.channels << "x" << s.spatial
                                      << (training ? " training" : " eval") << (affine ? " affine" : ""));
    const std::int64_t n = s.batch * s.channels * s.spatial, C = s.channels;
    const auto x = test::normals(n, seed++, 3.0f, 2.0f), dy = test::normals(n, seed++);
    const auto gamma = test::normals(C, seed++, 1.0f, 0.5f), beta = test::normals(C, seed++);
    const auto rm0 = test::normals(C, seed++), rv0 = test::uniforms(C, seed++, 0.5f, 2.0f);
    const auto xd = test::to_device(ctx, x), dyd = test::to_device(ctx, dy);
    const auto gd = test::to_device(ctx, gamma), bd = test::to_device(ctx, beta);
    Buffer<float> y(ctx, n), rm = test::to_device(ctx, rm0), rv = test::to_device(ctx, rv0);
    Buffer<float> mean(ctx, C), invstd(ctx, C), dx(ctx, n), dg(ctx, C), db(ctx, C);
    for (Buffer<float>* b : {&y, &mean, &invstd, &dx, &dg, &db}) test::poison(*b);
    batch_norm_forward(ctx, s, xd.data(), affine ? gd.data() : nullptr, affine ? bd.data() : nullptr,
                       rm.data(), rv.data(), y.data(),
                       {.training = training, .save_mean = mean.data(), .save_invstd = invstd.data()});
    const Vec g = affine ? test::to_double(gamma) : Vec(C, 1.0), b = affine ? test::to_double(beta) : Vec(C, 0.0);
    const test::BnD ref = test::bn_forward_d(s, test::to_double(x), g, b, training,
                                             test::to_double(rm0), test::to_double(rv0), 1e-5);
    EXPECT_TRUE(test::close(host(y), ref.y, kFp32));
    Vec want_invstd(C), want_rm(C), want_rv(C);
    const double M = static_cast<double>(s.batch * s.spatial);
    for (std::int64_t c = 0; c < C; ++c) {
      want_invstd[c] = 1 / std::sqrt(ref.var[c] + 1e-5);
      want_rm[c] = training ? 0.9 * rm0[c] + 0.1 * ref.mean[c] : rm0[c];
      want_rv[c] = training ? 0.9 * rv0[c] + 0.1 * ref.var[c] * M / (M - 1) : rv0[c];
    }
    EXPECT_TRUE(test::close(host(mean), ref.mean, kFp32));
    EXPECT_TRUE(test::close(host(invstd), want_invstd, kFp32));
    EXPECT_TRUE(test::close(host(rm), want_rm, kFp32));
    EXPECT_TRUE(test::close(host(rv), want_rv, kFp32));
    batch_norm_backward(ctx, s, xd.data(), affine ? gd.data() : nullptr, mean.data(), invstd.data(),
                        dyd.data(), dx.data(), dg.data(), db.data(), {.training = training});
    const test::BnGradsD gr = test::bn_backward_d(s, test::to_double(x), g, ref, training, 1e-5, test::to_double(dy));
    EXPECT_TRUE(test::close(host(dx), gr.dx, kFp32));
    EXPECT_TRUE(test::close(host(dg), gr.dgamma, kFp32));
    EXPECT_TRUE(test::close(host(db), gr.dbeta, kFp32));
  }
}

TEST_F(ConvGpu, PoolsMatchReference) {
  const std::vector<Pool2dShape> shapes = {
      {.batch = 2, .channels = 3, .height = 6, .width = 7},
      {.batch = 1, .channels = 2, .height = 7, .width = 6, .kernel_h = 3, .kernel_w = 3,
       .stride_h = 2, .stride_w = 1, .pad_h = 1, .pad_w = 1},
      {.batch = 2, .channels = 1, .height = 5, .width = 8, .kernel_h = 2, .kernel_w = 4,
       .stride_h = 1, .stride_w = 3, .pad_h = 1, .pad_w = 2},
      {.batch = test::sized(8, 2), .channels = 64, .height = 56, .width = 56}};
  std::uint64_t seed = 300;
  for (const Pool2dShape& s : shapes) {
    SCOPED_TRACE(::testing::Message() << s.height << "x" << s.width << " k" << s.kernel_h << "x" << s.kernel_w);
    const std::int64_t nx = s.batch * s.channels * s.height * s.width;
    const std::int64_t ny = s.batch * s.channels * s.out_height() * s.out_width();
    const auto x = test::normals(nx, seed++), dy = test::normals(ny, seed++);
    const auto xd = test::to_device(ctx, x), dyd = test::to_device(ctx, dy);
    Buffer<float> y(ctx, ny), dx(ctx, nx);
    Buffer<std::int32_t> idx(ctx, ny);
    test::poison(y);
    test::poison(dx);
    idx.fill_bytes(0xFF);
    max_pool2d_forward(ctx, s, xd.data(), y.data(), idx.data());
    const test::PoolD mref = test::pool_forward_d(s, test::to_double(x), true, true);
    EXPECT_TRUE(test::close(host(y), mref.y, kFp32));
    EXPECT_EQ(host(idx), mref.arg);
    max_pool2d_backward(ctx, s, dyd.data(), idx.data(), dx.data());
    EXPECT_TRUE(test::close(host(dx), test::pool_backward_d(s, mref, test::to_double(dy), true, true), kFp32));
    for (const bool cip : {true, false}) {
      test::poison(y);
      test::poison(dx);
      avg_pool2d_forward(ctx, s, xd.data(), y.data(), {.count_include_pad = cip});
      const test::PoolD aref = test::pool_forward_d(s, test::to_double(x), false, cip);
      EXPECT_TRUE(test::close(host(y), aref.y, kFp32));
      avg_pool2d_backward(ctx, s, dyd.data(), dx.data(), {.count_include_pad = cip});
      EXPECT_TRUE(test::close(host(dx), test::pool_backward_d(s, aref, test::to_double(dy), false, cip), kFp32));
    }
  }
}

struct BlockCase {
  std::int64_t N, C, H, W;
  bool relu_after_sum, training;
};

// A block whose parameters and running statistics are the CPU block's (init(seed) draws the same
// Philox numbers on both backends), with BN parameters moved off 1 and 0.
ResidualBlock gpu_block(const Context& ctx, const BlockCase& c, ConvMath math, std::uint64_t seed) {
  ResidualBlock b(ctx, {.channels = c.C, .relu_after_sum = c.relu_after_sum, .math = math});
  b.init(seed);
  b.train(c.training);
  std::vector<float> p(b.parameter_count());
  detail::copy_bytes(ctx, p.data(), Device::CPU, b.parameters(), ctx.device(), p.size() * 4);
  const auto noise = test::normals(p.size(), seed + 1, 0.0f, 0.2f);
  const std::int64_t C = c.C;
  for (std::int64_t i = 9 * C * C; i < 9 * C * C + 2 * C; ++i) p[i] += noise[i];
  for (std::int64_t i = 18 * C * C + 2 * C; i < 18 * C * C + 4 * C; ++i) p[i] += noise[i];
  detail::copy_bytes(ctx, b.parameters(), ctx.device(), p.data(), Device::CPU, p.size() * 4);
  std::vector<float> r = test::uniforms(4 * C, seed + 2, 0.5f, 1.5f);
  for (std::int64_t i = 0; i < C; ++i) r[i] -= 1.0f, r[2 * C + i] -= 1.0f;
  detail::copy_bytes(ctx, b.running_stats(), ctx.device(), r.data(), Device::CPU, r.size() * 4);
  return b;
}

TEST_F(ConvGpu, ResidualBlockMatchesReference) {
  // Small enough that no ReLU input lands within float rounding of 0 (where the GPU and the
  // double oracle could take different sides of the kink).
  const BlockCase cases[] = {{2, 8, 9, 7, false, true}, {2, 64, 8, 8, true, true},
                             {3, 16, 6, 10, false, false}};
  std::uint64_t seed = 400;
  for (const BlockCase& c : cases)
    for (const ConvMath math : {ConvMath::FP32, ConvMath::TF32}) {
      SCOPED_TRACE(::testing::Message() << name(math) << " " << c.N << "x" << c.C << "x" << c.H << "x"
                                        << c.W << (c.relu_after_sum ? " relu after" : "")
                                        << (c.training ? " training" : " eval"));
      ResidualBlock b = gpu_block(ctx, c, math, seed++);
      test::BlockD m = test::block_d(b);
      const std::int64_t n = c.N * c.C * c.H * c.W;
      const auto x = test::normals(n, seed++), dy = test::normals(n, seed++);
      const auto xd = test::to_device(ctx, x), dyd = test::to_device(ctx, dy);
      Buffer<float> y(ctx, n), dx(ctx, n);
      test::poison(y);
      test::poison(dx);
      ResidualBlockWorkspace ws;
      b.forward(ws, xd.data(), c.N, c.H, c.W, y.data());
      b.backward(ws, dyd.data(), dx.data());
      std::vector<float> grads(b.parameter_count());
      detail::copy_bytes(ctx, grads.data(), Device::CPU, b.gradients(), ctx.device(), grads.size() * 4);
      auto reference = [&](bool tf32, Vec& y_ref, test::BlockGradsD& g) {
        m.tf32 = tf32;
        test::BlockTapeD tape;
        y_ref = test::block_forward_d(m, test::to_double(x), c.N, c.H, c.W, &tape);
        g = test::block_backward_d(m, test::to_double(x), tape, c.N, c.H, c.W, test::to_double(dy));
      };
      Vec y_exact, y_round;
      test::BlockGradsD g_exact, g_round;
      reference(false, y_exact, g_exact);
      if (math == ConvMath::FP32) {
        EXPECT_TRUE(test::close(host(y), y_exact, kFp32));
        EXPECT_TRUE(test::close(host(dx), g_exact.dx, kFp32));
        EXPECT_TRUE(test::close(grads, test::block_flat_grads(g_exact), kFp32));
        continue;
      }
      reference(true, y_round, g_round);
      EXPECT_TRUE(within_twice(host(y), y_round, y_exact));
      EXPECT_TRUE(within_twice(host(dx), g_round.dx, g_exact.dx));
      EXPECT_TRUE(within_twice(grads, test::block_flat_grads(g_round), test::block_flat_grads(g_exact)));
    }
}

// The seed's shape test on the GPU (4.4): x [1, 64, 32, 32] -> y of the same shape, every
// element written, the oracle's numbers; and the same weights as the CPU block's (init draws
// the same Philox numbers on both backends).
TEST_F(ConvGpu, SeedShapeTestMatchesReference) {
  ResidualBlock gpu(ctx, {.channels = 64, .math = ConvMath::FP32}), cpu(Context::cpu(), {.channels = 64});
  gpu.init(7);
  cpu.init(7);
  const std::int64_t n = 64 * 32 * 32;
  const auto x = test::normals(n, 500);
  const auto xd = test::to_device(ctx, x);
  Buffer<float> y(ctx, n);
  test::poison(y);
  ResidualBlockWorkspace ws;
  gpu.forward(ws, xd.data(), 1, 32, 32, y.data());
  EXPECT_EQ(y.size(), static_cast<std::size_t>(n));
  EXPECT_TRUE(test::close(host(y), test::block_forward_d(test::block_d(gpu), test::to_double(x), 1, 32, 32), kFp32));
  std::vector<float> pg(gpu.parameter_count());
  detail::copy_bytes(ctx, pg.data(), Device::CPU, gpu.parameters(), ctx.device(), pg.size() * 4);
  EXPECT_EQ(pg, std::vector<float>(cpu.parameters(), cpu.parameters() + cpu.parameter_count()));
}

}  // namespace
}  // namespace genai
