// Attention on the GPU against the CPU reference: the fp32 flash kernel and the fp16 / bf16
// tensor-core kernel over lengths, masks, GQA and head dims, weights and lse, empty rows, bad
// device key lengths, softmax; and the FlashAttention rule for the low-precision error.
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
#include "genai/attention.hpp"
#include "genai/detail/attention.hpp"
#include "genai/dtype.hpp"
#include "attention_test_util.hpp"
#include "test_util.hpp"

namespace genai {
namespace {

using namespace test::attn;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

class AttentionGpu : public test::GpuTest {};

struct GpuCase {
  AttentionShape s;
  bool causal = false, key_lengths = false, mask = false, bias = false;
  float scale = 0.0f;
};

// A case's options twice: `host` on host arrays (for the CPU reference), `dev` the same on
// device copies. Key lengths (b + 1) Lk / (B + 1), a mask [B, 1, Lq, Lk] keeping ~80 %, a bias
// [1, Hq, Lq, Lk] of unit normals.
struct CaseOptions {
  std::vector<std::int32_t> lengths;
  std::vector<float> bias;
  std::int64_t nmask;
  std::unique_ptr<bool[]> mask;
  AttentionOptions host, dev;
  Buffer<std::int32_t> dlen;
  Buffer<bool> dmask;
  Buffer<float> dbias;

