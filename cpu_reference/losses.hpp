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

// Cross-entropy on host data (T = float or bf16); an unchecked bad target gives a NaN row.
// cross_entropy_loss is the reference, the oracle of the tests (GPU parity included): each row
// widened to double, its max, the exponentials exp_d(x - max) and their sum, the loss and the
// gradient p_j = e_j / s through the shared row formulas (genai/detail/losses.hpp), in double,
// rounded once. cross_entropy_loss_float is what genai::cross_entropy_loss runs on the CPU: the
// same rows with the exponentials in float (exp_f of the float difference; the sums, the loss
// and the gradient formula in double) -- within the bound derived in tests/losses_test.cpp of
// the reference. Both are the same bytes on any thread count.
template <class T>
void cross_entropy_loss(const T* logits, const std::int64_t* targets, std::int64_t N,
                        std::int64_t C, float* loss, T* grad, const CrossEntropyOptions& opts);
template <class T>
void cross_entropy_loss_float(const T* logits, const std::int64_t* targets, std::int64_t N,
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
