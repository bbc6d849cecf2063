// Scaled dot-product attention and softmax on the CPU: problem set 1.4 and 1.6, masking
// semantics against an independent naive implementation, fp16 / bf16 as the rounded fp64
// attention, bad input. GPU parity: tests/attention_gpu_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "cpu_reference/attention.hpp"
#include "cpu_reference/exp.hpp"
#include "genai/attention.hpp"
#include "genai/detail/attention.hpp"
#include "genai/dtype.hpp"
#include "attention_test_util.hpp"
#include "parallel_test_util.hpp"
#include "test_util.hpp"

namespace genai {
namespace {

using namespace test::attn;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

void expect_matches(const Result& r, const Naive& n, double tol = 1e-6) {
  const test::Tolerance t{tol, tol};
  EXPECT_TRUE(test::close(r.out, n.out, t)) << "out";
  EXPECT_TRUE(test::close(r.lse, n.lse, t)) << "lse";
  EXPECT_TRUE(test::close(r.weights, n.weights, t)) << "weights";
}

// 1.6: Q, K, V of shape [B=2, L=10, D=64] (one head): out [2, 10, 64], weights [2, 10, 10]
// whose rows sum to 1, and out = softmax(Q K^T / sqrt(64)) V.
TEST(Attention, Problem1_6ShapesAndWeightRowsSumToOne) {
  const AttentionShape s{.batch = 2, .q_heads = 1, .kv_heads = 1, .q_len = 10, .k_len = 10,
                         .head_dim = 64};
  const Inputs in = random_inputs(s, 16);
  const Result r = run(s, in);
  EXPECT_EQ(r.out.size(), 2u * 10 * 64);
  EXPECT_EQ(r.weights.size(), 2u * 10 * 10);
  for (std::int64_t row = 0; row < 20; ++row) {
    double sum = 0;
    for (int j = 0; j < 10; ++j) {
      EXPECT_GE(r.weights[row * 10 + j], 0.0f);
      sum += r.weights[row * 10 + j];
    }
    EXPECT_NEAR(sum, 1.0, 1e-6) << "row " << row;
  }
  expect_matches(r, naive(s, in, 1.0 / 8.0, kAll));
}

// 1.4(c): softmax([0, 100, 0, 0]) is one-hot to fp32 precision (the others are e^-100 ~ 4e-44,
// below fp32's smallest normal), so its Jacobian diag(p) - p p^T is ~0: checked analytically
// from p and by central differences of the op itself.
TEST(Attention, SoftmaxOneHotAndJacobianOfProblem1_4c) {
  const std::vector<float> x = {0, 100, 0, 0};
  std::vector<float> p(4);
  test::poison(p);
  softmax(kCpu, x.data(), 1, 4, p.data());
  EXPECT_EQ(p[1], 1.0f);
  for (int j : {0, 2, 3}) EXPECT_LT(p[j], 1e-43f);
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b)
      EXPECT_LT(std::abs((a == b ? p[a] : 0.0) - double(p[a]) * p[b]), 1e-40) << a << "," << b;
  const float h = 0.5f;
  for (int b = 0; b < 4; ++b) {
    std::vector<float> xp = x, xm = x, pp(4), pm(4);
    xp[b] += h;
    xm[b] -= h;
    softmax(kCpu, xp.data(), 1, 4, pp.data());
    softmax(kCpu, xm.data(), 1, 4, pm.data());
    for (int a = 0; a < 4; ++a) EXPECT_LT(std::abs(pp[a] - pm[a]) / (2 * h), 1e-40) << a << "," << b;
  }
}

// 1.4(a, b): for q, k ~ N(0, I_d) (this library's Philox normals), X = q^T k has E[X] = 0 and
// Var[X] = d; scaled by 1/sqrt(d) the variance is 1. N = 10000 pairs at the problem's d = 512,
// through the attention op: its largest head dim is 256, so X = q1^T k1 + q2^T k2 over the two
// halves, each the lse of a call with one key per head and scale 1 (the lse of a single key is
// its logit). Bounds are 5 standard errors: SE(mean) = sqrt(d / N) = 0.23; and since
// E[X^4] = 3 d^2 + 6 d, SE(sample variance) = sqrt((2 d^2 + 6 d) / N) = 7.25 (1.4% of d); both
// divide by sqrt(d) and d after scaling.
TEST(Attention, MonteCarloDotProductMomentsOfProblem1_4) {
  const std::int64_t N = 10000, d = 512, h = d / 2;
  const std::vector<float> q = test::normals(N * d, 14), k = test::normals(N * d, 15);
  const AttentionShape half{.batch = 1, .q_heads = N, .kv_heads = N, .q_len = 1, .k_len = 1,
                            .head_dim = h};
  std::vector<double> x(N, 0.0);
  for (std::int64_t part = 0; part < 2; ++part) {
    std::vector<float> qh(N * h), kh(N * h), out(N * h), lse(N);
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t c = 0; c < h; ++c) {
        qh[n * h + c] = q[n * d + part * h + c];
        kh[n * h + c] = k[n * d + part * h + c];
      }
    attention(kCpu, qh.data(), kh.data(), kh.data(), half, out.data(), {.scale = 1.0f},
              {.lse = lse.data()});
    const double u = std::ldexp(1.0, -24);
    for (std::int64_t n = 0; n < N; ++n) {
      // The lse of one key is its logit, a float dot product: within γ_{h+1} Σ |q_c k_c|.
      double exact = 0, magnitude = 0;
      for (std::int64_t c = 0; c < h; ++c) {
        exact += double(qh[n * h + c]) * kh[n * h + c];
        magnitude += std::abs(double(qh[n * h + c]) * kh[n * h + c]);
      }
      ASSERT_LE(std::abs(lse[n] - exact), (h + 1) * u / (1 - (h + 1) * u) * magnitude) << n;
      x[n] += lse[n];
    }
  }
  auto moments = [&](double scale) {
    double m = 0, m2 = 0;
    for (double v : x) m += scale * v;
    m /= N;
    for (double v : x) m2 += (scale * v - m) * (scale * v - m);
    return std::pair{m, m2 / (N - 1)};
  };
  const double se_mean = std::sqrt(double(d) / N), se_var = std::sqrt((2.0 * d * d + 6.0 * d) / N);
  const auto [mean, var] = moments(1.0);
  EXPECT_NEAR(mean, 0.0, 5 * se_mean);
  EXPECT_NEAR(var, double(d), 5 * se_var);
  const auto [mean_s, var_s] = moments(1.0 / std::sqrt(double(d)));
  EXPECT_NEAR(mean_s, 0.0, 5 * se_mean / std::sqrt(double(d)));
  EXPECT_NEAR(var_s, 1.0, 5 * se_var / d);
}

