// Diffusion kernels.
//
// Element-wise (noising, reverse steps, noise draws): one thread per Philox block, i.e. per
// (row, 4 consecutive features), so the thread that draws four normals uses them. Memory-bound:
// noising reads x0 and writes x_t (and eps, v): 8-16 bytes per element for ~10 flops and a
// quarter of a Philox call; the aim is the device's copy bandwidth. 16-byte loads and stores when
// d % 4 == 0 and the pointers are 16-byte aligned. The arithmetic is detail::step_element /
// detail::noised (correctly rounded, never contracted), so GPU and CPU agree bit for bit.
//
// Mixture score: one online pass over the K components per point, x and the accumulated
// direction in registers: a thread per point for d <= 32 (the fused sampler's MaxD buckets), a
// warp per point for d > 32 (lanes over the columns; registers up to d = 256, the output row
// as the accumulator beyond). x read and the score written once: 8 bytes per element and
// ~6 K flops, so memory-bound for small K; the aim is the copy bandwidth.
//
// Fused sampler: one thread per point, the whole T-step loop in one launch. The state (D <= 32
// floats) stays in registers; each step's mixture table (K (2D + 1) floats, computed on the host
// in double) is staged in shared memory by the block; one online-softmax pass per step and
// ceil(D/4) Philox calls. Per point and step: ~K (3D + 4) flops and K exps; compute-bound, the
// aim is to hide the per-step table load behind the K-loop of 256 points.
//
// The online softmax of both (see online_softmax) works from differences of log densities, so
// it stays finite where the float log densities of every component are -inf while the double
// reference's are finite: a far point gets the reference's responsibilities.
#include <cuda_runtime.h>

#include <climits>
#include <cmath>
#include <type_traits>

#include "genai/buffer.hpp"
#include "kernels/common.cuh"
#include "kernels/diffusion.cuh"

