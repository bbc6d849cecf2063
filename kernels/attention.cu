// fp32 attention, flash-style: online softmax over K/V tiles in shared memory.
//
// A block of kWarps warps owns kWarps consecutive query rows of one (b, h); a warp owns one row.
// Per tile of kTile = 32 keys the block stages K and V in shared memory; lane j scores key j
// (s_j = scale <q, k_j> + bias, -inf where not kept), then the warp applies the online softmax
//   m' = max(m, max_j s_j),  l' = l e^{m - m'} + sum_j e^{s_j - m'},
//   acc' = acc e^{m - m'} + sum_j e^{s_j - m'} v_j         (lane owns columns lane + 32 t),
// and at the end out = acc / l, lse = m + log l (0 and -inf when no key was kept). Memory is
// O((Lq + Lk) d): no Lq x Lk array exists unless `weights` is asked for, in which case a second
// kernel recomputes the logits, tiled through shared memory, and writes exp(s - lse).
//
// Bound aimed at: K/V are read from DRAM once per block of kWarps rows, so traffic is about
// (Lq / kWarps) * Lk * d * 8 bytes per head; the 4 Lq Lk d flops run on the fp32 CUDA cores
// (no tensor cores), so the roof is the device's fp32 FMA rate. This is the simple, correct
// fp32 path; the fp16/bf16 tensor-core kernel is kernels/attention_mma.cu.
//
// The head dim is a template bucket D in {32, 64, 128, 256}; any d <= D runs in bucket D (a
// lane's columns c >= d are skipped), so every d in [1, 256] has a path.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>

#include "genai/buffer.hpp"
#include "kernels/attention.cuh"
#include "kernels/attention_common.cuh"
#include "kernels/common.cuh"

namespace genai::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarp * kWarps;
constexpr int kTile = kWarp;  // keys per tile: one per lane

using attn::Params;

// Shared memory of bucket D: K tile [kTile][D + 1] (padded: lane j reads row j without bank
// conflicts), V tile [kTile][D], one query row [D] per warp.
template <int D>
constexpr std::size_t smem_floats = kTile * (D + 1) + kTile * D + kWarps * D;

template <int D>
__global__ void __launch_bounds__(kThreads) flash_kernel(Params<float> p) {
  constexpr int kCols = D / 32;  // output columns per lane
  extern __shared__ float smem[];
  float* ks = smem;
  float* vs = ks + kTile * (D + 1);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* qs = vs + kTile * D + warp * D;

  const std::int64_t row_blocks = (p.Lq + kWarps - 1) / kWarps;
  const std::int64_t bh = blockIdx.x / row_blocks;  // b * Hq + h
  const std::int64_t b = bh / p.Hq, h = bh % p.Hq;
  const std::int64_t i0 = (blockIdx.x % row_blocks) * kWarps;
  const std::int64_t i = i0 + warp;
  const bool active = i < p.Lq;
  const std::int64_t kv = b * (p.Hq / p.group) + h / p.group;
  const float* kh = p.k + kv * p.Lk * p.d;
  const float* vh = p.v + kv * p.Lk * p.d;

  // The block's key range: the largest key_end of its rows (the last one, as key_end grows in i).
  const std::int64_t block_end = attn::key_end(p, b, min(i0 + kWarps, p.Lq) - 1);

  if (active)
    for (int c = lane; c < D; c += 32) qs[c] = c < p.d ? p.q[(bh * p.Lq + i) * p.d + c] : 0.0f;

  float m = -INFINITY, l = 0.0f, acc[kCols];
  for (int t = 0; t < kCols; ++t) acc[t] = 0.0f;

  for (std::int64_t k0 = 0; k0 < block_end; k0 += kTile) {
    __syncthreads();  // the previous tile is consumed (and qs written, on the first pass)
    for (int e = threadIdx.x; e < kTile * D; e += kThreads) {
      const int j = e / D, c = e % D;
      // Keys at or past block_end are kept by no row of the block: never read (padding past
      // key_lengths may be uninitialised memory, see genai/attention.hpp).
      const bool in = k0 + j < block_end && c < p.d;
      ks[j * (D + 1) + c] = in ? kh[(k0 + j) * p.d + c] : 0.0f;
      vs[j * D + c] = in ? vh[(k0 + j) * p.d + c] : 0.0f;
    }
    __syncthreads();
    if (!active) continue;

    const std::int64_t j = k0 + lane;
    float s = -INFINITY;
    if (j < block_end) {
      float dot = 0.0f;
      for (int c = 0; c < D; ++c) dot = fmaf(qs[c], ks[lane * (D + 1) + c], dot);
      s = attn::logit(p, b, h, i, j, dot);
    }
    const float m_new = fmaxf(m, warp_reduce(s, Max{}));
    if (m_new == -INFINITY) continue;  // nothing kept so far (uniform over the warp)
    const float alpha = expf(m - m_new);  // 0 when m = -inf
    const float e = expf(s - m_new);      // 0 for a masked key
    l = l * alpha + warp_reduce(e, Sum{});
    for (int t = 0; t < kCols; ++t) acc[t] *= alpha;
    for (int jj = 0; jj < kTile; ++jj) {
      const float w = __shfl_sync(kFullMask, e, jj);
      if (w == 0.0f) continue;  // masked keys never touch acc (their v may be garbage)
      for (int t = 0; t < kCols; ++t) acc[t] = fmaf(w, vs[jj * D + lane + 32 * t], acc[t]);
    }
    m = m_new;
  }

  if (!active) return;
  const std::int64_t row = bh * p.Lq + i;
  const bool empty = l == 0.0f;
  for (int t = 0; t < kCols; ++t) {
    const int c = lane + 32 * t;
    if (c < p.d) p.out[row * p.d + c] = empty ? 0.0f : acc[t] / l;
  }
  if (p.lse && lane == 0) p.lse[row] = empty ? -INFINITY : m + logf(l);
}

