// Diffusion kernels.
//
// Element-wise (noising, reverse steps, noise draws): one thread per Philox block, i.e. per
// (row, 4 consecutive features), so the thread that draws four normals uses them. Memory-bound:
// noising reads x0 and writes x_t (and eps, v): 8-16 bytes per element for ~10 flops and a
// quarter of a Philox call; the aim is the device's copy bandwidth. 16-byte loads and stores when
// d % 4 == 0 and the pointers are 16-byte aligned. The arithmetic is ref::step_element /
// ref::noised (correctly rounded, never contracted), so GPU and CPU agree bit for bit.
//
// Mixture score: one thread per point, two passes over the K components (max of the log
// densities, then the responsibilities and the weighted sum), accumulating in the output row.
//
// Fused sampler: one thread per point, the whole T-step loop in one launch. The state (D <= 32
// floats) stays in registers; each step's mixture table (K (2D + 1) floats, computed on the host
// in double) is staged in shared memory by the block; one online-softmax pass per step and
// ceil(D/4) Philox calls. Per point and step: ~K (3D + 4) flops and K exps; compute-bound, the
// aim is to hide the per-step table load behind the K-loop of 256 points.
#include <cuda_runtime.h>

#include <climits>
#include <cmath>

#include "genai/buffer.hpp"
#include "genai/cuda_check.hpp"
#include "kernels/diffusion.cuh"
#include "kernels/launch.cuh"

