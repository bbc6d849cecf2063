// Train kernels.
//
// The diffusion training batch: one thread per Philox block of a batch row (row r, features
// 4 jb .. 4 jb + 3), as the diffusion module's noising. The thread draws the row's data index and
// timestep (one Philox call, recomputed by each block of a row: d = 2 has one block), gathers
// x0 from the data set, draws four normals, and writes x_t and the target (and, in the row's
// first block, the timestep as a float). Memory-bound and tiny: per element 4 bytes of data
// read (a random row: one 8-byte sector for d = 2) and 8 bytes written, ~2 Philox calls per
// block; at the training batch of 4096 x 2 it is one short launch, and what matters is that it
// is one launch with no host round trip. The arithmetic is detail::batch_element (correctly
// rounded, never contracted): the same bits as the CPU reference.
#include <cuda_runtime.h>

#include "kernels/common.cuh"
#include "kernels/train.cuh"

namespace genai::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) train_batch_kernel(detail::TrainBatch b) {
  const std::int64_t nb = ceil_div(b.d, 4);
  for (const std::int64_t k : grid_stride(b.batch * nb)) {
    const std::int64_t r = k / nb, jb = k - r * nb;
    const detail::BatchDraw draw = detail::batch_draw(b.seed, r, b.step, b.n, b.T);
    const float sa = __ldg(b.sa + draw.t), sb = __ldg(b.sb + draw.t);
    if (jb == 0) b.t_in[r] = static_cast<float>(draw.t);
    const rng::Float4 z =
        rng::normal4(b.seed, rng::streams::train_noise, static_cast<std::uint64_t>(k), b.step);
    const float* x0 = b.data + draw.row * b.d;
    for (int l = 0; l < 4; ++l) {
      const std::int64_t j = 4 * jb + l;
      if (j >= b.d) break;
      detail::batch_element(b.kind, sa, sb, x0[j], z.v[l], b.x_t[r * b.d + j],
                            b.target[r * b.d + j]);
    }
  }
}

__global__ void __launch_bounds__(kThreads) fill_kernel(float* x, std::int64_t n, float value) {
  for (const std::int64_t i : grid_stride(n)) x[i] = value;
}

}  // namespace

void train_batch(const Context& ctx, const detail::TrainBatch& b) {
  if (b.batch == 0) return;
  launch(ctx, train_batch_kernel, grid_for(b.batch * ceil_div(b.d, 4), kThreads), kThreads, 0, b);
}

void fill(const Context& ctx, float* x, std::int64_t n, float value) {
  if (n == 0) return;
  launch(ctx, fill_kernel, grid_for(n, kThreads), kThreads, 0, x, n, value);
}

}  // namespace genai::cuda
