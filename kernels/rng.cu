// Philox fills. One thread per 4-element block: 10 Philox rounds (~40 integer multiplies) and,
// for normals, two Box-Muller transforms per 16 bytes written. Aim: the store bandwidth of the
// device (a write-only stream); 16-byte stores when the output is 16-byte aligned.
#include <cuda_runtime.h>

#include "genai/cuda_check.hpp"
#include "kernels/launch.cuh"
#include "kernels/rng.cuh"

namespace genai::cuda {
namespace {

struct UniformMap {
  float width, low;
  __device__ rng::Float4 operator()(std::uint64_t seed, std::uint32_t stream, std::uint64_t b,
                                    std::uint32_t step) const {
    rng::Float4 r = rng::uniform4(seed, stream, b, step);
    for (float& v : r.v) v = rng::detail::fma(width, v, low);
    return r;
  }
};

struct NormalMap {
  float stddev, mean;
  __device__ rng::Float4 operator()(std::uint64_t seed, std::uint32_t stream, std::uint64_t b,
                                    std::uint32_t step) const {
    rng::Float4 r = rng::normal4(seed, stream, b, step);
    for (float& v : r.v) v = rng::detail::fma(stddev, v, mean);
    return r;
  }
};

template <class Map>
__global__ void fill_kernel(float* __restrict__ out, std::int64_t n, RngKey key, Map map,
                            bool aligned16) {
  const std::int64_t blocks = (n + 3) / 4;
  for (std::int64_t b = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
       b < blocks; b += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const rng::Float4 r = map(key.seed, key.stream, static_cast<std::uint64_t>(b), key.step);
    const std::int64_t i = b * 4;
    if (aligned16 && i + 4 <= n) {
      reinterpret_cast<float4*>(out)[b] = make_float4(r.v[0], r.v[1], r.v[2], r.v[3]);
    } else {
      for (int lane = 0; lane < 4 && i + lane < n; ++lane) out[i + lane] = r.v[lane];
    }
  }
}

template <class Map>
void launch_fill(const Context& ctx, float* out, std::int64_t n, RngKey key, Map map) {
  if (n == 0) return;
  constexpr int kThreads = 256;
  const bool aligned16 = reinterpret_cast<std::uintptr_t>(out) % 16 == 0;
  ctx.make_current();
  fill_kernel<<<grid_for((n + 3) / 4, kThreads), kThreads, 0, ctx.stream()>>>(out, n, key, map,
                                                                              aligned16);
  GENAI_LAUNCH_CHECK();
}

}  // namespace

void fill_uniform(const Context& ctx, float* out, std::int64_t n, RngKey key, float low,
                  float high) {
  launch_fill(ctx, out, n, key, UniformMap{rng::detail::add(high, -low), low});
}

void fill_normal(const Context& ctx, float* out, std::int64_t n, RngKey key, float mean,
                 float stddev) {
  launch_fill(ctx, out, n, key, NormalMap{stddev, mean});
}

}  // namespace genai::cuda