// With Lk = 1 the op's lse is scale q^T k itself: at d = 256 its default scale 1/sqrt(d) gives
// logits of variance 1 (N = 4000, bound 5 SE = 5 sqrt((2 + 6/d) / N) = 0.11).
TEST(Attention, DefaultScaleGivesUnitVarianceLogits) {
  const std::int64_t N = 4000, d = 256;
  const AttentionShape s{.batch = 1, .q_heads = N, .kv_heads = N, .q_len = 1, .k_len = 1,
                         .head_dim = d};
  const Inputs in{test::normals(N * d, 16), test::normals(N * d, 17), std::vector<float>(N * d, 1)};
  std::vector<float> out(N * d), lse(N);
  attention(kCpu, in.q.data(), in.k.data(), in.v.data(), s, out.data(), {}, {.lse = lse.data()});
  double m = 0, m2 = 0;
  for (float x : lse) m += x;
  m /= N;
  for (float x : lse) m2 += (x - m) * (x - m);
  EXPECT_NEAR(m, 0.0, 5 / std::sqrt(double(N)));
  EXPECT_NEAR(m2 / (N - 1), 1.0, 5 * std::sqrt((2.0 + 6.0 / d) / N));
  for (float o : out) ASSERT_EQ(o, 1.0f);  // one key: out = v
}

// Bottom-right causal alignment: key j is kept for query i when j <= i + Lk - Lq, checked against
// an explicitly built mask, for Lq < Lk and Lq > Lk (where the first Lq - Lk rows see nothing).
TEST(Attention, CausalIsBottomRightAlignedAsAnExplicitMask) {
  for (auto [Lq, Lk] : {std::pair<std::int64_t, std::int64_t>{3, 5}, {5, 3}, {4, 4}}) {
    const AttentionShape s{.batch = 2, .q_heads = 2, .kv_heads = 2, .q_len = Lq, .k_len = Lk,
                           .head_dim = 8};
    const Inputs in = random_inputs(s, 20 + Lq);
    std::unique_ptr<bool[]> mask(new bool[Lq * Lk]);
    for (std::int64_t i = 0; i < Lq; ++i)
      for (std::int64_t j = 0; j < Lk; ++j) mask[i * Lk + j] = j <= i + Lk - Lq;
    const Result causal = run(s, in, {.causal = true});
    const Result masked =
        run(s, in, {.mask = mask.get(), .mask_shape = {.batch = 1, .heads = 1, .q_len = Lq, .k_len = Lk}});
    EXPECT_EQ(causal.out, masked.out);
    EXPECT_EQ(causal.lse, masked.lse);
    EXPECT_EQ(causal.weights, masked.weights);
    auto kept = [&](std::int64_t, std::int64_t, std::int64_t i, std::int64_t j) {
      return j <= i + Lk - Lq;
    };
    expect_matches(causal, naive(s, in, 1 / std::sqrt(8.0), kept));
    if (Lq > Lk) {
      EXPECT_EQ(causal.lse[0], kNegInf);  // row 0 keeps j <= -2: nothing
    }
  }
}

// Grouped-query (Hkv = 2) and multi-query (Hkv = 1) attention equal multi-head attention with
// each k/v head repeated for its Hq / Hkv query heads.
TEST(Attention, GroupedQueryEqualsRepeatedKvHeads) {
  for (std::int64_t Hkv : {2, 1}) {
    const AttentionShape s{.batch = 2, .q_heads = 6, .kv_heads = Hkv, .q_len = 5, .k_len = 9,
                           .head_dim = 16};
    const Inputs in = random_inputs(s, 30 + Hkv);
    AttentionShape full = s;
    full.kv_heads = 6;
    Inputs rep{in.q, {}, {}};
    const std::int64_t block = s.k_len * s.head_dim;
    for (std::int64_t b = 0; b < 2; ++b)
      for (std::int64_t h = 0; h < 6; ++h) {
        const std::int64_t src = (b * Hkv + h / (6 / Hkv)) * block;
        rep.k.insert(rep.k.end(), in.k.begin() + src, in.k.begin() + src + block);
        rep.v.insert(rep.v.end(), in.v.begin() + src, in.v.begin() + src + block);
      }
    const Result g = run(s, in, {.causal = true}), m = run(full, rep, {.causal = true});
    EXPECT_EQ(g.out, m.out);
    EXPECT_EQ(g.lse, m.lse);
    EXPECT_EQ(g.weights, m.weights);
  }
}

