// Loss kernels: cross-entropy from logits (forward and backward fused), MSE / BCE with logits,
// the VAE's reparameterisation and negative ELBO.
//
// Cross-entropy (Liger-Kernel's fused form): a warp per row for C <= 1024, a 512-thread block
// per row above. Pass 1 reads the row once with 16-byte loads (8 for bf16) into registers (up to
// 32 values per thread) while folding an online softmax per thread -- running max m, sum of
// exp(x - m), sum of x for label smoothing, the target's logit -- merged across the group by
// shuffles (and shared memory); pass 2 writes the gradient from the registers. A row longer
// than the register cache (C > 16384) re-reads its tail in pass 2, mostly from L2. Memory-bound:
// per element 4 bytes read + 4 written (bf16: 2 + 2), ~2 exponentials and ~20 other
// instructions, well inside H100's issue budget (~80 thread-instructions per element at copy
// bandwidth); the aim is >= 85% of the D2D copy bandwidth. Around it: a pass over the targets
// (8 bytes per row: the range check and the count for the mean) and a one-block reduction of
// the rows' losses in double, in a fixed order (deterministic, no atomics on floats).
//
// Element losses and the VAE: a thread per row for d <= 16 (MSE, BCE), else a warp per row;
// 8 bytes read + 4 written per element, the per-row sums by shuffles, the batch reduction as
// above. Reparameterisation: a thread per Philox block of 4 elements, 16-byte access where
// aligned, the exponential of genai/detail/losses.hpp (the same bits as the CPU).
#include <cuda_bf16.h>

#include "genai/buffer.hpp"
#include "kernels/common.cuh"
#include "kernels/losses.cuh"

namespace genai::cuda {
namespace {

constexpr unsigned long long kNoRow = ~0ull;

// ---- loads and stores of four logits as floats ------------------------------------------------

__device__ __forceinline__ float bf16_to_float(std::uint16_t b) {
  return __uint_as_float(static_cast<std::uint32_t>(b) << 16);
}
__device__ __forceinline__ std::uint32_t float_to_bf16_bits(float v) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(v));
}

__device__ __forceinline__ void load4(const bf16* p, int count, bool vec, float (&v)[4]) {
  if (vec) {
    const uint2 q = *reinterpret_cast<const uint2*>(p);
    v[0] = __uint_as_float(q.x << 16), v[1] = __uint_as_float(q.x & 0xffff0000u);
    v[2] = __uint_as_float(q.y << 16), v[3] = __uint_as_float(q.y & 0xffff0000u);
  } else {
    for (int l = 0; l < 4; ++l) v[l] = l < count ? bf16_to_float(p[l].bits) : 0.0f;
  }
}
__device__ __forceinline__ void store4(bf16* p, int count, bool vec, const float (&v)[4]) {
  if (vec) {
    *reinterpret_cast<uint2*>(p) =
        make_uint2(float_to_bf16_bits(v[0]) | (float_to_bf16_bits(v[1]) << 16),
                   float_to_bf16_bits(v[2]) | (float_to_bf16_bits(v[3]) << 16));
  } else {
    for (int l = 0; l < 4; ++l)
      if (l < count) p[l].bits = static_cast<std::uint16_t>(float_to_bf16_bits(v[l]));
  }
}
using cuda::load4;  // the float versions, beside these
using cuda::store4;

// A vector access of four T: 16 bytes (float) or 8 (bf16).
template <class T>
bool vector_aligned(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % (4 * sizeof(T)) == 0;
}

// ---- the batch reduction ----------------------------------------------------------------------

constexpr int kReduceThreads = 256;
constexpr int kPartials = 512;  // fixed: the summation order is the same on every device

// out[k][0] = (sum_i in[k][i]) * scale, or / *count when count is given (the mean over the
// counted rows; 0 / 0 = NaN when none). Double sums in a fixed order: block b of kPartials sums
// the b-th contiguous slice of each array, then one block sums the kPartials partial sums.
// Memory-bound on the n floats read once by the whole grid. (One block over all n rows was
// latency-bound: MSE over 2^22 rows took 0.28 ms on an H100 where its bytes need 0.07 ms;
// profiling/NOTES.md, losses v1.)
struct ReduceArgs {
  const float* in[3];
  float* out[3];
  int arrays;
  std::int64_t n;
  double scale;
  const unsigned long long* count;
};

