// The formulas of the conv module, once for both backends (__host__ __device__): the convolution
// as an implicit GEMM (which element of x, dy or W each GEMM operand element is), batch
// normalisation's per-channel scale and shift and running-average update, the pools' windows,
// and the receptive-field recurrence.
//
// Convolution (NCHW, W [K x C x R x S], PyTorch's cross-correlation):
//   y[n, k, p, q] = b[k] + sum_{c, r, s} x[n, c, p sh - ph + r dh, q sw - pw + s dw] W[k, c, r, s]
// as three GEMMs C[M x N] = sum_k A[m, k] B[k, n] whose operands are gathered, not copied
// (the "implicit GEMM" of cuDNN and CUTLASS):
//   forward   M = n p q,  N = k,  K = c r s:  A = x gathered,  B = W,        C = y
//   data      M = n h w,  N = c,  K = k r s:  A = dy gathered, B = W,        C = dx
//             (dx[n, c, h, w] = sum dy[n, k, p, q] W[k, c, r, s] over h = p sh - ph + r dh)
//   weight    M = c r s,  N = k,  K = n p q:  A = x gathered,  B = dy,       C = dW (as [k][crs])
// Each operand element (row i, depth j) is base[ri.off + kj.off + hp * ld + wp] with
// hp = ri.h + kj.h, wp = ri.w + kj.w (divided by the gather stride when it is not 1: the data
// gradient of a strided convolution, where only multiples are real positions), valid when both
// are in range; a row or depth past the end has h = kNoEntry, which fails every range check.
// Row and depth entries come from one mixed-radix decomposition (Decomp), so a kernel computes
// them once per row and once per depth instead of per element. All offsets are int: the public
// functions require every tensor to have fewer than 2^31 elements.
#pragma once

#include <climits>
#include <cmath>
#include <cstdint>

#include "genai/detail/hd.hpp"

