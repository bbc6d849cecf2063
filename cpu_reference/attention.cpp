// CPU reference of the attention module: logits, max, sum of exponentials and normalisation in
// double, one query row at a time.
#include "cpu_reference/attention.hpp"

#include <cmath>
#include <limits>
#include <vector>

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

}  // namespace

BroadcastStrides broadcast_strides(const BroadcastShape& s) {
  BroadcastStrides st;
  std::int64_t stride = 1;
  st.j = s.k_len == 1 ? 0 : stride;
  stride *= s.k_len;
  st.i = s.q_len == 1 ? 0 : stride;
  stride *= s.q_len;
  st.h = s.heads == 1 ? 0 : stride;
  stride *= s.heads;
  st.b = s.batch == 1 ? 0 : stride;
  return st;
}

void attention(const float* q, const float* k, const float* v, const AttentionShape& shape,
               float scale, const AttentionOptions& opts, float* out, float* lse,
               float* weights) {
  const std::int64_t B = shape.batch, Hq = shape.q_heads, Hkv = shape.kv_heads;
  const std::int64_t Lq = shape.q_len, Lk = shape.k_len, d = shape.head_dim;
  const std::int64_t group = Hq / Hkv;
  const BroadcastStrides ms = broadcast_strides(opts.mask_shape);
  const BroadcastStrides bs = broadcast_strides(opts.bias_shape);
  std::vector<double> s(Lk);
  for (std::int64_t b = 0; b < B; ++b) {
    const std::int64_t klen = opts.key_lengths ? opts.key_lengths[b] : Lk;
    for (std::int64_t h = 0; h < Hq; ++h) {
      const std::int64_t kv = b * Hkv + h / group;
      const float* kh = k + kv * Lk * d;
      const float* vh = v + kv * Lk * d;
      for (std::int64_t i = 0; i < Lq; ++i) {
        const std::int64_t row = (b * Hq + h) * Lq + i;
        const float* qi = q + row * d;
        for (std::int64_t j = 0; j < Lk; ++j) {
          bool kept = j < klen && (!opts.causal || j <= i + Lk - Lq);
          if (kept && opts.mask) kept = opts.mask[b * ms.b + h * ms.h + i * ms.i + j * ms.j];
          if (!kept) {
            s[j] = kNegInf;
            continue;
          }
          double dot = 0.0;
          for (std::int64_t c = 0; c < d; ++c) dot += double(qi[c]) * double(kh[j * d + c]);
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
            if (s[j] != 0.0) acc += s[j] * double(vh[j * d + c]);
          out[row * d + c] = static_cast<float>(acc);
        }
      }
    }
  }
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
