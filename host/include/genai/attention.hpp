// Scaled dot-product attention and softmax (problem set 1.4, 1.6).
//
// Layouts (row-major, contiguous):
//   q    [B, Hq,  Lq, d]      k, v [B, Hkv, Lk, d]      out [B, Hq, Lq, d]
//   lse  [B, Hq, Lq]          weights [B, Hq, Lq, Lk]   (optional outputs)
// Hq must be a multiple of Hkv: query head h reads key/value head h / (Hq / Hkv) (Hkv = Hq is
// multi-head, 1 < Hkv < Hq grouped-query, Hkv = 1 multi-query attention). 1 <= d <= 256.
//
// For batch b, query head h, query row i and key j:
//   s_ij  = scale * <q_i, k_j> + bias[b, h, i, j]
//   kept  = j < key_lengths[b]  and  (not causal or j <= i + Lk - Lq)  and  mask[b, h, i, j]
//   w_ij  = exp(s_ij) / sum_{kept j'} exp(s_ij')   for kept j, 0 otherwise
//   out_i = sum_j w_ij v_j,   lse_i = log sum_{kept j} exp(s_ij)
// The causal diagonal is aligned bottom-right (as FlashAttention): the last query row sees every
// key. A row with no kept key (or only s = -inf) gives out_i = 0, lse_i = -inf, weights 0 --
// never NaN. A bias of -inf masks like a false mask entry.
//
// Broadcasting of mask and bias: each is a contiguous row-major array of the dims given in its
// BroadcastShape, where every dim is either the full size (B, Hq, Lq, Lk) or 1 (repeated along
// that axis). E.g. a key-padding mask [B, 1, 1, Lk] or a shared bias [1, Hq, Lq, Lk].
//
// Pointers (q, k, v, out, lse, weights, key_lengths, mask, bias) are host pointers with a CPU
// context, device pointers with a CUDA context. Bad input throws genai::ArgumentError naming the
// argument and writes nothing. The GPU path never materialises Lq x Lk unless `weights` is
// asked for; its memory is O((Lq + Lk) d).
//
// fp16 / bf16: q, k, v and out in the same low-precision dtype; lse, weights, bias and the scale
// stay float. Logits, the softmax and the accumulation run in fp32 on the GPU (tensor cores) and
// in double on the CPU; only out is rounded to the dtype (round to nearest even). On the GPU the
// probabilities are rounded to the dtype before they multiply V (as FlashAttention), so out is
// within a few units of the dtype's rounding of the exact result. Keys at or past
// key_lengths[b] may hold anything (they are never read); keys removed by the mask, the bias or
// causality still multiply V by a zero probability on the GPU, so their v must be finite.
#pragma once

#include <cstdint>

#include "genai/context.hpp"
#include "genai/dtype.hpp"

namespace genai {

inline constexpr std::int64_t kAttentionMaxHeadDim = 256;

struct AttentionShape {
  std::int64_t batch = 1;     // B
  std::int64_t q_heads = 1;   // Hq
  std::int64_t kv_heads = 1;  // Hkv, divides Hq
  std::int64_t q_len = 1;     // Lq
  std::int64_t k_len = 1;     // Lk
  std::int64_t head_dim = 1;  // d, at most kAttentionMaxHeadDim
};

// Dims of a mask or bias array broadcast over [B, Hq, Lq, Lk]: each the full size or 1.
struct BroadcastShape {
  std::int64_t batch = 1, heads = 1, q_len = 1, k_len = 1;
};

struct AttentionOptions {
  float scale = 0.0f;                         // 0: the default 1 / sqrt(d)
  bool causal = false;                        // bottom-right aligned when Lq != Lk
  const std::int32_t* key_lengths = nullptr;  // [B], each in [0, Lk]; nullptr: all Lk keys
  const bool* mask = nullptr;                 // true = attend; nullptr: no mask
  BroadcastShape mask_shape{};
  const float* bias = nullptr;                // added to the scaled logits; nullptr: none
  BroadcastShape bias_shape{};
};

struct AttentionOutputs {
  float* lse = nullptr;      // [B, Hq, Lq] natural-log log-sum-exp of the kept logits
  float* weights = nullptr;  // [B, Hq, Lq, Lk], normalised; written only when not null
};

void attention(const Context& ctx, const float* q, const float* k, const float* v,
               const AttentionShape& shape, float* out, const AttentionOptions& opts = {},
               const AttentionOutputs& outputs = {});
// The same in fp16 and bf16 (see above): same shapes, options, checks and errors.
void attention(const Context& ctx, const fp16* q, const fp16* k, const fp16* v,
               const AttentionShape& shape, fp16* out, const AttentionOptions& opts = {},
               const AttentionOutputs& outputs = {});
void attention(const Context& ctx, const bf16* q, const bf16* k, const bf16* v,
               const AttentionShape& shape, bf16* out, const AttentionOptions& opts = {},
               const AttentionOutputs& outputs = {});

// Row softmax of x [rows, n] into out [rows, n]: out_ij = exp(x_ij) / sum_j' exp(x_ij') over the
// kept entries (mask[rows, n] true, or all when mask is null; x = -inf counts as masked). A row
// with nothing kept is all 0. out may alias x.
void softmax(const Context& ctx, const float* x, std::int64_t rows, std::int64_t n, float* out,
             const bool* mask = nullptr);

}  // namespace genai
