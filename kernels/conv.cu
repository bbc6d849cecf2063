// The conv module on the GPU: the convolution as an implicit GEMM written here (no cuDNN), batch
// normalisation and the pools.
//
// Convolution. Forward, data gradient and weight gradient are the three GEMMs of
// genai/detail/conv.hpp, C[M x N] = sum_k A[m, k] B[k, n], whose operands are gathered from
// x, dy and W while they are copied into shared memory (no im2col buffer). One kernel runs all
// three: a 128 x 64 block tile of C, 32 deep per stage, a 3-stage cp.async pipeline (4-byte
// copies with zero fill, since a gather is contiguous along m or k but not aligned: padding
// shifts it), 4 warps of 64 x 32. Each copy's address is row entry + depth entry (a
// GatherEntry: offset and 2-D position, checked against the bounds), the row entries computed
// once per block, the depth entries once per stage into a two-slot ring in shared memory,
// so the per-element cost is a few integer operations. Products on the tensor cores
// (mma.sync.m16n8k8, operands rounded to TF32 with cvt.rna, fp32 accumulators; fragment maps
// in kernels/conv_mma_layout.hpp, checked on the host by tests/conv_mma_layout_test.cpp) or,
// with ConvMath::FP32, on the CUDA cores (an 8 x 8 outer product per thread). The epilogue
// stages C through shared memory and writes it along m (coalesced NCHW rows), adding the bias
// or the old value (accumulate). The weight gradient's depth is N P Q (100 352 at
// [32, 64, 56, 56]) and its C only 576 x 64, so it is split along the depth over about two
// waves of blocks into partial sums, added by a second pass in a fixed order (deterministic).
//
// Bound aimed at: compute. A 3x3 conv at [32, 64, 56, 56] is 2 N K C R S P Q = 7.4 GFLOP over
// 51 MB of compulsory traffic (x read, y written: 145 flop/byte), above H100's ridge for TF32
// mma.sync; the kernel issues about 11 non-mma instructions per mma (gathers, tf32 rounding,
// fragment loads), so it is issue-bound well below the tensor peak: NOTES.md has the
// prediction.
//
// Batch norm and pools (memory-bound; the goal is the copy bandwidth). Per-channel sums: a
// block per (channel, split of the images), double sums, written as partials and added per
// channel by a one-thread-per-channel pass (deterministic): 4 bytes read per element (8 for
// the backward's dy and z). The statistics are shifted by each channel's first element, so
// var = E[(z - z0)^2] - E[z - z0]^2 does not cancel catastrophically. Elementwise passes
// (normalise + ReLU + residual; the backward's dz): a block row per (image, channel) plane,
// float4 when the plane allows, 8-20 bytes per element. Pools: one thread per output
// (forward) or per input (backward, gathering from the outputs whose windows cover it:
// deterministic, no atomics).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>

#include "genai/buffer.hpp"
#include "genai/cuda_check.hpp"
#include "genai/error.hpp"
#include "kernels/common.cuh"
#include "kernels/ptx.cuh"
#include "kernels/conv.cuh"
#include "kernels/conv_mma_layout.hpp"

