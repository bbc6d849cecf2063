// CPU backend of the attention module. The reference: logits, max, sum of exponentials and
// normalisation in double, one query row at a time. The users' path: the same in blocks, with
// the logits and P V as CBLAS float GEMMs and an online softmax. fp16 / bf16 data are widened
// exactly and out rounded once.
#include "cpu_reference/attention.hpp"

#include <cblas.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "cpu_reference/exp.hpp"
#include "cpu_reference/parallel.hpp"
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

// Query rows per chunk of the blocked path, and keys per logit block. A chunk holds its rows'
// output, running max and sum and one logit block in float, and (fp16 / bf16, or fp32 values
// with a non-finite row) its keys and values widened: O(Bq d + Bq Bk + Lk d) memory, never
// Lq x Lk. Both GEMMs of a block are SGEMMs; the chunk is compute-bound (4 Bq Bk d flops per
// block against the Bq Bk exponentials of the softmax).
constexpr std::int64_t kQueryBlock = 256;
constexpr std::int64_t kKeyBlock = 256;

int blas_int(std::int64_t v) { return static_cast<int>(v); }  // d <= 256, blocks <= 256

// C [m x n] = alpha A [m x k] B^T (B [n x k]), row-major, leading dimensions the widths.
void gemm_abt(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* A,
              const float* B, float* C) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blas_int(m), blas_int(n), blas_int(k),
              alpha, A, blas_int(k), B, blas_int(k), 0.0f, C, blas_int(n));
}

// C [m x n] += A [m x k] B [k x n], row-major.
void gemm_ab_add(std::int64_t m, std::int64_t n, std::int64_t k, const float* A, const float* B,
                 float* C) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blas_int(m), blas_int(n), blas_int(k),
              1.0f, A, blas_int(k), B, blas_int(n), 1.0f, C, blas_int(n));
}

// Whether x [0, n) holds no NaN and no infinity (the exponent bits of each, or-ed: a loop that
// vectorises, without an early exit).
bool all_finite(const float* x, std::int64_t n) {
  std::uint32_t special = 0;
  for (std::int64_t e = 0; e < n; ++e)
    special |= (std::bit_cast<std::uint32_t>(x[e]) & 0x7f800000u) == 0x7f800000u;
  return special == 0;
}
template <class T>
bool all_finite(const T* x, std::int64_t n) {
  return std::all_of(x, x + n, [](T v) { return std::isfinite(static_cast<float>(v)); });
}

// One chunk of the blocked path: query rows [i0, i1) of head h of batch b. The logits and P V
// in float (SGEMM), the exponentials in float (exp_f), the row sums in double. Values beyond
// float's range overflow here where the double reference may not (|q . k| or |Σ p v| > 3.4e38).
template <class T>
class BlockedChunk {
 public:
  BlockedChunk(const T* q, const T* k, const T* v, const AttentionShape& shape, float scale,
               const AttentionOptions& opts)
      : q_(q), k_(k), v_(v), s_(shape), scale_(scale), o_(opts),
        ms_(detail::broadcast_strides(opts.mask_shape)),
        bs_(detail::broadcast_strides(opts.bias_shape)) {}

