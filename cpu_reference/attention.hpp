// CPU reference of the attention module: the three-pass softmax (max, sum of exponentials,
// normalise) with double accumulation. Arguments are checked by host/src/attention.cpp.
#pragma once

#include <cstdint>

#include "genai/attention.hpp"

namespace genai::ref {

// Element strides of a BroadcastShape array over [B, H, Lq, Lk]: 0 along a dim of size 1.
struct BroadcastStrides {
  std::int64_t b = 0, h = 0, i = 0, j = 0;
};
BroadcastStrides broadcast_strides(const BroadcastShape& s);

// genai::attention on host pointers; `scale` already resolved (never 0).
void attention(const float* q, const float* k, const float* v, const AttentionShape& shape,
               float scale, const AttentionOptions& opts, float* out, float* lse,
               float* weights);

// genai::softmax on host pointers.
void softmax(const float* x, std::int64_t rows, std::int64_t n, const bool* mask, float* out);

}  // namespace genai::ref
