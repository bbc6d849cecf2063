// Philox fills. One thread per 4-element block: 10 Philox rounds (~40 integer multiplies) and,
// for normals, two Box-Muller transforms per 16 bytes written. Aim: the store bandwidth of the
// device (a write-only stream); 16-byte stores when the output is 16-byte aligned.
#include <cuda_runtime.h>

#include "kernels/common.cuh"
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
                            bool vec) {
  for (const std::int64_t b : grid_stride(ceil_div(n, 4))) {
    const rng::Float4 r = map(key.seed, key.stream, static_cast<std::uint64_t>(b), key.step);
    const int count = static_cast<int>(min(std::int64_t{4}, n - 4 * b));
    store4(out + 4 * b, count, vec && count == 4, r.v);
  }
}

template <class Map>
void launch_fill(const Context& ctx, float* out, std::int64_t n, RngKey key, Map map) {
  if (n == 0) return;
  constexpr int kThreads = 256;
  launch(ctx, fill_kernel<Map>, grid_for(ceil_div(n, 4), kThreads), kThreads, 0, out, n, key, map,
         aligned16(out));
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