namespace genai::cuda {
namespace {

namespace cl = conv_layout;
using detail::GatherEntry;

using namespace ptx;

// ---- the implicit GEMM -----------------------------------------------------------------------

struct IgemmArgs {
  detail::ImplicitGemm g;
  const float* bias;           // [N] or null
  bool accumulate;             // C += instead of C =
  int k_tiles;                 // kBK-deep tiles of the whole depth
  int tiles_per_split;         // of them per blockIdx.z
  std::int64_t split_stride;   // floats between consecutive splits' outputs (0: one split)
};

// Row tables (k-major A's rows, B's rows) and the depth ring: [2 slots][A, B][kBK].
constexpr int kTableEntries = cl::kBM + cl::kBN + 4 * cl::kBK;

template <bool kMMajor>
constexpr int kStageFloats = cl::a_tile_floats(kMMajor) + cl::kBTileFloats;
template <bool kMMajor>
constexpr int kSmemBytes =
    cl::kStages * kStageFloats<kMMajor> * 4 + kTableEntries * static_cast<int>(sizeof(GatherEntry));
static_assert(cl::kStages * kStageFloats<true> >= cl::kCTileFloats &&
              cl::kStages * kStageFloats<false> >= cl::kCTileFloats);
static_assert(cl::kThreads == cl::kBM, "the m-major copies and the epilogue give a thread one row");
static_assert(cl::kStages * kStageFloats<true> % 4 == 0 && cl::kStages * kStageFloats<false> % 4 == 0,
              "the tables start 16-byte aligned");

template <bool kTf32, bool kMMajor, bool kDivide>
__global__ void __launch_bounds__(cl::kThreads) igemm_kernel(IgemmArgs p) {
  extern __shared__ float4 smem4[];
  float* smem = reinterpret_cast<float*>(smem4);
  constexpr int kATile = cl::a_tile_floats(kMMajor), kStage = kStageFloats<kMMajor>;
  auto* a_rows = reinterpret_cast<GatherEntry*>(smem + cl::kStages * kStage);  // [kBM]
  GatherEntry* b_rows = a_rows + cl::kBM;                                        // [kBN]
  GatherEntry* ring = b_rows + cl::kBN;                                          // [2][2][kBK]

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const std::int64_t m0 = static_cast<std::int64_t>(blockIdx.x) * cl::kBM;
  const std::int64_t n0 = static_cast<std::int64_t>(blockIdx.y) * cl::kBN;
  const int t_first = blockIdx.z * p.tiles_per_split;
  const int tiles = max(0, min(p.k_tiles - t_first, p.tiles_per_split));
  const detail::GatherOperand& A = p.g.a;
  const detail::GatherOperand& B = p.g.b;

  // Row entries: an m-major thread copies one row of A (its own); k-major rows come from a
  // table, as B's.
  GatherEntry a_row{};
  if constexpr (kMMajor) {
    a_row = A.rows.entry(m0 + cl::a_copy(true, tid, 0).row);
  } else {
    for (int i = tid; i < cl::kBM; i += cl::kThreads) a_rows[i] = A.rows.entry(m0 + i);
  }
  for (int i = tid; i < cl::kBN; i += cl::kThreads) b_rows[i] = B.rows.entry(n0 + i);

  // Depth entries of tile t (relative to the split) into ring slot t % 2: threads 0..31 A's,
  // 32..63 B's.
  auto build = [&](int t) {
    if (t >= tiles || tid >= 2 * cl::kBK) return;
    const int which = tid / cl::kBK, k = tid % cl::kBK;
    const std::int64_t kk = static_cast<std::int64_t>(t_first + t) * cl::kBK + k;
    ring[((t % 2) * 2 + which) * cl::kBK + k] = which == 0 ? A.depth.entry(kk) : B.depth.entry(kk);
  };
  // The copies of tile t into stage t % kStages (one commit group, empty past the end).
  auto issue = [&](int t) {
    if (t < tiles) {
      float* sa = smem + (t % cl::kStages) * kStage;
      float* sb = sa + kATile;
      const GatherEntry* da = ring + (t % 2) * 2 * cl::kBK;
      const GatherEntry* db = da + cl::kBK;
      if constexpr (kMMajor) {
#pragma unroll 8
        for (int i = 0; i < cl::kACopies; ++i) {
          const cl::RowCol rc = cl::a_copy(true, tid, i);
          const int off = A.template offset<kDivide>(a_row, da[rc.col]);
          cp_async_4(sa + cl::a_offset(true, rc.row, rc.col), A.base + max(off, 0), off >= 0);
        }
      } else {
        const GatherEntry kd = da[cl::a_copy(false, tid, 0).col];
#pragma unroll 8
        for (int i = 0; i < cl::kACopies; ++i) {
          const cl::RowCol rc = cl::a_copy(false, tid, i);
          const int off = A.template offset<kDivide>(a_rows[rc.row], kd);
          cp_async_4(sa + cl::a_offset(false, rc.row, rc.col), A.base + max(off, 0), off >= 0);
        }
      }
      const GatherEntry kb = db[cl::b_copy(tid, 0).col];
#pragma unroll 8
      for (int i = 0; i < cl::kBCopies; ++i) {
        const cl::RowCol rc = cl::b_copy(tid, i);
        const int off = B.template offset<false>(b_rows[rc.row], kb);
        cp_async_4(sb + cl::b_offset(rc.row, rc.col), B.base + max(off, 0), off >= 0);
      }
    }
    cp_async_commit();
  };

  // Prologue: stages 0 .. kStages - 2 in flight, the depth entries of the next one built.
  build(0);
  __syncthreads();  // row tables and slot 0
  for (int s = 0; s < cl::kStages - 1; ++s) {
    issue(s);
    build(s + 1);
    __syncthreads();
  }

  const int wm = (warp % 2) * cl::kWarpM, wn = (warp / 2) * cl::kWarpN;
  float acc[kTf32 ? cl::kMmaTilesM : 8][kTf32 ? cl::kMmaTilesN : 8][kTf32 ? 4 : 1] = {};

  for (int kt = 0; kt < tiles; ++kt) {
    cp_async_wait<cl::kStages - 2>();  // this thread's copies of tile kt have landed
    __syncthreads();                   // everyone's; and tile kt - 1's stage and slot are free
    issue(kt + cl::kStages - 1);
    build(kt + cl::kStages);
    const float* sa = smem + (kt % cl::kStages) * kStage;
    const float* sb = sa + kATile;
    if constexpr (kTf32) {
#pragma unroll
      for (int k0 = 0; k0 < cl::kBK; k0 += 8) {
        unsigned af[cl::kMmaTilesM][4], bf[cl::kMmaTilesN][2];
#pragma unroll
        for (int mt = 0; mt < cl::kMmaTilesM; ++mt)
#pragma unroll
          for (int j = 0; j < 2; ++j) {
            const float2 v = *reinterpret_cast<const float2*>(
                sa + cl::a_frag_load(kMMajor, lane, j, wm + 16 * mt, k0));
            const cl::RowCol r = cl::a_load_regs(kMMajor, j);
            af[mt][r.row] = to_tf32(v.x);
            af[mt][r.col] = to_tf32(v.y);
          }
#pragma unroll
        for (int nt = 0; nt < cl::kMmaTilesN; ++nt) {
          const float2 v =
              *reinterpret_cast<const float2*>(sb + cl::b_frag_load(lane, wn + 8 * nt, k0));
          bf[nt][0] = to_tf32(v.x);
          bf[nt][1] = to_tf32(v.y);
        }
#pragma unroll
        for (int mt = 0; mt < cl::kMmaTilesM; ++mt)
#pragma unroll
          for (int nt = 0; nt < cl::kMmaTilesN; ++nt)
            mma_tf32(acc[mt][nt], af[mt], bf[nt][0], bf[nt][1]);
      }
    } else {
#pragma unroll 4
      for (int k = 0; k < cl::kBK; ++k) {
        float a[8], b[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) a[i] = sa[cl::a_offset(kMMajor, cl::simt_m(tid, i), k)];
#pragma unroll
        for (int j = 0; j < 8; ++j) b[j] = sb[cl::b_offset(cl::simt_n(tid, j), k)];
#pragma unroll
        for (int i = 0; i < 8; ++i)
#pragma unroll
          for (int j = 0; j < 8; ++j) acc[i][j][0] = fmaf(a[i], b[j], acc[i][j][0]);
      }
    }
  }

  // Epilogue: C staged [n][m] over the stages, then written along m.
  cp_async_wait<0>();
  __syncthreads();
  float* sc = smem;
  if constexpr (kTf32) {
#pragma unroll
    for (int mt = 0; mt < cl::kMmaTilesM; ++mt)
#pragma unroll
      for (int nt = 0; nt < cl::kMmaTilesN; ++nt)
#pragma unroll
        for (int j = 0; j < 2; ++j)
          *reinterpret_cast<float2*>(sc + cl::c_frag_store(lane, j, wm + 16 * mt, wn + 8 * nt)) =
              make_float2(acc[mt][nt][j], acc[mt][nt][j + 2]);
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
      for (int j = 0; j < 8; ++j)
        sc[cl::c_offset(cl::simt_m(tid, i), cl::simt_n(tid, j))] = acc[i][j][0];
  }
  __syncthreads();
  const std::int64_t m = m0 + tid;
  if (m >= p.g.M) return;
  float* out = p.g.c.base + blockIdx.z * p.split_stride + p.g.c.rows.entry(m).off;
  const int n_count = static_cast<int>(min(static_cast<std::int64_t>(cl::kBN), p.g.N - n0));
  for (int j = 0; j < n_count; ++j) {
    const std::int64_t n = n0 + j;
    float v = sc[cl::c_offset(tid, j)];
    if (p.bias) v += p.bias[n];
    float* o = out + n * p.g.c.ldn;
    *o = p.accumulate ? *o + v : v;
  }
}

template <bool kTf32, bool kMMajor, bool kDivide>
void launch_igemm_as(const Context& ctx, const IgemmArgs& p, int splits) {
  constexpr int bytes = kSmemBytes<kMMajor>;
  auto* kernel = igemm_kernel<kTf32, kMMajor, kDivide>;
  ctx.make_current();
  GENAI_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  const dim3 grid(static_cast<unsigned>(ceil_div(p.g.M, cl::kBM)),
                  static_cast<unsigned>(ceil_div(p.g.N, cl::kBN)), static_cast<unsigned>(splits));
  launch(ctx, kernel, grid, cl::kThreads, bytes, p);
}

// C = A B (+ bias, or + C with accumulate) over `splits` depth ranges; with splits > 1, split z
// writes its partial sum at c.base + z * split_stride. m_major: A's gather runs along m (the
// forward and the data gradient), else along its depth (the weight gradient).
void run_igemm(const Context& ctx, const detail::ImplicitGemm& g, bool m_major, const float* bias,
               bool accumulate, detail::ConvMathKind math, int splits, std::int64_t split_stride) {
  if (g.M == 0 || g.N == 0) return;
  if (ceil_div(g.N, cl::kBN) > 65535)
    detail::throw_argument("genai::conv2d", "shape", "has ", g.N,
                           " GEMM columns (channels), more than one launch takes (65535 * 64)");
  const int k_tiles = static_cast<int>(ceil_div(g.K, cl::kBK));
  const int per = std::max(static_cast<int>(ceil_div(k_tiles, splits)), 1);
  const IgemmArgs p{g, bias, accumulate, k_tiles, per, split_stride};
  const bool tf32 = math == detail::ConvMathKind::TF32;
  if (!m_major)
    return tf32 ? launch_igemm_as<true, false, false>(ctx, p, splits)
                : launch_igemm_as<false, false, false>(ctx, p, splits);
  if (g.divide_a)
    return tf32 ? launch_igemm_as<true, true, true>(ctx, p, splits)
                : launch_igemm_as<false, true, true>(ctx, p, splits);
  return tf32 ? launch_igemm_as<true, true, false>(ctx, p, splits)
              : launch_igemm_as<false, true, false>(ctx, p, splits);
}

int sm_count(const Context& ctx) {
  int n = 0;
  GENAI_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, ctx.device_index()));
  return std::max(n, 1);
}

