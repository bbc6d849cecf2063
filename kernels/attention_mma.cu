// fp16 / bf16 attention on the tensor cores, FlashAttention-2 style (sm_80 and later).
//
// Math. A block of kBlockM = 64 query rows of one (b, h) walks the K/V tiles of kN keys,
// keeping per row a running max m, sum l and output O (fp32):
//   S  = Q K_t^T                                  mma.m16n8k16, fp32 accumulate
//   x  = scale S + bias, -inf where not kept
//   m' = max(m, max_j x_j),  P = 2^(x log2(e) - m' log2(e))    (one FFMA and one ex2 each)
//   l' = e^(m - m') l + sum_j P_j,  O' = e^(m - m') O + round_T(P) V_t   (mma, fp32 accumulate)
// and at the end out = round_T(O / l), lse = m + ln l (out 0 and lse -inf when l = 0: a fully
// masked row; m is read as 0 in P while it is -inf, so no -inf - -inf = NaN). m stays in natural
// units so that lse is exact when one logit dominates (huge logits). l sums the fp32 P, O the P
// rounded to T, as FlashAttention.
//
// Work split: 4 warps per block, a warp owns 16 query rows; each lane holds 2 rows x 2 columns
// of every 8-key block of S and of O (the mma accumulator layout, kernels/attention_mma_layout.hpp),
// so the row max / sum need only two shuffles. Q (64 x D) stays in shared memory; K and V tiles
// (kN x D) are double-buffered: cp.async brings tile t + 1 while tile t is computed. Shared tiles
// use the XOR swizzle of attention_mma_layout.hpp, so cp.async stores and ldmatrix loads (.trans
// for V, whose key dim is the mma's k) are free of bank conflicts. P goes from the S accumulators
// to the A operand of the PV mma in registers (the accumulator and A layouts line up).
//
// Masking: keys at or past the block's last key_end are zero-filled in shared memory (so padding
// is never read); a tile is checked element by element (key_end, mask, bias) only when it
// crosses the first row's key_end or a mask / bias is given; tiles past the last row's key_end
// (causal) are skipped.
//
// Head dims: a template bucket D in {64, 128, 256}; any d <= D runs in it with columns d..D-1
// zero-filled (d = 64 and 128 are the fast path). cp.async moves 16-byte chunks, so it is used
// when d % 8 == 0 and the arrays are 16-byte aligned; otherwise the same tiles are filled by
// element copies (correct, slower).
//
// Bound aimed at: compute. 4 B H Lq Lk d flops (halved for causal) on the tensor cores through
// mma.sync; per block, K and V cross L2 once per 64 query rows, 64 flops per byte, so the kernel
// is mma-bound on both A100 and H100 (Hopper's wgmma peak is out of reach of mma.sync). The
// exponentials (Lq Lk of them on the MUFU units, 16 / clock / SM) cost about 1/4 of the mma time
// at d = 64.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "genai/buffer.hpp"
#include "kernels/attention.cuh"
#include "kernels/attention_common.cuh"
#include "kernels/attention_mma_layout.hpp"
#include "kernels/common.cuh"
#include "kernels/ptx.cuh"