// key_lengths = {3, 7} equals a key-padding mask [B, 1, 1, Lk]; padded keys get weight 0 even
// when their v is NaN.
TEST(Attention, KeyLengthsEqualAKeyPaddingMask) {
  const AttentionShape s{.batch = 2, .q_heads = 3, .kv_heads = 3, .q_len = 4, .k_len = 7,
                         .head_dim = 12};
  Inputs in = random_inputs(s, 40);
  for (std::int64_t h = 0; h < 3; ++h)
    for (std::int64_t j = 3; j < 7; ++j) in.v[(h * 7 + j) * 12] = NAN;  // batch 0's padding
  const std::int32_t lengths[2] = {3, 7};
  std::unique_ptr<bool[]> mask(new bool[2 * 7]);
  for (int b = 0; b < 2; ++b)
    for (int j = 0; j < 7; ++j) mask[b * 7 + j] = j < lengths[b];
  const Result r = run(s, in, {.key_lengths = lengths});
  const Result m = run(s, in, {.mask = mask.get(), .mask_shape = {.batch = 2, .k_len = 7}});
  EXPECT_EQ(r.out, m.out);
  EXPECT_EQ(r.lse, m.lse);
  EXPECT_EQ(r.weights, m.weights);
  for (float o : r.out) EXPECT_FALSE(std::isnan(o));
  for (std::int64_t i = 0; i < 4; ++i) EXPECT_EQ(r.weights[i * 7 + 5], 0.0f);
}

// An additive bias broadcast [1, Hq, Lq, Lk] and a per-batch mask [B, 1, Lq, 1] (whole rows),
// against the naive attention.
TEST(Attention, BiasAndBroadcastMaskFollowTheirShapes) {
  const AttentionShape s{.batch = 2, .q_heads = 2, .kv_heads = 1, .q_len = 3, .k_len = 5,
                         .head_dim = 4};
  const Inputs in = random_inputs(s, 50);
  const std::vector<float> bias = test::normals(2 * 3 * 5, 51);
  std::unique_ptr<bool[]> mask(new bool[2 * 3]{true, false, true, true, true, false});
  const Result r = run(s, in,
                       {.mask = mask.get(), .mask_shape = {.batch = 2, .q_len = 3},
                        .bias = bias.data(), .bias_shape = {.heads = 2, .q_len = 3, .k_len = 5}});
  auto kept = [&](std::int64_t b, std::int64_t, std::int64_t i, std::int64_t) {
    return mask[b * 3 + i];
  };
  auto add = [&](std::int64_t, std::int64_t h, std::int64_t i, std::int64_t j) {
    return double(bias[(h * 3 + i) * 5 + j]);
  };
  expect_matches(r, naive(s, in, 0.5, kept, add));
  EXPECT_EQ(r.lse[1], kNegInf);  // b 0, h 0, row 1 is masked
}

// scale = 0 means 1/sqrt(d); any other value is used as given.
TEST(Attention, CustomScale) {
  const AttentionShape s{.batch = 1, .q_heads = 2, .kv_heads = 2, .q_len = 6, .k_len = 6,
                         .head_dim = 25};
  const Inputs in = random_inputs(s, 60);
  expect_matches(run(s, in, {.scale = 0.3f}), naive(s, in, double(0.3f), kAll));
  expect_matches(run(s, in), naive(s, in, double(1.0f / 5.0f), kAll));
}

// A row with nothing kept -- by mask, key_lengths = 0, or a bias of -inf -- gives out 0,
// lse -inf and weights 0, never NaN; softmax likewise gives a zero row.
TEST(Attention, FullyMaskedRowsGiveZeroAndNegativeInfinity) {
  const AttentionShape s{.batch = 2, .q_heads = 1, .kv_heads = 1, .q_len = 2, .k_len = 3,
                         .head_dim = 4};
  const Inputs in = random_inputs(s, 70);
  const std::int32_t lengths[2] = {3, 0};
  std::unique_ptr<bool[]> mask(new bool[2 * 3]{false, false, false, true, false, true});
  const std::vector<float> bias = {0, 0, 0, -INFINITY, -INFINITY, -INFINITY};  // [1, 1, 2, 3]
  for (const AttentionOptions& o :
       {AttentionOptions{.key_lengths = lengths},
        AttentionOptions{.mask = mask.get(), .mask_shape = {.q_len = 2, .k_len = 3}},
        AttentionOptions{.bias = bias.data(), .bias_shape = {.q_len = 2, .k_len = 3}}}) {
    const Result r = run(s, in, o);
    const std::int64_t dead = o.key_lengths ? 2 : (o.mask ? 0 : 1);  // first empty row
    EXPECT_EQ(r.lse[dead], kNegInf);
    for (int c = 0; c < 4; ++c) EXPECT_EQ(r.out[dead * 4 + c], 0.0f);
    for (int j = 0; j < 3; ++j) EXPECT_EQ(r.weights[dead * 3 + j], 0.0f);
    for (float x : r.out) EXPECT_FALSE(std::isnan(x));
    for (float x : r.lse) EXPECT_FALSE(std::isnan(x));
  }
  const std::vector<float> x = {1, 2, 3, -INFINITY, -INFINITY, -INFINITY};
  std::unique_ptr<bool[]> m(new bool[6]{false, false, false, true, true, true});
  std::vector<float> p(6);
  softmax(kCpu, x.data(), 2, 3, p.data(), m.get());
  for (float v : p) EXPECT_EQ(v, 0.0f);
}

