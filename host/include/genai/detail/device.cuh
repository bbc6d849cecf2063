// The device toolbox (as llm.c's dev/cuda/common.h): launch shapes, the launch helper that makes
// the context's device current and checks the launch, grid-stride ranges, warp and block
// reductions parameterised by the operation, 16-byte vector loads and stores. Every kernel file
// gets it through kernels/common.cuh; the public header-only launchers (langevin_device.cuh,
// ode_device.cuh) include it directly, since kernels/ is not installed. nvcc only.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "genai/context.hpp"
#include "genai/cuda_check.hpp"

namespace genai::cuda {

inline constexpr unsigned kFullMask = 0xffffffffu;
inline constexpr int kWarp = 32;

__host__ __device__ constexpr std::int64_t ceil_div(std::int64_t a, std::int64_t b) {
  return (a + b - 1) / b;
}

// Blocks for a grid-stride loop over `work` items: enough to fill the device (capped at
// 65535 * 16 blocks; the loop covers the rest), never 0.
inline unsigned grid_for(std::int64_t work, int threads_per_block) {
  return static_cast<unsigned>(std::clamp<std::int64_t>(ceil_div(work, threads_per_block), 1,
                                                        65535 * 16));
}

// kernel<<<grid, block, smem, ctx.stream()>>>(args...) on the context's device, then the launch
// check: the one way kernels/ launches.
template <class... Params, class... Args>
void launch(const Context& ctx, void (*kernel)(Params...), dim3 grid, dim3 block,
            std::size_t smem, Args&&... args) {
  ctx.make_current();
  kernel<<<grid, block, smem, ctx.stream()>>>(std::forward<Args>(args)...);
  GENAI_LAUNCH_CHECK();
}

// `for (std::int64_t i : grid_stride(n))` visits this thread's share of [0, n); with `per` > 1,
// groups of `per` consecutive threads (a warp, say) share one index.
struct GridStride {
  std::int64_t first, last, stride;
  struct It {
    std::int64_t i, stride;
    __device__ std::int64_t operator*() const { return i; }
    __device__ It& operator++() {
      i += stride;
      return *this;
    }
    __device__ bool operator!=(const It& end) const { return i < end.i; }
  };
  __device__ It begin() const { return {first, stride}; }
  __device__ It end() const { return {last, stride}; }
};
__device__ __forceinline__ GridStride grid_stride(std::int64_t n, int per = 1) {
  const std::int64_t groups = static_cast<std::int64_t>(blockDim.x) / per;
  return {blockIdx.x * groups + threadIdx.x / per, n,
          static_cast<std::int64_t>(gridDim.x) * groups};
}

// Reductions. An operation is a functor op(a, b); shfl_xor is overloaded for the arithmetic
// types here, and a kernel's own struct type gets one by defining shfl_xor beside it (ADL).
struct Sum {
  template <class T>
  __device__ T operator()(T a, T b) const { return a + b; }
};
struct Max {  // CUDA's max / min: fmaxf / fminf for floats (a NaN loses to a number)
  template <class T>
  __device__ T operator()(T a, T b) const { return max(a, b); }
};
struct Min {
  template <class T>
  __device__ T operator()(T a, T b) const { return min(a, b); }
};
template <class T>
__device__ __forceinline__ T shfl_xor(T v, int offset) {
  return __shfl_xor_sync(kFullMask, v, offset);
}

// Butterfly over `width` lanes (a power of two <= 32): every lane of each group of `width`
// ends with the group's result.
template <int width = kWarp, class T, class Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
  for (int offset = width / 2; offset > 0; offset /= 2) v = op(v, shfl_xor(v, offset));
  return v;
}

// Reduction over a block of kThreads (a multiple of 32): every thread gets the result.
// `scratch` holds kThreads / 32 values; the call synchronises twice, so scratch may be reused.
template <int kThreads, class T, class Op>
__device__ __forceinline__ T block_reduce(T v, Op op, T identity, T* scratch) {
  static_assert(kThreads % kWarp == 0 && kThreads <= kWarp * kWarp);
  v = warp_reduce(v, op);
  if (threadIdx.x % kWarp == 0) scratch[threadIdx.x / kWarp] = v;
  __syncthreads();
  v = threadIdx.x % kWarp < kThreads / kWarp ? scratch[threadIdx.x % kWarp] : identity;
  v = warp_reduce(v, op);
  __syncthreads();
  return v;
}

// 16-byte vector access is allowed when every pointer involved is 16-byte aligned.
inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// Four consecutive floats: one 16-byte access when `vec`, else `count` (< 4 at a row's end)
// scalar ones; missing lanes load as 0. The scalar loops run a constant 4 times (guarded), so
// a caller's v[4] stays in registers.
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
    for (int l = 0; l < 4; ++l)
      if (l < count) p[l] = v[l];
  }
}

}  // namespace genai::cuda
