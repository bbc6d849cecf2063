// CPU reference of the optim module: loops over the tensors calling genai/detail/optim.hpp's
// element updates (float, the same bits as the kernels), penalties summed in double. Arguments
// are checked by host/src/optim.cpp before these run.
#pragma once

#include <cstdint>
#include <span>

#include "genai/detail/optim.hpp"
#include "genai/optim.hpp"

namespace genai::ref {

void adam_step(std::span<const AdamTensor> tensors, const detail::AdamCoeffs& k);
void sgd_step(std::span<const SgdTensor> tensors, const detail::SgdCoeffs& k);
void ema_update(std::span<const EmaTensor> tensors, float one_minus_decay);
void add_penalty(Penalty penalty, const float* w, std::int64_t n, float lambda, float* value,
                 float* grad);
void l1_proximal_step(float* w, std::int64_t n, float threshold);

}  // namespace genai::ref
