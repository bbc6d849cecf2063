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
// C [M x N] (row stride ldc) = op(A) op(B) + beta C, row-major, through CBLAS (dimensions and
// strides checked by the caller to fit an int); K = 0 writes beta C (0 when beta is 0).
void sgemm(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K,
           const float* A, std::int64_t lda, const float* B, std::int64_t ldb, float beta,
           float* C, std::int64_t ldc);
// dst[i] += src[i], i < n.
void add_into(float* dst, const float* src, std::int64_t n);

}  // namespace genai::ref
