// Langevin chains on the GPU: one thread per chain runs the whole multi-step loop of
// ref::run_chain (cpu_reference/langevin.hpp) in float, with the reference's Philox draws.
//
// Per chain-step: one Philox4x32-10 call per 4 dimensions (~40 integer multiplies each) and
// Box-Muller, the target's gradient (mixtures: K d fused multiply-adds and K exps), and for
// MALA a second gradient and one more Philox call. Nothing but the start and end state (plus
// optional trajectory records) touches DRAM, so the kernel is compute-bound: the aim is the
// device's integer/FP32 issue rate. For d <= 8 (1, 2, 3, 4, 8 specialised) the state and its
// work arrays live in registers; other d keep them in a [arrays x d x chains] workspace, laid
// out so that consecutive threads touch consecutive addresses.
#include <cuda_runtime.h>

#include <vector>

#include "genai/buffer.hpp"
#include "genai/cuda_check.hpp"
#include "kernels/langevin.cuh"
#include "kernels/launch.cuh"

namespace genai::cuda {
namespace {

constexpr int kThreads = 128;

// Dimension j of one chain's array in the workspace: stride = chains.
struct Strided {
  float* p;
  std::int64_t stride;
  __device__ float& operator[](int j) const { return p[j * stride]; }
};

template <int D>
__global__ void __launch_bounds__(kThreads) langevin_registers(ref::ChainSetup s, float* x) {
  for (std::int64_t c = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
       c < s.chains; c += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    float xs[D], y[D], gx[D], gy[D], mu[D], m2[D];
    ref::run_chain<float, D>(s, c, x + c * D, xs, y, gx, gy, mu, m2);
  }
}

__global__ void __launch_bounds__(kThreads)
    langevin_workspace(ref::ChainSetup s, float* x, float* work, int arrays) {
  const std::int64_t n = s.chains * s.d;
  for (std::int64_t c = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
       c < s.chains; c += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    Strided a[6];
    for (int k = 0; k < 6; ++k) a[k] = {work + (k < arrays ? k : 0) * n + c, s.chains};
    ref::run_chain<float, 0>(s, c, x + c * s.d, a[0], a[1], a[2], a[3], a[4], a[5]);
  }
}

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

template <int D>
void launch_registers(const Context& ctx, const ref::ChainSetup& s, float* x) {
  langevin_registers<D><<<grid_for(s.chains, kThreads), kThreads, 0, ctx.stream()>>>(s, x);
  GENAI_LAUNCH_CHECK();
}

}  // namespace

void langevin(const Context& ctx, const LangevinTarget& target, ref::ChainSetup setup, float* x) {
  const std::vector<float> packed = ref::pack(target);
  const Buffer<float> params(ctx, std::span<const float>(packed));  // freed in stream order
  setup.target = ref::view(target, params.data());
  switch (setup.d) {
    case 1: return launch_registers<1>(ctx, setup, x);
    case 2: return launch_registers<2>(ctx, setup, x);
    case 3: return launch_registers<3>(ctx, setup, x);
    case 4: return launch_registers<4>(ctx, setup, x);
    case 8: return launch_registers<8>(ctx, setup, x);
    default: break;
  }
  const int arrays = setup.mean ? 6 : 4;  // x, y, gx, gy (+ mean, m2)
  Buffer<float> work(ctx, static_cast<std::size_t>(arrays * setup.chains * setup.d));
  langevin_workspace<<<grid_for(setup.chains, kThreads), kThreads, 0, ctx.stream()>>>(
      setup, x, work.data(), arrays);
  GENAI_LAUNCH_CHECK();
}

void brownian_motion(const Context& ctx, float* out, std::int64_t paths, int d,
                     std::int64_t steps, float dt, std::uint64_t seed) {
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