namespace genai::detail {

// ---- convolution geometry --------------------------------------------------------------------

// x [N x C x H x W], W [K x C x R x S], y [N x K x P x Q]; every field an int (checked by
// host/src/conv.cpp: each tensor has < 2^31 elements).
struct ConvGeometry {
  int N, C, H, W, K, R, S, P, Q;
  int sh, sw, ph, pw, dh, dw;  // stride, padding, dilation
};

// P (or Q) of a convolution or pool: floor((H + 2 pad - dil (R - 1) - 1) / stride) + 1, which
// is <= 0 when the (dilated) kernel does not fit in the padded input.
GENAI_HD std::int64_t conv_out_size(std::int64_t in, std::int64_t kernel, std::int64_t stride,
                                    std::int64_t pad, std::int64_t dilation) {
  const std::int64_t span = in + 2 * pad - dilation * (kernel - 1) - 1;
  return span < 0 ? 0 : span / stride + 1;
}

// h of a row or depth index past its range: any sum of two entries stays negative.
inline constexpr int kNoEntry = INT_MIN / 4;

// 16 bytes (one shared-memory load in the kernel).
struct alignas(16) GatherEntry {
  int off, h, w;
};

// i in [0, count) as (a, b, c) = (i / (n1 n2), (i / n2) % n1, i % n2), and the entry
// {a sa + b sb + c sc, b hmul + hadd, c wmul + wadd}.
struct Decomp {
  int count, n1, n2;
  int sa, sb, sc;
  int hmul, hadd, wmul, wadd;
  GENAI_HD GatherEntry entry(std::int64_t i) const {
    if (i < 0 || i >= count) return {0, kNoEntry, kNoEntry};
    const int ii = static_cast<int>(i), inner = n1 * n2;
    const int a = ii / inner, rem = ii - a * inner;
    const int b = rem / n2, c = rem - b * n2;
    return {a * sa + b * sb + c * sc, b * hmul + hadd, c * wmul + wadd};
  }
};

// One GEMM operand: element (row, depth) from its two entries.
struct GatherOperand {
  const float* base;
  Decomp rows, depth;
  int ld;      // elements between positions hp and hp + 1
  int hb, wb;  // positions valid in [0, hb) x [0, wb) (after the division)
  int sh, sw;  // gather stride: a position must be a multiple (the strided data gradient)
  // Offset of the element from base, or -1 when it is a zero (padding, a stride's gap, a row
  // or depth past the end). kDivide: sh or sw may be > 1.
  template <bool kDivide>
  GENAI_HD int offset(const GatherEntry& r, const GatherEntry& k) const {
    int hp = r.h + k.h, wp = r.w + k.w;
    if constexpr (kDivide) {
      if (hp < 0 || wp < 0 || hp % sh != 0 || wp % sw != 0) return -1;
      hp /= sh;
      wp /= sw;
    }
    if (static_cast<unsigned>(hp) >= static_cast<unsigned>(hb) ||
        static_cast<unsigned>(wp) >= static_cast<unsigned>(wb))
      return -1;
    return r.off + k.off + hp * ld + wp;
  }
};

// C[m, n] = out[rows.entry(m).off + n * ldn].
struct GemmOutput {
  float* base;
  Decomp rows;
  int ldn;
};

struct ImplicitGemm {
  int M, N, K;
  GatherOperand a, b;  // A [M x K] (rows m, depth k), B as [N x K] (rows n, depth k)
  GemmOutput c;
  bool divide_a;  // A needs GatherOperand::offset<true> (a strided data gradient)
};

// A plain operand: element (i, j) = base[i row_stride + (j / depth_split) depth_stride +
// j % depth_split] over `rows` x `depth`, a GatherOperand with one position. depth_split 1 is
// a row-major matrix with column stride depth_stride; > 1 splits j as W [k][c][r s] seen by
// the data gradient, or dy [n][k][p q] seen by the weight gradient.
GENAI_HD GatherOperand plain_operand(const float* base, int rows, int row_stride, int depth,
                                     int depth_stride, int depth_split = 1) {
  GatherOperand o{};
  o.base = base;
  o.rows = {rows, 1, 1, row_stride, 0, 0, 0, 0, 0, 0};
  o.depth = {depth, 1, depth_split, depth_stride, 0, 1, 0, 0, 0, 0};
  o.ld = 0, o.hb = 1, o.wb = 1, o.sh = 1, o.sw = 1;
  return o;
}

// The image side of a gather from x: index (n, p, q) -> offset n C H W, position
// (p sh - ph, q sw - pw).
GENAI_HD Decomp image_positions(const ConvGeometry& g) {
  return {g.N * g.P * g.Q, g.P, g.Q, g.C * g.H * g.W, 0, 0, g.sh, -g.ph, g.sw, -g.pw};
}
// The filter side of a gather from x: index (c, r, s) -> offset c H W, position (r dh, s dw).
GENAI_HD Decomp filter_taps(const ConvGeometry& g) {
  return {g.C * g.R * g.S, g.R, g.S, g.H * g.W, 0, 0, g.dh, 0, g.dw, 0};
}

// y = conv(x, W): A = x gathered [npq x crs], B = W [k x crs], C = y (rows npq, ldn P Q).
GENAI_HD ImplicitGemm conv_forward_gemm(const ConvGeometry& g, const float* x, const float* weight,
                                        float* y) {
  const int crs = g.C * g.R * g.S, pq = g.P * g.Q;
  ImplicitGemm G{};
  G.M = g.N * pq, G.N = g.K, G.K = crs;
  G.a = {x, image_positions(g), filter_taps(g), g.W, g.H, g.W, 1, 1};
  G.b = plain_operand(weight, g.K, crs, crs, 1);
  G.c = {y, {g.N * pq, pq, 1, g.K * pq, 1, 0, 0, 0, 0, 0}, pq};
  G.divide_a = false;
  return G;
}

// dx = conv^T(dy, W): A = dy gathered [nhw x krs], B = W seen as [c][k rs], C = dx.
// Row (n, h, w) -> offset n K P Q, position (h + ph, w + pw); depth (k, r, s) -> offset k P Q,
// position (-r dh, -s dw); the sum is p sh (q sw) when it is a real output position.
GENAI_HD ImplicitGemm conv_data_gemm(const ConvGeometry& g, const float* dy, const float* weight,
                                     float* dx) {
  const int rs = g.R * g.S, pq = g.P * g.Q, hw = g.H * g.W;
  ImplicitGemm G{};
  G.M = g.N * hw, G.N = g.C, G.K = g.K * rs;
  G.a.base = dy;
  G.a.rows = {g.N * hw, g.H, g.W, g.K * pq, 0, 0, 1, g.ph, 1, g.pw};
  G.a.depth = {g.K * rs, g.R, g.S, pq, 0, 0, -g.dh, 0, -g.dw, 0};
  G.a.ld = g.Q, G.a.hb = g.P, G.a.wb = g.Q, G.a.sh = g.sh, G.a.sw = g.sw;
  // B[c][(k, rs)] = W[k][c][rs]: rows c -> c R S; depth (k, rs) -> k C R S + rs.
  G.b = plain_operand(weight, g.C, rs, g.K * rs, g.C * rs, rs);
  G.c = {dx, {g.N * hw, hw, 1, g.C * hw, 1, 0, 0, 0, 0, 0}, hw};
  G.divide_a = g.sh != 1 || g.sw != 1;
  return G;
}

// dW = sum over n p q of x gathered times dy: A = x gathered [crs x npq] (rows the filter
// taps, depth the image positions), B = dy [k x npq], C = dW as [k][crs] (rows crs, ldn C R S).
// Depth [k_begin, k_end) of the sum only is the caller's business (split-K).
GENAI_HD ImplicitGemm conv_weight_gemm(const ConvGeometry& g, const float* x, const float* dy,
                                       float* dW) {
  const int crs = g.C * g.R * g.S, pq = g.P * g.Q;
  ImplicitGemm G{};
  G.M = crs, G.N = g.K, G.K = g.N * pq;
  G.a = {x, filter_taps(g), image_positions(g), g.W, g.H, g.W, 1, 1};
  // B[k][(n, pq)] = dy[n][k][pq]: rows k -> k P Q; depth (n, pq) -> n K P Q + pq.
  G.b = plain_operand(dy, g.K, pq, g.N * pq, g.K * pq, pq);
  G.c = {dW, {crs, 1, 1, 1, 0, 0, 0, 0, 0, 0}, crs};
  G.divide_a = false;
  return G;
}

// Element (m, k) of A (or (n, k) of B): its value, 0 where the gather finds a zero.
GENAI_HD float gemm_operand(const GatherOperand& o, bool divide, std::int64_t row,
                            std::int64_t depth) {
  const GatherEntry r = o.rows.entry(row), k = o.depth.entry(depth);
  const int off = divide ? o.offset<true>(r, k) : o.offset<false>(r, k);
  return off < 0 ? 0.0f : o.base[off];
}

// ---- TF32 ------------------------------------------------------------------------------------

// What cvt.rna.tf32.f32 makes of x: the nearest value with 10 fraction bits, ties away from
// zero (the 13 low bits of the float cleared after adding half of their weight); infinities
// and NaN unchanged. The tests round a reference's inputs with it.
GENAI_HD std::uint32_t tf32_bits(std::uint32_t bits) {
  if ((bits & 0x7f800000u) == 0x7f800000u) return bits;  // inf / NaN
  return (bits + 0x1000u) & 0xffffe000u;
}

// ---- batch normalisation ---------------------------------------------------------------------

// 1 / sqrt(var + eps), the factor the normalisation multiplies by.
GENAI_HD float bn_invstd(double var, float eps) {
  return static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps)));
}

