// The conv tests' oracle: convolution, batch norm, pools and the residual block as plain double
// loops straight from their definitions (no GEMM, no im2col), their backward written out by
// hand. Finite differences check this oracle (tests/conv_test.cpp); the oracle checks the
// library (im2col + CBLAS on the CPU, the implicit GEMM on the GPU).
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "genai/conv.hpp"

namespace genai::test {

using Vec = std::vector<double>;

inline Vec to_double(const std::vector<float>& v) { return Vec(v.begin(), v.end()); }

// What the tensor cores see of v: every value rounded to TF32 (cvt.rna).
inline Vec round_tf32(const Vec& v) {
  Vec r(v.size());
  for (std::size_t i = 0; i < v.size(); ++i)
    r[i] = std::bit_cast<float>(detail::tf32_bits(std::bit_cast<std::uint32_t>(static_cast<float>(v[i]))));
  return r;
}

// ---- convolution -----------------------------------------------------------------------------

// Calls f(n, k, p, q, c, r, s, x index) for every product of the convolution (in-range taps).
template <class F>
void for_each_tap(const Conv2dShape& s, F f) {
  const std::int64_t P = s.out_height(), Q = s.out_width();
  for (std::int64_t n = 0; n < s.batch; ++n)
    for (std::int64_t k = 0; k < s.out_channels; ++k)
      for (std::int64_t p = 0; p < P; ++p)
        for (std::int64_t q = 0; q < Q; ++q)
          for (std::int64_t c = 0; c < s.in_channels; ++c)
            for (std::int64_t r = 0; r < s.kernel_h; ++r)
              for (std::int64_t t = 0; t < s.kernel_w; ++t) {
                const std::int64_t h = p * s.stride_h - s.pad_h + r * s.dilation_h;
                const std::int64_t w = q * s.stride_w - s.pad_w + t * s.dilation_w;
                if (h < 0 || h >= s.height || w < 0 || w >= s.width) continue;
                f(n, k, p, q, c, r, t, ((n * s.in_channels + c) * s.height + h) * s.width + w);
              }
}

// The geometry the library builds from a (valid) shape.
inline detail::ConvGeometry geometry_of(const Conv2dShape& s) {
  auto i = [](std::int64_t v) { return static_cast<int>(v); };
  return {i(s.batch),    i(s.in_channels), i(s.height),     i(s.width),      i(s.out_channels),
          i(s.kernel_h), i(s.kernel_w),    i(s.out_height()), i(s.out_width()), i(s.stride_h),
          i(s.stride_w), i(s.pad_h),       i(s.pad_w),      i(s.dilation_h), i(s.dilation_w)};
}

// Shapes that exercise every part of the geometry: the headline 3x3 / stride 1 / padding 1,
// strides, uneven paddings, dilations, non-square kernels, 1x1 and kernels as large as the input.
inline std::vector<Conv2dShape> conv_test_shapes() {
  return {
      {.batch = 2, .in_channels = 3, .height = 7, .width = 6, .out_channels = 4},
      {.batch = 1, .in_channels = 2, .height = 9, .width = 8, .out_channels = 3, .kernel_h = 3,
       .kernel_w = 2, .stride_h = 2, .stride_w = 3, .pad_h = 1, .pad_w = 0},
      {.batch = 2, .in_channels = 3, .height = 8, .width = 9, .out_channels = 2, .kernel_h = 3,
       .kernel_w = 3, .stride_h = 1, .stride_w = 2, .pad_h = 2, .pad_w = 1, .dilation_h = 2,
       .dilation_w = 3},
      {.batch = 3, .in_channels = 5, .height = 4, .width = 5, .out_channels = 6, .kernel_h = 1,
       .kernel_w = 1, .pad_h = 0, .pad_w = 0},
      {.batch = 1, .in_channels = 4, .height = 5, .width = 5, .out_channels = 3, .kernel_h = 5,
       .kernel_w = 5, .stride_h = 2, .stride_w = 2, .pad_h = 0, .pad_w = 2},
  };
}

inline std::int64_t y_index(const Conv2dShape& s, std::int64_t n, std::int64_t k, std::int64_t p,
                            std::int64_t q) {
  return ((n * s.out_channels + k) * s.out_height() + p) * s.out_width() + q;
}
inline std::int64_t w_index(const Conv2dShape& s, std::int64_t k, std::int64_t c, std::int64_t r,
                            std::int64_t t) {
  return ((k * s.in_channels + c) * s.kernel_h + r) * s.kernel_w + t;
}
inline std::int64_t y_size(const Conv2dShape& s) {
  return s.batch * s.out_channels * s.out_height() * s.out_width();
}
inline std::int64_t x_size(const Conv2dShape& s) {
  return s.batch * s.in_channels * s.height * s.width;
}
inline std::int64_t w_size(const Conv2dShape& s) {
  return s.out_channels * s.in_channels * s.kernel_h * s.kernel_w;
}

// y = conv(x, W) + b (b may be empty).
inline Vec conv_forward_d(const Conv2dShape& s, const Vec& x, const Vec& W, const Vec& b) {
  Vec y(y_size(s), 0.0);
  if (!b.empty())
    for (std::int64_t i = 0; i < static_cast<std::int64_t>(y.size()); ++i)
      y[i] = b[(i / (s.out_height() * s.out_width())) % s.out_channels];
  for_each_tap(s, [&](auto n, auto k, auto p, auto q, auto c, auto r, auto t, std::int64_t xi) {
    y[y_index(s, n, k, p, q)] += x[xi] * W[w_index(s, k, c, r, t)];
  });
  return y;
}

struct ConvGradsD {
  Vec dx, dW, db;
};
inline ConvGradsD conv_backward_d(const Conv2dShape& s, const Vec& x, const Vec& W, const Vec& dy) {
  ConvGradsD g{Vec(x_size(s), 0.0), Vec(w_size(s), 0.0), Vec(s.out_channels, 0.0)};
  for_each_tap(s, [&](auto n, auto k, auto p, auto q, auto c, auto r, auto t, std::int64_t xi) {
    const double d = dy[y_index(s, n, k, p, q)];
    g.dx[xi] += d * W[w_index(s, k, c, r, t)];
    g.dW[w_index(s, k, c, r, t)] += d * x[xi];
  });
  for (std::int64_t i = 0; i < y_size(s); ++i)
    g.db[(i / (s.out_height() * s.out_width())) % s.out_channels] += dy[i];
  return g;
}

// ---- batch normalisation ---------------------------------------------------------------------

struct BnD {
  Vec y, mean, var;  // var: the biased variance used (training) or the running one
};
// Training: batch statistics; else the running ones.
inline BnD bn_forward_d(const BatchNormShape& s, const Vec& x, const Vec& gamma, const Vec& beta,
                        bool training, const Vec& running_mean, const Vec& running_var,
                        double eps) {
  const std::int64_t N = s.batch, C = s.channels, L = s.spatial;
  BnD o{Vec(x.size()), Vec(C, 0.0), Vec(C, 0.0)};
  for (std::int64_t c = 0; c < C; ++c) {
    if (training) {
      for (std::int64_t n = 0; n < N; ++n)
        for (std::int64_t l = 0; l < L; ++l) o.mean[c] += x[(n * C + c) * L + l];
      o.mean[c] /= static_cast<double>(N * L);
      for (std::int64_t n = 0; n < N; ++n)
        for (std::int64_t l = 0; l < L; ++l) {
          const double d = x[(n * C + c) * L + l] - o.mean[c];
          o.var[c] += d * d;
        }
      o.var[c] /= static_cast<double>(N * L);
    } else {
      o.mean[c] = running_mean[c];
      o.var[c] = running_var[c];
    }
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t l = 0; l < L; ++l) {
        const std::int64_t i = (n * C + c) * L + l;
        o.y[i] = gamma[c] * (x[i] - o.mean[c]) / std::sqrt(o.var[c] + eps) + beta[c];
      }
  }
  return o;
}