// Depth splits of the weight gradient: about two waves of two blocks per SM, each split at least
// 8 tiles deep; then as many splits as that tile count needs (none empty).
int weight_splits(const Context& ctx, const detail::ConvGeometry& g) {
  const detail::ImplicitGemm G = detail::conv_weight_gemm(g, nullptr, nullptr, nullptr);
  const std::int64_t blocks = ceil_div(G.M, cl::kBM) * ceil_div(G.N, cl::kBN);
  const std::int64_t k_tiles = ceil_div(G.K, cl::kBK);
  const std::int64_t want = std::clamp<std::int64_t>(4 * sm_count(ctx) / std::max<std::int64_t>(blocks, 1), 1,
                                                     std::max<std::int64_t>(k_tiles / 8, 1));
  const std::int64_t per = ceil_div(k_tiles, want);
  return static_cast<int>(std::min<std::int64_t>(ceil_div(k_tiles, per), 65535));
}

__global__ void sum_splits_kernel(const float* __restrict__ partial, int splits, std::int64_t n,
                                  float* out, bool accumulate) {
  for (const std::int64_t i : grid_stride(n)) {
    float s = 0.0f;
    for (int z = 0; z < splits; ++z) s += partial[z * n + i];
    out[i] = accumulate ? out[i] + s : s;
  }
}