// weights[row, j] = exp(s_ij - lse_i), 0 where not kept or lse = -inf: the logits recomputed,
// tiled. A block owns a tile of kWeightRows query rows x kTile keys of one (b, h) (grid-stride
// over the tiles) and walks the head dim in chunks of kChunk: the K chunk transposed in shared
// memory (ks[c][j], rows padded to kTile + 1 so that both the staging stores and lane j's reads
// are conflict-free), the Q chunk as qs[i][c]. Warp w scores the tile's rows 8 w .. 8 w + 7
// against lane j's key, 4 head dims at a time (4 K loads shared by the 8 rows, one 16-byte
// broadcast load of Q per row). Bound: shared memory, 0.375 d wavefronts per 32 weights against
// d / 4 FMA issue slots (profiling/NOTES.md), the 4-byte weight writes hidden under it. Each dot product runs over c = 0 .. d - 1 in order with fmaf, as a plain
// loop does (the zero padding past d adds nothing), and the products of fp16 / bf16 inputs are
// exact in fp32, so the logits match the mma kernel's up to its summation order. Keys past the
// tile's last kept key are never read (padding may be uninitialised memory); a tile wholly past
// it only writes zeros. Lanes write consecutive keys.
constexpr int kWeightWarps = 8;
constexpr int kRowsPerWarp = 8;
constexpr int kWeightRows = kWeightWarps * kRowsPerWarp;
constexpr int kChunk = 32;

template <class T>
__global__ void __launch_bounds__(kWeightWarps* kWarp)
    weights_kernel(Params<T> p, const float* lse, float* weights) {
  __shared__ float ks[kChunk][kTile + 1];
  __shared__ __align__(16) float qs[kWeightRows][kChunk];
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const std::int64_t row_tiles = ceil_div(p.Lq, kWeightRows), key_tiles = ceil_div(p.Lk, kTile);
  const std::int64_t tiles = p.B * p.Hq * row_tiles * key_tiles;
  for (std::int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const std::int64_t bh = tile / (row_tiles * key_tiles);
    const std::int64_t i0 = (tile / key_tiles % row_tiles) * kWeightRows;
    const std::int64_t k0 = (tile % key_tiles) * kTile;
    const std::int64_t b = bh / p.Hq, h = bh % p.Hq;
    const T* qh = p.q + bh * p.Lq * p.d;
    const T* kh = p.k + (b * (p.Hq / p.group) + h / p.group) * p.Lk * p.d;
    // The largest key_end of the tile's rows (the last one's, as key_end grows in i).
    const std::int64_t tile_end = attn::key_end(p, b, min(i0 + kWeightRows, p.Lq) - 1);
    float acc[kRowsPerWarp] = {};
    for (std::int64_t c0 = 0; k0 < tile_end && c0 < p.d; c0 += kChunk) {  // uniform over the block
      __syncthreads();  // the previous chunk (or tile) is consumed
      for (int e = threadIdx.x; e < kTile * kChunk; e += blockDim.x) {
        const int j = e / kChunk, c = e % kChunk;
        const bool in = k0 + j < tile_end && c0 + c < p.d;
        ks[c][j] = in ? static_cast<float>(kh[(k0 + j) * p.d + c0 + c]) : 0.0f;
      }
      for (int e = threadIdx.x; e < kWeightRows * kChunk; e += blockDim.x) {
        const int i = e / kChunk, c = e % kChunk;
        const bool in = i0 + i < p.Lq && c0 + c < p.d;
        qs[i][c] = in ? static_cast<float>(qh[(i0 + i) * p.d + c0 + c]) : 0.0f;
      }
      __syncthreads();
#pragma unroll
      for (int c = 0; c < kChunk; c += 4) {
        const float k0v = ks[c][lane], k1v = ks[c + 1][lane], k2v = ks[c + 2][lane],
                    k3v = ks[c + 3][lane];
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r) {
          const float4 q4 = *reinterpret_cast<const float4*>(&qs[warp * kRowsPerWarp + r][c]);
          acc[r] = fmaf(q4.x, k0v, acc[r]);
          acc[r] = fmaf(q4.y, k1v, acc[r]);
          acc[r] = fmaf(q4.z, k2v, acc[r]);
          acc[r] = fmaf(q4.w, k3v, acc[r]);
        }
      }
    }
    const std::int64_t j = k0 + lane;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const std::int64_t i = i0 + warp * kRowsPerWarp + r;
      if (i >= p.Lq || j >= p.Lk) break;
      const std::int64_t row = bh * p.Lq + i;
      const float s = attn::logit(p, b, h, i, j, acc[r]);  // -inf past key_end(b, i)
      weights[row * p.Lk + j] =
          (s == -INFINITY || lse[row] == -INFINITY) ? 0.0f : expf(s - lse[row]);
    }
  }
}