namespace genai::cuda {
namespace {

constexpr int kThreads = 256;

std::int64_t blocks_per_row(std::int64_t d) { return ceil_div(d, 4); }

// range[0] = min, range[1] = max of the timesteps: a bounded grid (kRangeBlocks at most), a block
// reduction, one atomic pair per block. (One pair per warp over a grid sized by n is 2^18
// same-address atomics at n = 2^22, serialised in L2: add_noise took 0.31 ms on an H100 where
// its bytes need 0.06 ms; profiling/NOTES.md, diffusion v1.)
constexpr int kRangeBlocks = 1024;
__global__ void __launch_bounds__(kThreads)
    range_kernel(const std::int64_t* __restrict__ ts, std::int64_t n, long long* range) {
  __shared__ long long scratch[kThreads / kWarp];
  long long lo = LLONG_MAX, hi = LLONG_MIN;
  for (const std::int64_t i : grid_stride(n)) {
    lo = min(lo, static_cast<long long>(ts[i]));
    hi = max(hi, static_cast<long long>(ts[i]));
  }
  lo = block_reduce<kThreads>(lo, Min{}, LLONG_MAX, scratch);
  hi = block_reduce<kThreads>(hi, Max{}, LLONG_MIN, scratch);
  if (threadIdx.x == 0) {
    atomicMin(range, lo);
    atomicMax(range + 1, hi);
  }
}

struct NoiseArgs {
  const float* x0;
  const std::int64_t* timesteps;
  const float* sa;
  const float* sb;
  const float* noise;  // may be null
  float* x_t;
  float* eps_out;      // may be null
  float* v_out;        // may be null
  std::int64_t n, d, nb;
  std::uint64_t seed;
  std::uint32_t step;
  bool vec;
};

__global__ void __launch_bounds__(kThreads) add_noise_kernel(NoiseArgs a) {
  for (const std::int64_t b : grid_stride(a.n * a.nb)) {
    const std::int64_t row = b / a.nb, j0 = (b - row * a.nb) * 4;
    const int count = static_cast<int>(a.d - j0 < 4 ? a.d - j0 : 4);
    const std::int64_t t = a.timesteps[row], i = row * a.d + j0;
    const float sa = __ldg(a.sa + t), sb = __ldg(a.sb + t);
    float x[4], e[4], out[4];
    load4(a.x0 + i, count, a.vec, x);
    if (a.noise) {
      load4(a.noise + i, count, a.vec, e);
    } else {
      const rng::Float4 z = rng::normal4(a.seed, rng::streams::diffusion_noise,
                                         static_cast<std::uint64_t>(b), a.step);
      for (int l = 0; l < 4; ++l) e[l] = z.v[l];
    }
    for (int l = 0; l < 4; ++l) out[l] = detail::noised(sa, sb, x[l], e[l]);
    store4(a.x_t + i, count, a.vec, out);
    if (a.eps_out) store4(a.eps_out + i, count, a.vec, e);
    if (a.v_out) {
      for (int l = 0; l < 4; ++l) out[l] = detail::v_target(sa, sb, x[l], e[l]);
      store4(a.v_out + i, count, a.vec, out);
    }
  }
}

// out = step_element(k, x, m, z, clip); x, m and out may alias (each thread reads its elements
// before writing them).
__global__ void __launch_bounds__(kThreads)
    affine_kernel(detail::StepCoeffs k, const float* x, const float* m, std::int64_t n,
                  std::int64_t d, std::int64_t nb, std::uint64_t seed, std::uint32_t step,
                  float clip, float* out, bool vec) {
  for (const std::int64_t b : grid_stride(n * nb)) {
    const std::int64_t row = b / nb, j0 = (b - row * nb) * 4, i = row * d + j0;
    const int count = static_cast<int>(d - j0 < 4 ? d - j0 : 4);
    rng::Float4 z = {{0, 0, 0, 0}};
    if (k.sigma != 0.0f)
      z = rng::normal4(seed, rng::streams::diffusion_sampler, static_cast<std::uint64_t>(b), step);
    float xv[4], mv[4], o[4];
    load4(x + i, count, vec, xv);
    load4(m + i, count, vec, mv);
    for (int l = 0; l < 4; ++l) o[l] = detail::step_element(k, xv[l], mv[l], z.v[l], clip);
    store4(out + i, count, vec, o);
  }
}

__global__ void __launch_bounds__(kThreads)
    draw_kernel(std::int64_t n, std::int64_t d, std::int64_t nb, std::uint64_t seed,
                std::uint32_t step, float* __restrict__ x) {
  for (const std::int64_t b : grid_stride(n * nb)) {
    const std::int64_t row = b / nb, j0 = (b - row * nb) * 4;
    const rng::Float4 z =
        rng::normal4(seed, rng::streams::diffusion_sampler, static_cast<std::uint64_t>(b), step);
    for (int l = 0; l < 4 && j0 + l < d; ++l) x[row * d + j0 + l] = z.v[l];
  }
}

// detail::noised_mixture as one float table: log_c [K], center [K x d], inv_v [K x d], in that
// order.
std::vector<float> mixture_table(const GaussianMixture& m, double ab) {
  const detail::NoisedMixture t = detail::noised_mixture(m, ab);
  std::vector<float> table;
  table.reserve(t.log_c.size() + t.center.size() + t.inv_v.size());
  for (const auto* part : {&t.log_c, &t.center, &t.inv_v})
    for (double v : *part) table.push_back(static_cast<float>(v));
  return table;
}

// ---- the mixture epsilon of one point ------------------------------------------------------
//
// For the table (log_c, c, inv_v) of a noised mixture, the direction of one point x is
//   acc_j = -sum_k r_k g_kj,  g_kj = (x_j - c_kj) inv_v_kj,  r = softmax_k(log_c_k - q_k / 2),
//   q_k = sum_j g_kj (x_j - c_kj),
// and the score is acc / total (total: the softmax's normaliser). q is formed as g times
// (x - c), never (x - c)^2 times inv_v, so it overflows only when the true sum exceeds FLT_MAX.
// The online softmax keeps the running maximum as its (log_c_m, q_m) and weighs component k by
//   exp((log_c_k - log_c_m) - (q_k - q_m) / 2),
// from differences of log densities, not their values. A component with q = +inf (log density
// -inf in float) contributes nothing, as a masked key in attention. When every q overflows
// (|x - c_k| beyond ~1.8e19 standard deviations for every k: the double reference is finite,
// the float log densities all -inf), the pass runs again on x and c scaled by 2^-E, E the
// exponent of max(|x_j|, |c_kj|): q comes in units of 2^(2E) and the exponent above is
// (log_c_k - log_c_m) - 2^(2E) (q_k - q_m) / 2 (ldexpf, exact). The responsibilities are then
// the reference's -- one-hot on the component of least q (the reference's log densities are
// ~1e31 or more apart wherever the float q differ), by log_c among components whose float q
// coincide -- and the direction is scaled back by 2^E. That second pass is
// finite whenever 4 d inv_v < FLT_MAX (noised variances above ~1e-38 d); beyond it, or for
// non-finite x, the score is NaN, as the reference's is for non-finite x.

// The table's parts (global or shared memory), D features.
struct MixtureView {
  const float* log_c;   // [K]
  const float* center;  // [K x D]
  const float* inv_v;   // [K x D]
  int K;
  __device__ MixtureView(const float* table, int K, int D)
      : log_c(table), center(table + K), inv_v(table + K + K * D), K(K) {}
};

// x - c, in units of 2^E when kScaled (ldexpf scales by a power of two, exactly).
template <bool kScaled>
__device__ __forceinline__ float offset(float x, float c, int E) {
  return kScaled ? ldexpf(x, -E) - ldexpf(c, -E) : x - c;
}

// E with |v| 2^-E < 1 for every |v| <= big.
__device__ __forceinline__ int scale_exponent(float big) {
  int E = 0;
  frexpf(big, &E);
  return E;
}

// The online softmax over the K components (see above). q_of(k): q_k, in units of 2^(2E) when
// kScaled, the same bits on every thread that shares the point; rescale(r): the accumulated
// direction times r; add(k, w): the direction minus w g_k. Returns the sum of the weights
// relative to the maximum's (>= 1 once a component is finite; 0 when every q overflowed).
template <bool kScaled, class Q, class Rescale, class Add>
__device__ __forceinline__ float online_softmax(const float* log_c, int K, int E, Q q_of,
                                                Rescale rescale, Add add) {
  float lc_m = 0.0f, q_m = 0.0f, total = 0.0f;
  for (int k = 0; k < K; ++k) {
    const float q = q_of(k);
    if (q == INFINITY) continue;  // log density -inf in float: contributes nothing
    const float lc = log_c[k];
    float e = 0.0f;  // log weight relative to the running maximum
    if (total != 0.0f) {
      const float dq = q - q_m;
      e = (lc - lc_m) - 0.5f * (kScaled ? ldexpf(dq, 2 * E) : dq);
    }
    if (e > 0.0f || total == 0.0f) {  // a new maximum (or the first finite component)
      const float r = expf(-e);      // 0 when e = +inf
      total *= r;
      rescale(r);
      lc_m = lc;
      q_m = q;
      e = 0.0f;
    }
    const float w = expf(e);
    total += w;
    add(k, w);
  }
  return total;
}

// One pass for a point held by one thread: xs[D] in registers, the direction into acc.
template <bool kScaled, int MaxD>
__device__ __forceinline__ float point_pass(const MixtureView& t, int D, int E,
                                            const float (&xs)[MaxD], float (&acc)[MaxD]) {
#pragma unroll
  for (int j = 0; j < MaxD; ++j) acc[j] = 0.0f;
  const auto q_of = [&](int k) {
    float q = 0.0f;
#pragma unroll
    for (int j = 0; j < MaxD; ++j) {
      if (j >= D) break;
      const float u = offset<kScaled>(xs[j], t.center[k * D + j], E);
      q = fmaf(u * t.inv_v[k * D + j], u, q);
    }
    return q;
  };
  const auto rescale = [&](float r) {
#pragma unroll
    for (int j = 0; j < MaxD; ++j) acc[j] *= r;
  };
  const auto add = [&](int k, float w) {
#pragma unroll
    for (int j = 0; j < MaxD; ++j) {
      if (j >= D) break;
      const float u = offset<kScaled>(xs[j], t.center[k * D + j], E);  // recomputed: no u[] live
      acc[j] = fmaf(-w, u * t.inv_v[k * D + j], acc[j]);
    }
  };
  return online_softmax<kScaled>(t.log_c, t.K, E, q_of, rescale, add);
}

// The direction of the point xs into acc (the score is acc / the result), with the scaled
// second pass when every q overflowed.
template <int MaxD>
__device__ __forceinline__ float point_direction(const MixtureView& t, int D,
                                                 const float (&xs)[MaxD], float (&acc)[MaxD]) {
  const float total = point_pass<false>(t, D, 0, xs, acc);
  if (total != 0.0f) return total;
  float big = 0.0f;
#pragma unroll
  for (int j = 0; j < MaxD; ++j)
    if (j < D) big = fmaxf(big, fabsf(xs[j]));
  for (int e = 0; e < t.K * D; ++e) big = fmaxf(big, fabsf(t.center[e]));
  const int E = scale_exponent(big);
  const float scaled_total = point_pass<true>(t, D, E, xs, acc);
#pragma unroll
  for (int j = 0; j < MaxD; ++j) acc[j] = ldexpf(acc[j], E);
  return scaled_total;
}

// A mixture_score launch: the float table (mixture_table), x and out [n x d] (not overlapping).
struct ScoreArgs {
  const float* table;
  int K, d;
  const float* x;
  std::int64_t n;
  float scale;
  float* out;
};

// MaxD as in fused_kernel; one thread per point, the table read through the cache.
template <int MaxD>
__global__ void __launch_bounds__(kThreads) mixture_kernel(ScoreArgs a) {
  const int D = MaxD <= 4 ? MaxD : a.d;
  const MixtureView t(a.table, a.K, D);
  for (const std::int64_t row : grid_stride(a.n)) {
    float xs[MaxD], acc[MaxD];
#pragma unroll
    for (int j = 0; j < MaxD; ++j) xs[j] = j < D ? a.x[row * D + j] : 0.0f;
    const float f = a.scale / point_direction(t, D, xs, acc);
#pragma unroll
    for (int j = 0; j < MaxD; ++j)
      if (j < D) a.out[row * D + j] = f * acc[j];
  }
}

// The columns lane + 32 i of a row of d: f(i, c). kCols > 0: i < kCols (c < d checked);
// kCols = 0: every such column, i = 0.
template <int kCols, class F>
__device__ __forceinline__ void for_columns(int lane, int d, F f) {
  if constexpr (kCols > 0) {
#pragma unroll
    for (int i = 0; i < kCols; ++i)
      if (lane + 32 * i < d) f(i, lane + 32 * i);
  } else {
    for (int c = lane; c < d; c += 32) f(0, c);
  }
}

// One pass for a point held by a warp: kCols > 0, x (xs) and the direction (acc) in registers,
// columns lane + 32 i; kCols = 0, x read from xr and the direction accumulated in o (the
// output row). q is reduced over the warp: every lane gets the same bits.
template <bool kScaled, int kCols, int kRegs>
__device__ __forceinline__ float warp_pass(const MixtureView& t, int d, int E, int lane,
                                           const float* xr, const float (&xs)[kRegs],
                                           float (&acc)[kRegs], float* o) {
  const auto x_at = [&](int i, int c) {
    if constexpr (kCols > 0) return xs[i];
    else return xr[c];
  };
  const auto acc_at = [&](int i, int c) -> float& {
    if constexpr (kCols > 0) return acc[i];
    else return o[c];
  };
  for_columns<kCols>(lane, d, [&](int i, int c) { acc_at(i, c) = 0.0f; });
  const auto q_of = [&](int k) {
    float q = 0.0f;
    for_columns<kCols>(lane, d, [&](int i, int c) {
      const float u = offset<kScaled>(x_at(i, c), t.center[k * d + c], E);
      q = fmaf(u * t.inv_v[k * d + c], u, q);
    });
    return warp_reduce(q, Sum{});
  };
  const auto rescale = [&](float r) {
    for_columns<kCols>(lane, d, [&](int i, int c) { acc_at(i, c) *= r; });
  };
  const auto add = [&](int k, float w) {
    for_columns<kCols>(lane, d, [&](int i, int c) {
      const float u = offset<kScaled>(x_at(i, c), t.center[k * d + c], E);
      acc_at(i, c) = fmaf(-w, u * t.inv_v[k * d + c], acc_at(i, c));
    });
  };
  const float total = online_softmax<kScaled>(t.log_c, t.K, E, q_of, rescale, add);
  if constexpr (kScaled) for_columns<kCols>(lane, d, [&](int i, int c) {
    acc_at(i, c) = ldexpf(acc_at(i, c), E);
  });
  return total;
}

// A warp per point (d > 32): kCols columns per lane in registers (d <= 32 kCols), or kCols = 0
// for any d, the output row as the accumulator (coalesced read-modify-writes that stay in
// L1/L2). x must not overlap out (the launcher copies it).
template <int kCols>
__global__ void __launch_bounds__(kThreads) mixture_warp_kernel(ScoreArgs a) {
  constexpr int kRegs = kCols > 0 ? kCols : 1;
  const int d = a.d;
  const MixtureView t(a.table, a.K, d);
  const int lane = threadIdx.x % kWarp;
  for (const std::int64_t row : grid_stride(a.n, kWarp)) {
    const float* xr = a.x + row * d;
    float* o = a.out + row * d;
    float xs[kRegs] = {}, acc[kRegs] = {};
    if constexpr (kCols > 0) for_columns<kCols>(lane, d, [&](int i, int c) { xs[i] = xr[c]; });
    float total = warp_pass<false, kCols>(t, d, 0, lane, xr, xs, acc, o);
    if (total == 0.0f) {  // every q overflowed (uniform over the warp): again in units of 2^(2E)
      float big = 0.0f;
      for_columns<kCols>(lane, d, [&](int i, int c) {
        big = fmaxf(big, fabsf(kCols > 0 ? xs[i] : xr[c]));
      });
      for (int e = lane; e < a.K * d; e += kWarp) big = fmaxf(big, fabsf(t.center[e]));
      total = warp_pass<true, kCols>(t, d, scale_exponent(warp_reduce(big, Max{})), lane, xr, xs,
                                     acc, o);
    }
    const float f = a.scale / total;
    for_columns<kCols>(lane, d, [&](int i, int c) { o[c] = f * (kCols > 0 ? acc[i] : o[c]); });
  }
}

// f(std::integral_constant<int, MaxD>{}) for the register bucket of d <= kFusedMaxD: MaxD = d
// for d <= 4, else 8, 16 or 32.
template <class F>
void with_max_d(std::int64_t d, F&& f) {
  switch (d) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 3: return f(std::integral_constant<int, 3>{});
    case 4: return f(std::integral_constant<int, 4>{});
    default:
      if (d <= 8) return f(std::integral_constant<int, 8>{});
      if (d <= 16) return f(std::integral_constant<int, 16>{});
      return f(std::integral_constant<int, 32>{});
  }
}

struct DeviceStep {
  detail::StepCoeffs k;
  float eps_scale;  // -sqrt(1 - alpha_bar_t): epsilon = eps_scale * score
  std::uint32_t t;
};

// MaxD <= 4: instantiated for d = MaxD exactly; MaxD in {8, 16, 32}: any d <= MaxD, the loops
// unrolled to MaxD and guarded by j < d so the state stays in registers.
template <int MaxD>
__global__ void __launch_bounds__(kThreads)
    fused_kernel(const float* __restrict__ tables, int K, int d_runtime,
                 const DeviceStep* __restrict__ steps, int nsteps, std::uint64_t seed,
                 std::uint32_t initial_step, bool draw_initial, float clip,
                 std::int64_t keep_every, float* __restrict__ inter, float* __restrict__ x,
                 std::int64_t n) {
  extern __shared__ float s_table[];  // K (2D + 1) floats: log_c, center, inv_v
  const int D = MaxD <= 4 ? MaxD : d_runtime;
  constexpr int kBlocks = (MaxD + 3) / 4;  // Philox blocks per point: row * nb + q, as draw_kernel
  const int nb = (D + 3) / 4;
  const int table_size = K * (2 * D + 1);
  const MixtureView table(s_table, K, D);
  const std::int64_t row = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  const bool active = row < n;  // inactive threads still stage tables and reach every barrier
  float xs[MaxD];
  if (active) {
#pragma unroll
    for (int q = 0; q < kBlocks; ++q) {
      if (4 * q >= D) break;
      rng::Float4 z = {{0, 0, 0, 0}};
      if (draw_initial)
        z = rng::normal4(seed, rng::streams::diffusion_sampler,
                         static_cast<std::uint64_t>(row * nb + q), initial_step);
#pragma unroll
      for (int l = 0; l < 4; ++l) {
        const int j = 4 * q + l;
        if (j < MaxD && j < D) xs[j] = draw_initial ? z.v[l] : x[row * D + j];
      }
    }
  }
  for (int i = 0; i < nsteps; ++i) {
    __syncthreads();  // everyone is done with the previous step's table
    for (int e = threadIdx.x; e < table_size; e += blockDim.x)
      s_table[e] = __ldg(tables + static_cast<std::int64_t>(i) * table_size + e);
    __syncthreads();
    if (!active) continue;
    const DeviceStep st = steps[i];
    // eps = eps_scale * sum_k r_k (-(x - c_k) / v_k), by the online softmax above.
    float acc[MaxD];
    const float f = st.eps_scale / point_direction(table, D, xs, acc);
#pragma unroll
    for (int q = 0; q < kBlocks; ++q) {
      if (4 * q >= D) break;
      rng::Float4 z = {{0, 0, 0, 0}};
      if (st.k.sigma != 0.0f)
        z = rng::normal4(seed, rng::streams::diffusion_sampler,
                         static_cast<std::uint64_t>(row * nb + q), st.t);
#pragma unroll
      for (int l = 0; l < 4; ++l) {
        const int j = 4 * q + l;
        if (j < MaxD && j < D) xs[j] = detail::step_element(st.k, xs[j], f * acc[j], z.v[l], clip);
      }
    }
    if (keep_every > 0 && (i + 1) % keep_every == 0) {
      float* dst = inter + ((i + 1) / keep_every - 1) * n * D + row * D;
#pragma unroll
      for (int j = 0; j < MaxD; ++j)
        if (j < D) dst[j] = xs[j];
    }
  }
  if (active) {
#pragma unroll
    for (int j = 0; j < MaxD; ++j)
      if (j < D) x[row * D + j] = xs[j];
  }
}

}  // namespace