  void run(std::int64_t b, std::int64_t h, std::int64_t i0, std::int64_t i1, T* out, float* lse,
           float* weights) {
    const std::int64_t d = s_.head_dim, rows = i1 - i0, Lk = s_.k_len;
    const std::int64_t klen = o_.key_lengths ? o_.key_lengths[b] : Lk;
    // Keys [0, kend) can be kept by some row of the chunk; later ones are never read.
    const std::int64_t kend = o_.causal ? std::clamp(i1 + Lk - s_.q_len, std::int64_t{0}, klen) : klen;
    const std::int64_t row0 = (b * s_.q_heads + h) * s_.q_len + i0;
    const std::int64_t kv = b * s_.kv_heads + h / (s_.q_heads / s_.kv_heads);
    qf_ = as_float(q_ + row0 * d, rows * d, qd_);
    kf_ = as_float(k_ + kv * Lk * d, kend * d, kd_);
    vf_ = finite_values(v_ + kv * Lk * d, kend);
    bad_s_.assign(static_cast<std::size_t>(rows) * bad_.size(), kNegInfF);
    acc_.assign(static_cast<std::size_t>(rows * d), 0.0f);
    m_.assign(static_cast<std::size_t>(rows), kNegInfF);
    l_.assign(static_cast<std::size_t>(rows), 0.0);
    lse_.resize(static_cast<std::size_t>(rows));
    sb_.resize(static_cast<std::size_t>(rows * std::min(kKeyBlock, std::max<std::int64_t>(kend, 1))));
    for (std::int64_t j0 = 0; j0 < kend; j0 += kKeyBlock) {
      const std::int64_t cols = std::min(kKeyBlock, kend - j0);
      logits(b, h, i0, rows, j0, cols);
      for (std::int64_t r = 0; r < rows; ++r) {
        float* sr = sb_.data() + r * cols;
        const float m = std::max(m_[r], max_of(sr, cols));
        if (m == kNegInfF) {  // nothing kept so far: P = 0
          std::fill(sr, sr + cols, 0.0f);
          continue;
        }
        keep_bad_logits(r, j0, cols, sr);
        const double sum = exp_shifted(sr, cols, m);
        if (m != m_[r]) {
          // 0 for the first kept block, and wherever the max grows by more than ~745: then every
          // key summed so far has weight 0 in double, as in the reference (0, not inf * 0).
          const double f = std::exp(double(m_[r]) - m);
          l_[r] *= f;
          for (std::int64_t c = 0; c < d; ++c)
            acc_[r * d + c] = f == 0.0 ? 0.0f : float(acc_[r * d + c] * f);
          m_[r] = m;
        }
        l_[r] += sum;
      }
      gemm_ab_add(rows, d, cols, sb_.data(), vf_ + j0 * d, acc_.data());
      add_non_finite_values(rows, j0, cols);
    }
    for (std::int64_t r = 0; r < rows; ++r) {
      const bool empty = l_[r] == 0.0;
      const double inv = empty ? 0.0 : 1.0 / l_[r];
      for (std::int64_t c = 0; c < d; ++c) out[(row0 + r) * d + c] = narrow<T>(acc_[r * d + c] * inv);
      lse_[r] = empty ? kNegInf : m_[r] + std::log(l_[r]);
      if (lse) lse[row0 + r] = static_cast<float>(lse_[r]);
    }
    if (weights) write_weights(b, h, i0, rows, kend, weights + row0 * Lk);
  }

 private:
  static constexpr float kNegInfF = -std::numeric_limits<float>::infinity();

  // src [0, n) as float: fp32 in place, fp16 / bf16 widened (exactly) into buf.
  static const float* as_float(const T* src, std::int64_t n, std::vector<float>& buf) {
    if constexpr (std::is_same_v<T, float>) {
      return src;
    } else {
      buf.resize(static_cast<std::size_t>(n));
      for (std::int64_t e = 0; e < n; ++e) buf[e] = static_cast<float>(src[e]);
      return buf.data();
    }
  }

  // The first kend rows of v as float, the rows holding a NaN or an infinity zeroed (in a copy)
  // and listed in bad_: the GEMM would multiply them by the zero probabilities of masked keys.
  const float* finite_values(const T* v, std::int64_t kend) {
    const std::int64_t d = s_.head_dim;
    vrows_ = v;
    bad_.clear();
    for (std::int64_t j = 0; j < kend; ++j)
      if (!all_finite(v + j * d, d)) bad_.push_back(j);
    if (bad_.empty()) return as_float(v, kend * d, vd_);
    vd_.resize(static_cast<std::size_t>(kend * d));
    for (std::int64_t e = 0; e < kend * d; ++e) vd_[e] = static_cast<float>(v[e]);
    for (const std::int64_t j : bad_) std::fill(vd_.begin() + j * d, vd_.begin() + (j + 1) * d, 0.0f);
    return vd_.data();
  }

  // The logits of the listed rows of v in block [j0, j0 + cols), row r's, before they become
  // exponentials.
  void keep_bad_logits(std::int64_t r, std::int64_t j0, std::int64_t cols, const float* sr) {
    const auto nb = static_cast<std::int64_t>(bad_.size());
    for (std::int64_t i = 0; i < nb; ++i)
      if (bad_[i] >= j0 && bad_[i] < j0 + cols) bad_s_[r * nb + i] = sr[bad_[i] - j0];
  }

  // The terms p v_j of the listed rows of v where p = exp(s_j - m) != 0 in double, as the
  // reference adds them (its weights reach 0 near e^-745, exp_f's at e^-87: a NaN or an infinity
  // of a kept key propagates exactly where the reference's does).
  void add_non_finite_values(std::int64_t rows, std::int64_t j0, std::int64_t cols) {
    const std::int64_t d = s_.head_dim;
    const auto nb = static_cast<std::int64_t>(bad_.size());
    for (std::int64_t i = 0; i < nb; ++i) {
      const std::int64_t j = bad_[i];
      if (j < j0 || j >= j0 + cols) continue;
      for (std::int64_t r = 0; r < rows; ++r) {
        const double p = m_[r] == kNegInfF ? 0.0 : std::exp(double(bad_s_[r * nb + i]) - m_[r]);
        if (p != 0.0)
          for (std::int64_t c = 0; c < d; ++c)
            acc_[r * d + c] += static_cast<float>(p * static_cast<float>(vrows_[j * d + c]));
      }
    }
  }

