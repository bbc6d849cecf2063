// genai attention module: argument checks, then the CPU reference or the kernels.
#include "genai/attention.hpp"

#include <cmath>
#include <vector>

#include "cpu_reference/attention.hpp"
#include "genai/buffer.hpp"
#include "genai/detail/attention.hpp"
#include "genai/nvtx.hpp"
#if GENAI_WITH_CUDA
#include "kernels/attention.cuh"
#endif

namespace genai {
namespace {

constexpr const char* kAttention = "genai::attention";

void check_broadcast(const char* arg, const BroadcastShape& s, const AttentionShape& a) {
  const std::int64_t got[4] = {s.batch, s.heads, s.q_len, s.k_len};
  const std::int64_t full[4] = {a.batch, a.q_heads, a.q_len, a.k_len};
  const char* names[4] = {"batch", "heads", "q_len", "k_len"};
  for (int i = 0; i < 4; ++i)
    if (got[i] != 1 && got[i] != full[i])
      detail::throw_argument(kAttention, arg, "dim ", names[i], " must be 1 or ", full[i],
                             " to broadcast over [B, Hq, Lq, Lk] = [", a.batch, ", ", a.q_heads,
                             ", ", a.q_len, ", ", a.k_len, "] (got ", got[i], ")");
}

void check_key_lengths(const Context& ctx, const AttentionShape& a, const std::int32_t* lengths) {
  std::vector<std::int32_t> host(static_cast<std::size_t>(a.batch));
  detail::copy_bytes(ctx, host.data(), Device::CPU, lengths, ctx.device(),
                     host.size() * sizeof(std::int32_t));
  for (std::int64_t b = 0; b < a.batch; ++b)
    if (host[b] < 0 || host[b] > a.k_len)
      detail::throw_argument(kAttention, "opts.key_lengths", "entry ", b, " must be in [0, ",
                             a.k_len, "] (got ", host[b], ")");
}

// Every check of genai::attention, whatever the dtype; returns the resolved scale.
float check_attention(const Context& ctx, const void* q, const void* k, const void* v,
                      const AttentionShape& shape, const void* out, const AttentionOptions& opts) {
  detail::require_at_least(kAttention, "shape.batch", shape.batch, 1);
  detail::require_at_least(kAttention, "shape.q_heads", shape.q_heads, 1);
  detail::require_at_least(kAttention, "shape.kv_heads", shape.kv_heads, 1);
  detail::require_at_least(kAttention, "shape.q_len", shape.q_len, 1);
  detail::require_at_least(kAttention, "shape.k_len", shape.k_len, 1);
  detail::require_at_least(kAttention, "shape.head_dim", shape.head_dim, 1);
  if (shape.head_dim > kAttentionMaxHeadDim)
    detail::throw_argument(kAttention, "shape.head_dim", "must be <= ", kAttentionMaxHeadDim,
                           " (the supported maximum; got ", shape.head_dim, ")");
  if (shape.q_heads % shape.kv_heads != 0)
    detail::throw_argument(kAttention, "shape.kv_heads", "must divide shape.q_heads = ",
                           shape.q_heads, " (got ", shape.kv_heads, ")");
  if (!std::isfinite(opts.scale))
    detail::throw_argument(kAttention, "opts.scale", "must be finite (got ", opts.scale, ")");
  detail::require_not_null(kAttention, "q", q);
  detail::require_not_null(kAttention, "k", k);
  detail::require_not_null(kAttention, "v", v);
  detail::require_not_null(kAttention, "out", out);
  if (opts.mask) check_broadcast("opts.mask_shape", opts.mask_shape, shape);
  if (opts.bias) check_broadcast("opts.bias_shape", opts.bias_shape, shape);
  if (opts.key_lengths) check_key_lengths(ctx, shape, opts.key_lengths);
  return detail::attention_scale(shape, opts);
}

// Checks, then the kernels on a CUDA context or the CPU reference; T is float, fp16 or bf16.
template <class T>
void attention_any(const Context& ctx, const T* q, const T* k, const T* v,
                   const AttentionShape& shape, T* out, const AttentionOptions& opts,
                   const AttentionOutputs& outputs) {
  GENAI_NVTX_RANGE(kAttention);
  const float scale = check_attention(ctx, q, k, v, shape, out, opts);
#if GENAI_WITH_CUDA
  if (ctx.is_cuda())
    return cuda::attention(ctx, q, k, v, shape, scale, opts, out, outputs.lse, outputs.weights);
#endif
  ref::attention_blocked(q, k, v, shape, scale, opts, out, outputs.lse, outputs.weights);
}

}  // namespace

void attention(const Context& ctx, const float* q, const float* k, const float* v,
               const AttentionShape& shape, float* out, const AttentionOptions& opts,
               const AttentionOutputs& outputs) {
  attention_any(ctx, q, k, v, shape, out, opts, outputs);
}

void attention(const Context& ctx, const fp16* q, const fp16* k, const fp16* v,
               const AttentionShape& shape, fp16* out, const AttentionOptions& opts,
               const AttentionOutputs& outputs) {
  attention_any(ctx, q, k, v, shape, out, opts, outputs);
}

void attention(const Context& ctx, const bf16* q, const bf16* k, const bf16* v,
               const AttentionShape& shape, bf16* out, const AttentionOptions& opts,
               const AttentionOutputs& outputs) {
  attention_any(ctx, q, k, v, shape, out, opts, outputs);
}

void softmax(const Context& ctx, const float* x, std::int64_t rows, std::int64_t n, float* out,
             const bool* mask) {
  constexpr const char* fn = "genai::softmax";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "rows", rows, 0);
  detail::require_at_least(fn, "n", n, 1);
  if (rows == 0) return;
  detail::require_not_null(fn, "x", x);
  detail::require_not_null(fn, "out", out);
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::softmax(ctx, x, rows, n, mask, out);
#endif
  (void)ctx;
  ref::softmax(x, rows, n, mask, out);
}

}  // namespace genai
