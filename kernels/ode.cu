// ODE integration on the GPU: one thread per row runs the whole integration -- every step, every
// stage, dopri5's error control and dense output -- of detail::ode_row (genai/detail/ode.hpp) in
// float, in one launch. The kernels are those of genai/ode_device.cuh, instantiated here with
// the built-in problems.
//
// Per row-step: the method's stages (1, 2, 4, 4 or 6 evaluations of f plus s(s-1)/2 + s d-wide
// fused multiply-adds; dopri5 also its error norm, two pows and a sqrt). Only the initial and
// final states, the t_eval records and the per-row counts touch DRAM: for d <= 8 (1, 2, 3, 4, 8
// specialised) the state and the stages live in registers and the kernel is compute-bound --
// for the 2-D problems here a few tens of FP32 operations per stage, so the aim is the FP32
// issue rate, with divergence among a warp's rows (different step counts) as the loss.
#include <vector>

#include "genai/buffer.hpp"
#include "genai/ode_device.cuh"
#include "kernels/common.cuh"
#include "kernels/ode.cuh"

namespace genai {
namespace cuda {
namespace {

__global__ void failures_kernel(const detail::OdeRow<float>* rows, std::int64_t batch,
                                unsigned long long* found) {
  for (const std::int64_t r : grid_stride(batch))
    if (rows[r].status != detail::kOdeDone) {
      atomicMin(&found[0], static_cast<unsigned long long>(r));
      atomicAdd(&found[1], 1ull);
    }
}

}  // namespace

OdeFailures ode_failures(const Context& ctx, const detail::OdeRow<float>* rows, std::int64_t batch) {
  Buffer<unsigned long long> found(ctx, std::span<const unsigned long long>(
                                            std::vector<unsigned long long>{~0ull, 0ull}));
  constexpr int kThreads = 256;
  launch(ctx, failures_kernel, grid_for(batch, kThreads), kThreads, 0, rows, batch, found.data());
  const auto h = found.to_host();
  return {h[0] == ~0ull ? -1 : static_cast<std::int64_t>(h[0]), static_cast<std::int64_t>(h[1])};
}

void ode_solve(const Context& ctx, const detail::BuiltinOde& f, const detail::OdeSetup<float>& setup,
               float* y, detail::OdeRow<float>* rows) {
  detail::launch_ode(ctx, f, setup, y, rows);
}

}  // namespace cuda
}  // namespace genai