namespace genai::cuda {
namespace {

using attn::Params;
namespace ml = mma_layout;

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kBlockM = 16 * kWarps;  // query rows per block
constexpr float kLog2e = 1.4426950408889634f;

// Keys per K/V tile: 64, or 32 at D = 256 (the O accumulator then already takes 128 registers).
template <int D>
constexpr int kTileN = D <= 128 ? 64 : 32;
// Q [kBlockM][D], K and V [2][kTileN][D], 16-bit elements.
template <int D>
constexpr int kSmemBytes = (kBlockM + 4 * kTileN<D>) * D * 2;

using namespace ptx;

// The dtype's mma (c += a b, 16 x 8 x 16), float -> T rounding and the pair packing of A.
template <class T>
struct Dtype;

template <>
struct Dtype<__half> {
  __device__ static void mma(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  __device__ static std::uint16_t bits(float x) { return __half_as_ushort(__float2half_rn(x)); }
};

template <>
struct Dtype<__nv_bfloat16> {
  __device__ static void mma(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  __device__ static std::uint16_t bits(float x) {
    return __bfloat16_as_ushort(__float2bfloat16_rn(x));
  }
};

// Two floats as one register of two T: lo in the low half (the lower column of an A pair).
template <class T>
__device__ unsigned pack(float lo, float hi) {
  return static_cast<unsigned>(Dtype<T>::bits(lo)) |
         (static_cast<unsigned>(Dtype<T>::bits(hi)) << 16);
}

// ---- tiles -----------------------------------------------------------------------------------

// Fills the swizzled shared tile s [rows][D] from the row-major global rows g [.][d]: rows at or
// past `valid` and columns at or past d are zero. vec: cp.async (d % 8 == 0, g 16-byte aligned);
// else element copies, visible after the next __syncthreads.
template <int D>
__device__ void load_tile(std::uint16_t* s, const std::uint16_t* g, int rows, std::int64_t valid,
                          std::int64_t d, bool vec) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  for (int e = threadIdx.x; e < rows * kChunks; e += kThreads) {
    const int r = e / kChunks, c = (e % kChunks) * 8;
    std::uint16_t* dst = s + ml::swizzle(r, c, D);
    const bool row_in = r < valid;
    if (vec) {
      const bool in = row_in && c < d;
      cp_async_16(dst, in ? g + r * d + c : g, in);
    } else {
      unsigned w[4];
      for (int t = 0; t < 4; ++t) {
        const std::int64_t c0 = c + 2 * t;
        const unsigned lo = row_in && c0 < d ? g[r * d + c0] : 0u;
        const unsigned hi = row_in && c0 + 1 < d ? g[r * d + c0 + 1] : 0u;
        w[t] = lo | (hi << 16);
      }
      *reinterpret_cast<uint4*>(dst) = make_uint4(w[0], w[1], w[2], w[3]);
    }
  }
}

// ---- the kernel ------------------------------------------------------------------------------

// One block per (b, h, 64 query rows); blocks of one head are adjacent (K / V shared in L2) and
// the last rows come first (under causality they have the most keys).
template <class T, int D>
__global__ void __launch_bounds__(kThreads) mma_kernel(Params<T> p, bool vec) {
  constexpr int kN = kTileN<D>;
  extern __shared__ uint4 smem[];
  std::uint16_t* sq = reinterpret_cast<std::uint16_t*>(smem);
  std::uint16_t* sk = sq + kBlockM * D;  // [2][kN][D]
  std::uint16_t* sv = sk + 2 * kN * D;   // [2][kN][D]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  const std::int64_t m_blocks = (p.Lq + kBlockM - 1) / kBlockM;
  const std::int64_t bh = blockIdx.x / m_blocks;  // b * Hq + h
  const std::int64_t m0 = (m_blocks - 1 - blockIdx.x % m_blocks) * kBlockM;
  const std::int64_t b = bh / p.Hq, h = bh % p.Hq;
  const std::int64_t kvh = b * (p.Hq / p.group) + h / p.group;
  const auto* qg = reinterpret_cast<const std::uint16_t*>(p.q) + (bh * p.Lq + m0) * p.d;
  const auto* kg = reinterpret_cast<const std::uint16_t*>(p.k) + kvh * p.Lk * p.d;
  const auto* vg = reinterpret_cast<const std::uint16_t*>(p.v) + kvh * p.Lk * p.d;

  // Keys read: [0, n_end), the last row's key_end; keys below n_full (the first row's) are kept
  // by every row of the block.
  const std::int64_t rows = min(static_cast<std::int64_t>(kBlockM), p.Lq - m0);
  const std::int64_t n_end = attn::key_end(p, b, m0 + rows - 1);
  const std::int64_t n_full = attn::key_end(p, b, m0);
  const bool per_element = p.mask.p || p.bias.p;
  const std::int64_t n_tiles = (n_end + kN - 1) / kN;

  load_tile<D>(sq, qg, kBlockM, rows, p.d, vec);
  if (n_tiles > 0) {
    load_tile<D>(sk, kg, kN, n_end, p.d, vec);
    load_tile<D>(sv, vg, kN, n_end, p.d, vec);
  }
  cp_async_commit();

  float o[D / 8][4] = {};  // O: 8-column block c, accumulator value e
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // rows lane/4 and lane/4 + 8

  for (std::int64_t t = 0; t < n_tiles; ++t) {
    const int buf = static_cast<int>(t & 1);
    if (t + 1 < n_tiles) {  // prefetch tile t + 1 into the other buffer (free since t - 1 ended)
      const std::int64_t j1 = (t + 1) * kN;
      load_tile<D>(sk + (buf ^ 1) * kN * D, kg + j1 * p.d, kN, n_end - j1, p.d, vec);
      load_tile<D>(sv + (buf ^ 1) * kN * D, vg + j1 * p.d, kN, n_end - j1, p.d, vec);
      cp_async_commit();
      cp_async_wait<1>();  // tile t (and Q) landed
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const std::uint16_t* kt = sk + buf * kN * D;
    const std::uint16_t* vt = sv + buf * kN * D;

    // S = Q K^T: the warp's 16 rows x kN keys, 8-key block nb, accumulator value e.
    float s[kN / 8][4] = {};
#pragma unroll
    for (int k0 = 0; k0 < D; k0 += 16) {
      unsigned a[4];
      const ml::RowCol qa = ml::ldsm_a(lane, 16 * warp, k0);
      ldsm_x4(a, sq + ml::swizzle(qa.row, qa.col, D));
#pragma unroll
      for (int n0 = 0; n0 < kN; n0 += 16) {
        unsigned bk[4];
        const ml::RowCol kb = ml::ldsm_b(lane, n0, k0);
        ldsm_x4(bk, kt + ml::swizzle(kb.row, kb.col, D));
        Dtype<T>::mma(s[n0 / 8], a, bk[0], bk[1]);
        Dtype<T>::mma(s[n0 / 8 + 1], a, bk[2], bk[3]);
      }
    }

    // Logits x; -inf where not kept (and on the padding rows past Lq).
    const std::int64_t j0 = t * kN;
    const bool check = per_element || j0 + kN > n_full;
#pragma unroll
    for (int nb = 0; nb < kN / 8; ++nb)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        if (check) {
          const ml::RowCol rc = ml::acc(lane, e);
          const std::int64_t i = m0 + 16 * warp + rc.row, j = j0 + 8 * nb + rc.col;
          s[nb][e] = i < p.Lq ? attn::logit(p, b, h, i, j, s[nb][e]) : -INFINITY;
        } else {
          s[nb][e] *= p.scale;
        }
      }

    // Online softmax of the lane's two rows (values 2r, 2r + 1 of each block); the 4 lanes of
    // a row are lanes 4 g .. 4 g + 3.
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = m[r];
#pragma unroll
      for (int nb = 0; nb < kN / 8; ++nb) mx = fmaxf(mx, fmaxf(s[nb][2 * r], s[nb][2 * r + 1]));
      mx = warp_reduce<4>(mx, Max{});
      const float base = mx == -INFINITY ? 0.0f : mx;
      const float alpha = exp2f((m[r] - base) * kLog2e);  // 0 while m was -inf
      const float base_log2 = base * kLog2e;
      m[r] = mx;
      float sum = 0.0f;
#pragma unroll
      for (int nb = 0; nb < kN / 8; ++nb)
#pragma unroll
        for (int e = 2 * r; e < 2 * r + 2; ++e) {
          s[nb][e] = exp2f(fmaf(s[nb][e], kLog2e, -base_log2));
          sum += s[nb][e];
        }
      l[r] = l[r] * alpha + sum;  // this lane's columns; the 4 lanes are summed at the end
#pragma unroll
      for (int c = 0; c < D / 8; ++c) {
        o[c][2 * r] *= alpha;
        o[c][2 * r + 1] *= alpha;
      }
    }

    // O += P V: P's accumulators of key blocks 2kk, 2kk + 1 are the A operand of keys 16 kk..
#pragma unroll
    for (int kk = 0; kk < kN / 16; ++kk) {
      const unsigned a[4] = {pack<T>(s[2 * kk][0], s[2 * kk][1]),
                             pack<T>(s[2 * kk][2], s[2 * kk][3]),
                             pack<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                             pack<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int c0 = 0; c0 < D; c0 += 16) {
        unsigned bv[4];
        const ml::RowCol vb = ml::ldsm_bt(lane, 16 * kk, c0);
        ldsm_x4_trans(bv, vt + ml::swizzle(vb.row, vb.col, D));
        Dtype<T>::mma(o[c0 / 8], a, bv[0], bv[1]);
        Dtype<T>::mma(o[c0 / 8 + 1], a, bv[2], bv[3]);
      }
    }
    __syncthreads();  // buffer `buf` is refilled by the next iteration's prefetch
  }
  cp_async_wait<0>();  // no copy outlives the block (n_tiles = 0 leaves Q's pending)