__global__ void __launch_bounds__(kReduceThreads) partial_sums_kernel(ReduceArgs a, double* partial) {
  __shared__ double scratch[kReduceThreads / kWarp];
  const std::int64_t per = ceil_div(a.n, std::int64_t{kPartials});
  const std::int64_t begin = blockIdx.x * per, end = min(a.n, begin + per);
#pragma unroll
  for (int k = 0; k < 3; ++k) {  // constant indices: the arguments are read in place
    if (k >= a.arrays) break;
    double s = 0;
    for (std::int64_t i = begin + threadIdx.x; i < end; i += kReduceThreads) s += a.in[k][i];
    s = block_reduce<kReduceThreads>(s, Sum{}, 0.0, scratch);
    if (threadIdx.x == 0) partial[k * kPartials + blockIdx.x] = s;
  }
}

__global__ void __launch_bounds__(kPartials) finish_sums_kernel(ReduceArgs a, const double* partial) {
  __shared__ double scratch[kPartials / kWarp];
#pragma unroll
  for (int k = 0; k < 3; ++k) {
    if (k >= a.arrays) break;
    const double s = block_reduce<kPartials>(partial[k * kPartials + threadIdx.x], Sum{}, 0.0,
                                             scratch);
    if (threadIdx.x == 0)
      a.out[k][0] = static_cast<float>(a.count ? s / static_cast<double>(*a.count) : s * a.scale);
  }
}

void reduce(const Context& ctx, const ReduceArgs& a) {
  Buffer<double> partial(ctx, static_cast<std::size_t>(a.arrays) * kPartials);
  launch(ctx, partial_sums_kernel, kPartials, kReduceThreads, 0, a, partial.data());
  launch(ctx, finish_sums_kernel, 1, kPartials, 0, a, static_cast<const double*>(partial.data()));
}

// ---- cross-entropy ----------------------------------------------------------------------------

constexpr int kRowThreads = 256;  // threads per block when a warp owns a row
constexpr int kBlockRow = 512;    // threads per block when the block owns a row
constexpr int kCached = 8;        // float4 chunks a thread keeps in registers

// Counts the rows that are not ignored (for the mean) and finds the first bad target.
__global__ void __launch_bounds__(256)
    targets_kernel(const std::int64_t* __restrict__ targets, std::int64_t N, std::int64_t C,
                   std::int64_t ignore_index, unsigned long long* count,
                   unsigned long long* first_bad) {
  unsigned long long counted = 0;
  for (const std::int64_t i : grid_stride(N)) {
    const std::int64_t t = targets[i];
    counted += t != ignore_index;
    if (t != ignore_index && (t < 0 || t >= C))
      atomicMin(first_bad, static_cast<unsigned long long>(i));
  }
  counted = warp_reduce(counted, Sum{});
  if (threadIdx.x % kWarp == 0 && counted) atomicAdd(count, counted);
}

// The softmax statistics as a type of this file, so that warp_reduce finds its shfl_xor here.
struct Stats : detail::SoftmaxStats<float> {};

__device__ __forceinline__ Stats identity() { return {detail::stats_identity<float>()}; }
__device__ __forceinline__ Stats shfl_xor(Stats v, int offset) {
  return {{__shfl_xor_sync(kFullMask, v.m, offset), __shfl_xor_sync(kFullMask, v.s, offset),
           __shfl_xor_sync(kFullMask, v.sum_x, offset),
           __shfl_xor_sync(kFullMask, v.x_target, offset)}};
}
struct Merge {
  __device__ Stats operator()(const Stats& a, const Stats& b) const {
    return {detail::stats_merge<float>(a, b)};
  }
};

// Folds `count` logits starting at column j0 into a thread's statistics: one rescale per chunk.
__device__ __forceinline__ void fold4(Stats& a, const float (&v)[4], int count, std::int64_t j0,
                                      std::int64_t target) {
  float m = a.m;
  for (int l = 0; l < 4; ++l) {
    if (l >= count) break;
    m = fmaxf(m, v[l]);
    a.sum_x += v[l];
    if (j0 + l == target) a.x_target = v[l];
  }
  if (m == -INFINITY) return;  // only -inf so far: s stays 0
  if (m > a.m) {
    a.s = a.m == -INFINITY ? 0.0f : a.s * expf(a.m - m);
    a.m = m;
  }
  for (int l = 0; l < 4; ++l)
    if (l < count) a.s += expf(v[l] - m);
}

struct CeParams {
  std::int64_t N, C, ignore_index;
  float smoothing, z_loss;
  const unsigned long long* count;  // the mean's divisor; null for sum / none
  bool vec;                         // rows start 4-element aligned: vector access
};