void timestep_range(const Context& ctx, const std::int64_t* timesteps, std::int64_t n,
                    std::int64_t& lo, std::int64_t& hi) {
  const std::vector<long long> init = {LLONG_MAX, LLONG_MIN};
  Buffer<long long> range(ctx, std::span<const long long>(init));
  launch(ctx, range_kernel, std::min(grid_for(n, kThreads), unsigned{kRangeBlocks}), kThreads, 0,
         timesteps, n, range.data());
  const auto h = range.to_host();
  lo = h[0];
  hi = h[1];
}

void add_noise(const Context& ctx, const std::vector<float>& sa, const std::vector<float>& sb,
               const float* x0, const std::int64_t* timesteps, std::int64_t n, std::int64_t d,
               float* x_t, const NoiseOptions& o) {
  Buffer<float> dsa(ctx, std::span<const float>(sa)), dsb(ctx, std::span<const float>(sb));
  const bool vec = d % 4 == 0 && aligned16(x0) && aligned16(x_t) &&
                   (!o.noise || aligned16(o.noise)) && (!o.eps_out || aligned16(o.eps_out)) &&
                   (!o.v_out || aligned16(o.v_out));
  const NoiseArgs a{.x0 = x0,
                    .timesteps = timesteps,
                    .sa = dsa.data(),
                    .sb = dsb.data(),
                    .noise = o.noise,
                    .x_t = x_t,
                    .eps_out = o.eps_out,
                    .v_out = o.v_out,
                    .n = n,
                    .d = d,
                    .nb = blocks_per_row(d),
                    .seed = o.seed,
                    .step = o.step,
                    .vec = vec};
  launch(ctx, add_noise_kernel, grid_for(n * a.nb, kThreads), kThreads, 0, a);
}

