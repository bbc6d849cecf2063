// CPU reference of the optim module.
#include "cpu_reference/optim.hpp"

#include <cmath>

namespace genai::ref {

void adam_step(std::span<const AdamTensor> tensors, const detail::AdamCoeffs& k) {
  for (const AdamTensor& t : tensors) {
    float unused = 0.0f;
    for (std::int64_t i = 0; i < t.size; ++i)
      detail::adam_element(k, t.param[i], t.grad[i], t.m[i], t.v[i],
                           k.amsgrad ? t.v_max[i] : unused);
  }
}

void sgd_step(std::span<const SgdTensor> tensors, const detail::SgdCoeffs& k) {
  for (const SgdTensor& t : tensors) {
    float unused = 0.0f;
    for (std::int64_t i = 0; i < t.size; ++i)
      detail::sgd_element(k, t.param[i], t.grad[i],
                          k.momentum != 0.0f ? t.momentum_buffer[i] : unused);
  }
}

void ema_update(std::span<const EmaTensor> tensors, float one_minus_decay) {
  for (const EmaTensor& t : tensors)
    for (std::int64_t i = 0; i < t.size; ++i)
      detail::ema_element(one_minus_decay, t.ema[i], t.param[i]);
}

void add_penalty(Penalty penalty, const float* w, std::int64_t n, float lambda, float* value,
                 float* grad) {
  const float coeff = penalty == Penalty::L2 ? 2.0f * lambda : lambda;
  double sum = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    sum += penalty == Penalty::L1 ? std::abs(static_cast<double>(w[i]))
                                  : static_cast<double>(w[i]) * w[i];
    if (grad) grad[i] = rng::detail::add(grad[i], detail::penalty_grad(penalty, coeff, w[i]));
  }
  if (value) value[0] = static_cast<float>(lambda * sum);
}

void l1_proximal_step(float* w, std::int64_t n, float threshold) {
  for (std::int64_t i = 0; i < n; ++i) w[i] = detail::soft_threshold(w[i], threshold);
}

}  // namespace genai::ref
