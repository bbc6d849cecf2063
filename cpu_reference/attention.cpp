// CPU reference of the attention module: logits, max, sum of exponentials and normalisation in
// double, one query row at a time; fp16 / bf16 data are widened exactly and out rounded once.
#include "cpu_reference/attention.hpp"

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "genai/detail/attention.hpp"

namespace genai::ref {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// out_j = exp(s_j - m) / sum exp(s_j' - m) over the finite-or-+inf s_j (s_j = -inf is masked);
// returns lse = m + log sum, or -inf (and out all 0) when nothing is kept.
double softmax_row(std::vector<double>& s) {
  double m = kNegInf;
  for (double x : s) m = std::max(m, x);
  if (m == kNegInf) {
    for (double& x : s) x = 0.0;
    return kNegInf;
  }
  double sum = 0.0;
  for (double& x : s) sum += x = std::exp(x - m);
  for (double& x : s) x /= sum;
  return m + std::log(sum);
}

double widen(float x) { return x; }
double widen(fp16 x) { return static_cast<float>(x); }
double widen(bf16 x) { return static_cast<float>(x); }

// x rounded to float toward zero, with the last bit set when inexact ("round to odd"). Rounding
// that float to a format with at least 2 fewer mantissa bits (fp16: 11, bf16: 8, float: 24)
// gives the correctly rounded result of x, which rounding twice to nearest would not always.
float round_to_odd(double x) {
  float f = static_cast<float>(x);
  if (std::isinf(f) || std::isnan(f) || static_cast<double>(f) == x) return f;
  if (std::abs(static_cast<double>(f)) > std::abs(x)) f = std::nextafter(f, 0.0f);
  return std::bit_cast<float>(std::bit_cast<std::uint32_t>(f) | 1u);
}

template <class T>
T narrow(double x) {
  if constexpr (std::is_same_v<T, float>)
    return static_cast<float>(x);
  else
    return T(round_to_odd(x));
}

template <class T>
void attention_any(const T* q, const T* k, const T* v, const AttentionShape& shape, float scale,
                   const AttentionOptions& opts, T* out, float* lse, float* weights) {
  const std::int64_t B = shape.batch, Hq = shape.q_heads, Hkv = shape.kv_heads;
  const std::int64_t Lq = shape.q_len, Lk = shape.k_len, d = shape.head_dim;
  const std::int64_t group = Hq / Hkv;
  const detail::BroadcastStrides ms = detail::broadcast_strides(opts.mask_shape);
  const detail::BroadcastStrides bs = detail::broadcast_strides(opts.bias_shape);
  std::vector<double> s(Lk);
  for (std::int64_t b = 0; b < B; ++b) {
    const std::int64_t klen = opts.key_lengths ? opts.key_lengths[b] : Lk;
    for (std::int64_t h = 0; h < Hq; ++h) {
      const std::int64_t kv = b * Hkv + h / group;
      const T* kh = k + kv * Lk * d;
      const T* vh = v + kv * Lk * d;
      for (std::int64_t i = 0; i < Lq; ++i) {
        const std::int64_t row = (b * Hq + h) * Lq + i;
        const T* qi = q + row * d;
        for (std::int64_t j = 0; j < Lk; ++j) {
          bool kept = j < klen && (!opts.causal || j <= i + Lk - Lq);
          if (kept && opts.mask) kept = opts.mask[b * ms.b + h * ms.h + i * ms.i + j * ms.j];
          if (!kept) {
            s[j] = kNegInf;
            continue;
          }
          double dot = 0.0;
          for (std::int64_t c = 0; c < d; ++c) dot += widen(qi[c]) * widen(kh[j * d + c]);
          s[j] = double(scale) * dot;
          if (opts.bias) s[j] += opts.bias[b * bs.b + h * bs.h + i * bs.i + j * bs.j];
        }
        const double l = softmax_row(s);  // s now holds the weights
        if (lse) lse[row] = static_cast<float>(l);
        if (weights)
          for (std::int64_t j = 0; j < Lk; ++j) weights[row * Lk + j] = static_cast<float>(s[j]);
        for (std::int64_t c = 0; c < d; ++c) {
          double acc = 0.0;
          for (std::int64_t j = 0; j < Lk; ++j)
            if (s[j] != 0.0) acc += s[j] * widen(vh[j * d + c]);
          out[row * d + c] = narrow<T>(acc);
        }
      }
    }
  }
}

}  // namespace

void attention(const float* q, const float* k, const float* v, const AttentionShape& shape,
               float scale, const AttentionOptions& opts, float* out, float* lse,
               float* weights) {
  attention_any(q, k, v, shape, scale, opts, out, lse, weights);
}

void attention(const fp16* q, const fp16* k, const fp16* v, const AttentionShape& shape,
               float scale, const AttentionOptions& opts, fp16* out, float* lse, float* weights) {
  attention_any(q, k, v, shape, scale, opts, out, lse, weights);
}

void attention(const bf16* q, const bf16* k, const bf16* v, const AttentionShape& shape,
               float scale, const AttentionOptions& opts, bf16* out, float* lse, float* weights) {
  attention_any(q, k, v, shape, scale, opts, out, lse, weights);
}

void softmax(const float* x, std::int64_t rows, std::int64_t n, const bool* mask, float* out) {
  std::vector<double> s(n);
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t j = 0; j < n; ++j)
      s[j] = (mask && !mask[r * n + j]) ? kNegInf : double(x[r * n + j]);
    softmax_row(s);
    for (std::int64_t j = 0; j < n; ++j) out[r * n + j] = static_cast<float>(s[j]);
  }
}

}  // namespace genai::ref
