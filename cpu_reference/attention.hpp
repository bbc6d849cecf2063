// CPU reference of the attention module: the three-pass softmax (max, sum of exponentials,
// normalise) with double accumulation, for fp32, fp16 and bf16 data. Arguments are checked by host/src/attention.cpp.
#pragma once

#include <cstdint>

#include "genai/attention.hpp"

namespace genai::ref {

// genai::attention on host pointers; `scale` already resolved (never 0).
void attention(const float* q, const float* k, const float* v, const AttentionShape& shape,
               float scale, const AttentionOptions& opts, float* out, float* lse,
               float* weights);
// fp16 / bf16: inputs widened to double exactly, the same three passes, out rounded once from
// double to the dtype (to nearest even); lse and weights as in fp32.
void attention(const fp16* q, const fp16* k, const fp16* v, const AttentionShape& shape,
               float scale, const AttentionOptions& opts, fp16* out, float* lse, float* weights);
void attention(const bf16* q, const bf16* k, const bf16* v, const AttentionShape& shape,
               float scale, const AttentionOptions& opts, bf16* out, float* lse, float* weights);

// genai::softmax on host pointers.
void softmax(const float* x, std::int64_t rows, std::int64_t n, const bool* mask, float* out);

}  // namespace genai::ref