// Logits of 1e4 (d = 1, scale 1, q = 100, k = 100, 99, 50): exp would overflow without the max
// shift. Weights are one-hot to fp32 precision and lse = 1e4 + log(1 + e^-100 + e^-5000) = 1e4.
TEST(Attention, HugeLogitsDoNotOverflow) {
  const AttentionShape s{.q_len = 1, .k_len = 3, .head_dim = 1};
  const Inputs in{{100}, {100, 99, 50}, {1, 2, 3}};
  const Result r = run(s, in, {.scale = 1.0f});
  EXPECT_EQ(r.lse[0], 1e4f);
  EXPECT_EQ(r.weights[0], 1.0f);
  EXPECT_LT(r.weights[1], 1e-43f);
  EXPECT_EQ(r.weights[2], 0.0f);
  EXPECT_EQ(r.out[0], 1.0f);
  const std::vector<float> x = {1e4f, 1e4f, -1e4f};
  std::vector<float> p(3);
  softmax(kCpu, x.data(), 1, 3, p.data());
  EXPECT_EQ(p[0], 0.5f);
  EXPECT_EQ(p[1], 0.5f);
  EXPECT_EQ(p[2], 0.0f);
}

// The returned weights reproduce out (W V = out) and lse (log sum_j exp s_ij, the logits
// recomputed here), with a mask, a bias and GQA all on.
TEST(Attention, WeightsTimesVIsOutAndLseIsLogSumExp) {
  const AttentionShape s{.batch = 2, .q_heads = 4, .kv_heads = 2, .q_len = 7, .k_len = 11,
                         .head_dim = 32};
  const Inputs in = random_inputs(s, 80);
  const std::vector<float> bias = test::normals(2 * 4 * 7 * 11, 81);
  const std::vector<float> u = test::uniforms(2 * 11, 82);
  std::unique_ptr<bool[]> mask(new bool[2 * 11]);
  for (int e = 0; e < 22; ++e) mask[e] = u[e] < 0.7f;
  const AttentionOptions o{.causal = true, .mask = mask.get(), .mask_shape = {.batch = 2, .k_len = 11},
                           .bias = bias.data(), .bias_shape = {.batch = 2, .heads = 4, .q_len = 7, .k_len = 11}};
  const Result r = run(s, in, o);
  std::vector<double> wv(r.out.size(), 0.0), lse(r.lse.size());
  for (std::int64_t row = 0; row < rows_of(s); ++row) {
    const std::int64_t i = row % 7, bh = row / 7, b = bh / 4, h = bh % 4, kv = b * 2 + h / 2;
    double z = 0;
    for (std::int64_t j = 0; j < 11; ++j) {
      const double w = r.weights[row * 11 + j];
      for (int c = 0; c < 32; ++c) wv[row * 32 + c] += w * in.v[(kv * 11 + j) * 32 + c];
      if (!mask[b * 11 + j] || j > i + 4) continue;
      double dot = 0;
      for (int c = 0; c < 32; ++c) dot += double(in.q[row * 32 + c]) * in.k[(kv * 11 + j) * 32 + c];
      z += std::exp(dot / std::sqrt(32.0) + bias[row * 11 + j]);
    }
    lse[row] = z > 0 ? std::log(z) : -INFINITY;
  }
  EXPECT_TRUE(test::close(r.out, wv, {1e-6, 1e-6}));
  EXPECT_TRUE(test::close(r.lse, lse, {1e-6, 1e-6}));
}

// ---- the blocked path (what genai::attention runs on the CPU) against the plain reference ----

// The blocked path computes in float (SGEMM logits and P V, exp_f, row sums in double); the
// reference in double, rounded once. The bound, with u = 2^-24, γ_n = n u / (1 - n u), for a
// kept key j of a row (w_j > 0 its reference weight, t_j = log w_j = s_j - lse):
//   logit:        |Δs_j| <= E_j = γ_{d+2} (scale Σ_c |q_c k_jc| + |bias_j|)
//                 (d products and sums, the alpha scaling, the bias addition);
//   exponential:  δ_j = E_j + u |t_j| + 7u relative (s - m rounded: u |t|; exp_f within 2 ulp of
//                 the rounded e^x, 2.5 of the exact: 5u; the rescale of the output when the row's
//                 max grows: u; the float rounding of p: u) -- the running max m cancels in the
//                 ratio;
//   Δ = max_j δ_j;
//   lse:          Δ + 2u |lse| (the ratio's sum, then each side's float rounding);
//   weights:      w_j (δ_j + tol_lse + u) + e^-87.33654 (exp_f's flush to 0, ~2^-126);
//   out:          (2Δ + γ_{Lk + 2 nb}) Σ_j w_j |v_jc| + 2u |out_c| (numerator and sum each off
//                 by Δ, the float P V sums over Lk keys and nb = ceil(kend / 256) block additions
//                 and rescales, each side's final rounding).
// fp16 / bf16 out: both round to T, so the bound on out plus one unit in the last place of T
// (at the larger of the two). Infinities, NaN and exact zeros agree exactly.
struct Bounds {
  std::vector<double> out, lse, weights;
};

