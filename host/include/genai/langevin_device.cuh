// Langevin chains on the GPU for a target written by the user: a header-only launcher to
// include from a .cu file and instantiate with a __device__ functor. The built-in targets run
// through the same kernels (kernels/langevin.cu), so ULA and MALA, the Philox noise layout
// (genai/langevin.hpp, genai/rng.hpp), the trajectory, Welford moments and acceptance counts,
// and the argument checks are those of genai::langevin.
//
// The target: a copyable type (passed to the kernel by value) with
//
//   __device__ float log_density_grad(const float* x, float* g, int d) const;
//
// returning log p(x) up to a constant (the same for every x) and writing g[j] = d log p / dx_j,
// j < d. Example, the banana (a Gaussian bent along a parabola):
//
//   struct Banana {  // x0 ~ N(0, a^2), x1 | x0 ~ N(b x0^2, 1)
//     float a, b;
//     __device__ float log_density_grad(const float* x, float* g, int) const {
//       const float r = x[1] - b * x[0] * x[0];
//       g[0] = -x[0] / (a * a) + 2 * b * x[0] * r;
//       g[1] = -r;
//       return -0.5f * (x[0] * x[0] / (a * a) + r * r);
//     }
//   };
//   genai::Buffer<float> x(ctx, chains * 2);   // initial states [chains x 2], device memory
//   auto r = genai::langevin_device(ctx, Banana{1, 0.5f}, x.data(), chains, 2,
//                                   {.method = genai::LangevinMethod::MALA, .step_size = 0.1f});
//
// ULA and MALA only: annealing needs p's sigma-noised score, which is not known from p.
// Compile the including file with nvcc (C++20). The state and work arrays of one chain are in
// registers for d = 1, 2, 3, 4, 8; otherwise they are rows of a device workspace.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <limits>
#include <utility>

#include "genai/buffer.hpp"
#include "genai/detail/device.cuh"
#include "genai/detail/langevin_chain.hpp"
#include "genai/langevin.hpp"
#include "genai/nvtx.hpp"

namespace genai {
namespace detail {

inline constexpr int kLangevinThreads = 128;

// Blocks of kLangevinThreads for `chains` (the kernels loop over the rest).
inline unsigned langevin_blocks(std::int64_t chains) {
  return cuda::grid_for(chains, kLangevinThreads);
}

// Entry j of one chain's work array: p[j * stride].
struct Strided {
  float* p;
  std::int64_t stride;
  __device__ float& operator[](int j) const { return p[j * stride]; }
};

template <class Target, int D>
__global__ void __launch_bounds__(kLangevinThreads)
    langevin_registers(const Target target, const ChainSetup s, float* x) {
  for (const std::int64_t c : cuda::grid_stride(s.chains)) {
    float xs[D], y[D], gx[D], gy[D], mu[D], m2[D];
    run_chain<float, D>(target, s, c, x + c * D, xs, y, gx, gy, mu, m2);
  }
}

// Array k of chain c, entry j, at work[k n + c + j chains] (consecutive threads touch
// consecutive addresses) or, for a target that takes plain pointers, at work[k n + c d + j].
// Without moments (arrays = 4) mu and m2 alias array 0 and are never touched.
template <class Target>
__global__ void __launch_bounds__(kLangevinThreads)
    langevin_workspace(const Target target, const ChainSetup s, float* x, float* work, int arrays) {
  const std::int64_t n = s.chains * s.d;
  const std::int64_t chain_step = Target::takes_pointers ? s.d : 1;
  const std::int64_t entry_step = Target::takes_pointers ? 1 : s.chains;
  for (const std::int64_t c : cuda::grid_stride(s.chains)) {
    Strided a[6];
    for (int k = 0; k < 6; ++k) a[k] = {work + (k < arrays ? k : 0) * n + c * chain_step, entry_step};
    run_chain<float, 0>(target, s, c, x + c * s.d, a[0], a[1], a[2], a[3], a[4], a[5]);
  }
}

template <class Target, int D>
void launch_langevin_registers(const Context& ctx, const Target& target, const ChainSetup& s,
                               float* x) {
  cuda::launch(ctx, langevin_registers<Target, D>, langevin_blocks(s.chains), kLangevinThreads, 0,
               target, s, x);
}

// The chains of `s` on ctx's device (x and the outputs in s are device pointers).
template <class Target>
void launch_langevin(const Context& ctx, const Target& target, const ChainSetup& s, float* x) {
  ctx.make_current();
  switch (s.d) {
    case 1: return launch_langevin_registers<Target, 1>(ctx, target, s, x);
    case 2: return launch_langevin_registers<Target, 2>(ctx, target, s, x);
    case 3: return launch_langevin_registers<Target, 3>(ctx, target, s, x);
    case 4: return launch_langevin_registers<Target, 4>(ctx, target, s, x);
    case 8: return launch_langevin_registers<Target, 8>(ctx, target, s, x);
    default: break;
  }
  const int arrays = s.mean ? 6 : 4;  // x, y, gx, gy (+ mu, m2)
  Buffer<float> work(ctx, static_cast<std::size_t>(arrays * s.chains * s.d));  // stream-ordered
  cuda::launch(ctx, langevin_workspace<Target>, langevin_blocks(s.chains), kLangevinThreads, 0,
               target, s, x, work.data(), arrays);
}

}  // namespace detail

// Runs the chains x [chains x d] (device memory) of `target` in place on ctx's device, as
// genai::langevin does for a built-in target; the result's buffers are on the device. Throws
// ArgumentError, before touching x, for a CPU context (use LangevinTarget::custom there),
// opts.method == Annealed, and everything genai::langevin refuses; DivergenceError when chains
// end non-finite (no step limit is known for a user's target).
template <class Target>
LangevinResult langevin_device(const Context& ctx, const Target& target, float* x,
                               std::int64_t chains, std::int64_t d, const LangevinOptions& opts = {}) {
  constexpr const char* fn = "genai::langevin_device";
  GENAI_NVTX_RANGE(fn);
  if (!ctx.is_cuda())
    detail::throw_argument(fn, "ctx", "must be a CUDA context (on the CPU, give the target as "
                           "LangevinTarget::custom to genai::langevin)");
  detail::LangevinRun run = detail::prepare_langevin(fn, ctx, x, chains, d, opts, "a user target");
  detail::launch_langevin(ctx, detail::PointerTarget<Target>{target, static_cast<int>(d)},
                          run.setup, x);
  if (opts.check_divergence)
    detail::check_divergence(fn, ctx, x, run.setup, std::numeric_limits<double>::infinity());
  return std::move(run.result);
}

}  // namespace genai