namespace genai::cuda {
namespace {

constexpr int kThreads = 256;

std::int64_t blocks_per_row(std::int64_t d) { return (d + 3) / 4; }

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// Loads / stores four consecutive floats of a row, 16 bytes at once when `vec`.
__device__ __forceinline__ void load4(const float* p, int count, bool vec, float (&v)[4]) {
  if (vec) {
    const float4 q = *reinterpret_cast<const float4*>(p);
    v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
  } else {
    for (int l = 0; l < 4; ++l) v[l] = l < count ? p[l] : 0.0f;
  }
}
__device__ __forceinline__ void store4(float* p, int count, bool vec, const float (&v)[4]) {
  if (vec) {
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
  } else {
    for (int l = 0; l < count; ++l) p[l] = v[l];
  }
}

// range[0] = min, range[1] = max of the timesteps: warp shuffles, one atomic pair per warp.
__global__ void __launch_bounds__(kThreads)
    range_kernel(const std::int64_t* __restrict__ ts, std::int64_t n, long long* range) {
  long long lo = LLONG_MAX, hi = LLONG_MIN;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    lo = min(lo, static_cast<long long>(ts[i]));
    hi = max(hi, static_cast<long long>(ts[i]));
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    lo = min(lo, __shfl_xor_sync(0xffffffffu, lo, offset));
    hi = max(hi, __shfl_xor_sync(0xffffffffu, hi, offset));
  }
  if (threadIdx.x % 32 == 0) {
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
  for (std::int64_t b = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
       b < a.n * a.nb; b += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
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
    for (int l = 0; l < 4; ++l) out[l] = ref::noised(sa, sb, x[l], e[l]);
    store4(a.x_t + i, count, a.vec, out);
    if (a.eps_out) store4(a.eps_out + i, count, a.vec, e);
    if (a.v_out) {
      for (int l = 0; l < 4; ++l) out[l] = ref::v_target(sa, sb, x[l], e[l]);
      store4(a.v_out + i, count, a.vec, out);
    }
  }
}

// out = step_element(k, x, m, z, clip); x, m and out may alias (each thread reads its elements
// before writing them).
__global__ void __launch_bounds__(kThreads)
    affine_kernel(ref::StepCoeffs k, const float* x, const float* m, std::int64_t n,
                  std::int64_t d, std::int64_t nb, std::uint64_t seed, std::uint32_t step,
                  float clip, float* out, bool vec) {
  for (std::int64_t b = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
       b < n * nb; b += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t row = b / nb, j0 = (b - row * nb) * 4, i = row * d + j0;
    const int count = static_cast<int>(d - j0 < 4 ? d - j0 : 4);
    rng::Float4 z = {{0, 0, 0, 0}};
    if (k.sigma != 0.0f)
      z = rng::normal4(seed, rng::streams::diffusion_sampler, static_cast<std::uint64_t>(b), step);
    float xv[4], mv[4], o[4];
    load4(x + i, count, vec, xv);
    load4(m + i, count, vec, mv);
    for (int l = 0; l < 4; ++l) o[l] = ref::step_element(k, xv[l], mv[l], z.v[l], clip);
    store4(out + i, count, vec, o);
  }
}

__global__ void __launch_bounds__(kThreads)
    draw_kernel(std::int64_t n, std::int64_t d, std::int64_t nb, std::uint64_t seed,
                std::uint32_t step, float* __restrict__ x) {
  for (std::int64_t b = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
       b < n * nb; b += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t row = b / nb, j0 = (b - row * nb) * 4;
    const rng::Float4 z =
        rng::normal4(seed, rng::streams::diffusion_sampler, static_cast<std::uint64_t>(b), step);
    for (int l = 0; l < 4 && j0 + l < d; ++l) x[row * d + j0 + l] = z.v[l];
  }
}

// ref::noised_mixture as one float table: log_c [K], center [K x d], inv_v [K x d], in that
// order.
std::vector<float> mixture_table(const GaussianMixture& m, double ab) {
  const ref::NoisedMixture t = ref::noised_mixture(m, ab);
  std::vector<float> table;
  table.reserve(t.log_c.size() + t.center.size() + t.inv_v.size());
  for (const auto* part : {&t.log_c, &t.center, &t.inv_v})
    for (double v : *part) table.push_back(static_cast<float>(v));
  return table;
}

__global__ void __launch_bounds__(kThreads)
    mixture_kernel(const float* __restrict__ table, std::int64_t K, std::int64_t d,
                   const float* __restrict__ x, std::int64_t n, float scale,
                   float* __restrict__ out) {
  const float* log_c = table;
  const float* center = table + K;
  const float* inv_v = table + K + K * d;
  for (std::int64_t row = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
       row < n; row += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const float* xr = x + row * d;
    float* o = out + row * d;
    auto log_density = [&](std::int64_t k) {
      float q = 0;
      for (std::int64_t j = 0; j < d; ++j) {
        const float diff = xr[j] - __ldg(center + k * d + j);
        q += diff * diff * __ldg(inv_v + k * d + j);
      }
      return __ldg(log_c + k) - 0.5f * q;
    };
    float mx = -INFINITY;
    for (std::int64_t k = 0; k < K; ++k) mx = fmaxf(mx, log_density(k));
    for (std::int64_t j = 0; j < d; ++j) o[j] = 0;
    float total = 0;
    for (std::int64_t k = 0; k < K; ++k) {
      const float w = expf(log_density(k) - mx);
      total += w;
      for (std::int64_t j = 0; j < d; ++j)
        o[j] -= w * (xr[j] - __ldg(center + k * d + j)) * __ldg(inv_v + k * d + j);
    }
    const float f = scale / total;
    for (std::int64_t j = 0; j < d; ++j) o[j] *= f;
  }
}

struct DeviceStep {
  ref::StepCoeffs k;
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
  const float* log_c = s_table;
  const float* center = s_table + K;
  const float* inv_v = s_table + K + K * D;
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
    // Online softmax over the components: eps = eps_scale * sum_k r_k (-(x - c_k) / v_k).
    float mx = -INFINITY, total = 0, acc[MaxD];
#pragma unroll
    for (int j = 0; j < MaxD; ++j) acc[j] = 0;
    for (int k = 0; k < K; ++k) {
      float q = 0;
#pragma unroll
      for (int j = 0; j < MaxD; ++j) {
        if (j >= D) break;
        const float diff = xs[j] - center[k * D + j];
        q += diff * diff * inv_v[k * D + j];
      }
      const float lp = log_c[k] - 0.5f * q;
      if (lp > mx) {
        const float rescale = expf(mx - lp);
        total *= rescale;
#pragma unroll
        for (int j = 0; j < MaxD; ++j) acc[j] *= rescale;
        mx = lp;
      }
      const float w = expf(lp - mx);
      total += w;
#pragma unroll
      for (int j = 0; j < MaxD; ++j) {
        if (j >= D) break;
        acc[j] -= w * (xs[j] - center[k * D + j]) * inv_v[k * D + j];  // recomputed: no diff[] live
      }
    }
    const float f = st.eps_scale / total;
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
        if (j < MaxD && j < D) xs[j] = ref::step_element(st.k, xs[j], f * acc[j], z.v[l], clip);
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
  range_kernel<<<grid_for(n, kThreads), kThreads, 0, ctx.stream()>>>(timesteps, n, range.data());
  GENAI_LAUNCH_CHECK();
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
  const NoiseArgs a{x0,      timesteps, dsa.data(), dsb.data(), o.noise,
                    x_t,     o.eps_out, o.v_out,    n,          d,
                    blocks_per_row(d),  o.seed,     o.step,     vec};
  add_noise_kernel<<<grid_for(n * a.nb, kThreads), kThreads, 0, ctx.stream()>>>(a);
  GENAI_LAUNCH_CHECK();
}

void affine_step(const Context& ctx, const ref::StepCoeffs& k, const float* x, const float* m,
                 std::int64_t n, std::int64_t d, std::uint64_t seed, std::uint32_t step,
                 float clip, float* out) {
  const std::int64_t nb = blocks_per_row(d);
  const bool vec = d % 4 == 0 && aligned16(x) && aligned16(m) && aligned16(out);
  ctx.make_current();
  affine_kernel<<<grid_for(n * nb, kThreads), kThreads, 0, ctx.stream()>>>(k, x, m, n, d, nb, seed,
                                                                           step, clip, out, vec);
  GENAI_LAUNCH_CHECK();
}

void draw_sampler_noise(const Context& ctx, std::int64_t n, std::int64_t d, std::uint64_t seed,
                        std::uint32_t step, float* x) {
  const std::int64_t nb = blocks_per_row(d);
  ctx.make_current();
  draw_kernel<<<grid_for(n * nb, kThreads), kThreads, 0, ctx.stream()>>>(n, d, nb, seed, step, x);
  GENAI_LAUNCH_CHECK();
}

void mixture_score(const Context& ctx, const GaussianMixture& m, double alpha_bar,
                   const float* x, std::int64_t n, double scale, float* out) {
  const auto table = mixture_table(m, alpha_bar);
  Buffer<float> dt(ctx, std::span<const float>(table));
  // The kernel accumulates in `out` (zeroed per row before the second pass reads x), and x and
  // out are __restrict__: an overlapping call (out == x, which the CPU reference handles) reads
  // from a copy of x.
  const std::size_t bytes = static_cast<std::size_t>(n * m.d) * sizeof(float);
  const auto xb = reinterpret_cast<std::uintptr_t>(x), ob = reinterpret_cast<std::uintptr_t>(out);
  Buffer<float> x_copy;
  if (xb < ob + bytes && ob < xb + bytes) {
    x_copy = Buffer<float>(ctx, static_cast<std::size_t>(n * m.d));
    detail::copy_bytes(ctx, x_copy.data(), Device::CUDA, x, Device::CUDA, bytes);
    x = x_copy.data();
  }
  mixture_kernel<<<grid_for(n, kThreads), kThreads, 0, ctx.stream()>>>(
      dt.data(), m.K, m.d, x, n, static_cast<float>(scale), out);
  GENAI_LAUNCH_CHECK();
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
  const unsigned grid = static_cast<unsigned>((n + kThreads - 1) / kThreads);
  const int K = static_cast<int>(m.K), d = static_cast<int>(m.d);
  const int nsteps = static_cast<int>(steps.size());
  const std::size_t smem = fused_table_bytes(m.d, m.K);
  auto launch = [&](auto kernel) {
    kernel<<<grid, kThreads, smem, ctx.stream()>>>(dtables.data(), K, d, dsteps.data(), nsteps,
                                                   seed, initial_step, draw_initial, clip,
                                                   keep_every, intermediates, x, n);
    GENAI_LAUNCH_CHECK();
  };
  switch (d) {
    case 1: return launch(fused_kernel<1>);
    case 2: return launch(fused_kernel<2>);
    case 3: return launch(fused_kernel<3>);
    case 4: return launch(fused_kernel<4>);
    default:
      if (d <= 8) return launch(fused_kernel<8>);
      if (d <= 16) return launch(fused_kernel<16>);
      return launch(fused_kernel<32>);
  }
}

}  // namespace genai::cuda