  auto* out = reinterpret_cast<std::uint16_t*>(p.out);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float lr = warp_reduce<4>(l[r], Sum{});
    const std::int64_t i = m0 + 16 * warp + lane / 4 + 8 * r;
    if (i >= p.Lq) continue;
    const std::int64_t row = bh * p.Lq + i;
    const float inv = lr > 0.0f ? 1.0f / lr : 0.0f;
#pragma unroll
    for (int cb = 0; cb < D / 8; ++cb) {
      const std::int64_t c = 8 * cb + 2 * (lane % 4);
      const float x0 = o[cb][2 * r] * inv, x1 = o[cb][2 * r + 1] * inv;
      if (vec) {  // d % 8 == 0: c and c + 1 are both in or both out; 4-byte aligned
        if (c < p.d) *reinterpret_cast<unsigned*>(out + row * p.d + c) = pack<T>(x0, x1);
      } else {
        if (c < p.d) out[row * p.d + c] = Dtype<T>::bits(x0);
        if (c + 1 < p.d) out[row * p.d + c + 1] = Dtype<T>::bits(x1);
      }
    }
    if (p.lse && lane % 4 == 0) p.lse[row] = lr > 0.0f ? m[r] + logf(lr) : -INFINITY;
  }
}

template <class T, int D>
void launch_mma(const Context& ctx, const Params<T>& p, bool vec) {
  constexpr int bytes = kSmemBytes<D>;
  GENAI_CUDA_CHECK(cudaFuncSetAttribute(mma_kernel<T, D>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  const std::int64_t blocks = p.B * p.Hq * ((p.Lq + kBlockM - 1) / kBlockM);
  if (blocks > 0x7fffffff)
    detail::throw_argument("genai::attention", "shape", "has ", blocks,
                           " query blocks, more than one launch takes");
  launch(ctx, mma_kernel<T, D>, static_cast<unsigned>(blocks), kThreads, bytes, p, vec);
}

// Pub: genai::fp16 / genai::bf16, the layout twins of T = __half / __nv_bfloat16.
template <class T, class Pub>
void attention_low(const Context& ctx, const Pub* q, const Pub* k, const Pub* v,
                   const AttentionShape& shape, float scale, const AttentionOptions& opts,
                   Pub* out, float* lse, float* weights) {
  static_assert(sizeof(T) == sizeof(Pub) && alignof(T) == alignof(Pub));
  ctx.make_current();
  Buffer<float> lse_space;
  lse = attn::lse_or_workspace(ctx, shape, lse, weights, lse_space);
  const Params<T> p = attn::params_of(reinterpret_cast<const T*>(q), reinterpret_cast<const T*>(k),
                                      reinterpret_cast<const T*>(v), reinterpret_cast<T*>(out),
                                      lse, shape, scale, opts);
  const bool vec = shape.head_dim % 8 == 0 && aligned16(q) && aligned16(k) && aligned16(v) &&
                   aligned16(out);
  if (shape.head_dim <= 64)
    launch_mma<T, 64>(ctx, p, vec);
  else if (shape.head_dim <= 128)
    launch_mma<T, 128>(ctx, p, vec);
  else
    launch_mma<T, 256>(ctx, p, vec);
  if (weights) attn::launch_weights(ctx, p, lse, weights);
}

}  // namespace

void attention(const Context& ctx, const fp16* q, const fp16* k, const fp16* v,
               const AttentionShape& shape, float scale, const AttentionOptions& opts,
               fp16* out, float* lse, float* weights) {
  attention_low<__half>(ctx, q, k, v, shape, scale, opts, out, lse, weights);
}

void attention(const Context& ctx, const bf16* q, const bf16* k, const bf16* v,
               const AttentionShape& shape, float scale, const AttentionOptions& opts,
               bf16* out, float* lse, float* weights) {
  attention_low<__nv_bfloat16>(ctx, q, k, v, shape, scale, opts, out, lse, weights);
}

}  // namespace genai::cuda