// y = gamma (z - mean) invstd + beta as one multiply-add y = z scale + shift, with
// scale = gamma invstd, shift = beta - mean scale (float; explicit fmas on the GPU, so that
// every kernel computing it gets the same bits).
struct BnAffine {
  float scale, shift;
};
GENAI_HD BnAffine bn_affine(float mean, float invstd, float gamma, float beta) {
  const float scale = gamma * invstd;
#if defined(__CUDA_ARCH__)
  return {scale, __fmaf_rn(-mean, scale, beta)};
#else
  return {scale, beta - mean * scale};
#endif
}
// One rounding on the GPU (an explicit fma, so that every kernel makes the same decision where
// a ReLU follows); a multiply and an add on the CPU (no fma instruction assumed).
GENAI_HD float bn_normalize(float z, const BnAffine& a) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(z, a.scale, a.shift);
#else
  return z * a.scale + a.shift;
#endif
}

// PyTorch's running averages: r <- (1 - momentum) r + momentum v, the variance unbiased
// (var * M / (M - 1) over M values per channel); in double, rounded once.
GENAI_HD float bn_running(float running, double value, float momentum) {
  const double m = momentum;
  return static_cast<float>((1.0 - m) * running + m * value);
}
GENAI_HD double bn_unbiased(double biased_var, std::int64_t count) {
  return biased_var * static_cast<double>(count) / static_cast<double>(count - 1);
}

