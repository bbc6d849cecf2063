// The per-element updates of the optim module, shared by the CPU reference and the kernels.
// Every operation is rng::detail's correctly rounded, never contracted float arithmetic, and the
// per-call scalars are computed once on the host (in double, rounded to float): the CPU and the
// GPU give the same bits. Namespace genai::detail.
#pragma once

#include <cmath>
#include <cstdint>

#include "genai/detail/hd.hpp"
#include "genai/optim.hpp"
#include "genai/rng.hpp"

namespace genai::detail {

struct AdamCoeffs {
  float beta1, one_minus_beta1, beta2, one_minus_beta2;
  float step_size;  // lr / (1 - beta1^t)
  float bc2_sqrt;   // sqrt(1 - beta2^t)
  float eps;
  float l2;         // Adam's weight_decay (0 for AdamW)
  float lr_decay;   // AdamW's lr * weight_decay (0 for Adam)
  bool amsgrad;
};

inline AdamCoeffs adam_coeffs(const AdamOptions& o, std::int64_t step) {
  const double t = static_cast<double>(step);
  const double bc1 = 1.0 - std::pow(static_cast<double>(o.beta1), t);
  const double bc2 = 1.0 - std::pow(static_cast<double>(o.beta2), t);
  const bool decoupled = o.decoupled_weight_decay;
  return {o.beta1,
          1.0f - o.beta1,
          o.beta2,
          1.0f - o.beta2,
          static_cast<float>(static_cast<double>(o.lr) / bc1),
          static_cast<float>(std::sqrt(bc2)),
          o.eps,
          decoupled ? 0.0f : o.weight_decay,
          decoupled ? static_cast<float>(static_cast<double>(o.lr) * o.weight_decay) : 0.0f,
          o.amsgrad};
}

// One element of an Adam step; v_max is read and written only with amsgrad.
GENAI_HD void adam_element(const AdamCoeffs& k, float& p, float g, float& m, float& v,
                           float& v_max) {
  using namespace rng::detail;
  if (k.lr_decay != 0.0f) p = add(p, -mul(k.lr_decay, p));
  if (k.l2 != 0.0f) g = add(g, mul(k.l2, p));
  m = add(mul(k.beta1, m), mul(k.one_minus_beta1, g));
  v = add(mul(k.beta2, v), mul(mul(k.one_minus_beta2, g), g));
  float second = v;
  if (k.amsgrad) {
    v_max = v_max > v ? v_max : v;
    second = v_max;
  }
  const float denom = add(div(sqrt(second), k.bc2_sqrt), k.eps);
  p = add(p, -div(mul(k.step_size, m), denom));
}

// One element of an EMA update with omd = 1 - decay: ema -= omd (ema - param).
GENAI_HD void ema_element(float omd, float& ema, float param) {
  using namespace rng::detail;
  ema = add(ema, -mul(omd, add(ema, -param)));
}

struct SgdCoeffs {
  float lr, momentum, one_minus_dampening, l2;
  bool nesterov;
  bool first;  // step 1: the momentum buffer starts as the gradient
};

inline SgdCoeffs sgd_coeffs(const SgdOptions& o, std::int64_t step) {
  return {o.lr, o.momentum, 1.0f - o.dampening, o.weight_decay, o.nesterov, step == 1};
}

// One element of an SGD step; `buf` is the momentum buffer (used only when momentum != 0).
GENAI_HD void sgd_element(const SgdCoeffs& k, float& p, float g, float& buf) {
  using namespace rng::detail;
  if (k.l2 != 0.0f) g = add(g, mul(k.l2, p));
  if (k.momentum != 0.0f) {
    buf = k.first ? g : add(mul(k.momentum, buf), mul(k.one_minus_dampening, g));
    g = k.nesterov ? add(g, mul(k.momentum, buf)) : buf;
  }
  p = add(p, -mul(k.lr, g));
}

// The (sub)gradient of a penalty at w: lambda sign(w) (L1, 0 at 0) or two_lambda w (L2), with
// coeff = lambda (L1) or 2 lambda (L2).
GENAI_HD float penalty_grad(Penalty penalty, float coeff, float w) {
  if (penalty == Penalty::L2) return rng::detail::mul(coeff, w);
  return w > 0.0f ? coeff : (w < 0.0f ? -coeff : 0.0f);
}

// Soft thresholding: sign(w) max(|w| - threshold, 0).
GENAI_HD float soft_threshold(float w, float threshold) {
  const float a = rng::detail::add(w < 0.0f ? -w : w, -threshold);
  if (!(a > 0.0f)) return w == w ? 0.0f : w;  // NaN stays NaN
  return w < 0.0f ? -a : a;
}

}  // namespace genai::detail