// The bounds above for the reference outputs `want` (a Result or a Naive; inputs `in` as the
// computation sees them, bias of shape [Hq, Lq, Lk] or none).
template <class R>
Bounds float_path_bounds(const AttentionShape& s, const Inputs& in, const float* bias, float scale,
                         const R& want) {
  const double u = std::ldexp(1.0, -24);
  auto gamma = [&](double n) { return n * u / (1 - n * u); };
  const std::int64_t d = s.head_dim, Lq = s.q_len, Lk = s.k_len, group = s.q_heads / s.kv_heads;
  const double nb = double((Lk + 255) / 256);
  Bounds b{std::vector<double>(want.out.size()), std::vector<double>(want.lse.size()),
           std::vector<double>(want.weights.size())};
  std::vector<double> delta(Lk);
  for (std::int64_t row = 0; row < rows_of(s); ++row) {
    const std::int64_t i = row % Lq, bh = row / Lq, h = bh % s.q_heads;
    const std::int64_t kv = (bh / s.q_heads) * s.kv_heads + h / group;
    double big_delta = 0.0;
    for (std::int64_t j = 0; j < Lk; ++j) {
      const double w = want.weights[row * Lk + j];
      delta[j] = 0.0;
      if (!(w > 0.0)) continue;
      double a = 0.0;
      for (std::int64_t c = 0; c < d; ++c)
        a += std::abs(double(in.q[row * d + c]) * in.k[(kv * Lk + j) * d + c]);
      a = scale * a + (bias ? std::abs(bias[(h * Lq + i) * Lk + j]) : 0.0);
      delta[j] = gamma(double(d + 2)) * a + u * std::abs(std::log(w)) + 7 * u;
      big_delta = std::max(big_delta, delta[j]);
    }
    b.lse[row] = big_delta + 2 * u * std::abs(want.lse[row]);
    for (std::int64_t j = 0; j < Lk; ++j)
      b.weights[row * Lk + j] =
          want.weights[row * Lk + j] * (delta[j] + b.lse[row] + u) + std::exp(double(-87.33654f));
    for (std::int64_t c = 0; c < d; ++c) {
      double wv = 0.0;
      for (std::int64_t j = 0; j < Lk; ++j)
        if (want.weights[row * Lk + j] > 0)
          wv += want.weights[row * Lk + j] * std::abs(double(in.v[(kv * Lk + j) * d + c]));
      b.out[row * d + c] = (2 * big_delta + gamma(Lk + 2 * nb)) * wv + 2 * u * std::abs(want.out[row * d + c]);
    }
  }
  return b;
}

::testing::AssertionResult within(const std::vector<float>& got, const std::vector<float>& want,
                                  const std::vector<double>& bound) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << "sizes differ";
  for (std::size_t e = 0; e < got.size(); ++e) {
    const double g = got[e], w = want[e];
    if ((std::isnan(g) && std::isnan(w)) || g == w) continue;
    if (!std::isfinite(g) || !std::isfinite(w) || std::abs(g - w) > bound[e])
      return ::testing::AssertionFailure() << "element " << e << ": " << g << " vs " << w
                                           << " (bound " << bound[e] << ")";
  }
  return ::testing::AssertionSuccess();
}

// fp16 / bf16 out: the float path's bound plus one unit in the last place of T.
template <class T>
std::vector<double> plus_one_ulp(std::vector<double> bound, const std::vector<float>& got,
                                 const std::vector<float>& want) {
  for (std::size_t e = 0; e < bound.size(); ++e)
    bound[e] += 2 * half_ulp<T>(std::max(std::abs(got[e]), std::abs(want[e])));
  return bound;
}

// exp_f, the blocked path's exponential: within 2 ulp of e^x (correctly rounded from double)
// across its normal range, 0 below it, +inf above, NaN through; an exponential off by a unit
// more would break float_path_bounds' 4u per exponential.
TEST(Attention, FloatExponentialIsWithinTwoUlp) {
  int worst = 0;
  for (int e = 0; e <= 2000000; ++e) {
    const float x = -87.33654f + (88.72f + 87.33654f) * static_cast<float>(e) / 2000000.0f;
    const float want = static_cast<float>(std::exp(double(x))), got = ref::exp_f(x);
    ASSERT_TRUE(std::isfinite(got)) << x;
    const int ulps = std::abs(std::bit_cast<std::int32_t>(got) - std::bit_cast<std::int32_t>(want));
    worst = std::max(worst, ulps);
    ASSERT_LE(ulps, 2) << "x = " << x << ": " << got << " vs " << want;
  }
  EXPECT_GE(worst, 1);  // the sweep reaches the rounding errors it bounds
  EXPECT_EQ(ref::exp_f(0.0f), 1.0f);
  EXPECT_EQ(ref::exp_f(-87.3366f), 0.0f);  // below ln 2^-126: flushed
  EXPECT_GE(ref::exp_f(-87.33654f), std::ldexp(1.0f, -126));  // above: normal
  EXPECT_EQ(ref::exp_f(kNegInf), 0.0f);
  EXPECT_EQ(ref::exp_f(89.0f), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(ref::exp_f(std::numeric_limits<float>::quiet_NaN())));
}

