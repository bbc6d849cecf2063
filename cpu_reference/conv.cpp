#include "cpu_reference/conv.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu_reference/nn.hpp"

namespace genai::ref {
namespace {

using detail::ConvGeometry;

// The outputs q whose tap s reads a real input column (0 <= q sw - pw + s dw < W): [first, end).
struct ColumnRange {
  int first, end;
};
ColumnRange columns_in_range(const ConvGeometry& g, int s) {
  const int shift = s * g.dw - g.pw;                                // w = q sw + shift
  const int first = shift >= 0 ? 0 : (-shift + g.sw - 1) / g.sw;    // q sw >= -shift
  const int top = g.W - 1 - shift;                                  // q sw <= top
  const int end = top < 0 ? 0 : top / g.sw + 1;
  const int f = std::min(first, g.Q), e = std::min(end, g.Q);
  return {f, std::max(e, f)};
}

// col [C R S x P Q] of one image x [C x H x W]: col[(c R + r) S + s][p Q + q] is the input
// under tap (r, s) of output (p, q), 0 in the padding.
void im2col(const ConvGeometry& g, const float* x, float* col) {
  const std::int64_t pq = static_cast<std::int64_t>(g.P) * g.Q;
  for (int c = 0; c < g.C; ++c)
    for (int r = 0; r < g.R; ++r)
      for (int s = 0; s < g.S; ++s) {
        float* row = col + ((static_cast<std::int64_t>(c) * g.R + r) * g.S + s) * pq;
        const ColumnRange qs = columns_in_range(g, s);
        const int shift = s * g.dw - g.pw;
        for (int p = 0; p < g.P; ++p) {
          const int h = p * g.sh - g.ph + r * g.dh;
          float* out = row + static_cast<std::int64_t>(p) * g.Q;
          if (h < 0 || h >= g.H) {
            std::memset(out, 0, g.Q * sizeof(float));
            continue;
          }
          const float* in = x + (static_cast<std::int64_t>(c) * g.H + h) * g.W;
          std::memset(out, 0, qs.first * sizeof(float));
          if (g.sw == 1) {
            std::memcpy(out + qs.first, in + qs.first + shift, (qs.end - qs.first) * sizeof(float));
          } else {
            for (int q = qs.first; q < qs.end; ++q) out[q] = in[q * g.sw + shift];
          }
          std::memset(out + qs.end, 0, (g.Q - qs.end) * sizeof(float));
        }
      }
}

// dx [C x H x W] += the columns of col scattered back to their inputs (im2col's adjoint).
void col2im_add(const ConvGeometry& g, const float* col, float* dx) {
  const std::int64_t pq = static_cast<std::int64_t>(g.P) * g.Q;
  for (int c = 0; c < g.C; ++c)
    for (int r = 0; r < g.R; ++r)
      for (int s = 0; s < g.S; ++s) {
        const float* row = col + ((static_cast<std::int64_t>(c) * g.R + r) * g.S + s) * pq;
        const ColumnRange qs = columns_in_range(g, s);
        const int shift = s * g.dw - g.pw;
        for (int p = 0; p < g.P; ++p) {
          const int h = p * g.sh - g.ph + r * g.dh;
          if (h < 0 || h >= g.H) continue;
          float* out = dx + (static_cast<std::int64_t>(c) * g.H + h) * g.W;
          const float* in = row + static_cast<std::int64_t>(p) * g.Q;
          if (g.sw == 1) {
            for (int q = qs.first; q < qs.end; ++q) out[q + shift] += in[q];
          } else {
            for (int q = qs.first; q < qs.end; ++q) out[q * g.sw + shift] += in[q];
          }
        }
      }
}

std::int64_t crs_of(const ConvGeometry& g) { return static_cast<std::int64_t>(g.C) * g.R * g.S; }
std::int64_t pq_of(const ConvGeometry& g) { return static_cast<std::int64_t>(g.P) * g.Q; }
std::int64_t chw_of(const ConvGeometry& g) { return static_cast<std::int64_t>(g.C) * g.H * g.W; }

// Index of element (n, c, l) of a [N x C x L] tensor.
std::int64_t at(std::int64_t n, std::int64_t c, std::int64_t l, std::int64_t C, std::int64_t L) {
  return (n * C + c) * L + l;
}

}  // namespace

void execute(const detail::ConvForward& op) {
  const ConvGeometry& g = op.g;
  const std::int64_t crs = crs_of(g), pq = pq_of(g);
  std::vector<float> col(crs * pq);
  for (int n = 0; n < g.N; ++n) {
    im2col(g, op.x + n * chw_of(g), col.data());
    float* y = op.y + n * g.K * pq;
    sgemm(false, false, g.K, pq, crs, op.W, crs, col.data(), pq, 0.0f, y, pq);
    if (op.b)
      for (int k = 0; k < g.K; ++k)
        for (std::int64_t i = 0; i < pq; ++i) y[k * pq + i] += op.b[k];
  }
}

void execute(const detail::ConvBackwardData& op) {
  const ConvGeometry& g = op.g;
  const std::int64_t crs = crs_of(g), pq = pq_of(g), chw = chw_of(g);
  std::vector<float> col(crs * pq);
  for (int n = 0; n < g.N; ++n) {
    sgemm(true, false, crs, pq, g.K, op.W, crs, op.dy + n * g.K * pq, pq, 0.0f, col.data(), pq);
    float* dx = op.dx + n * chw;
    if (!op.accumulate) std::memset(dx, 0, chw * sizeof(float));
    col2im_add(g, col.data(), dx);
  }
}

void execute(const detail::ConvBackwardWeight& op) {
  const ConvGeometry& g = op.g;
  const std::int64_t crs = crs_of(g), pq = pq_of(g);
  if (op.dW) {
    if (g.N == 0 && !op.accumulate) std::memset(op.dW, 0, g.K * crs * sizeof(float));
    std::vector<float> col(crs * pq);
    for (int n = 0; n < g.N; ++n) {
      im2col(g, op.x + n * chw_of(g), col.data());
      const float beta = n == 0 && !op.accumulate ? 0.0f : 1.0f;
      sgemm(false, true, g.K, crs, pq, op.dy + n * g.K * pq, pq, col.data(), pq, beta, op.dW, crs);
    }
  }
  if (op.db)
    for (int k = 0; k < g.K; ++k) {
      double s = 0;
      for (int n = 0; n < g.N; ++n)
        for (std::int64_t i = 0; i < pq; ++i) s += op.dy[(static_cast<std::int64_t>(n) * g.K + k) * pq + i];
      op.db[k] = static_cast<float>(op.accumulate ? op.db[k] + s : s);
    }
}

void execute(const detail::BnStats& op) {
  const std::int64_t M = op.N * op.L;
  for (std::int64_t c = 0; c < op.C; ++c) {
    if (!op.training) {
      detail::bn_store_stats(op, c, 0.0, 0.0);
      continue;
    }
    double sum = 0;
    for (std::int64_t n = 0; n < op.N; ++n)
      for (std::int64_t l = 0; l < op.L; ++l) sum += op.z[at(n, c, l, op.C, op.L)];
    const double mean = sum / static_cast<double>(M);
    double ss = 0;
    for (std::int64_t n = 0; n < op.N; ++n)
      for (std::int64_t l = 0; l < op.L; ++l) {
        const double d = op.z[at(n, c, l, op.C, op.L)] - mean;
        ss += d * d;
      }
    detail::bn_store_stats(op, c, mean, ss / static_cast<double>(M));
  }
}

void execute(const detail::BnApply& op) {
  for (std::int64_t n = 0; n < op.N; ++n)
    for (std::int64_t c = 0; c < op.C; ++c) {
      const detail::BnAffine a = detail::bn_affine(op.mean[c], op.invstd[c],
                                                   op.gamma ? op.gamma[c] : 1.0f,
                                                   op.beta ? op.beta[c] : 0.0f);
      const std::int64_t base = at(n, c, 0, op.C, op.L);
      for (std::int64_t l = 0; l < op.L; ++l) {
        float v = detail::bn_normalize(op.z[base + l], a);
        if (op.residual) v += op.residual[base + l];
        op.y[base + l] = op.relu ? (v > 0.0f ? v : 0.0f) : v;
      }
    }
}

// Sums of two float sequences in double, four chains at a time (no reassociation needed).
struct Sums2 {
  double s0[4] = {0, 0, 0, 0}, s1[4] = {0, 0, 0, 0};
  void add(const float* a, const float* b, std::int64_t n) {
    std::int64_t l = 0;
    for (; l + 4 <= n; l += 4)
      for (int k = 0; k < 4; ++k) s0[k] += a[l + k], s1[k] += b[l + k];
    for (; l < n; ++l) s0[0] += a[l], s1[0] += b[l];
  }
  double total0() const { return (s0[0] + s0[1]) + (s0[2] + s0[3]); }
  double total1() const { return (s1[0] + s1[1]) + (s1[2] + s1[3]); }
};

void execute(const detail::BnBackward& op) {
  const std::int64_t M = op.N * op.L, L = op.L;
  std::vector<float> g(L), gx(L);  // one plane's gated gradient and g xhat
  auto plane = [&](std::int64_t n, std::int64_t c, const detail::BnAffine& a) {
    const std::int64_t base = at(n, c, 0, op.C, L);
    const float mean = op.mean[c], invstd = op.invstd[c];
    for (std::int64_t l = 0; l < L; ++l) {
      g[l] = detail::bn_gate(op, base + l, a);
      gx[l] = g[l] * ((op.z[base + l] - mean) * invstd);
    }
    return base;
  };
  for (std::int64_t c = 0; c < op.C; ++c) {
    const detail::BnAffine a = detail::bn_gate_affine(op, c);
    Sums2 sums;
    for (std::int64_t n = 0; n < op.N; ++n) {
      plane(n, c, a);
      sums.add(g.data(), gx.data(), L);
    }
    const double sg = sums.total0(), sgx = sums.total1();
    if (op.dbeta) op.dbeta[c] = static_cast<float>(op.accumulate ? op.dbeta[c] + sg : sg);
    if (op.dgamma) op.dgamma[c] = static_cast<float>(op.accumulate ? op.dgamma[c] + sgx : sgx);
    if (!op.dz && !op.g_out) continue;
    const float mean = op.mean[c], invstd = op.invstd[c];
    const float k = (op.gamma ? op.gamma[c] : 1.0f) * invstd;
    const auto mg = static_cast<float>(sg / static_cast<double>(M));
    const auto mgx = static_cast<float>(sgx / static_cast<double>(M));
    for (std::int64_t n = 0; n < op.N; ++n) {
      const std::int64_t base = plane(n, c, a);
      if (op.g_out) std::memcpy(op.g_out + base, g.data(), L * sizeof(float));
      if (!op.dz) continue;
      float* dz = op.dz + base;
      const float* z = op.z + base;
      if (op.training)
        for (std::int64_t l = 0; l < L; ++l) dz[l] = k * (g[l] - mg - ((z[l] - mean) * invstd) * mgx);
      else
        for (std::int64_t l = 0; l < L; ++l) dz[l] = k * g[l];
    }
  }
}

void execute(const detail::MaxPoolForward& op) {
  const detail::PoolGeometry& g = op.g;
  for (std::int64_t plane = 0; plane < g.N * g.C; ++plane) {
    const float* x = op.x + plane * g.H * g.W;
    for (std::int64_t p = 0; p < g.P; ++p)
      for (std::int64_t q = 0; q < g.Q; ++q) {
        const detail::PoolWindow w = detail::pool_window(g, p, q);
        float best = -std::numeric_limits<float>::infinity();
        std::int64_t arg = w.h0 * g.W + w.w0;
        for (int h = w.h0; h < w.h1; ++h)
          for (int c = w.w0; c < w.w1; ++c) {
            const float v = x[h * g.W + c];
            if (v > best || std::isnan(v)) best = v, arg = h * g.W + c;
          }
        const std::int64_t o = (plane * g.P + p) * g.Q + q;
        op.y[o] = best;
        if (op.indices) op.indices[o] = static_cast<std::int32_t>(arg);
      }
  }
}

void execute(const detail::MaxPoolBackward& op) {
  const detail::PoolGeometry& g = op.g;
  std::memset(op.dx, 0, g.N * g.C * g.H * g.W * sizeof(float));
  for (std::int64_t plane = 0; plane < g.N * g.C; ++plane)
    for (std::int64_t o = 0; o < g.P * g.Q; ++o)
      op.dx[plane * g.H * g.W + op.indices[plane * g.P * g.Q + o]] += op.dy[plane * g.P * g.Q + o];
}

void execute(const detail::AvgPool& op) {
  const detail::PoolGeometry& g = op.g;
  if (op.backward) std::memset(op.out, 0, g.N * g.C * g.H * g.W * sizeof(float));
  for (std::int64_t plane = 0; plane < g.N * g.C; ++plane)
    for (std::int64_t p = 0; p < g.P; ++p)
      for (std::int64_t q = 0; q < g.Q; ++q) {
        const detail::PoolWindow w = detail::pool_window(g, p, q);
        const auto div = static_cast<float>(detail::pool_divisor(g, w, op.count_include_pad));
        const std::int64_t o = (plane * g.P + p) * g.Q + q;
        if (op.backward) {  // dx += dy / divisor over the window
          const float share = op.in[o] / div;
          for (int h = w.h0; h < w.h1; ++h)
            for (int c = w.w0; c < w.w1; ++c) op.out[(plane * g.H + h) * g.W + c] += share;
          continue;
        }
        double s = 0;
        for (int h = w.h0; h < w.h1; ++h)
          for (int c = w.w0; c < w.w1; ++c) s += op.in[(plane * g.H + h) * g.W + c];
        op.out[o] = static_cast<float>(s / div);
      }
}

}  // namespace genai::ref
