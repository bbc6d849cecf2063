// Langevin chains on the GPU: one thread per chain runs the whole multi-step loop of
// detail::run_chain (genai/detail/langevin_chain.hpp) in float, with the reference's Philox draws. The
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
// Also here: Brownian paths.
#include <cuda_runtime.h>

#include <vector>

#include "genai/buffer.hpp"
#include "genai/detail/langevin.hpp"
#include "genai/langevin_device.cuh"
#include "kernels/common.cuh"
#include "kernels/langevin.cuh"

namespace genai::cuda {
namespace {

constexpr int kThreads = 128;

__global__ void brownian_kernel(float* out, std::int64_t paths, int d, std::int64_t steps,
                                float dt, std::uint64_t seed) {
  for (const std::int64_t p : grid_stride(paths))
    detail::brownian_path<float>(out + p * (steps + 1) * d, p, d, steps, dt, seed);
}

}  // namespace

void langevin(const Context& ctx, const LangevinTarget& target, const detail::ChainSetup& setup,
              float* x) {
  const std::vector<float> packed = detail::pack(target);
  const Buffer<float> params(ctx, std::span<const float>(packed));  // freed in stream order
  detail::launch_langevin(ctx, detail::view(target, params.data()), setup, x);
}

void brownian_motion(const Context& ctx, float* out, std::int64_t paths, int d,
                     std::int64_t steps, float dt, std::uint64_t seed) {
  launch(ctx, brownian_kernel, grid_for(paths, kThreads), kThreads, 0, out, paths, d, steps, dt,
         seed);
}

}  // namespace genai::cuda