template <class T>
__device__ __forceinline__ void fill_row(T* g, std::int64_t C, int lane, int group, float value) {
  const float v[4] = {value, value, value, value};
  for (std::int64_t j0 = static_cast<std::int64_t>(lane) * 4; j0 < C; j0 += group * 4)
    store4(g + j0, static_cast<int>(C - j0 < 4 ? C - j0 : 4), false, v);
}

// GROUP threads (a warp, or the whole block) own a row. logits and grad may alias.
template <class T, int GROUP>
__global__ void __launch_bounds__(GROUP == kWarp ? kRowThreads : GROUP)
    ce_kernel(const T* logits, const std::int64_t* __restrict__ targets, T* grad,
              float* __restrict__ row_loss, CeParams p) {
  __shared__ Stats scratch[GROUP == kWarp ? 1 : GROUP / kWarp];
  const int lane = threadIdx.x % GROUP;
  const float scale = p.count ? 1.0f / static_cast<float>(*p.count) : 1.0f;
  const std::int64_t C = p.C;
  for (const std::int64_t row : grid_stride(p.N, GROUP)) {
    const T* x = logits + row * C;
    T* g = grad ? grad + row * C : nullptr;
    const std::int64_t t = targets[row];
    if (t == p.ignore_index || t < 0 || t >= C) {  // uniform across the group
      const float v = t == p.ignore_index ? 0.0f : NAN;
      if (g) fill_row(g, C, lane, GROUP, v);
      if (lane == 0) row_loss[row] = v;
      continue;
    }
    float cache[kCached][4];
    Stats s = identity();
#pragma unroll
    for (int c = 0; c < kCached; ++c) {
      const std::int64_t j0 = (static_cast<std::int64_t>(c) * GROUP + lane) * 4;
      if (j0 < C) {
        const int count = static_cast<int>(C - j0 < 4 ? C - j0 : 4);
        load4(x + j0, count, p.vec && count == 4, cache[c]);
        fold4(s, cache[c], count, j0, t);
      }
    }
    for (std::int64_t j0 = (static_cast<std::int64_t>(kCached) * GROUP + lane) * 4; j0 < C;
         j0 += GROUP * 4) {
      const int count = static_cast<int>(C - j0 < 4 ? C - j0 : 4);
      float v[4];
      load4(x + j0, count, p.vec && count == 4, v);
      fold4(s, v, count, j0, t);
    }
    if constexpr (GROUP == kWarp)
      s = warp_reduce(s, Merge{});
    else
      s = block_reduce<GROUP>(s, Merge{}, identity(), scratch);
    const auto r = detail::ce_row<float>(s, C, p.smoothing, p.z_loss);
    if (lane == 0) row_loss[row] = r.loss;
    if (!g) continue;
    const auto grad4 = [&](std::int64_t j0, int count, float (&v)[4]) {
      for (int l = 0; l < 4; ++l)  // a constant trip count keeps v in registers
        if (l < count) v[l] = detail::ce_grad(r, v[l], j0 + l == t, scale);
      store4(g + j0, count, p.vec && count == 4, v);
    };
#pragma unroll
    for (int c = 0; c < kCached; ++c) {
      const std::int64_t j0 = (static_cast<std::int64_t>(c) * GROUP + lane) * 4;
      if (j0 < C) grad4(j0, static_cast<int>(C - j0 < 4 ? C - j0 : 4), cache[c]);
    }
    for (std::int64_t j0 = (static_cast<std::int64_t>(kCached) * GROUP + lane) * 4; j0 < C;
         j0 += GROUP * 4) {
      const int count = static_cast<int>(C - j0 < 4 ? C - j0 : 4);
      float v[4];
      load4(x + j0, count, p.vec && count == 4, v);
      grad4(j0, count, v);
    }
  }
}

}  // namespace

