// CUDA launchers of the attention module (genai::cuda, internal). Arguments are checked by
// host/src/attention.cpp; pointers are device pointers.
#pragma once

#include <cstdint>

#include "genai/attention.hpp"
#include "genai/context.hpp"

namespace genai::cuda {

// genai::attention with `scale` resolved; lse and weights may be null.
void attention(const Context& ctx, const float* q, const float* k, const float* v,
               const AttentionShape& shape, float scale, const AttentionOptions& opts,
               float* out, float* lse, float* weights);

// The fp16 / bf16 tensor-core path (kernels/attention_mma.cu).
void attention(const Context& ctx, const fp16* q, const fp16* k, const fp16* v,
               const AttentionShape& shape, float scale, const AttentionOptions& opts,
               fp16* out, float* lse, float* weights);
void attention(const Context& ctx, const bf16* q, const bf16* k, const bf16* v,
               const AttentionShape& shape, float scale, const AttentionOptions& opts,
               bf16* out, float* lse, float* weights);

// genai::softmax; mask may be null.
void softmax(const Context& ctx, const float* x, std::int64_t rows, std::int64_t n,
             const bool* mask, float* out);

}  // namespace genai::cuda
