// CPU backend of the attention module, for fp32, fp16 and bf16 data; arguments are checked by
// host/src/attention.cpp. attention() is the reference, the oracle of the tests (GPU parity
// included): the three-pass softmax (max, sum of exponentials, normalise) one query row at a
// time, in double. attention_blocked() is what genai::attention runs on the CPU: blocks of 256
// query rows on the backend's threads, the logits of 256 keys at a time and P V as CBLAS float
// GEMMs, an online softmax (running max, row sums in double, the output rescaled when the max
// grows); O(Lk d) memory per block, never Lq x Lk. Its distance to the reference has a derived
// bound (float_path_bounds in tests/attention_test.cpp); the result does not depend on the
// thread count.
#pragma once

#include <cstdint>

#include "genai/attention.hpp"

namespace genai::ref {

// genai::attention on host pointers; `scale` already resolved (never 0).
void attention(const float* q, const float* k, const float* v, const AttentionShape& shape,
               float scale, const AttentionOptions& opts, float* out, float* lse,
               float* weights);
// fp16 / bf16: inputs widened to double exactly, the same three passes, out rounded once from
// double to the dtype (to nearest even); lse and weights as in fp32. (The blocked path widens
// them to float exactly and rounds out once from float.)
void attention(const fp16* q, const fp16* k, const fp16* v, const AttentionShape& shape,
               float scale, const AttentionOptions& opts, fp16* out, float* lse, float* weights);
void attention(const bf16* q, const bf16* k, const bf16* v, const AttentionShape& shape,
               float scale, const AttentionOptions& opts, bf16* out, float* lse, float* weights);

// The blocked path (above), T = float, fp16 or bf16: same arguments, same outputs.
template <class T>
void attention_blocked(const T* q, const T* k, const T* v, const AttentionShape& shape,
                       float scale, const AttentionOptions& opts, T* out, float* lse,
                       float* weights);

// genai::softmax on host pointers.
void softmax(const float* x, std::int64_t rows, std::int64_t n, const bool* mask, float* out);

}  // namespace genai::ref