  // sb_ [rows x cols] = the logits of rows i0.. against keys j0.., -inf where not kept.
  void logits(std::int64_t b, std::int64_t h, std::int64_t i0, std::int64_t rows, std::int64_t j0,
              std::int64_t cols) {
    const std::int64_t d = s_.head_dim, shift = s_.k_len - s_.q_len;
    gemm_abt(rows, cols, d, scale_, qf_, kf_ + j0 * d, sb_.data());
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::int64_t i = i0 + r;
      float* sr = sb_.data() + r * cols;
      if (o_.bias) {
        const float* br = o_.bias + b * bs_.b + h * bs_.h + i * bs_.i;
        for (std::int64_t c = 0; c < cols; ++c) sr[c] += br[(j0 + c) * bs_.j];
      }
      if (o_.causal)
        for (std::int64_t c = std::max<std::int64_t>(0, i + shift + 1 - j0); c < cols; ++c)
          sr[c] = kNegInfF;
      if (o_.mask) {
        const bool* mr = o_.mask + b * ms_.b + h * ms_.h + i * ms_.i;
        for (std::int64_t c = 0; c < cols; ++c)
          if (!mr[(j0 + c) * ms_.j]) sr[c] = kNegInfF;
      }
    }
  }

  // w [rows x Lk] = exp(s - lse) for kept keys, 0 elsewhere.
  void write_weights(std::int64_t b, std::int64_t h, std::int64_t i0, std::int64_t rows,
                     std::int64_t kend, float* w) {
    const std::int64_t Lk = s_.k_len;
    for (std::int64_t r = 0; r < rows; ++r) std::fill(w + r * Lk + kend, w + (r + 1) * Lk, 0.0f);
    for (std::int64_t j0 = 0; j0 < kend; j0 += kKeyBlock) {
      const std::int64_t cols = std::min(kKeyBlock, kend - j0);
      logits(b, h, i0, rows, j0, cols);
      for (std::int64_t r = 0; r < rows; ++r) {
        float* sr = sb_.data() + r * cols;
        // exp(-inf - lse) = 0 for the keys not kept; the difference in double, rounded once.
        for (std::int64_t c = 0; c < cols; ++c)
          w[r * Lk + j0 + c] = lse_[r] == kNegInf ? 0.0f : exp_f(static_cast<float>(sr[c] - lse_[r]));
      }
    }
  }

  const T *q_, *k_, *v_;
  const AttentionShape& s_;
  float scale_;
  const AttentionOptions& o_;
  detail::BroadcastStrides ms_, bs_;
  // Work arrays, one set per thread, kept from chunk to chunk.
  struct Work {
    std::vector<std::int64_t> bad;
    std::vector<float> qd, kd, vd, acc, m, sb, bad_s;
    std::vector<double> l, lse;
  };
  static Work& work() {
    static thread_local Work w;
    return w;
  }

  const T* vrows_ = nullptr;
  const float *qf_ = nullptr, *kf_ = nullptr, *vf_ = nullptr;
  Work& w_ = work();
  std::vector<std::int64_t>& bad_ = w_.bad;
  std::vector<float>&qd_ = w_.qd, &kd_ = w_.kd, &vd_ = w_.vd, &acc_ = w_.acc, &m_ = w_.m, &sb_ = w_.sb,
                    &bad_s_ = w_.bad_s;
  std::vector<double>&l_ = w_.l, &lse_ = w_.lse;
};

}  // namespace

template <class T>
void attention_blocked(const T* q, const T* k, const T* v, const AttentionShape& shape,
                       float scale, const AttentionOptions& opts, T* out, float* lse,
                       float* weights) {
  const std::int64_t qblocks = (shape.q_len + kQueryBlock - 1) / kQueryBlock;
  parallel_for(shape.batch * shape.q_heads * qblocks, [&](std::int64_t chunk) {
    const std::int64_t bh = chunk / qblocks, i0 = (chunk % qblocks) * kQueryBlock;
    BlockedChunk<T> c(q, k, v, shape, scale, opts);
    c.run(bh / shape.q_heads, bh % shape.q_heads, i0, std::min(shape.q_len, i0 + kQueryBlock),
          out, lse, weights);
  });
}

#define GENAI_ATTENTION_BLOCKED(T)                                                           \
  template void attention_blocked(const T*, const T*, const T*, const AttentionShape&, float, \
                                  const AttentionOptions&, T*, float*, float*);
GENAI_ATTENTION_BLOCKED(float)
GENAI_ATTENTION_BLOCKED(fp16)
GENAI_ATTENTION_BLOCKED(bf16)
#undef GENAI_ATTENTION_BLOCKED

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
