// CPU reference of the autoencoder module's element passes.
#include "cpu_reference/autoencoder.hpp"

#include <algorithm>

#include "genai/detail/autoencoder.hpp"

namespace genai::ref {

void gather_rows(const float* src, std::int64_t d, const std::int64_t* index, std::int64_t n,
                 float* dst) {
  for (std::int64_t i = 0; i < n; ++i) std::copy_n(src + index[i] * d, d, dst + i * d);
}

void split_halves(const float* h, std::int64_t n, std::int64_t d, float* mu, float* logvar) {
  for (std::int64_t i = 0; i < n; ++i) {
    std::copy_n(h + i * 2 * d, d, mu + i * d);
    std::copy_n(h + i * 2 * d + d, d, logvar + i * d);
  }
}

void vae_encoder_grad(const float* grad_z, const float* eps, const float* logvar,
                      const float* grad_mu_kl, const float* grad_logvar_kl, std::int64_t n,
                      std::int64_t d, float* grad_h) {
  for (std::int64_t e = 0; e < n * 2 * d; ++e)
    grad_h[e] =
        detail::vae_encoder_grad_element(e, d, grad_z, eps, logvar, grad_mu_kl, grad_logvar_kl);
}

}  // namespace genai::ref
