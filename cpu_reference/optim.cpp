// CPU reference of the optim module: the element updates of genai/detail/optim.hpp over chunks
// of each tensor on the backend's threads (an update touches only its own element: the same
// bits on any thread count), in loops cloned for AVX-512 / AVX2.
#include "cpu_reference/optim.hpp"

#include <cmath>
#include <vector>

#include "cpu_reference/parallel.hpp"

namespace genai::ref {
namespace {

constexpr std::int64_t kElements = 16384;  // per chunk

// (tensor, first element) of every chunk of kElements of the tensors, in order.
template <class Tensor>
std::vector<std::pair<std::size_t, std::int64_t>> chunks_of(std::span<const Tensor> tensors) {
  std::vector<std::pair<std::size_t, std::int64_t>> c;
  for (std::size_t t = 0; t < tensors.size(); ++t)
    for (std::int64_t i = 0; i < tensors[t].size; i += kElements) c.emplace_back(t, i);
  return c;
}

// body(tensor, first, count) for every chunk, on the backend's threads.
template <class Tensor, class Body>
void for_chunks(std::span<const Tensor> tensors, Body&& body) {
  const auto chunks = chunks_of(tensors);
  parallel_for(static_cast<std::int64_t>(chunks.size()), [&](std::int64_t c) {
    const auto [t, i] = chunks[c];
    body(tensors[t], i, std::min(kElements, tensors[t].size - i));
  });
}

// The same branches for every element: the loops split on them (-funswitch-loops) and vectorise.
GENAI_CPU_CLONES void adam_span(const detail::AdamCoeffs k, float* p, const float* g, float* m,
                                float* v, float* v_max, std::int64_t n) {
  if (k.amsgrad) {
    for (std::int64_t i = 0; i < n; ++i) detail::adam_element(k, p[i], g[i], m[i], v[i], v_max[i]);
  } else {
    float unused = 0.0f;
    for (std::int64_t i = 0; i < n; ++i) detail::adam_element(k, p[i], g[i], m[i], v[i], unused);
  }
}

GENAI_CPU_CLONES void sgd_span(const detail::SgdCoeffs k, float* p, const float* g, float* buf,
                               std::int64_t n) {
  if (k.momentum != 0.0f) {
    for (std::int64_t i = 0; i < n; ++i) detail::sgd_element(k, p[i], g[i], buf[i]);
  } else {
    float unused = 0.0f;
    for (std::int64_t i = 0; i < n; ++i) detail::sgd_element(k, p[i], g[i], unused);
  }
}

GENAI_CPU_CLONES void ema_span(float omd, float* ema, const float* param, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) detail::ema_element(omd, ema[i], param[i]);
}

}  // namespace

void adam_step(std::span<const AdamTensor> tensors, const detail::AdamCoeffs& k) {
  for_chunks(tensors, [&](const AdamTensor& t, std::int64_t i, std::int64_t n) {
    adam_span(k, t.param + i, t.grad + i, t.m + i, t.v + i, k.amsgrad ? t.v_max + i : nullptr, n);
  });
}

void sgd_step(std::span<const SgdTensor> tensors, const detail::SgdCoeffs& k) {
  for_chunks(tensors, [&](const SgdTensor& t, std::int64_t i, std::int64_t n) {
    sgd_span(k, t.param + i, t.grad + i, k.momentum != 0.0f ? t.momentum_buffer + i : nullptr, n);
  });
}

void ema_update(std::span<const EmaTensor> tensors, float one_minus_decay) {
  for_chunks(tensors, [&](const EmaTensor& t, std::int64_t i, std::int64_t n) {
    ema_span(one_minus_decay, t.ema + i, t.param + i, n);
  });
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