void affine_step(const Context& ctx, const detail::StepCoeffs& k, const float* x, const float* m,
                 std::int64_t n, std::int64_t d, std::uint64_t seed, std::uint32_t step,
                 float clip, float* out) {
  const std::int64_t nb = blocks_per_row(d);
  const bool vec = d % 4 == 0 && aligned16(x) && aligned16(m) && aligned16(out);
  launch(ctx, affine_kernel, grid_for(n * nb, kThreads), kThreads, 0, k, x, m, n, d, nb, seed, step,
         clip, out, vec);
}

void draw_sampler_noise(const Context& ctx, std::int64_t n, std::int64_t d, std::uint64_t seed,
                        std::uint32_t step, float* x) {
  const std::int64_t nb = blocks_per_row(d);
  launch(ctx, draw_kernel, grid_for(n * nb, kThreads), kThreads, 0, n, d, nb, seed, step, x);
}

void mixture_score(const Context& ctx, const GaussianMixture& m, double alpha_bar,
                   const float* x, std::int64_t n, double scale, float* out) {
  const auto table = mixture_table(m, alpha_bar);
  Buffer<float> dt(ctx, std::span<const float>(table));
  // x and out are __restrict__, the kernels of d > 256 accumulate in out, and a thread (warp)
  // writes its row of out while others read their rows of x: an overlapping call (out == x,
  // which the CPU reference handles) reads from a copy of x.
  const std::size_t bytes = static_cast<std::size_t>(n * m.d) * sizeof(float);
  const auto xb = reinterpret_cast<std::uintptr_t>(x), ob = reinterpret_cast<std::uintptr_t>(out);
  Buffer<float> x_copy;
  if (xb < ob + bytes && ob < xb + bytes) {
    x_copy = Buffer<float>(ctx, static_cast<std::size_t>(n * m.d));
    detail::copy_bytes(ctx, x_copy.data(), Device::CUDA, x, Device::CUDA, bytes);
    x = x_copy.data();
  }
  const ScoreArgs a{.table = dt.data(),
                    .K = static_cast<int>(m.K),
                    .d = static_cast<int>(m.d),
                    .x = x,
                    .n = n,
                    .scale = static_cast<float>(scale),
                    .out = out};
  if (m.d <= kFusedMaxD)
    return with_max_d(m.d, [&](auto max_d) {
      launch(ctx, mixture_kernel<decltype(max_d)::value>, grid_for(n, kThreads), kThreads, 0, a);
    });
  const auto warp = [&](auto kernel) {
    launch(ctx, kernel, grid_for(n, kThreads / kWarp), kThreads, 0, a);
  };
  if (m.d <= 64) return warp(mixture_warp_kernel<2>);
  if (m.d <= 128) return warp(mixture_warp_kernel<4>);
  if (m.d <= 256) return warp(mixture_warp_kernel<8>);
  warp(mixture_warp_kernel<0>);
}