struct BnGradsD {
  Vec dx, dgamma, dbeta;
};
inline BnGradsD bn_backward_d(const BatchNormShape& s, const Vec& x, const Vec& gamma,
                              const BnD& fwd, bool training, double eps, const Vec& dy) {
  const std::int64_t N = s.batch, C = s.channels, L = s.spatial;
  const double M = static_cast<double>(N * L);
  BnGradsD g{Vec(x.size()), Vec(C, 0.0), Vec(C, 0.0)};
  for (std::int64_t c = 0; c < C; ++c) {
    const double invstd = 1.0 / std::sqrt(fwd.var[c] + eps);
    auto xhat = [&](std::int64_t i) { return (x[i] - fwd.mean[c]) * invstd; };
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t l = 0; l < L; ++l) {
        const std::int64_t i = (n * C + c) * L + l;
        g.dbeta[c] += dy[i];
        g.dgamma[c] += dy[i] * xhat(i);
      }
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t l = 0; l < L; ++l) {
        const std::int64_t i = (n * C + c) * L + l;
        g.dx[i] = training ? gamma[c] * invstd * (dy[i] - g.dbeta[c] / M - xhat(i) * g.dgamma[c] / M)
                           : gamma[c] * invstd * dy[i];
      }
  }
  return g;
}

