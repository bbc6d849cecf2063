// The formulas of the losses module that the CPU reference (in double, or in float where bits
// must agree) and the kernels (in float) both run. Namespace genai::detail.
#pragma once

#include <cmath>
#include <cstdint>

#include "genai/detail/hd.hpp"
#include "genai/losses.hpp"
#include "genai/rng.hpp"

namespace genai::detail {

// ---- the reparameterisation's exponential, the same bits on both backends --------------------

// exp(x) from correctly rounded, never contracted operations: x = k ln2 + r with k = rint(x /
// ln2), r by Cody-Waite (ln2 split in a high part exact in 8 bits and a low part), |r| <= ln2/2,
// exp(r) by its Taylor polynomial to r^7 in Horner form (truncation < 2e-8 relative), times 2^k
// built in the exponent bits. Within 2 ulp of exp over the normal range; x > 88.7 gives +inf,
// x < -87.3 gives 0 (no subnormals), NaN stays NaN.
GENAI_HD float exp_rn(float x) {
  using namespace rng::detail;
  if (!(x == x)) return x;
  if (x > 88.72283f) return INFINITY;
  if (x < -87.33654f) return 0.0f;
  const float k = rint(mul(x, 1.44269504088896341f));
  const float r = fma(k, -1.42860682030941723e-06f, fma(k, -0.693145751953125f, x));
  float p = fma(r, 1.0f / 5040.0f, 1.0f / 720.0f);
  p = fma(p, r, 1.0f / 120.0f);
  p = fma(p, r, 1.0f / 24.0f);
  p = fma(p, r, 1.0f / 6.0f);
  p = fma(p, r, 0.5f);
  p = fma(p, r, 1.0f);
  p = fma(p, r, 1.0f);
  // 2^k for k in [-126, 128]: k = 128 only when x rounds up to 88.7, where p < 1; split it.
  const int ki = static_cast<int>(k);
  const int k1 = ki / 2, k2 = ki - k1;
  const float s1 = from_bits(static_cast<std::uint32_t>(k1 + 127) << 23);
  const float s2 = from_bits(static_cast<std::uint32_t>(k2 + 127) << 23);
  return mul(mul(p, s1), s2);
}

// z = mu + exp(logvar / 2) eps, one element.
GENAI_HD float reparameterize_element(float mu, float logvar, float eps) {
  using namespace rng::detail;
  return add(mu, mul(exp_rn(mul(0.5f, logvar)), eps));
}

// ---- element losses: value and derivative ----------------------------------------------------

enum class ElementLoss { SquaredError, BceWithLogits };

inline ElementLoss element_loss_of(Reconstruction r) {
  return r == Reconstruction::SquaredError ? ElementLoss::SquaredError
                                           : ElementLoss::BceWithLogits;
}

template <class R>
struct ValueGrad {
  R value, grad;
};

// (pred - target)^2 and its derivative 2 (pred - target).
template <class R>
GENAI_HD ValueGrad<R> squared_error(R pred, R target) {
  const R diff = pred - target;
  return {diff * diff, 2 * diff};
}

// BCE with logits: max(l, 0) - l y + log1p(exp(-|l|)); derivative sigmoid(l) - y, with sigmoid
// written so that it never overflows: e = exp(-|l|), sigmoid = 1/(1+e) (l >= 0) or e/(1+e).
template <class R>
GENAI_HD ValueGrad<R> bce_with_logits(R l, R y) {
  using std::exp;
  using std::log1p;
  const R e = exp(l < 0 ? l : -l);
  const R sigmoid = l >= 0 ? 1 / (1 + e) : e / (1 + e);
  return {(l > 0 ? l : R(0)) - l * y + log1p(e), sigmoid - y};
}

template <class R>
GENAI_HD ValueGrad<R> element_loss(ElementLoss kind, R pred, R target) {
  return kind == ElementLoss::SquaredError ? squared_error(pred, target)
                                           : bce_with_logits(pred, target);
}

// KL(N(mu, exp(logvar)) || N(0, 1)) of one coordinate and its derivatives in mu and logvar.
template <class R>
struct KlTerm {
  R value, d_mu, d_logvar;
};
template <class R>
GENAI_HD KlTerm<R> gaussian_kl(R mu, R logvar) {
  using std::exp;
  const R var = exp(logvar);
  return {R(-0.5) * (1 + logvar - mu * mu - var), mu, R(0.5) * (var - 1)};
}

// ---- cross-entropy: online softmax statistics and the row's loss and gradient ----------------

// A row's (or a part's) running max m, sum of exp(x - m), sum of x, and the target's logit (0
// in parts that do not hold it). Merging is associative, so any split and order of the row
// gives the same result up to rounding.
template <class R>
struct SoftmaxStats {
  R m, s, sum_x, x_target;
};

template <class R>
GENAI_HD SoftmaxStats<R> stats_identity() {
  return {-INFINITY, 0, 0, 0};
}

template <class R>
GENAI_HD SoftmaxStats<R> stats_merge(const SoftmaxStats<R>& a, const SoftmaxStats<R>& b) {
  using std::exp;
  const R m = a.m > b.m ? a.m : b.m;
  if (m == -INFINITY) return {m, 0, a.sum_x + b.sum_x, a.x_target + b.x_target};
  const R sa = a.m == -INFINITY ? R(0) : a.s * exp(a.m - m);
  const R sb = b.m == -INFINITY ? R(0) : b.s * exp(b.m - m);
  return {m, sa + sb, a.sum_x + b.sum_x, a.x_target + b.x_target};
}

template <class R>
GENAI_HD R stats_lse(const SoftmaxStats<R>& a) {
  using std::log;
  return a.m + log(a.s);
}

// The constants of one row's gradient: d loss / d x_j = scale (p_j gain - [j = t] hit - floor),
// p_j = exp(x_j - lse).
template <class R>
struct CeRow {
  R loss, lse, gain, hit, floor;
};

template <class R>
GENAI_HD CeRow<R> ce_row(const SoftmaxStats<R>& a, std::int64_t C, R smoothing, R z_loss) {
  const R lse = stats_lse(a);
  const R floor = smoothing / static_cast<R>(C);
  // Without smoothing sum_x is left out: a -inf logit (a masked class) must not give 0 * -inf.
  const R smooth = smoothing != 0 ? floor * a.sum_x : R(0);
  const R loss = lse - (1 - smoothing) * a.x_target - smooth + z_loss * lse * lse;
  return {loss, lse, 1 + 2 * z_loss * lse, 1 - smoothing, floor};
}

template <class R>
GENAI_HD R ce_grad_of_p(const CeRow<R>& row, R p, bool is_target, R scale) {
  return scale * (p * row.gain - (is_target ? row.hit : R(0)) - row.floor);
}
template <class R>
GENAI_HD R ce_grad(const CeRow<R>& row, R x, bool is_target, R scale) {
  using std::exp;
  return ce_grad_of_p(row, x == -INFINITY ? R(0) : exp(x - row.lse), is_target, scale);
}

}  // namespace genai::detail
