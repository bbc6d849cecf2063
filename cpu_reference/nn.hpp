// CPU backend of the nn module: GEMMs through CBLAS (OpenBLAS), the elementwise parts as loops
// over the formulas of genai/detail/nn.hpp. Arguments are checked by host/src/nn*.cpp.
#pragma once

#include <cstdint>

#include "genai/detail/nn.hpp"
#include "genai/nn.hpp"

namespace genai::ref {

void activation_forward(Activation act, const float* z, std::int64_t n, float* y);
void activation_backward(Activation act, const float* z, const float* dy, std::int64_t n,
                         float* dz);
void embed_input(const detail::EmbedInput& op);
void dense_forward(const detail::DenseForward& op);
void dense_backward_weight(const detail::DenseBackwardWeight& op);
void dense_backward_input(const detail::DenseBackwardInput& op);
// dst[i] += src[i], i < n.
void add_into(float* dst, const float* src, std::int64_t n);

}  // namespace genai::ref
