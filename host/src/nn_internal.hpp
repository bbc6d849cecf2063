// Internal to host/src/nn*.cpp: the nn primitives dispatched to the CPU or the GPU backend
// (arguments already checked), and shared checks.
#pragma once

#include <cstdint>

#include "genai/context.hpp"
#include "genai/detail/nn.hpp"

namespace genai::detail {

void run_embed_input(const Context& ctx, const EmbedInput& op);
void run_dense_forward(const Context& ctx, const DenseForward& op, const GemmEnv& env);
void run_dense_backward_weight(const Context& ctx, const DenseBackwardWeight& op,
                               const GemmEnv& env);
void run_dense_backward_input(const Context& ctx, const DenseBackwardInput& op,
                              const GemmEnv& env);
void run_activation_backward(const Context& ctx, Activation act, const float* z, const float* dy,
                             std::int64_t n, float* dz);
void run_add_into(const Context& ctx, float* dst, const float* src, std::int64_t n);

// Throws unless `a` is one of the Activation enumerators.
void require_activation(const char* fn, const char* arg, Activation a);
// Throws unless the embedding options are usable for dimension `dim`.
void require_time_embedding(const char* fn, std::int64_t dim, const TimeEmbeddingOptions& o);
// A GEMM dimension: >= lo and small enough for CBLAS's int.
void require_dim(const char* fn, const char* arg, std::int64_t v, std::int64_t lo);

}  // namespace genai::detail