// ---- per-channel sums ------------------------------------------------------------------------

constexpr int kThreads = 256;
constexpr int kMaxSplits = 16;

int channel_splits(std::int64_t N) { return static_cast<int>(std::clamp<std::int64_t>(N, 1, kMaxSplits)); }

// Two sums per channel c of terms f(i, c) over the elements i of channel c of [N x C x L]:
// block (c, split) takes images split, split + splits, ...; partial[(c splits + split) 2 + j].
template <class F>
__global__ void channel_sums_kernel(std::int64_t N, std::int64_t C, std::int64_t L, F f,
                                    double* partial) {
  __shared__ double scratch[kThreads / kWarp];
  const std::int64_t c = blockIdx.x;
  const int split = blockIdx.y, splits = gridDim.y;
  double s0 = 0.0, s1 = 0.0;
  if (L >= kThreads) {
    for (std::int64_t n = split; n < N; n += splits) {
      const std::int64_t base = (n * C + c) * L;
      for (std::int64_t l = threadIdx.x; l < L; l += kThreads) {
        const float2 t = f(base + l, c);
        s0 += t.x, s1 += t.y;
      }
    }
  } else {  // short planes: the block's images flattened
    const std::int64_t mine = (N - split + splits - 1) / splits;
    for (std::int64_t t = threadIdx.x; t < mine * L; t += kThreads) {
      const std::int64_t n = split + (t / L) * splits;
      const float2 v = f((n * C + c) * L + t % L, c);
      s0 += v.x, s1 += v.y;
    }
  }
  s0 = block_reduce<kThreads>(s0, Sum{}, 0.0, scratch);
  s1 = block_reduce<kThreads>(s1, Sum{}, 0.0, scratch);
  if (threadIdx.x == 0) {
    partial[(c * splits + split) * 2] = s0;
    partial[(c * splits + split) * 2 + 1] = s1;
  }
}