template <class T>
std::int64_t cross_entropy_loss(const Context& ctx, const T* logits,
                                const std::int64_t* targets, std::int64_t N, std::int64_t C,
                                float* loss, T* grad, const CrossEntropyOptions& opts) {
  const bool mean = opts.reduction == Reduction::Mean;
  // flags[0]: rows counted (not ignored); flags[1]: the first bad row.
  Buffer<unsigned long long> flags(ctx, 2);
  if (mean || opts.check_targets) {
    detail::fill_bytes(ctx, flags.data(), Device::CUDA, 0, sizeof(unsigned long long));
    detail::fill_bytes(ctx, flags.data() + 1, Device::CUDA, 0xFF, sizeof(unsigned long long));
    if (N > 0)
      launch(ctx, targets_kernel, grid_for(N, 256), 256, 0, targets, N, C, opts.ignore_index,
             flags.data(), flags.data() + 1);
  }
  if (opts.check_targets) {
    unsigned long long bad = kNoRow;
    detail::copy_bytes(ctx, &bad, Device::CPU, flags.data() + 1, Device::CUDA, sizeof bad);
    if (bad != kNoRow) return static_cast<std::int64_t>(bad);
  }
  const bool none = opts.reduction == Reduction::None;
  Buffer<float> workspace(ctx, none ? 0 : static_cast<std::size_t>(N));
  float* rows = none ? loss : workspace.data();
  if (N > 0) {
    const CeParams p{N, C, opts.ignore_index, opts.label_smoothing, opts.z_loss,
                     mean ? flags.data() : nullptr,
                     C % 4 == 0 && vector_aligned<T>(logits) && (!grad || vector_aligned<T>(grad))};
    if (C <= static_cast<std::int64_t>(kWarp) * 4 * kCached)
      launch(ctx, ce_kernel<T, kWarp>, grid_for(N, kRowThreads / kWarp), kRowThreads, 0, logits,
             targets, grad, rows, p);
    else
      launch(ctx, ce_kernel<T, kBlockRow>, grid_for(N, 1), kBlockRow, 0, logits, targets, grad,
             rows, p);
  }
  if (!none)
    reduce(ctx, {{rows}, {loss}, 1, N, 1.0, mean ? flags.data() : nullptr});
  return -1;
}

template std::int64_t cross_entropy_loss(const Context&, const float*, const std::int64_t*,
                                         std::int64_t, std::int64_t, float*, float*,
                                         const CrossEntropyOptions&);
template std::int64_t cross_entropy_loss(const Context&, const bf16*, const std::int64_t*,
                                         std::int64_t, std::int64_t, float*, bf16*,
                                         const CrossEntropyOptions&);

// ---- element losses -----------------------------------------------------------------------------

namespace {

constexpr int kThreads = 256;
constexpr std::int64_t kThreadRowMaxD = 16;

// GROUP threads (1 or a warp) per row: grad = scale * d(element)/d(pred), rows[r] =
// row_scale * sum_j element (when rows is not null).
template <int GROUP>
__global__ void __launch_bounds__(kThreads)
    element_kernel(detail::ElementLoss kind, const float* __restrict__ pred,
                   const float* __restrict__ target, std::int64_t n, std::int64_t d, float scale,
                   float row_scale, float* __restrict__ rows, float* __restrict__ grad) {
  const int lane = threadIdx.x % GROUP;
  for (const std::int64_t row : grid_stride(n, GROUP)) {
    float acc = 0.0f;
    for (std::int64_t j = row * d + lane; j < (row + 1) * d; j += GROUP) {
      const auto e = detail::element_loss<float>(kind, pred[j], target[j]);
      acc += e.value;
      if (grad) grad[j] = scale * e.grad;
    }
    if constexpr (GROUP > 1) acc = warp_reduce<GROUP>(acc, Sum{});
    if (rows && lane == 0) rows[row] = acc * row_scale;
  }
}

}  // namespace

void element_loss(const Context& ctx, detail::ElementLoss kind, const float* pred,
                  const float* target, std::int64_t n, std::int64_t d, const LossOutputs& out,
                  Reduction reduction) {
  const bool mean = reduction == Reduction::Mean;
  Buffer<float> workspace(ctx, out.loss && !out.row_loss ? static_cast<std::size_t>(n) : 0);
  float* rows = out.row_loss ? out.row_loss : (out.loss ? workspace.data() : nullptr);
  const auto scale = static_cast<float>(mean ? 1.0 / (static_cast<double>(n) * d) : 1.0);
  const auto row_scale = static_cast<float>(mean ? 1.0 / static_cast<double>(d) : 1.0);
  if (n > 0) {
    if (d <= kThreadRowMaxD)
      launch(ctx, element_kernel<1>, grid_for(n, kThreads), kThreads, 0, kind, pred, target, n, d,
             scale, row_scale, rows, out.grad);
    else
      launch(ctx, element_kernel<kWarp>, grid_for(n, kThreads / kWarp), kThreads, 0, kind, pred,
             target, n, d, scale, row_scale, rows, out.grad);
  }
  // Mean: the mean of the rows' means; Sum: the sum of their sums.
  if (out.loss)
    reduce(ctx, {{rows}, {out.loss}, 1, n, mean ? 1.0 / static_cast<double>(n) : 1.0, nullptr});
}

// ---- VAE ------------------------------------------------------------------------------------------

