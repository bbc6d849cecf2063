// Langevin chains on the GPU: one thread per chain runs the whole multi-step loop of
// detail::run_chain (genai/langevin_chain.hpp) in float, with the reference's Philox draws. The
// kernels are those of genai/langevin_device.cuh, instantiated with the built-in targets.
//
// Per chain-step: one Philox4x32-10 call per 4 dimensions (~40 integer multiplies each) and
// Box-Muller, the target's gradient (mixtures: K d fused multiply-adds and K exps), and for
// MALA a second gradient and one more Philox call. Nothing but the start and end state (plus
// optional trajectory records) touches DRAM, so the kernel is compute-bound: the aim is the
// device's integer/FP32 issue rate. For d <= 8 (1, 2, 3, 4, 8 specialised) the state and its
// work arrays live in registers; other d keep them in a [arrays x d x chains] workspace, laid
// out so that consecutive threads touch consecutive addresses.
//
// Also here: Brownian paths and the finiteness scan of initial states.
#include <cuda_runtime.h>

#include <vector>

#include "genai/buffer.hpp"
#include "genai/cuda_check.hpp"
#include "genai/langevin_device.cuh"
#include "kernels/langevin.cuh"
#include "kernels/launch.cuh"

namespace genai::cuda {
namespace {

constexpr int kThreads = 128;

__global__ void brownian_kernel(float* out, std::int64_t paths, int d, std::int64_t steps,
                                float dt, std::uint64_t seed) {
  for (std::int64_t p = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
       p < paths; p += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    ref::brownian_path<float>(out + p * (steps + 1) * d, p, d, steps, dt, seed);
}

__global__ void non_finite_kernel(const float* x, std::int64_t n, unsigned long long* first) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    if (!isfinite(x[i])) atomicMin(first, static_cast<unsigned long long>(i));
}

}  // namespace

void langevin(const Context& ctx, const LangevinTarget& target, const detail::ChainSetup& setup,
              float* x) {
  const std::vector<float> packed = ref::pack(target);
  const Buffer<float> params(ctx, std::span<const float>(packed));  // freed in stream order
  detail::launch_langevin(ctx, ref::view(target, params.data()), setup, x);
}

void brownian_motion(const Context& ctx, float* out, std::int64_t paths, int d,
                     std::int64_t steps, float dt, std::uint64_t seed) {
  ctx.make_current();
  brownian_kernel<<<grid_for(paths, kThreads), kThreads, 0, ctx.stream()>>>(out, paths, d, steps,
                                                                            dt, seed);
  GENAI_LAUNCH_CHECK();
}

std::int64_t first_non_finite(const Context& ctx, const float* x, std::int64_t n) {
  Buffer<unsigned long long> first(ctx, 1);
  first.fill_bytes(0xFF);  // no index
  non_finite_kernel<<<grid_for(n, 256), 256, 0, ctx.stream()>>>(x, n, first.data());
  GENAI_LAUNCH_CHECK();
  const unsigned long long i = first.to_host()[0];
  return i == ~0ull ? -1 : static_cast<std::int64_t>(i);
}

}  // namespace genai::cuda

namespace genai::detail {
unsigned langevin_blocks(std::int64_t chains) { return cuda::grid_for(chains, kLangevinThreads); }
}  // namespace genai::detail