template <int D>
void launch_flash(const Context& ctx, const Params<float>& p) {
  constexpr int bytes = static_cast<int>(smem_floats<D> * sizeof(float));
  GENAI_CUDA_CHECK(cudaFuncSetAttribute(flash_kernel<D>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  const std::int64_t blocks = p.B * p.Hq * ((p.Lq + kWarps - 1) / kWarps);
  if (blocks > 0x7fffffff)
    detail::throw_argument("genai::attention", "shape", "has ", blocks,
                           " row blocks, more than one launch takes");
  launch(ctx, flash_kernel<D>, static_cast<unsigned>(blocks), kThreads, bytes, p);
}

// One warp per row: max, sum of exponentials, normalise (the reference's three passes).
__global__ void softmax_kernel(const float* x, std::int64_t rows, std::int64_t n,
                               const bool* mask, float* out) {
  const int lane = threadIdx.x % kWarp;
  for (const std::int64_t r : grid_stride(rows, kWarp)) {
    const float* xr = x + r * n;
    const bool* mr = mask ? mask + r * n : nullptr;
    float m = -INFINITY;
    for (std::int64_t j = lane; j < n; j += 32)
      if (!mr || mr[j]) m = fmaxf(m, xr[j]);
    m = warp_reduce(m, Max{});
    float sum = 0.0f;
    if (m != -INFINITY)
      for (std::int64_t j = lane; j < n; j += 32)
        if (!mr || mr[j]) sum += expf(xr[j] - m);
    sum = warp_reduce(sum, Sum{});
    for (std::int64_t j = lane; j < n; j += 32)
      out[r * n + j] = (m == -INFINITY || (mr && !mr[j])) ? 0.0f : expf(xr[j] - m) / sum;
  }
}

}  // namespace

namespace attn {

template <class T>
void launch_weights(const Context& ctx, const Params<T>& p, const float* lse, float* weights) {
  const std::int64_t tiles = p.B * p.Hq * ceil_div(p.Lq, kWeightRows) * ceil_div(p.Lk, kTile);
  launch(ctx, weights_kernel<T>, grid_for(tiles, 1), kWeightWarps * kWarp, 0, p, lse, weights);
}

template void launch_weights(const Context&, const Params<float>&, const float*, float*);
template void launch_weights(const Context&, const Params<__half>&, const float*, float*);
template void launch_weights(const Context&, const Params<__nv_bfloat16>&, const float*, float*);

}  // namespace attn

void attention(const Context& ctx, const float* q, const float* k, const float* v,
               const AttentionShape& shape, float scale, const AttentionOptions& opts,
               float* out, float* lse, float* weights) {
  ctx.make_current();
  Buffer<float> lse_space;
  lse = attn::lse_or_workspace(ctx, shape, lse, weights, lse_space);
  const Params<float> p = attn::params_of(q, k, v, out, lse, shape, scale, opts);
  if (shape.head_dim <= 32)
    launch_flash<32>(ctx, p);
  else if (shape.head_dim <= 64)
    launch_flash<64>(ctx, p);
  else if (shape.head_dim <= 128)
    launch_flash<128>(ctx, p);
  else
    launch_flash<256>(ctx, p);
  if (weights) attn::launch_weights(ctx, p, lse, weights);
}

void softmax(const Context& ctx, const float* x, std::int64_t rows, std::int64_t n,
             const bool* mask, float* out) {
  launch(ctx, softmax_kernel, grid_for(rows, 256 / kWarp), 256, 0, x, rows, n, mask, out);
}

}  // namespace genai::cuda