// ---- pools -----------------------------------------------------------------------------------

struct PoolD {
  Vec y;
  std::vector<std::int32_t> arg;  // max: the argmax (h W + w) of each window
};
inline PoolD pool_forward_d(const Pool2dShape& s, const Vec& x, bool max, bool count_include_pad) {
  const std::int64_t P = s.out_height(), Q = s.out_width(), H = s.height, W = s.width;
  const std::int64_t sh = s.stride_h > 0 ? s.stride_h : s.kernel_h;
  const std::int64_t sw = s.stride_w > 0 ? s.stride_w : s.kernel_w;
  PoolD o{Vec(s.batch * s.channels * P * Q), std::vector<std::int32_t>(s.batch * s.channels * P * Q)};
  for (std::int64_t plane = 0; plane < s.batch * s.channels; ++plane)
    for (std::int64_t p = 0; p < P; ++p)
      for (std::int64_t q = 0; q < Q; ++q) {
        double best = -std::numeric_limits<double>::infinity(), sum = 0;
        std::int64_t arg = -1, count = 0;
        for (std::int64_t r = 0; r < s.kernel_h; ++r)
          for (std::int64_t t = 0; t < s.kernel_w; ++t) {
            const std::int64_t h = p * sh - s.pad_h + r, w = q * sw - s.pad_w + t;
            if (h < 0 || h >= H || w < 0 || w >= W) continue;
            const double v = x[(plane * H + h) * W + w];
            if (arg < 0 || v > best) best = v, arg = h * W + w;
            sum += v;
            ++count;
          }
        const std::int64_t o_at = (plane * P + p) * Q + q;
        o.y[o_at] = max ? best : sum / static_cast<double>(count_include_pad ? s.kernel_h * s.kernel_w : count);
        o.arg[o_at] = static_cast<std::int32_t>(arg);
      }
  return o;
}

// dx of a pool: max routes dy to the argmax; avg spreads it over the window.
inline Vec pool_backward_d(const Pool2dShape& s, const PoolD& fwd, const Vec& dy, bool max,
                           bool count_include_pad) {
  const std::int64_t P = s.out_height(), Q = s.out_width(), H = s.height, W = s.width;
  const std::int64_t sh = s.stride_h > 0 ? s.stride_h : s.kernel_h;
  const std::int64_t sw = s.stride_w > 0 ? s.stride_w : s.kernel_w;
  Vec dx(s.batch * s.channels * H * W, 0.0);
  for (std::int64_t plane = 0; plane < s.batch * s.channels; ++plane)
    for (std::int64_t p = 0; p < P; ++p)
      for (std::int64_t q = 0; q < Q; ++q) {
        const std::int64_t o = (plane * P + p) * Q + q;
        if (max) {
          dx[plane * H * W + fwd.arg[o]] += dy[o];
          continue;
        }
        const std::int64_t h0 = std::max<std::int64_t>(p * sh - s.pad_h, 0);
        const std::int64_t h1 = std::min(p * sh - s.pad_h + s.kernel_h, H);
        const std::int64_t w0 = std::max<std::int64_t>(q * sw - s.pad_w, 0);
        const std::int64_t w1 = std::min(q * sw - s.pad_w + s.kernel_w, W);
        const double div = static_cast<double>(count_include_pad ? s.kernel_h * s.kernel_w
                                                                 : (h1 - h0) * (w1 - w0));
        for (std::int64_t h = h0; h < h1; ++h)
          for (std::int64_t w = w0; w < w1; ++w) dx[(plane * H + h) * W + w] += dy[o] / div;
      }
  return dx;
}

// ---- the residual block ----------------------------------------------------------------------

// The block's parameters in double: w1, w2 [C x C x 3 x 3], g1, b1, g2, b2 [C]; running
// statistics rm1, rv1, rm2, rv2.
struct BlockD {
  std::int64_t C;
  Vec w1, g1, b1, w2, g2, b2;
  Vec rm1, rv1, rm2, rv2;
  bool relu_after_sum = false, training = true;
  double eps = 1e-5;
  bool tf32 = false;  // round the convolutions' operands to TF32 (what the tensor cores see)
};