  CaseOptions(const Context& ctx, const GpuCase& g, std::uint64_t seed)
      : lengths(g.s.batch),
        bias(test::normals(g.s.q_heads * g.s.q_len * g.s.k_len, seed + 4)),
        nmask(g.s.batch * g.s.q_len * g.s.k_len),
        mask(new bool[nmask]) {
    const AttentionShape& s = g.s;
    for (std::int64_t b = 0; b < s.batch; ++b)
      lengths[b] = static_cast<std::int32_t>((s.k_len * (b + 1)) / (s.batch + 1));
    const std::vector<float> u = test::uniforms(nmask, seed + 3);
    for (std::int64_t e = 0; e < nmask; ++e) mask[e] = u[e] < 0.8f;
    host = case_options(s, g.causal, g.scale, g.key_lengths ? lengths.data() : nullptr,
                        g.mask ? mask.get() : nullptr, g.bias ? bias.data() : nullptr);
    dlen = test::to_device(ctx, lengths);
    dmask = Buffer<bool>(ctx, std::span<const bool>(mask.get(), nmask));
    dbias = test::to_device(ctx, bias);
    dev = host;
    if (g.key_lengths) dev.key_lengths = dlen.data();
    if (g.mask) dev.mask = dmask.data();
    if (g.bias) dev.bias = dbias.data();
  }
};

// Each case on the device, out / lse / weights poisoned first, against the CPU reference.
TEST_F(AttentionGpu, AttentionMatchesReference) {
  const std::vector<GpuCase> cases = {
      {{1, 1, 1, 1, 1, 32}},
      {{2, 4, 2, 7, 129, 64}, true},
      {{1, 2, 1, 129, 7, 48}, true, false, false, false, 0.7f},
      {{2, 3, 3, 33, 65, 100}, false, true, true, true},
      {{1, 4, 1, test::sized(1000, 200), test::sized(1000, 200), 128}, true, true},
      {{2, 2, 2, 17, 40, 256}, false, false, true, true},
      {{1, 2, 2, 9, 1, 7}, false, false, false, true},
  };
  std::uint64_t seed = 100;
  for (const GpuCase& g : cases) {
    const AttentionShape& s = g.s;
    SCOPED_TRACE(::testing::Message() << "B " << s.batch << " Hq " << s.q_heads << " Hkv "
                                      << s.kv_heads << " Lq " << s.q_len << " Lk " << s.k_len
                                      << " d " << s.head_dim);
    const Inputs in = random_inputs(s, seed += 10);
    const CaseOptions o(ctx, g, seed);
    const Result want = reference(s, in, o.host);

    auto dq = test::to_device(ctx, in.q), dk = test::to_device(ctx, in.k),
         dv = test::to_device(ctx, in.v);
    Buffer<float> out(ctx, q_size(s)), lse(ctx, rows_of(s)), w(ctx, rows_of(s) * s.k_len);
    test::poison(out);
    test::poison(lse);
    test::poison(w);
    attention(ctx, dq.data(), dk.data(), dv.data(), s, out.data(), o.dev,
              {.lse = lse.data(), .weights = w.data()});
    const auto tol = test::tolerance(test::DType::FP32);
    EXPECT_TRUE(test::close(out.to_host(), want.out, tol)) << "out";
    EXPECT_TRUE(test::close(lse.to_host(), want.lse, tol)) << "lse";
    EXPECT_TRUE(test::close(w.to_host(), want.weights, tol)) << "weights";

    // Without the optional outputs, out alone is the same.
    test::poison(out);
    attention(ctx, dq.data(), dk.data(), dv.data(), s, out.data(), o.dev);
    EXPECT_TRUE(test::close(out.to_host(), want.out, tol)) << "out without lse / weights";
  }
}

// Weights without lse (the kernel's own workspace), and a fully masked batch on the device;
// the keys past each batch's length are NaN (never read, genai/attention.hpp).
TEST_F(AttentionGpu, WeightsAndEmptyRowsMatchReference) {
  const AttentionShape s{.batch = 2, .q_heads = 2, .kv_heads = 1, .q_len = 5, .k_len = 70,
                         .head_dim = 64};
  Inputs in = random_inputs(s, 200);
  const std::vector<std::int32_t> lengths = {0, 33};
  for (std::int64_t b = 0; b < 2; ++b)
    for (std::int64_t j = lengths[b]; j < 70; ++j)
      for (std::int64_t c = 0; c < 64; ++c) {
        in.k[(b * 70 + j) * 64 + c] = NAN;
        in.v[(b * 70 + j) * 64 + c] = NAN;
      }
  const Result want = reference(s, in, {.key_lengths = lengths.data()});
  auto dq = test::to_device(ctx, in.q), dk = test::to_device(ctx, in.k),
       dv = test::to_device(ctx, in.v);
  auto dlen = test::to_device(ctx, lengths);
  Buffer<float> out(ctx, q_size(s)), w(ctx, rows_of(s) * s.k_len);
  test::poison(out);
  test::poison(w);
  attention(ctx, dq.data(), dk.data(), dv.data(), s, out.data(), {.key_lengths = dlen.data()},
            {.weights = w.data()});
  const auto tol = test::tolerance(test::DType::FP32);
  EXPECT_TRUE(test::close(out.to_host(), want.out, tol));
  EXPECT_TRUE(test::close(w.to_host(), want.weights, tol));
}

TEST_F(AttentionGpu, BadKeyLengthsOnTheDeviceAreReported) {
  const AttentionShape s{.batch = 2, .q_len = 3, .k_len = 4, .head_dim = 8};
  const Inputs in = random_inputs(s, 210);
  auto dq = test::to_device(ctx, in.q), dk = test::to_device(ctx, in.k),
       dv = test::to_device(ctx, in.v);
  auto dlen = test::to_device(ctx, std::vector<std::int32_t>{-1, 4});
  Buffer<float> out(ctx, q_size(s));
  test::poison(out);
  EXPECT_EQ(test::error_of([&] {
              attention(ctx, dq.data(), dk.data(), dv.data(), s, out.data(),
                        {.key_lengths = dlen.data()});
            }),
            "genai::attention: argument 'opts.key_lengths' entry 0 must be in [0, 4] (got -1)");
  for (float o : out.to_host()) EXPECT_TRUE(std::isnan(o));
}

TEST_F(AttentionGpu, SoftmaxMatchesReference) {
  const std::int64_t longest = test::sized<std::int64_t>(1000, 300);
  for (std::int64_t n : {std::int64_t{1}, std::int64_t{7}, std::int64_t{100}, longest}) {
    const std::int64_t rows = 37;
    std::vector<float> x = test::normals(rows * n, 300 + n, 0, 5);
    x[0] = -INFINITY;
    const std::vector<float> u = test::uniforms(rows * n, 400 + n);
    std::unique_ptr<bool[]> mask(new bool[rows * n]);
    for (std::int64_t e = 0; e < rows * n; ++e) mask[e] = u[e] < 0.6f && e / n != 3;  // row 3 empty
    for (bool masked : {false, true}) {
      std::vector<float> want(rows * n);
      softmax(Context::cpu(), x.data(), rows, n, want.data(), masked ? mask.get() : nullptr);
      auto dx = test::to_device(ctx, x);
      Buffer<bool> dm(ctx, std::span<const bool>(mask.get(), rows * n));
      Buffer<float> out(ctx, rows * n);
      test::poison(out);
      softmax(ctx, dx.data(), rows, n, out.data(), masked ? dm.data() : nullptr);
      EXPECT_TRUE(test::close(out.to_host(), want, test::tolerance(test::DType::FP32)))
          << "n " << n << " masked " << masked;
    }
  }
}

// ---- fp16 / bf16 on the GPU --------------------------------------------------------------

// Naive attention in T, as an eager fp16 / bf16 PyTorch implementation computes it: Q K^T with
// fp32 accumulation rounded to T, scaled and rounded, bias added and rounded, softmax in fp32
// rounded to T, P V with fp32 accumulation rounded to T. in holds values exact in T.
template <class T>
std::vector<double> naive_low(const AttentionShape& s, const Inputs& in, float scale,
                              const Pred& kept, const Bias& bias) {
  auto rnd = [](float x) { return static_cast<float>(T(x)); };
  std::vector<double> out(q_size(s), 0.0);
  const std::int64_t d = s.head_dim, group = s.q_heads / s.kv_heads;
  std::vector<float> x(s.k_len), p(s.k_len);
  for (std::int64_t b = 0; b < s.batch; ++b)
    for (std::int64_t h = 0; h < s.q_heads; ++h)
      for (std::int64_t i = 0; i < s.q_len; ++i) {
        const std::int64_t row = (b * s.q_heads + h) * s.q_len + i;
        const std::int64_t kv = b * s.kv_heads + h / group;
        float m = -INFINITY;
        for (std::int64_t j = 0; j < s.k_len; ++j) {
          x[j] = -INFINITY;
          if (!kept(b, h, i, j)) continue;
          float dot = 0;
          for (std::int64_t c = 0; c < d; ++c) dot += in.q[row * d + c] * in.k[(kv * s.k_len + j) * d + c];
          x[j] = rnd(rnd(dot) * scale);
          if (bias) x[j] = rnd(x[j] + static_cast<float>(bias(b, h, i, j)));
          m = std::max(m, x[j]);
        }
        float sum = 0;
        for (std::int64_t j = 0; j < s.k_len; ++j)
          sum += p[j] = m == -INFINITY || x[j] == -INFINITY ? 0.0f : std::exp(x[j] - m);
        for (std::int64_t j = 0; j < s.k_len; ++j) p[j] = sum > 0 ? rnd(p[j] / sum) : 0.0f;
        for (std::int64_t c = 0; c < d; ++c) {
          float acc = 0;
          for (std::int64_t j = 0; j < s.k_len; ++j) acc += p[j] * in.v[(kv * s.k_len + j) * d + c];
          out[row * d + c] = rnd(acc);
        }
      }
  return out;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (std::size_t e = 0; e < a.size(); ++e) m = std::max(m, std::abs(a[e] - b[e]));
  return m;
}

// Each case on the device in T, outputs poisoned first: out against the CPU reference in T
// (the dtype's tolerance), lse and weights (computed in fp32 from T inputs: exp2 / log in fp32
// and another summation order, so the tf32 tolerance); and the FlashAttention rule: max |ours -
// fp64| <= 2 max |naive T - fp64| + 2 max |round_T(fp64) - fp64| (the last term, the rounding of
// the exact result itself, keeps cases whose naive error is ~0, e.g. Lk = 1, from flaking).
template <class T>
void check_low_gpu(const Context& ctx, test::DType dtype) {
  const std::vector<GpuCase> cases = {
      {{1, 1, 1, 1, 1, 64}},
      {{2, 4, 2, 7, 129, 64}, true},
      {{1, 2, 1, 129, 7, 128}, true, false, false, false, 0.3f},
      {{2, 3, 3, 65, 200, 40}, false, true, true, true},
      {{1, 4, 1, test::sized(1000, 200), test::sized(1000, 200), 128}, true, true},
      {{2, 2, 2, 17, 40, 256}, false, false, true, true},
      {{1, 2, 2, 33, 70, 80}, true, false, false, true},
      {{1, 2, 1, 50, 90, 96}, false, false, false, false, 0.5f},
      {{1, 1, 1, 20, 33, 7}, false, false, false, true},
      {{2, 2, 1, 129, test::sized(1000, 200), 64}, false, false, true},
  };
  std::uint64_t seed = 600;
  for (const GpuCase& g : cases) {
    const AttentionShape& s = g.s;
    SCOPED_TRACE(::testing::Message() << "B " << s.batch << " Hq " << s.q_heads << " Hkv "
                                      << s.kv_heads << " Lq " << s.q_len << " Lk " << s.k_len
                                      << " d " << s.head_dim);
    const Inputs in = rounded<T>(random_inputs(s, seed += 10));
    const CaseOptions o(ctx, g, seed);
    const AttentionOptions& host = o.host;
    const LowResult<T> want = reference_low<T>(s, in, host);
    const float scale = detail::attention_scale(s, host);
    const std::vector<double> exact = naive(s, in, scale, kept_of(s, host), bias_of(host)).out;
    const std::vector<double> low = naive_low<T>(s, in, scale, kept_of(s, host), bias_of(host));

    auto dq = test::to_device(ctx, to_dtype<T>(in.q)), dk = test::to_device(ctx, to_dtype<T>(in.k)),
         dv = test::to_device(ctx, to_dtype<T>(in.v));
    Buffer<T> out(ctx, q_size(s));
    Buffer<float> lse(ctx, rows_of(s)), w(ctx, rows_of(s) * s.k_len);
    test::poison(out);
    test::poison(lse);
    test::poison(w);
    attention(ctx, dq.data(), dk.data(), dv.data(), s, out.data(), o.dev,
              {.lse = lse.data(), .weights = w.data()});
    const std::vector<float> got = widen(out.to_host());
    EXPECT_TRUE(test::close(got, widen(want.out), test::tolerance(dtype))) << "out";
    const auto tol32 = test::tolerance(test::DType::TF32);
    EXPECT_TRUE(test::close(lse.to_host(), want.lse, tol32)) << "lse";
    EXPECT_TRUE(test::close(w.to_host(), want.weights, tol32)) << "weights";

    std::vector<double> ours(got.begin(), got.end()), rounded_exact(exact.size());
    for (std::size_t e = 0; e < exact.size(); ++e)
      rounded_exact[e] = static_cast<float>(T(static_cast<float>(exact[e])));
    const double err = max_abs_diff(ours, exact), naive_err = max_abs_diff(low, exact);
    EXPECT_LE(err, 2 * naive_err + 2 * max_abs_diff(rounded_exact, exact))
        << "ours " << err << ", naive " << naive_err;

    // Without the optional outputs, out alone is the same.
    test::poison(out);
    attention(ctx, dq.data(), dk.data(), dv.data(), s, out.data(), o.dev);
    EXPECT_EQ(widen(out.to_host()), got) << "out without lse / weights";
  }
}

TEST_F(AttentionGpu, Fp16AttentionMatchesReference) { check_low_gpu<fp16>(ctx, test::DType::FP16); }
TEST_F(AttentionGpu, Bf16AttentionMatchesReference) { check_low_gpu<bf16>(ctx, test::DType::BF16); }

// A batch with key length 0 (its rows: out 0, lse -inf, weights 0) beside one with NaN in the
// padding past its length (never read), weights without lse; and huge logits (1e4, 9900, 5000):
// out = v_0 exactly, lse = 1e4 to fp32 rounding, weights one-hot.
template <class T>
void check_low_gpu_edges(const Context& ctx) {
  const AttentionShape s{.batch = 2, .q_heads = 2, .kv_heads = 1, .q_len = 5, .k_len = 70,
                         .head_dim = 64};
  Inputs in = rounded<T>(random_inputs(s, 700));
  for (std::int64_t j = 33; j < 70; ++j) in.v[(70 + j) * 64 + 5] = NAN;  // batch 1's padding
  const std::vector<std::int32_t> lengths = {0, 33};
  const LowResult<T> want = reference_low<T>(s, in, {.key_lengths = lengths.data()});
  auto dq = test::to_device(ctx, to_dtype<T>(in.q)), dk = test::to_device(ctx, to_dtype<T>(in.k)),
       dv = test::to_device(ctx, to_dtype<T>(in.v));
  auto dlen = test::to_device(ctx, lengths);
  Buffer<T> out(ctx, q_size(s));
  Buffer<float> w(ctx, rows_of(s) * s.k_len);
  test::poison(out);
  test::poison(w);
  attention(ctx, dq.data(), dk.data(), dv.data(), s, out.data(), {.key_lengths = dlen.data()},
            {.weights = w.data()});
  const std::vector<float> got = widen(out.to_host());
  for (std::int64_t e = 0; e < 2 * 5 * 64; ++e) ASSERT_EQ(got[e], 0.0f) << e;  // batch 0
  EXPECT_TRUE(test::close(got, widen(want.out), test::tolerance(test::DType::FP16)));
  EXPECT_TRUE(test::close(w.to_host(), want.weights, test::tolerance(test::DType::TF32)));

  const AttentionShape one{.q_len = 1, .k_len = 3, .head_dim = 1};
  auto hq = test::to_device(ctx, to_dtype<T>({100})), hk = test::to_device(ctx, to_dtype<T>({100, 99, 50})),
       hv = test::to_device(ctx, to_dtype<T>({1, 2, 3}));
  Buffer<T> ho(ctx, 1);
  Buffer<float> hl(ctx, 1), hw(ctx, 3);
  attention(ctx, hq.data(), hk.data(), hv.data(), one, ho.data(), {.scale = 1.0f},
            {.lse = hl.data(), .weights = hw.data()});
  EXPECT_EQ(static_cast<float>(ho.to_host()[0]), 1.0f);
  EXPECT_EQ(hl.to_host()[0], 1e4f);
  const std::vector<float> hwv = hw.to_host();
  EXPECT_EQ(hwv[0], 1.0f);
  EXPECT_LT(hwv[1], 1e-43f);
  EXPECT_EQ(hwv[2], 0.0f);
}

TEST_F(AttentionGpu, LowPrecisionEmptyRowsAndHugeLogitsMatchReference) {
  check_low_gpu_edges<fp16>(ctx);
  check_low_gpu_edges<bf16>(ctx);
}

}  // namespace
}  // namespace genai