struct BlockedCase {
  AttentionShape s;
  bool causal = false, lengths = false, mask = false, bias = false;
};

// Shapes across the 256-row and 256-key blocks (a partial last block, one row, d up to 256,
// GQA, Lq > Lk with rows that see no key), every option, keys and values past the key lengths
// NaN; fp32 and fp16 / bf16.
template <class T>
void check_blocked_against_plain() {
  const std::vector<BlockedCase> cases = {
      {{1, 1, 1, 1, 1, 1}},
      {{2, 4, 2, 150, 300, 64}, true, true, true, true},
      {{1, 2, 1, 70, 5, 256}, false, false, false, true},
      {{2, 3, 3, 65, 129, 100}, false, true, true, false},
      {{1, 2, 2, 200, 130, 32}, true},
      {{3, 1, 1, 129, 257, 8}, true, true},
      {{1, 2, 1, 300, 600, 32}, true, true, false, true},
      {{2, 1, 1, 520, 70, 16}, false, false, true},
  };
  std::uint64_t seed = 900;
  for (const BlockedCase& c : cases) {
    const AttentionShape& s = c.s;
    SCOPED_TRACE(::testing::Message() << "B " << s.batch << " Hq " << s.q_heads << " Hkv "
                                      << s.kv_heads << " Lq " << s.q_len << " Lk " << s.k_len
                                      << " d " << s.head_dim);
    Inputs in = random_inputs(s, seed += 10);
    std::vector<std::int32_t> lengths(s.batch);
    for (std::int64_t b = 0; b < s.batch; ++b)
      lengths[b] = static_cast<std::int32_t>(s.k_len * b / std::max<std::int64_t>(1, s.batch - 1));
    if (c.lengths)
      for (std::int64_t b = 0; b < s.batch; ++b)
        for (std::int64_t hk = 0; hk < s.kv_heads; ++hk)
          for (std::int64_t j = lengths[b]; j < s.k_len; ++j)
            for (std::int64_t e = 0; e < s.head_dim; ++e)
              in.k[((b * s.kv_heads + hk) * s.k_len + j) * s.head_dim + e] =
                  in.v[((b * s.kv_heads + hk) * s.k_len + j) * s.head_dim + e] = NAN;
    const std::vector<float> u = test::uniforms(s.batch * s.q_len * s.k_len, seed + 1);
    std::unique_ptr<bool[]> mask(new bool[u.size()]);
    for (std::size_t e = 0; e < u.size(); ++e) mask[e] = u[e] < 0.8f;
    const std::vector<float> bias = test::normals(s.q_heads * s.q_len * s.k_len, seed + 2);
    const AttentionOptions o =
        case_options(s, c.causal, 0.0f, c.lengths ? lengths.data() : nullptr,
                     c.mask ? mask.get() : nullptr, c.bias ? bias.data() : nullptr);
    const float scale = detail::attention_scale(s, o);
    Result want, got;
    Inputs seen = in;  // the inputs as the computation sees them
    if constexpr (std::is_same_v<T, float>) {
      want = reference(s, in, o);
      got = run(s, in, o);
    } else {
      LowResult<T> plain = reference_low<T>(s, in, o);
      want = {widen(plain.out), std::move(plain.lse), std::move(plain.weights)};
      LowResult<T> low = run_low<T>(s, in, o);
      got = {widen(low.out), std::move(low.lse), std::move(low.weights)};
      seen = rounded<T>(in);
    }
    const Bounds bound = float_path_bounds(s, seen, o.bias, scale, want);
    if constexpr (std::is_same_v<T, float>)
      EXPECT_TRUE(within(got.out, want.out, bound.out)) << "out";
    else
      EXPECT_TRUE(within(got.out, want.out, plus_one_ulp<T>(bound.out, got.out, want.out))) << "out";
    EXPECT_TRUE(within(got.lse, want.lse, bound.lse)) << "lse";
    EXPECT_TRUE(within(got.weights, want.weights, bound.weights)) << "weights";
  }
}

TEST(Attention, BlockedPathMatchesThePlainReference) {
  check_blocked_against_plain<float>();
  check_blocked_against_plain<fp16>();
  check_blocked_against_plain<bf16>();
}

// Chunks of 64 query rows in any order on any number of threads: the same bytes.
TEST(Attention, BlockedPathIsTheSameOnAnyThreadCount) {
  const AttentionShape s{.batch = 2, .q_heads = 4, .kv_heads = 2, .q_len = 200, .k_len = 300,
                         .head_dim = 48};
  const Inputs in = random_inputs(s, 950);
  const std::vector<float> bias = test::normals(4 * 200 * 300, 951);
  const std::int32_t lengths[2] = {300, 170};
  const AttentionOptions o{.causal = true, .key_lengths = lengths, .bias = bias.data(),
                           .bias_shape = {.heads = 4, .q_len = 200, .k_len = 300}};
  test::expect_same_on_any_thread_count([&] {
    const Result r = run(s, in, o);
    return std::vector<std::vector<float>>{r.out, r.lse, r.weights};
  });
}

