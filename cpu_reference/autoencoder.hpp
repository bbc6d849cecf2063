// CPU reference of the autoencoder module's element passes (plain loops, the formulas of
// genai/detail/autoencoder.hpp). host/src/autoencoder.cpp calls these on a CPU context.
#pragma once

#include <cstdint>

namespace genai::ref {

// dst[i, :] = src[index[i], :], i < n, rows of d floats.
void gather_rows(const float* src, std::int64_t d, const std::int64_t* index, std::int64_t n,
                 float* dst);

// h [n x 2d] = [mu | logvar] per row  ->  mu [n x d], logvar [n x d].
void split_halves(const float* h, std::int64_t n, std::int64_t d, float* mu, float* logvar);

// grad_h [n x 2d] from the [n x d] arrays (detail::vae_encoder_grad_element).
void vae_encoder_grad(const float* grad_z, const float* eps, const float* logvar,
                      const float* grad_mu_kl, const float* grad_logvar_kl, std::int64_t n,
                      std::int64_t d, float* grad_h);

}  // namespace genai::ref