template <class F>
void channel_sums(const Context& ctx, std::int64_t N, std::int64_t C, std::int64_t L, F f,
                  double* partial) {
  launch(ctx, channel_sums_kernel<F>, dim3(static_cast<unsigned>(C), channel_splits(N)), kThreads,
         0, N, C, L, f, partial);
}

// The channel's two sums over its splits, in a fixed order.
__device__ double2 channel_total(const double* partial, std::int64_t c, int splits) {
  double s0 = 0.0, s1 = 0.0;
  for (int k = 0; k < splits; ++k) {
    s0 += partial[(c * splits + k) * 2];
    s1 += partial[(c * splits + k) * 2 + 1];
  }
  return {s0, s1};
}

// Terms of the batch statistics: z - z0 and its square, z0 the channel's first element.
struct StatsTerms {
  const float* z;
  std::int64_t C, L;
  __device__ float2 operator()(std::int64_t i, std::int64_t c) const {
    const float d = z[i] - z[c * L];
    return {d, d * d};
  }
};

// Terms of the normalisation's backward: g and g xhat (g: detail::bn_gate).
struct BackwardTerms {
  detail::BnBackward op;
  __device__ float2 operator()(std::int64_t i, std::int64_t c) const {
    const float g = detail::bn_gate(op, i, detail::bn_gate_affine(op, c));
    return {g, g * ((op.z[i] - op.mean[c]) * op.invstd[c])};
  }
};

struct PlainTerms {  // the bias gradient: dy itself
  const float* dy;
  __device__ float2 operator()(std::int64_t i, std::int64_t) const { return {dy[i], 0.0f}; }
};

__global__ void stats_finish_kernel(detail::BnStats op, const double* partial, int splits) {
  for (const std::int64_t c : grid_stride(op.C)) {
    if (!op.training) {
      detail::bn_store_stats(op, c, 0.0, 0.0);
      continue;
    }
    const double2 s = channel_total(partial, c, splits);
    const double M = static_cast<double>(op.N * op.L);
    const double d = s.x / M;
    detail::bn_store_stats(op, c, static_cast<double>(op.z[c * op.L]) + d,
                           fmax(s.y / M - d * d, 0.0));
  }
}