// Non-finite values as the reference treats them: a kept key's NaN or infinity reaches the
// output wherever its weight is not 0 in double, however small (here e^-100, which the float
// exponential flushes); a key whose weight underflows in double (its logit 800 below a later
// block's max) leaves the output finite, though its +inf entered the sum before that max.
TEST(Attention, BlockedPathPropagatesNonFiniteValuesAsTheReference) {
  const AttentionShape s{.batch = 1, .q_heads = 1, .kv_heads = 1, .q_len = 1, .k_len = 300,
                         .head_dim = 2};
  Inputs in{{1.0f, 0.0f}, std::vector<float>(600, 0.0f), std::vector<float>(600, 1.0f)};
  in.k[2 * 1] = -100.0f;  // key 1: logit -100, v = (NaN, 1)
  in.v[2 * 1] = NAN;
  in.k[2 * 299] = 800.0f;  // key 299 (second block): logit 800
  in.v[2 * 0] = INFINITY;   // key 0: logit 0, v = (inf, 1): weight e^-800 = 0 in double
  for (const bool far : {false, true}) {
    Inputs x = in;
    if (!far) x.k[2 * 299] = 0.0f;  // without the far key, key 1's NaN and key 0's inf stay
    const Result want = reference(s, x, {.scale = 1.0f}), got = run(s, x, {.scale = 1.0f});
    SCOPED_TRACE(far ? "a key 800 above" : "no far key");
    EXPECT_EQ(std::isnan(got.out[0]), std::isnan(want.out[0])) << got.out[0] << " vs " << want.out[0];
    if (far) {
      EXPECT_TRUE(std::isfinite(want.out[0]) && std::isfinite(got.out[0]));
      EXPECT_EQ(got.out[1], want.out[1]);
    } else {
      EXPECT_TRUE(std::isnan(got.out[0]));  // NaN (key 1) + inf (key 0)
    }
  }
}

// Bad input in every dtype: the same checks and messages (one checker), and nothing written --
// out is compared byte for byte with its poisoned start.
template <class T>
void check_bad_input() {
  const AttentionShape s{.batch = 2, .q_heads = 4, .kv_heads = 2, .q_len = 3, .k_len = 5,
                         .head_dim = 8};
  const std::vector<T> q(q_size(s), T(1.0f)), kv(kv_size(s), T(1.0f));
  std::vector<T> out(q_size(s), T(1.0f));
  std::memset(out.data(), 0x7F, out.size() * sizeof(T));  // a NaN in each dtype
  const std::vector<T> poisoned = out;
  auto call = [&](AttentionShape sh, AttentionOptions o = {}) {
    return test::error_of([&] { attention(kCpu, q.data(), kv.data(), kv.data(), sh, out.data(), o); });
  };
  AttentionShape bad = s;
  bad.kv_heads = 3;
  EXPECT_EQ(call(bad), "genai::attention: argument 'shape.kv_heads' must divide shape.q_heads = 4 (got 3)");
  bad = s;
  bad.head_dim = 257;
  EXPECT_EQ(call(bad), "genai::attention: argument 'shape.head_dim' must be <= 256 (the supported maximum; got 257)");
  bad = s;
  bad.k_len = 0;
  EXPECT_EQ(call(bad), "genai::attention: argument 'shape.k_len' must be >= 1 (got 0)");
  bad = s;
  bad.q_len = 0;
  EXPECT_EQ(call(bad), "genai::attention: argument 'shape.q_len' must be >= 1 (got 0)");
  EXPECT_EQ(test::error_of([&] { attention(kCpu, q.data(), nullptr, kv.data(), s, out.data()); }),
            "genai::attention: argument 'k' must not be null");
  EXPECT_EQ(test::error_of([&] { attention(kCpu, q.data(), kv.data(), nullptr, s, out.data()); }),
            "genai::attention: argument 'v' must not be null");
  EXPECT_EQ(test::error_of([&] {
              attention(kCpu, q.data(), kv.data(), kv.data(), s, static_cast<T*>(nullptr));
            }),
            "genai::attention: argument 'out' must not be null");
  std::unique_ptr<bool[]> mask(new bool[3 * 5]());
  EXPECT_EQ(call(s, {.mask = mask.get(), .mask_shape = {.q_len = 3, .k_len = 4}}),
            "genai::attention: argument 'opts.mask_shape' dim k_len must be 1 or 5 to broadcast "
            "over [B, Hq, Lq, Lk] = [2, 4, 3, 5] (got 4)");
  EXPECT_EQ(call(s, {.mask = mask.get(), .mask_shape = {.batch = 3, .k_len = 5}}),
            "genai::attention: argument 'opts.mask_shape' dim batch must be 1 or 2 to broadcast "
            "over [B, Hq, Lq, Lk] = [2, 4, 3, 5] (got 3)");
  const std::vector<float> bias(4 * 3 * 5);
  EXPECT_EQ(call(s, {.bias = bias.data(), .bias_shape = {.heads = 2}}),
            "genai::attention: argument 'opts.bias_shape' dim heads must be 1 or 4 to broadcast "
            "over [B, Hq, Lq, Lk] = [2, 4, 3, 5] (got 2)");
  for (const std::int32_t wrong : {6, -1}) {
    const std::int32_t lengths[2] = {5, wrong};
    EXPECT_EQ(call(s, {.key_lengths = lengths}),
              "genai::attention: argument 'opts.key_lengths' entry 1 must be in [0, 5] (got " +
                  std::to_string(wrong) + ")");
  }
  EXPECT_EQ(call(s, {.scale = NAN}), "genai::attention: argument 'opts.scale' must be finite (got nan)");
  EXPECT_EQ(call(s, {.scale = INFINITY}),
            "genai::attention: argument 'opts.scale' must be finite (got inf)");
  EXPECT_EQ(std::memcmp(out.data(), poisoned.data(), out.size() * sizeof(T)), 0);  // untouched
}

