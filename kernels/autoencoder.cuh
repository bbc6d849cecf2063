// CUDA launchers of the autoencoder module (genai::cuda, internal): the element passes around
// the two MLPs of a training step. Arguments are checked by host/src/autoencoder.cpp; the math
// is genai/detail/autoencoder.hpp's.
#pragma once

#include <cstdint>

#include "genai/context.hpp"

namespace genai::cuda {

// dst[i, :] = src[index[i], :], i < n, rows of d floats (index on the device, in range).
void gather_rows(const Context& ctx, const float* src, std::int64_t d, const std::int64_t* index,
                 std::int64_t n, float* dst);

// h [n x 2d] = [mu | logvar] per row  ->  mu [n x d], logvar [n x d].
void split_halves(const Context& ctx, const float* h, std::int64_t n, std::int64_t d, float* mu,
                  float* logvar);

// grad_h [n x 2d] = [dL/dmu | dL/dlogvar] per row from dL/dz, eps, logvar and the KL's gradients
// [n x d].
void vae_encoder_grad(const Context& ctx, const float* grad_z, const float* eps,
                      const float* logvar, const float* grad_mu_kl, const float* grad_logvar_kl,
                      std::int64_t n, std::int64_t d, float* grad_h);

}  // namespace genai::cuda
