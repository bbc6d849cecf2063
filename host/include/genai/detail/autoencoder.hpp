// The element formulas of the autoencoder module that the CPU reference and the kernels both
// run, in correctly rounded, never contracted float operations (the same bits on both).
// Namespace genai::detail.
#pragma once

#include <cstdint>

#include "genai/detail/hd.hpp"
#include "genai/detail/losses.hpp"
#include "genai/rng.hpp"

namespace genai::detail {

// The VAE's encoder writes row i as h_i = [mu_i | logvar_i] (2 d values), and
// z = mu + exp(logvar / 2) eps. The backward of that reparameterisation plus the KL's own
// gradient, per coordinate j < d:
//   dL/dmu_j     = dL/dz_j + dKL/dmu_j
//   dL/dlogvar_j = dL/dz_j eps_j exp(logvar_j / 2) / 2 + dKL/dlogvar_j
// (exp as the forward's: detail::exp_rn).
GENAI_HD float vae_grad_mu(float grad_z, float grad_mu_kl) {
  return rng::detail::add(grad_z, grad_mu_kl);
}
GENAI_HD float vae_grad_logvar(float grad_z, float eps, float logvar, float grad_logvar_kl) {
  using namespace rng::detail;
  const float half_sigma = mul(0.5f, exp_rn(mul(0.5f, logvar)));
  return add(mul(mul(grad_z, eps), half_sigma), grad_logvar_kl);
}

// Element e of the flat [n x 2d] gradient of the encoder's output, from the [n x d] arrays.
GENAI_HD float vae_encoder_grad_element(std::int64_t e, std::int64_t d, const float* grad_z,
                                        const float* eps, const float* logvar,
                                        const float* grad_mu_kl, const float* grad_logvar_kl) {
  const std::int64_t row = e / (2 * d), col = e % (2 * d);
  if (col < d) {
    const std::int64_t i = row * d + col;
    return vae_grad_mu(grad_z[i], grad_mu_kl[i]);
  }
  const std::int64_t i = row * d + col - d;
  return vae_grad_logvar(grad_z[i], eps[i], logvar[i], grad_logvar_kl[i]);
}

}  // namespace genai::detail
