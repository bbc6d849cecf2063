// CUDA launchers of the optim module (genai::cuda, internal). Arguments are checked by
// host/src/optim.cpp; the element updates are genai/detail/optim.hpp's.
#pragma once

#include <cstdint>
#include <span>

#include "genai/context.hpp"
#include "genai/detail/optim.hpp"
#include "genai/optim.hpp"

namespace genai::cuda {

// One launch per kMaxTensorsPerLaunch tensors; no synchronisation.
void adam_step(const Context& ctx, std::span<const AdamTensor> tensors,
               const detail::AdamCoeffs& k);
void sgd_step(const Context& ctx, std::span<const SgdTensor> tensors,
              const detail::SgdCoeffs& k);
void ema_update(const Context& ctx, std::span<const EmaTensor> tensors, float one_minus_decay);
void add_penalty(const Context& ctx, Penalty penalty, const float* w, std::int64_t n,
                 float lambda, float* value, float* grad);
void l1_proximal_step(const Context& ctx, float* w, std::int64_t n, float threshold);

}  // namespace genai::cuda
