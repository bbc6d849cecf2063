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
// Also here: Brownian paths, out [paths x (steps + 1) x d], a write-only stream of 4 bytes per
// element against one Philox normal4 per 4 elements (~300 instructions per 16 bytes, the
// bound for d >= 4; at d < 4 a whole call per element). A thread runs one (path, Philox block b)
// over the steps, W in registers, with brownian_path's numbers. A block's threads are a tile of
// whole paths (kThreads / nb of them, nb = ceil(d/4)) or of kThreads blocks of one path; they
// stage kRows rows of W in shared memory, then write them as contiguous runs (kRows d floats
// per path when the tile has whole paths), consecutive threads on consecutive addresses.
#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "genai/buffer.hpp"
#include "genai/detail/langevin.hpp"
#include "genai/langevin_device.cuh"
#include "kernels/common.cuh"
#include "kernels/langevin.cuh"

namespace genai::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kRows = 16;  // rows of W staged per pass

__global__ void __launch_bounds__(kThreads)
    brownian_kernel(float* out, std::int64_t paths, int d, std::int64_t steps, float dt,
                    std::uint64_t seed) {
  // kRows + 1 rows of 4 units floats per path of the tile: with the extra row, thread t's
  // 16-byte store lands at 4 t (mod 32 banks), so each quarter warp's stores are conflict-free.
  __shared__ __align__(16) float stage[kThreads * 4 * (kRows + 1)];
  const int nb = detail::brownian_blocks(d);
  const int units = nb < kThreads ? nb : kThreads;  // Philox blocks of a path per tile
  const int tile_paths = kThreads / units;
  const int path_stride = (kRows + 1) * 4 * units;  // floats of stage per path
  const std::int64_t path_tiles = ceil_div(paths, tile_paths), unit_tiles = ceil_div(nb, units);
  const float scale = sqrtf(dt);  // as brownian_path<float>
  const int p_local = threadIdx.x / units, u_local = threadIdx.x % units;
  for (std::int64_t tile = blockIdx.x; tile < path_tiles * unit_tiles; tile += gridDim.x) {
    const std::int64_t p0 = tile / unit_tiles * tile_paths;
    const int b0 = static_cast<int>(tile % unit_tiles) * units;
    const std::int64_t p = p0 + p_local;
    const int b = b0 + u_local;
    const bool active = p_local < tile_paths && p < paths && b < nb;
    const int tile_valid = static_cast<int>(std::min<std::int64_t>(tile_paths, paths - p0));
    const std::int64_t j0 = 4 * std::int64_t{b0};  // the tile's dimensions: [j0, j0 + width)
    const int width = static_cast<int>(std::min<std::int64_t>(d, j0 + 4 * units) - j0);
    float w[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (std::int64_t r0 = 0; r0 <= steps; r0 += kRows) {
      const int rows = static_cast<int>(std::min<std::int64_t>(kRows, steps + 1 - r0));
      if (active)
        for (int rr = 0; rr < rows; ++rr) {
          const std::int64_t r = r0 + rr;  // W_r = W_{r-1} + sqrt(dt) xi_{r-1}; W_0 = 0
          if (r > 0) {
            const rng::Float4 z = rng::normal4(seed, rng::streams::langevin,
                                               static_cast<std::uint64_t>(p) * nb + b,
                                               static_cast<std::uint32_t>(r - 1));
            for (int l = 0; l < 4; ++l) w[l] = detail::brownian_next(w[l], scale, z.v[l]);
          }
          *reinterpret_cast<float4*>(stage + p_local * path_stride + rr * 4 * units +
                                     4 * u_local) = make_float4(w[0], w[1], w[2], w[3]);
        }
      __syncthreads();
      // rows x width floats per path, contiguous when width == d.
      const int per_path = rows * width;
      for (int e = threadIdx.x; e < tile_valid * per_path; e += kThreads) {
        const int pl = e / per_path, rem = e - pl * per_path, rr = rem / width, jj = rem - rr * width;
        out[((p0 + pl) * (steps + 1) + r0 + rr) * d + j0 + jj] =
            stage[pl * path_stride + rr * 4 * units + jj];
      }
      __syncthreads();  // the stage is read before the next pass writes it
    }
  }
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
  const std::int64_t nb = ceil_div(d, 4), units = std::min<std::int64_t>(nb, kThreads);
  const std::int64_t tiles = ceil_div(paths, kThreads / units) * ceil_div(nb, units);
  launch(ctx, brownian_kernel, grid_for(tiles, 1), kThreads, 0, out, paths, d, steps, dt, seed);
}

}  // namespace genai::cuda