// dbeta, dgamma (= or +=) and the means the elementwise pass needs: coef[c] = (sum g / M,
// sum g xhat / M), written after the partials.
__global__ void backward_finish_kernel(detail::BnBackward op, const double* partial, int splits,
                                       double* coef) {
  for (const std::int64_t c : grid_stride(op.C)) {
    const double2 s = channel_total(partial, c, splits);
    if (op.dbeta) op.dbeta[c] = static_cast<float>(op.accumulate ? op.dbeta[c] + s.x : s.x);
    if (op.dgamma) op.dgamma[c] = static_cast<float>(op.accumulate ? op.dgamma[c] + s.y : s.y);
    const double M = static_cast<double>(op.N * op.L);
    coef[2 * c] = s.x / M;
    coef[2 * c + 1] = s.y / M;
  }
}

__global__ void bias_finish_kernel(std::int64_t C, const double* partial, int splits, float* db,
                                   bool accumulate) {
  for (const std::int64_t c : grid_stride(C)) {
    const double s = channel_total(partial, c, splits).x;
    db[c] = static_cast<float>(accumulate ? db[c] + s : s);
  }
}

// ---- elementwise passes over planes ----------------------------------------------------------

// Grid for a pass over N C planes of L: y over planes (strided past 65535), x over a plane's
// 4-element chunks.
dim3 plane_grid(std::int64_t planes, std::int64_t L) {
  const std::int64_t chunks = ceil_div(L, 4);
  return dim3(static_cast<unsigned>(std::clamp<std::int64_t>(ceil_div(chunks, kThreads), 1, 64)),
              static_cast<unsigned>(std::clamp<std::int64_t>(planes, 1, 65535)));
}

// Calls body(base + l, count) for this thread's 4-element chunks [l, l + count) of each of its
// planes, with the plane's channel.
template <class Body>
__device__ void for_plane_chunks(std::int64_t planes, std::int64_t C, std::int64_t L, Body body) {
  for (std::int64_t plane = blockIdx.y; plane < planes; plane += gridDim.y) {
    const std::int64_t c = plane % C;
    for (std::int64_t l = 4 * (static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x);
         l < L; l += 4 * static_cast<std::int64_t>(gridDim.x) * blockDim.x)
      body(plane * L + l, static_cast<int>(min(static_cast<std::int64_t>(4), L - l)), c);
  }
}

__global__ void bn_apply_kernel(detail::BnApply op, bool vec) {
  for_plane_chunks(op.N * op.C, op.C, op.L, [&](std::int64_t i, int count, std::int64_t c) {
    const detail::BnAffine a = detail::bn_affine(op.mean[c], op.invstd[c],
                                                 op.gamma ? op.gamma[c] : 1.0f,
                                                 op.beta ? op.beta[c] : 0.0f);
    float v[4], r[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    load4(op.z + i, count, vec, v);
    if (op.residual) load4(op.residual + i, count, vec, r);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float t = detail::bn_normalize(v[e], a) + r[e];
      v[e] = op.relu ? (t > 0.0f ? t : 0.0f) : t;
    }
    store4(op.y + i, count, vec, v);
  });
}

__global__ void bn_backward_apply_kernel(detail::BnBackward op, const double* coef, bool vec) {
  for_plane_chunks(op.N * op.C, op.C, op.L, [&](std::int64_t i, int count, std::int64_t c) {
    const float mean = op.mean[c], invstd = op.invstd[c];
    const float k = (op.gamma ? op.gamma[c] : 1.0f) * invstd;
    const float mg = static_cast<float>(coef[2 * c]), mgx = static_cast<float>(coef[2 * c + 1]);
    const detail::BnAffine a = detail::bn_gate_affine(op, c);
    float g[4], z[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) g[e] = e < count ? detail::bn_gate(op, i + e, a) : 0.0f;
    if (op.g_out) store4(op.g_out + i, count, vec, g);
    if (!op.dz) return;
    load4(op.z + i, count, vec, z);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float xhat = (z[e] - mean) * invstd;
      z[e] = op.training ? k * (g[e] - mg - xhat * mgx) : k * g[e];
    }
    store4(op.dz + i, count, vec, z);
  });
}

// ---- pools -----------------------------------------------------------------------------------

// Calls f(output index, its window, the offset of its plane in x) for this thread's outputs.
template <class F>
__device__ void for_each_window(const detail::PoolGeometry& g, F f) {
  for (const std::int64_t o : grid_stride(g.N * g.C * g.P * g.Q)) {
    const std::int64_t plane = o / (g.P * g.Q), pq = o % (g.P * g.Q);
    f(o, detail::pool_window(g, pq / g.Q, pq % g.Q), plane * g.H * g.W);
  }
}