TEST(Attention, BadInputNamesTheArgument) {
  check_bad_input<float>();
  std::vector<float> out(4);
  EXPECT_EQ(test::error_of([&] { softmax(kCpu, out.data(), 2, 0, out.data()); }),
            "genai::softmax: argument 'n' must be >= 1 (got 0)");
}

// The CPU fp16 / bf16 path is the float attention of the rounded inputs, rounded once to T:
// every output element within the float path's bound (float_path_bounds) plus half an ulp of T
// of the naive fp64 result, lse and weights as in fp32. With causality, key lengths, a mask, a
// bias and GQA.
template <class T>
void check_low_cpu_equals_fp64() {
  const AttentionShape s{.batch = 2, .q_heads = 4, .kv_heads = 2, .q_len = 9, .k_len = 13,
                         .head_dim = 24};
  const Inputs in = rounded<T>(random_inputs(s, 500));
  const std::vector<float> bias = test::normals(4 * 9 * 13, 501);
  const std::vector<float> u = test::uniforms(2 * 13, 502);
  std::unique_ptr<bool[]> mask(new bool[2 * 13]);
  for (int e = 0; e < 26; ++e) mask[e] = u[e] < 0.8f;
  const std::int32_t lengths[2] = {13, 6};
  const AttentionOptions o{.scale = 0.3f, .causal = true, .key_lengths = lengths,
                           .mask = mask.get(), .mask_shape = {.batch = 2, .k_len = 13},
                           .bias = bias.data(), .bias_shape = {.heads = 4, .q_len = 9, .k_len = 13}};
  const LowResult<T> r = run_low<T>(s, in, o);
  const Naive want = naive(s, in, double(0.3f), kept_of(s, o), bias_of(o));
  const Bounds bound = float_path_bounds(s, in, bias.data(), 0.3f, want);
  for (std::size_t e = 0; e < want.out.size(); ++e) {
    const double got = static_cast<float>(r.out[e]);
    ASSERT_LE(std::abs(got - want.out[e]), bound.out[e] + half_ulp<T>(std::max(std::abs(got), std::abs(want.out[e]))))
        << "element " << e << ": " << got << " vs " << want.out[e];
  }
  EXPECT_TRUE(test::close(r.lse, want.lse, {1e-6, 1e-6})) << "lse";
  EXPECT_TRUE(test::close(r.weights, want.weights, {1e-6, 1e-6})) << "weights";
}

TEST(AttentionLowPrecision, CpuIsTheRoundedFp64Attention) {
  check_low_cpu_equals_fp64<fp16>();
  check_low_cpu_equals_fp64<bf16>();
}

TEST(AttentionLowPrecision, BadInputNamesTheArgument) {
  check_bad_input<fp16>();
  check_bad_input<bf16>();
}

// Fully masked rows and huge logits on the CPU path in fp16 / bf16: out 0 and lse -inf; the
// logits 1e4, 9900, 5000 (q = 100, k = 100, 99, 50 are exact in both) keep one-hot weights,
// lse = 1e4 and out = v_0 = 1.
template <class T>
void check_low_edges() {
  const AttentionShape s{.batch = 2, .q_heads = 1, .kv_heads = 1, .q_len = 2, .k_len = 3,
                         .head_dim = 4};
  const std::int32_t lengths[2] = {3, 0};
  const LowResult<T> r = run_low<T>(s, random_inputs(s, 510), {.key_lengths = lengths});
  for (std::int64_t row : {2, 3}) {
    EXPECT_EQ(r.lse[row], kNegInf);
    for (int c = 0; c < 4; ++c) EXPECT_EQ(r.out[row * 4 + c].bits, 0);
  }
  const AttentionShape one{.q_len = 1, .k_len = 3, .head_dim = 1};
  const LowResult<T> h = run_low<T>(one, {{100}, {100, 99, 50}, {1, 2, 3}}, {.scale = 1.0f});
  EXPECT_EQ(h.lse[0], 1e4f);
  EXPECT_EQ(h.weights[0], 1.0f);
  EXPECT_EQ(h.weights[2], 0.0f);
  EXPECT_EQ(static_cast<float>(h.out[0]), 1.0f);
}

TEST(AttentionLowPrecision, FullyMaskedRowsAndHugeLogits) {
  check_low_edges<fp16>();
  check_low_edges<bf16>();
}

}  // namespace
}  // namespace genai
