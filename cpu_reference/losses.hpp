// CPU reference of the losses module: plain loops, double accumulation, the formulas of
// genai/detail/losses.hpp. Arguments are checked by host/src/losses.cpp before these run.
#pragma once

#include <cstdint>

#include "genai/detail/losses.hpp"
#include "genai/losses.hpp"

namespace genai::ref {

// The first row whose target is outside [0, C) and not ignore_index, or -1.
std::int64_t first_bad_target(const std::int64_t* targets, std::int64_t N, std::int64_t C,
                              std::int64_t ignore_index);

// genai::cross_entropy_loss on host data (T = float or bf16); an unchecked bad target gives a
// NaN row.
template <class T>
void cross_entropy_loss(const T* logits, const std::int64_t* targets, std::int64_t N,
                        std::int64_t C, float* loss, T* grad, const CrossEntropyOptions& opts);

// genai::mse_loss / genai::bce_with_logits_loss on host data.
void element_loss(detail::ElementLoss kind, const float* pred, const float* target, std::int64_t n,
                  std::int64_t d, const LossOutputs& out, Reduction reduction);

void reparameterize(const float* mu, const float* logvar, std::int64_t n, std::int64_t d,
                    float* z, const ReparameterizeOptions& opts);

void vae_loss(const float* x, const float* x_recon, std::int64_t n, std::int64_t D,
              const float* mu, const float* logvar, std::int64_t d, const VaeLossOutputs& out,
              const VaeLossOptions& opts);

}  // namespace genai::ref