__global__ void max_pool_forward_kernel(detail::MaxPoolForward op) {
  const int W = static_cast<int>(op.g.W);
  for_each_window(op.g, [&](std::int64_t o, const detail::PoolWindow& w, std::int64_t plane) {
    float best = -INFINITY;
    int arg = w.h0 * W + w.w0;
    for (int h = w.h0; h < w.h1; ++h)
      for (int c = w.w0; c < w.w1; ++c) {
        const float v = op.x[plane + h * W + c];
        if (v > best || isnan(v)) best = v, arg = h * W + c;
      }
    op.y[o] = best;
    if (op.indices) op.indices[o] = arg;
  });
}

// Calls f(output index, h W + w of the input) for every output whose window covers input i.
template <class F>
__device__ void for_covering_outputs(const detail::PoolGeometry& g, std::int64_t i, F f) {
  const std::int64_t plane = i / (g.H * g.W), hw = i % (g.H * g.W);
  const detail::PoolRange ps = detail::pool_outputs_of(hw / g.W, g.kh, g.sh, g.ph, g.P);
  const detail::PoolRange qs = detail::pool_outputs_of(hw % g.W, g.kw, g.sw, g.pw, g.Q);
  for (std::int64_t p = ps.first; p <= ps.last; ++p)
    for (std::int64_t q = qs.first; q <= qs.last; ++q) f((plane * g.P + p) * g.Q + q, p, q, hw);
}

__global__ void max_pool_backward_kernel(detail::MaxPoolBackward op) {
  const detail::PoolGeometry& g = op.g;
  for (const std::int64_t i : grid_stride(g.N * g.C * g.H * g.W)) {
    float s = 0.0f;
    for_covering_outputs(g, i, [&](std::int64_t o, std::int64_t, std::int64_t, std::int64_t hw) {
      if (op.indices[o] == hw) s += op.dy[o];
    });
    op.dx[i] = s;
  }
}

__global__ void avg_pool_forward_kernel(detail::AvgPool op) {
  const int W = static_cast<int>(op.g.W);
  for_each_window(op.g, [&](std::int64_t o, const detail::PoolWindow& w, std::int64_t plane) {
    float s = 0.0f;
    for (int h = w.h0; h < w.h1; ++h)
      for (int c = w.w0; c < w.w1; ++c) s += op.in[plane + h * W + c];
    op.out[o] = s / static_cast<float>(detail::pool_divisor(op.g, w, op.count_include_pad));
  });
}

__global__ void avg_pool_backward_kernel(detail::AvgPool op) {
  const detail::PoolGeometry& g = op.g;
  for (const std::int64_t i : grid_stride(g.N * g.C * g.H * g.W)) {
    float s = 0.0f;
    for_covering_outputs(g, i, [&](std::int64_t o, std::int64_t p, std::int64_t q, std::int64_t) {
      const detail::PoolWindow w = detail::pool_window(g, p, q);
      s += op.in[o] / static_cast<float>(detail::pool_divisor(g, w, op.count_include_pad));
    });
    op.out[i] = s;
  }
}

// One thread per element of a grid-stride loop over n.
template <class Op>
void launch_each(const Context& ctx, void (*kernel)(Op), std::int64_t n, const Op& op) {
  launch(ctx, kernel, grid_for(n, kThreads), kThreads, 0, op);
}

bool aligned(std::initializer_list<const void*> ps) {
  for (const void* p : ps)
    if (p && !aligned16(p)) return false;
  return true;
}

}  // namespace

std::size_t conv_weight_scratch_floats(const Context& ctx, const detail::ConvGeometry& g) {
  const int splits = weight_splits(ctx, g);
  if (splits <= 1) return 0;
  return static_cast<std::size_t>(splits) * g.K * g.C * g.R * g.S;
}

std::size_t channel_scratch_doubles(std::int64_t N, std::int64_t C) {
  return static_cast<std::size_t>(C) * (2 * channel_splits(N) + 2);
}

void execute(const Context& ctx, const detail::ConvForward& op) {
  run_igemm(ctx, detail::conv_forward_gemm(op.g, op.x, op.W, op.y), true, op.b, false, op.math, 1,
            0);
}