// ---- the backends' primitives (host/src/conv.cpp builds them, ref:: and cuda:: run them) -----

enum class ConvMathKind { TF32, FP32 };  // the GPU's product precision; the CPU is fp32

// y = conv(x, W) (+ b).
struct ConvForward {
  ConvGeometry g;
  const float* x;
  const float* W;
  const float* b;  // or null
  float* y;
  ConvMathKind math;
};

// dx (=, or += with accumulate) conv^T(dy, W).
struct ConvBackwardData {
  ConvGeometry g;
  const float* dy;
  const float* W;
  float* dx;
  bool accumulate;
  ConvMathKind math;
};

// dW (=, or += with accumulate) sum of x (x) dy; db (likewise) the sums of dy per channel.
// Either may be null.
struct ConvBackwardWeight {
  ConvGeometry g;
  const float* x;
  const float* dy;
  float* dW;
  float* db;
  bool accumulate;
  ConvMathKind math;
};

// Per channel of z [N x C x L]: training, mean and invstd of the batch (biased variance) and,
// when running_mean / running_var are not null, their update; else mean = running_mean and
// invstd from running_var. Writes mean[C] and invstd[C].
struct BnStats {
  std::int64_t N, C, L;
  const float* z;
  bool training;
  float momentum, eps;
  float* running_mean;
  float* running_var;
  float* mean;
  float* invstd;
};

// Channel c's statistics: from the batch's mean and biased variance (training; the running
// ones updated when given), else from the running ones.
GENAI_HD void bn_store_stats(const BnStats& op, std::int64_t c, double mean, double var) {
  if (!op.training) {
    op.mean[c] = op.running_mean[c];
    op.invstd[c] = bn_invstd(op.running_var[c], op.eps);
    return;
  }
  op.mean[c] = static_cast<float>(mean);
  op.invstd[c] = bn_invstd(var, op.eps);
  if (op.running_mean) op.running_mean[c] = bn_running(op.running_mean[c], mean, op.momentum);
  if (op.running_var)
    op.running_var[c] = bn_running(op.running_var[c], bn_unbiased(var, op.N * op.L), op.momentum);
}

// y = act(gamma (z - mean) invstd + beta (+ residual)), act = ReLU when relu; gamma and beta
// null mean 1 and 0. y may be z.
struct BnApply {
  std::int64_t N, C, L;
  const float* z;
  const float* mean;
  const float* invstd;
  const float* gamma;
  const float* beta;
  const float* residual;  // [N x C x L] or null
  bool relu;
  float* y;
};

