// CUDA launchers of the losses module (genai::cuda, internal). Arguments are checked by
// host/src/losses.cpp; the math is genai/detail/losses.hpp's.
#pragma once

#include <cstdint>

#include "genai/context.hpp"
#include "genai/detail/losses.hpp"
#include "genai/losses.hpp"

namespace genai::cuda {

// genai::cross_entropy_loss on device pointers (T = float or bf16). With opts.check_targets,
// returns the first row whose target is out of range, after one synchronisation, having
// written nothing (-1 when every target is valid and the loss was computed); without it,
// returns -1 at once (no synchronisation).
template <class T>
std::int64_t cross_entropy_loss(const Context& ctx, const T* logits,
                                const std::int64_t* targets, std::int64_t N, std::int64_t C,
                                float* loss, T* grad, const CrossEntropyOptions& opts);

void element_loss(const Context& ctx, detail::ElementLoss kind, const float* pred,
                  const float* target, std::int64_t n, std::int64_t d, const LossOutputs& out,
                  Reduction reduction);

void reparameterize(const Context& ctx, const float* mu, const float* logvar, std::int64_t n,
                    std::int64_t d, float* z, const ReparameterizeOptions& opts);

void vae_loss(const Context& ctx, const float* x, const float* x_recon, std::int64_t n,
              std::int64_t D, const float* mu, const float* logvar, std::int64_t d,
              const VaeLossOutputs& out, const VaeLossOptions& opts);

}  // namespace genai::cuda