void sample_mixture_fused(const Context& ctx, const GaussianMixture& m,
                          const std::vector<FusedStep>& steps, std::int64_t n, std::uint64_t seed,
                          std::uint32_t initial_step, bool draw_initial, float clip,
                          std::int64_t keep_every, float* intermediates, float* x) {
  std::vector<float> tables;
  std::vector<DeviceStep> ds;
  for (const FusedStep& s : steps) {
    const auto t = mixture_table(m, s.alpha_bar);
    tables.insert(tables.end(), t.begin(), t.end());
    ds.push_back({s.k, static_cast<float>(-std::sqrt(1 - s.alpha_bar)), s.t});
  }
  Buffer<float> dtables(ctx, std::span<const float>(tables));
  Buffer<DeviceStep> dsteps(ctx, std::span<const DeviceStep>(ds));
  const auto grid = static_cast<unsigned>(ceil_div(n, kThreads));
  const int K = static_cast<int>(m.K), d = static_cast<int>(m.d);
  const int nsteps = static_cast<int>(steps.size());
  const std::size_t smem = fused_table_bytes(m.d, m.K);
  with_max_d(m.d, [&](auto max_d) {
    launch(ctx, fused_kernel<decltype(max_d)::value>, grid, kThreads, smem, dtables.data(), K, d,
           dsteps.data(), nsteps, seed, initial_step, draw_initial, clip, keep_every,
           intermediates, x, n);
  });
}

}  // namespace genai::cuda
