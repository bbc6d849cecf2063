// The arithmetic of the diffusion module that both backends run: the per-element reverse update,
// forward noising and the v-target (GENAI_HD, written with rng::detail's correctly
// rounded operations so that the CPU and the GPU give the same bits), and the host-side tables
// they are fed (step coefficients, a noised mixture), computed once in double.
#pragma once

#include <cstdint>
#include <vector>

#include "genai/detail/hd.hpp"
#include "genai/diffusion.hpp"
#include "genai/rng.hpp"

namespace genai::detail {

// Every reverse update is affine in (x, m) = (state, model output):
//   x0  = p x + q m, clamped to [-clip, clip] when clip > 0
//   eps = r x + s m
//   out = a x0 + b x + c eps + sigma z
// DDPM, DDIM, PF-ODE Euler and the stages of Heun are choices of these eight numbers.
struct StepCoeffs {
  float p = 0, q = 0, r = 0, s = 0, a = 0, b = 0, c = 0, sigma = 0;
};

GENAI_HD float step_element(const StepCoeffs& k, float x, float m, float z, float clip) {
  using namespace rng::detail;
  float x0 = add(mul(k.p, x), mul(k.q, m));
  if (clip > 0.0f) x0 = x0 < -clip ? -clip : (x0 > clip ? clip : x0);
  const float eps = add(mul(k.r, x), mul(k.s, m));
  return add(add(add(mul(k.a, x0), mul(k.b, x)), mul(k.c, eps)), mul(k.sigma, z));
}

// Forward noising of one element: x_t = sa x0 + sb eps, v = sa eps - sb x0.
GENAI_HD float noised(float sa, float sb, float x0, float eps) {
  return rng::detail::add(rng::detail::mul(sa, x0), rng::detail::mul(sb, eps));
}
GENAI_HD float v_target(float sa, float sb, float x0, float eps) {
  return rng::detail::add(rng::detail::mul(sa, eps), -rng::detail::mul(sb, x0));
}

// The coefficients of the step t -> prev_t (prev_t = -1: to x_0) in double, rounded to float.
// For PFOdeHeun they are those of the Euler predictor.
StepCoeffs step_coeffs(const NoiseSchedule& s, SamplerKind kind, std::int64_t t,
                       std::int64_t prev_t, const StepOptions& o);
// eps = r x + s m of a prediction type at timestep t (the other six numbers 0, c = 1).
StepCoeffs epsilon_coeffs(const NoiseSchedule& s, PredictionType type, std::int64_t t);

// A mixture noised to alpha_bar, in double: log_c[K] = log w_k - 1/2 sum_j log v_kj,
// center[K x d] = sqrt(ab) mu_k, inv_v[K x d] = 1 / v_kj with v = ab var + 1 - ab (the 2 pi
// cancels in the responsibilities; left out). The reference scores from it; the kernels stage
// it as float tables.
struct NoisedMixture {
  std::vector<double> log_c, center, inv_v;
};
NoisedMixture noised_mixture(const GaussianMixture& m, double alpha_bar);

}  // namespace genai::detail