void execute(const Context& ctx, const detail::ConvBackwardData& op) {
  run_igemm(ctx, detail::conv_data_gemm(op.g, op.dy, op.W, op.dx), true, nullptr, op.accumulate,
            op.math, 1, 0);
}

void execute(const Context& ctx, const detail::ConvBackwardWeight& op, float* scratch,
             double* channel_scratch) {
  const detail::ConvGeometry& g = op.g;
  if (op.dW) {
    const std::int64_t n = static_cast<std::int64_t>(g.K) * g.C * g.R * g.S;
    const int splits = weight_splits(ctx, g);
    if (g.N == 0) {
      if (!op.accumulate) GENAI_CUDA_CHECK(cudaMemsetAsync(op.dW, 0, n * sizeof(float), ctx.stream()));
    } else if (splits <= 1) {
      run_igemm(ctx, detail::conv_weight_gemm(g, op.x, op.dy, op.dW), false, nullptr, op.accumulate,
                op.math, 1, 0);
    } else {
      run_igemm(ctx, detail::conv_weight_gemm(g, op.x, op.dy, scratch), false, nullptr, false,
                op.math, splits, n);
      launch(ctx, sum_splits_kernel, grid_for(n, kThreads), kThreads, 0, scratch, splits, n, op.dW,
             op.accumulate);
    }
  }
  if (op.db) {
    const std::int64_t pq = static_cast<std::int64_t>(g.P) * g.Q;
    if (g.N == 0) {
      if (!op.accumulate) GENAI_CUDA_CHECK(cudaMemsetAsync(op.db, 0, g.K * sizeof(float), ctx.stream()));
      return;
    }
    channel_sums(ctx, g.N, g.K, pq, PlainTerms{op.dy}, channel_scratch);
    launch(ctx, bias_finish_kernel, grid_for(g.K, kThreads), kThreads, 0,
           static_cast<std::int64_t>(g.K), channel_scratch, channel_splits(g.N), op.db,
           op.accumulate);
  }
}

void execute(const Context& ctx, const detail::BnStats& op, double* scratch) {
  if (op.training) channel_sums(ctx, op.N, op.C, op.L, StatsTerms{op.z, op.C, op.L}, scratch);
  launch(ctx, stats_finish_kernel, grid_for(op.C, kThreads), kThreads, 0, op, scratch,
         channel_splits(op.N));
}

void execute(const Context& ctx, const detail::BnApply& op) {
  if (op.N == 0) return;
  const bool vec = op.L % 4 == 0 && aligned({op.z, op.residual, op.y});
  launch(ctx, bn_apply_kernel, plane_grid(op.N * op.C, op.L), kThreads, 0, op, vec);
}

void execute(const Context& ctx, const detail::BnBackward& op, double* scratch) {
  const int splits = channel_splits(op.N);
  double* coef = scratch + 2 * splits * op.C;
  channel_sums(ctx, op.N, op.C, op.L, BackwardTerms{op}, scratch);
  launch(ctx, backward_finish_kernel, grid_for(op.C, kThreads), kThreads, 0, op, scratch, splits,
         coef);
  if (!op.dz && !op.g_out) return;
  const bool vec = op.L % 4 == 0 && aligned({op.z, op.dz, op.g_out});
  launch(ctx, bn_backward_apply_kernel, plane_grid(op.N * op.C, op.L), kThreads, 0, op,
         static_cast<const double*>(coef), vec);
}

void execute(const Context& ctx, const detail::MaxPoolForward& op) {
  launch_each(ctx, max_pool_forward_kernel, op.g.N * op.g.C * op.g.P * op.g.Q, op);
}

void execute(const Context& ctx, const detail::MaxPoolBackward& op) {
  launch_each(ctx, max_pool_backward_kernel, op.g.N * op.g.C * op.g.H * op.g.W, op);
}

void execute(const Context& ctx, const detail::AvgPool& op) {
  if (op.backward) return launch_each(ctx, avg_pool_backward_kernel, op.g.N * op.g.C * op.g.H * op.g.W, op);
  launch_each(ctx, avg_pool_forward_kernel, op.g.N * op.g.C * op.g.P * op.g.Q, op);
}

}  // namespace genai::cuda