namespace {

__global__ void __launch_bounds__(kThreads)
    reparameterize_kernel(const float* mu, const float* logvar, std::int64_t total, float* z,
                          std::uint64_t seed, std::uint32_t step, float* eps_out, bool vec) {
  for (const std::int64_t b : grid_stride(ceil_div(total, 4))) {
    const rng::Float4 eps = rng::normal4(seed, rng::streams::vae_reparameterize,
                                         static_cast<std::uint64_t>(b), step);
    const std::int64_t i0 = b * 4;
    const int count = static_cast<int>(total - i0 < 4 ? total - i0 : 4);
    const bool v4 = vec && count == 4;
    float m[4], l[4], out[4];
    load4(mu + i0, count, v4, m);
    load4(logvar + i0, count, v4, l);
    for (int k = 0; k < 4; ++k) out[k] = detail::reparameterize_element(m[k], l[k], eps.v[k]);
    store4(z + i0, count, v4, out);
    if (eps_out) store4(eps_out + i0, count, v4, eps.v);
  }
}

struct VaeParams {
  detail::ElementLoss kind;
  float beta, s;
  std::int64_t n, D, d;
};

// A warp per sample: its reconstruction over D, its KL over d, the gradients, its three sums.
__global__ void __launch_bounds__(kThreads)
    vae_kernel(const float* __restrict__ x, const float* __restrict__ x_recon,
               const float* __restrict__ mu, const float* __restrict__ logvar, VaeParams p,
               VaeLossOutputs out) {
  const int lane = threadIdx.x % kWarp;
  for (const std::int64_t i : grid_stride(p.n, kWarp)) {
    float recon = 0.0f, kl = 0.0f;
    for (std::int64_t j = i * p.D + lane; j < (i + 1) * p.D; j += kWarp) {
      const auto e = detail::element_loss<float>(p.kind, x_recon[j], x[j]);
      recon += e.value;
      if (out.grad_recon) out.grad_recon[j] = p.s * e.grad;
    }
    const float sb = p.s * p.beta;
    for (std::int64_t k = i * p.d + lane; k < (i + 1) * p.d; k += kWarp) {
      const auto e = detail::gaussian_kl<float>(mu[k], logvar[k]);
      kl += e.value;
      if (out.grad_mu) out.grad_mu[k] = sb * e.d_mu;
      if (out.grad_logvar) out.grad_logvar[k] = sb * e.d_logvar;
    }
    recon = warp_reduce(recon, Sum{});
    kl = warp_reduce(kl, Sum{});
    if (lane == 0) {
      if (out.total) out.total[i] = recon + p.beta * kl;
      if (out.reconstruction) out.reconstruction[i] = recon;
      if (out.kl) out.kl[i] = kl;
    }
  }
}

}  // namespace

void reparameterize(const Context& ctx, const float* mu, const float* logvar, std::int64_t n,
                    std::int64_t d, float* z, const ReparameterizeOptions& opts) {
  const std::int64_t total = n * d;
  const bool vec = aligned16(mu) && aligned16(logvar) && aligned16(z) &&
                   (!opts.eps_out || aligned16(opts.eps_out));
  launch(ctx, reparameterize_kernel, grid_for(ceil_div(total, 4), kThreads), kThreads, 0, mu,
         logvar, total, z, opts.seed, opts.step, opts.eps_out, vec);
}

void vae_loss(const Context& ctx, const float* x, const float* x_recon, std::int64_t n,
              std::int64_t D, const float* mu, const float* logvar, std::int64_t d,
              const VaeLossOutputs& out, const VaeLossOptions& opts) {
  const double s = opts.reduction == Reduction::Mean ? 1.0 / static_cast<double>(n) : 1.0;
  // The reduction needs all three per-sample arrays: the caller's, or workspace.
  VaeLossOutputs o = out;
  Buffer<float> workspace(ctx, out.reduced ? 3 * static_cast<std::size_t>(n) : 0);
  if (out.reduced) {
    if (!o.total) o.total = workspace.data();
    if (!o.reconstruction) o.reconstruction = workspace.data() + n;
    if (!o.kl) o.kl = workspace.data() + 2 * n;
  }
  if (n > 0)
    launch(ctx, vae_kernel, grid_for(n, kThreads / kWarp), kThreads, 0, x, x_recon, mu, logvar,
           VaeParams{detail::element_loss_of(opts.reconstruction), opts.beta,
                     static_cast<float>(s), n, D, d},
           o);
  if (out.reduced)
    reduce(ctx, {{o.total, o.reconstruction, o.kl},
                 {out.reduced, out.reduced + 1, out.reduced + 2}, 3, n, s, nullptr});
}

}  // namespace genai::cuda
