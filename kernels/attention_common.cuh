// Device pieces shared by the fp32 (kernels/attention.cu) and fp16/bf16 tensor-core
// (kernels/attention_mma.cu) attention kernels: the parameters, the key range of a row, the
// masked and biased logit, and the weights pass. Internal to kernels/.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "genai/attention.hpp"
#include "genai/buffer.hpp"
#include "genai/context.hpp"
#include "genai/detail/attention.hpp"

namespace genai::cuda::attn {

// A mask (bool) or bias (float) array with its broadcast strides (0 along a dim of size 1).
struct Broadcast {
  const void* p;  // null: absent
  std::int64_t sb, sh, si, sj;

  __device__ std::int64_t at(std::int64_t b, std::int64_t h, std::int64_t i,
                             std::int64_t j) const {
    return b * sb + h * sh + i * si + j * sj;
  }
};

inline Broadcast broadcast_of(const void* p, const BroadcastShape& s) {
  const detail::BroadcastStrides st = detail::broadcast_strides(s);
  return {p, st.b, st.h, st.i, st.j};
}

// T: float, __half or __nv_bfloat16 (q, k, v, out); lse, bias and the scale are float.
template <class T>
struct Params {
  const T* q;
  const T* k;
  const T* v;
  T* out;
  float* lse;
  std::int64_t B, Hq, Lq, Lk, d, group;  // group = Hq / Hkv
  float scale;
  bool causal;
  const std::int32_t* key_lengths;
  Broadcast mask, bias;
};

template <class T>
Params<T> params_of(const T* q, const T* k, const T* v, T* out, float* lse,
                    const AttentionShape& shape, float scale, const AttentionOptions& opts) {
  return {.q = q,
          .k = k,
          .v = v,
          .out = out,
          .lse = lse,
          .B = shape.batch,
          .Hq = shape.q_heads,
          .Lq = shape.q_len,
          .Lk = shape.k_len,
          .d = shape.head_dim,
          .group = shape.q_heads / shape.kv_heads,
          .scale = scale,
          .causal = opts.causal,
          .key_lengths = opts.key_lengths,
          .mask = broadcast_of(opts.mask, opts.mask_shape),
          .bias = broadcast_of(opts.bias, opts.bias_shape)};
}

// Keys of batch b that exist (not padding): [0, key_length(b)).
template <class T>
__device__ std::int64_t key_length(const Params<T>& p, std::int64_t b) {
  return p.key_lengths ? p.key_lengths[b] : p.Lk;
}

// Keys of row i of batch b that can be kept: [0, key_end(b, i)).
template <class T>
__device__ std::int64_t key_end(const Params<T>& p, std::int64_t b, std::int64_t i) {
  std::int64_t end = key_length(p, b);
  if (p.causal) end = min(end, i + p.Lk - p.Lq + 1);
  return max(end, std::int64_t{0});
}

// s_ij without the dot product: -inf when j is not kept, else scale * dot + bias.
template <class T>
__device__ float logit(const Params<T>& p, std::int64_t b, std::int64_t h, std::int64_t i,
                       std::int64_t j, float dot) {
  if (j >= key_end(p, b, i)) return -INFINITY;
  if (p.mask.p && !static_cast<const bool*>(p.mask.p)[p.mask.at(b, h, i, j)]) return -INFINITY;
  float s = p.scale * dot;
  if (p.bias.p) s += static_cast<const float*>(p.bias.p)[p.bias.at(b, h, i, j)];
  return s;
}

// weights[b, h, i, j] = exp(s_ij - lse_i) (0 where not kept or lse = -inf), the logits
// recomputed in fp32 from p's q and k; defined in kernels/attention.cu for float, __half and
// __nv_bfloat16.
template <class T>
void launch_weights(const Context& ctx, const Params<T>& p, const float* lse, float* weights);

// The lse array the kernels write: the caller's, or -- when only the weights are asked for,
// whose pass needs it -- `space`, allocated here. nullptr when neither is wanted.
inline float* lse_or_workspace(const Context& ctx, const AttentionShape& shape, float* lse,
                               const float* weights, Buffer<float>& space) {
  if (!weights || lse) return lse;
  space = Buffer<float>(ctx, static_cast<std::size_t>(shape.batch * shape.q_heads * shape.q_len));
  return space.data();
}

}  // namespace genai::cuda::attn