inline BlockD block_d(ResidualBlock& b) {
  const std::int64_t C = b.channels();
  BlockD d{C, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}};
  std::vector<float> p(b.parameter_count()), r(4 * C);
  detail::copy_bytes(b.context(), p.data(), Device::CPU, b.parameters(), b.context().device(),
                     p.size() * sizeof(float));
  detail::copy_bytes(b.context(), r.data(), Device::CPU, b.running_stats(), b.context().device(),
                     r.size() * sizeof(float));
  std::vector<Vec*> parts = {&d.w1, &d.g1, &d.b1, &d.w2, &d.g2, &d.b2};
  std::size_t at = 0;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::size_t n = i % 3 == 0 ? 9 * C * C : C;
    parts[i]->assign(p.begin() + at, p.begin() + at + n);
    at += n;
  }
  d.rm1.assign(r.begin(), r.begin() + C);
  d.rv1.assign(r.begin() + C, r.begin() + 2 * C);
  d.rm2.assign(r.begin() + 2 * C, r.begin() + 3 * C);
  d.rv2.assign(r.begin() + 3 * C, r.end());
  d.relu_after_sum = b.options().relu_after_sum;
  d.training = b.training();
  d.eps = b.options().eps;
  return d;
}

inline Conv2dShape block_conv(std::int64_t N, std::int64_t C, std::int64_t H, std::int64_t W) {
  return {.batch = N, .in_channels = C, .height = H, .width = W, .out_channels = C};
}

struct BlockTapeD {
  Vec z1, a1, z2, s;  // s = x + bn2(z2), before the optional ReLU
  BnD bn1, bn2;
};

inline Vec block_forward_d(const BlockD& m, const Vec& x, std::int64_t N, std::int64_t H,
                           std::int64_t W, BlockTapeD* tape = nullptr) {
  const Conv2dShape cs = block_conv(N, m.C, H, W);
  const BatchNormShape bs{N, m.C, H * W};
  auto conv = [&](const Vec& in, const Vec& w) {
    return m.tf32 ? conv_forward_d(cs, round_tf32(in), round_tf32(w), {}) : conv_forward_d(cs, in, w, {});
  };
  BlockTapeD t;
  t.z1 = conv(x, m.w1);
  t.bn1 = bn_forward_d(bs, t.z1, m.g1, m.b1, m.training, m.rm1, m.rv1, m.eps);
  t.a1 = t.bn1.y;
  for (double& v : t.a1) v = v > 0 ? v : 0;
  t.z2 = conv(t.a1, m.w2);
  t.bn2 = bn_forward_d(bs, t.z2, m.g2, m.b2, m.training, m.rm2, m.rv2, m.eps);
  t.s = t.bn2.y;
  for (std::size_t i = 0; i < x.size(); ++i) t.s[i] += x[i];
  Vec y = t.s;
  if (m.relu_after_sum)
    for (double& v : y) v = v > 0 ? v : 0;
  if (tape) *tape = std::move(t);
  return y;
}

struct BlockGradsD {
  Vec dx, dw1, dg1, db1, dw2, dg2, db2;
};

inline BlockGradsD block_backward_d(const BlockD& m, const Vec& x, const BlockTapeD& t,
                                    std::int64_t N, std::int64_t H, std::int64_t W, const Vec& dy) {
  const Conv2dShape cs = block_conv(N, m.C, H, W);
  const BatchNormShape bs{N, m.C, H * W};
  auto conv_back = [&](const Vec& in, const Vec& w, const Vec& d) {
    return m.tf32 ? conv_backward_d(cs, round_tf32(in), round_tf32(w), round_tf32(d))
                  : conv_backward_d(cs, in, w, d);
  };
  Vec g = dy;
  if (m.relu_after_sum)
    for (std::size_t i = 0; i < g.size(); ++i) g[i] = t.s[i] > 0 ? g[i] : 0;
  const BnGradsD b2 = bn_backward_d(bs, t.z2, m.g2, t.bn2, m.training, m.eps, g);
  const ConvGradsD c2 = conv_back(t.a1, m.w2, b2.dx);
  Vec da1 = c2.dx;
  for (std::size_t i = 0; i < da1.size(); ++i) da1[i] = t.a1[i] > 0 ? da1[i] : 0;
  const BnGradsD b1 = bn_backward_d(bs, t.z1, m.g1, t.bn1, m.training, m.eps, da1);
  const ConvGradsD c1 = conv_back(x, m.w1, b1.dx);
  BlockGradsD out{g, c1.dW, b1.dgamma, b1.dbeta, c2.dW, b2.dgamma, b2.dbeta};
  for (std::size_t i = 0; i < out.dx.size(); ++i) out.dx[i] += c1.dx[i];
  return out;
}

// The gradients in the order of the block's flat buffer.
inline Vec block_flat_grads(const BlockGradsD& g) {
  Vec v;
  for (const Vec* p : {&g.dw1, &g.dg1, &g.db1, &g.dw2, &g.dg2, &g.db2})
    v.insert(v.end(), p->begin(), p->end());
  return v;
}

}  // namespace genai::test