// The backward of BnApply's normalisation for g = dy * [gate > 0] (gate null: g = dy; with
// sum_gate, the gate is BnApply's output before a ReLU, gamma xhat + beta + sum_gate, recomputed
// with the forward's arithmetic):
//   dbeta = sum g, dgamma = sum g xhat (per channel; = or += with accumulate; either may be
//   null), xhat = (z - mean) invstd, and
//   dz = gamma invstd (g - sum g / M - xhat sum(g xhat) / M)   (training: batch statistics)
//   dz = gamma invstd g                                         (not training)
// g_out (when not null) receives g itself (the residual branch's gradient). dz may be null
// (only the parameter gradients), or dy itself.
struct BnBackward {
  std::int64_t N, C, L;
  const float* dy;
  const float* gate;
  const float* sum_gate;  // the residual of a BnApply with relu, or null
  const float* beta;      // with sum_gate (null: 0)
  const float* z;
  const float* mean;
  const float* invstd;
  const float* gamma;
  bool training;
  float* dz;
  float* g_out;
  float* dgamma;
  float* dbeta;
  bool accumulate;
};

// g of BnBackward at element i, given its channel's BnAffine (needed with sum_gate only).
GENAI_HD float bn_gate(const BnBackward& op, std::int64_t i, const BnAffine& a) {
  const float dy = op.dy[i];
  if (op.gate) return op.gate[i] > 0.0f ? dy : 0.0f;
  if (!op.sum_gate) return dy;
  return bn_normalize(op.z[i], a) + op.sum_gate[i] > 0.0f ? dy : 0.0f;
}
// The BnAffine that bn_gate needs for channel c (the forward's).
GENAI_HD BnAffine bn_gate_affine(const BnBackward& op, std::int64_t c) {
  return bn_affine(op.mean[c], op.invstd[c], op.gamma ? op.gamma[c] : 1.0f,
                   op.beta ? op.beta[c] : 0.0f);
}

// Pools over x [N x C x H x W] -> y [N x C x P x Q], windows kh x kw at stride (sh, sw) from
// (-ph, -pw) (padding is never the max; counted in the average unless !count_include_pad).
struct PoolGeometry {
  std::int64_t N, C, H, W, P, Q;
  int kh, kw, sh, sw, ph, pw;
};

// The window of output (p, q) clipped to the input: rows [h0, h1), columns [w0, w1).
struct PoolWindow {
  int h0, h1, w0, w1;
};
GENAI_HD PoolWindow pool_window(const PoolGeometry& g, std::int64_t p, std::int64_t q) {
  const int hs = static_cast<int>(p) * g.sh - g.ph, ws = static_cast<int>(q) * g.sw - g.pw;
  const int H = static_cast<int>(g.H), W = static_cast<int>(g.W);
  return {hs < 0 ? 0 : hs, hs + g.kh > H ? H : hs + g.kh, ws < 0 ? 0 : ws,
          ws + g.kw > W ? W : ws + g.kw};
}
// The average's divisor: kh kw, or the in-range count (count_include_pad false).
GENAI_HD int pool_divisor(const PoolGeometry& g, const PoolWindow& w, bool count_include_pad) {
  return count_include_pad ? g.kh * g.kw : (w.h1 - w.h0) * (w.w1 - w.w0);
}
// The outputs whose windows contain input row h: p in [first, last] (empty when first > last).
struct PoolRange {
  std::int64_t first, last;
};
GENAI_HD PoolRange pool_outputs_of(std::int64_t h, int k, int s, int pad, std::int64_t P) {
  const std::int64_t hp = h + pad;  // p s <= hp < p s + k
  const std::int64_t first = hp < k ? 0 : (hp - k) / s + 1;
  const std::int64_t last = hp / s < P - 1 ? hp / s : P - 1;
  return {first, last};
}

// y and, when indices is not null, the argmax of each window (h W + w within the plane; the
// first maximum, a NaN wins, as PyTorch).
struct MaxPoolForward {
  PoolGeometry g;
  const float* x;
  float* y;
  std::int32_t* indices;
};
// dx[plane, i] = sum of dy over the outputs of the plane whose index is i.
struct MaxPoolBackward {
  PoolGeometry g;
  const float* dy;
  const std::int32_t* indices;
  float* dx;
};
// The average pool's forward (in = x, out = y) or backward (in = dy, out = dx: each dy spread
// over its window).
struct AvgPool {
  PoolGeometry g;
  const float* in;
  float* out;
  bool count_include_pad;
  bool backward;
};

}  // namespace genai::detail
