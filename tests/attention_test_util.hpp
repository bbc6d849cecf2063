// Helpers of the attention tests (tests/attention_test.cpp, attention_gpu_test.cpp): shapes,
// random inputs, runs on the CPU with every output poisoned, an independent naive attention in
// double, the kept / bias predicates of a set of options, and fp16 / bf16 conversions.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <type_traits>
#include <vector>

#include "cpu_reference/attention.hpp"
#include "genai/attention.hpp"
#include "genai/detail/attention.hpp"
#include "genai/dtype.hpp"
#include "test_util.hpp"

namespace genai::test::attn {

inline const Context kCpu = Context::cpu();

inline std::int64_t q_size(const AttentionShape& s) { return s.batch * s.q_heads * s.q_len * s.head_dim; }
inline std::int64_t kv_size(const AttentionShape& s) {
  return s.batch * s.kv_heads * s.k_len * s.head_dim;
}
inline std::int64_t rows_of(const AttentionShape& s) { return s.batch * s.q_heads * s.q_len; }

struct Inputs {
  std::vector<float> q, k, v;
};
inline Inputs random_inputs(const AttentionShape& s, std::uint64_t seed) {
  return {test::normals(q_size(s), seed), test::normals(kv_size(s), seed + 1),
          test::normals(kv_size(s), seed + 2)};
}

struct Result {
  std::vector<float> out, lse, weights;
};

// genai::attention on the CPU with every output requested; outputs start poisoned.
inline Result run(const AttentionShape& s, const Inputs& in, const AttentionOptions& opts = {}) {
  Result r{std::vector<float>(q_size(s)), std::vector<float>(rows_of(s)),
           std::vector<float>(rows_of(s) * s.k_len)};
  test::poison(r.out);
  test::poison(r.lse);
  test::poison(r.weights);
  attention(kCpu, in.q.data(), in.k.data(), in.v.data(), s, r.out.data(), opts,
            {.lse = r.lse.data(), .weights = r.weights.data()});
  return r;
}

// An independent naive attention: logits from kept(b, h, i, j) and bias(b, h, i, j), softmax in
// double without the max shift where the logits are small (the tests using it keep them so).
using Pred = std::function<bool(std::int64_t, std::int64_t, std::int64_t, std::int64_t)>;
using Bias = std::function<double(std::int64_t, std::int64_t, std::int64_t, std::int64_t)>;
struct Naive {
  std::vector<double> out, lse, weights;
};
inline Naive naive(const AttentionShape& s, const Inputs& in, double scale, const Pred& kept,
            const Bias& bias = nullptr) {
  Naive n{std::vector<double>(q_size(s)), std::vector<double>(rows_of(s)),
          std::vector<double>(rows_of(s) * s.k_len)};
  const std::int64_t d = s.head_dim, group = s.q_heads / s.kv_heads;
  for (std::int64_t b = 0; b < s.batch; ++b)
    for (std::int64_t h = 0; h < s.q_heads; ++h)
      for (std::int64_t i = 0; i < s.q_len; ++i) {
        const std::int64_t row = (b * s.q_heads + h) * s.q_len + i;
        const std::int64_t kv = b * s.kv_heads + h / group;
        double z = 0;
        std::vector<double> e(s.k_len, 0.0);
        for (std::int64_t j = 0; j < s.k_len; ++j) {
          if (!kept(b, h, i, j)) continue;
          double dot = 0;
          for (std::int64_t c = 0; c < d; ++c)
            dot += double(in.q[row * d + c]) * in.k[(kv * s.k_len + j) * d + c];
          z += e[j] = std::exp(scale * dot + (bias ? bias(b, h, i, j) : 0.0));
        }
        n.lse[row] = z > 0 ? std::log(z) : -INFINITY;
        for (std::int64_t j = 0; j < s.k_len; ++j) {
          const double w = z > 0 ? e[j] / z : 0.0;
          n.weights[row * s.k_len + j] = w;
          for (std::int64_t c = 0; c < d; ++c)
            n.out[row * d + c] += w * in.v[(kv * s.k_len + j) * d + c];
        }
      }
  return n;
}

inline const Pred kAll = [](std::int64_t, std::int64_t, std::int64_t, std::int64_t) { return true; };


template <class T>
inline std::vector<T> to_dtype(const std::vector<float>& x) {
  std::vector<T> r;
  r.reserve(x.size());
  for (float f : x) r.push_back(T(f));
  return r;
}
template <class T>
inline std::vector<float> widen(const std::vector<T>& x) {
  std::vector<float> r;
  r.reserve(x.size());
  for (T h : x) r.push_back(static_cast<float>(h));
  return r;
}
// The inputs rounded to T (and back to float: the exact values the T overloads see).
template <class T>
inline Inputs rounded(const Inputs& in) {
  return {widen(to_dtype<T>(in.q)), widen(to_dtype<T>(in.k)), widen(to_dtype<T>(in.v))};
}

// Half a unit in the last place of T at r (10 / 7 mantissa bits; subnormals below 2^-14 /
// 2^-126): the most that rounding the exact r to T may move it.
template <class T>
inline double half_ulp(double r) {
  constexpr bool half = std::is_same_v<T, fp16>;
  constexpr int mant = half ? 10 : 7, emin = half ? -14 : -126;
  const int e = r == 0 ? emin : std::max(emin, std::ilogb(r));
  return std::ldexp(0.5, e - mant);
}

// kept(b, h, i, j) and bias(b, h, i, j) of a set of options (causal, key lengths, mask, bias).
inline Pred kept_of(const AttentionShape& s, const AttentionOptions& o) {
  const detail::BroadcastStrides ms = detail::broadcast_strides(o.mask_shape);
  return [=](std::int64_t b, std::int64_t h, std::int64_t i, std::int64_t j) {
    if (o.key_lengths && j >= o.key_lengths[b]) return false;
    if (o.causal && j > i + s.k_len - s.q_len) return false;
    return !o.mask || o.mask[b * ms.b + h * ms.h + i * ms.i + j * ms.j];
  };
}
inline Bias bias_of(const AttentionOptions& o) {
  if (!o.bias) return nullptr;
  const detail::BroadcastStrides bs = detail::broadcast_strides(o.bias_shape);
  return [=](std::int64_t b, std::int64_t h, std::int64_t i, std::int64_t j) {
    return double(o.bias[b * bs.b + h * bs.h + i * bs.i + j * bs.j]);
  };
}

template <class T>
struct LowResult {
  std::vector<T> out;
  std::vector<float> lse, weights;
};

// genai::attention in T on the CPU, every output requested and poisoned first.
template <class T>
inline LowResult<T> run_low(const AttentionShape& s, const Inputs& in,
                            const AttentionOptions& opts) {
  LowResult<T> r{std::vector<T>(q_size(s), T::from_bits(0x7FFF)),
                 std::vector<float>(rows_of(s)), std::vector<float>(rows_of(s) * s.k_len)};
  test::poison(r.lse);
  test::poison(r.weights);
  const std::vector<T> q = to_dtype<T>(in.q), k = to_dtype<T>(in.k), v = to_dtype<T>(in.v);
  attention(kCpu, q.data(), k.data(), v.data(), s, r.out.data(), opts,
            {.lse = r.lse.data(), .weights = r.weights.data()});
  return r;
}

// A case's options on host arrays: causal and scale, and where given key lengths, a mask
// [B, 1, Lq, Lk] and a bias [1, Hq, Lq, Lk] (null: that option off).
inline AttentionOptions case_options(const AttentionShape& s, bool causal, float scale,
                                     const std::int32_t* lengths, const bool* mask,
                                     const float* bias) {
  AttentionOptions o{.scale = scale, .causal = causal, .key_lengths = lengths};
  if (mask) {
    o.mask = mask;
    o.mask_shape = {.batch = s.batch, .q_len = s.q_len, .k_len = s.k_len};
  }
  if (bias) {
    o.bias = bias;
    o.bias_shape = {.heads = s.q_heads, .q_len = s.q_len, .k_len = s.k_len};
  }
  return o;
}

// The plain three-pass reference (ref::attention, in double) with the same outputs: the GPU
// tests' oracle (genai::attention on the CPU is the blocked float path).
inline Result reference(const AttentionShape& s, const Inputs& in, const AttentionOptions& opts = {}) {
  Result r{std::vector<float>(q_size(s)), std::vector<float>(rows_of(s)),
           std::vector<float>(rows_of(s) * s.k_len)};
  ref::attention(in.q.data(), in.k.data(), in.v.data(), s, detail::attention_scale(s, opts), opts,
                 r.out.data(), r.lse.data(), r.weights.data());
  return r;
}

template <class T>
inline LowResult<T> reference_low(const AttentionShape& s, const Inputs& in,
                                  const AttentionOptions& opts) {
  LowResult<T> r{std::vector<T>(q_size(s)), std::vector<float>(rows_of(s)),
                 std::vector<float>(rows_of(s) * s.k_len)};
  const std::vector<T> q = to_dtype<T>(in.q), k = to_dtype<T>(in.k), v = to_dtype<T>(in.v);
  ref::attention(q.data(), k.data(), v.data(), s, detail::attention_scale(s, opts), opts, r.out.data(),
                 r.lse.data(), r.weights.data());
  return r;
}

}  // namespace genai::test::attn
