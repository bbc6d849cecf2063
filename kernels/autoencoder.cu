// The element passes of an autoencoder's training step, around the MLPs' GEMMs:
//   gather_rows       dst[i, :] = src[index[i], :]  (a shuffled batch from the resident data set)
//   split_halves      h = [mu | logvar] per row -> mu, logvar (the losses module's layout)
//   vae_encoder_grad  [dL/dmu | dL/dlogvar] = [dz + dKL/dmu | dz eps exp(logvar/2)/2 + dKL/dlogvar]
// All memory-bound and tiny beside the GEMMs (a batch of 256 x 784 is 0.8 MB): gather moves
// 8 bytes per element (16-byte loads and stores when the rows allow), split 8, the gradient
// 24 read + 4 written per output pair; each aims at the copy bandwidth, and at one launch each.
#include "kernels/autoencoder.cuh"
#include "kernels/common.cuh"

#include "genai/detail/autoencoder.hpp"

namespace genai::cuda {
namespace {

constexpr int kThreads = 256;

// Four consecutive floats of one row per thread (d % 4 == 0, 16-byte aligned rows).
__global__ void __launch_bounds__(kThreads)
    gather4_kernel(const float* __restrict__ src, std::int64_t d, const std::int64_t* index,
                   std::int64_t n, float* __restrict__ dst) {
  const std::int64_t q = d / 4;
  for (const std::int64_t e : grid_stride(n * q)) {
    const std::int64_t row = e / q, col = (e % q) * 4;
    float v[4];
    load4(src + index[row] * d + col, 4, true, v);
    store4(dst + row * d + col, 4, true, v);
  }
}

__global__ void __launch_bounds__(kThreads)
    gather_kernel(const float* __restrict__ src, std::int64_t d, const std::int64_t* index,
                  std::int64_t n, float* __restrict__ dst) {
  for (const std::int64_t e : grid_stride(n * d)) dst[e] = src[index[e / d] * d + e % d];
}

__global__ void __launch_bounds__(kThreads)
    split_kernel(const float* __restrict__ h, std::int64_t n, std::int64_t d,
                 float* __restrict__ mu, float* __restrict__ logvar) {
  for (const std::int64_t e : grid_stride(n * d)) {
    const std::int64_t row = e / d, col = e % d;
    mu[e] = h[row * 2 * d + col];
    logvar[e] = h[row * 2 * d + d + col];
  }
}

__global__ void __launch_bounds__(kThreads)
    vae_grad_kernel(const float* __restrict__ grad_z, const float* __restrict__ eps,
                    const float* __restrict__ logvar, const float* __restrict__ grad_mu_kl,
                    const float* __restrict__ grad_logvar_kl, std::int64_t n, std::int64_t d,
                    float* __restrict__ grad_h) {
  for (const std::int64_t e : grid_stride(n * 2 * d))
    grad_h[e] = detail::vae_encoder_grad_element(e, d, grad_z, eps, logvar, grad_mu_kl,
                                                 grad_logvar_kl);
}

}  // namespace

void gather_rows(const Context& ctx, const float* src, std::int64_t d, const std::int64_t* index,
                 std::int64_t n, float* dst) {
  if (n == 0) return;
  if (d % 4 == 0 && aligned16(src) && aligned16(dst))
    launch(ctx, gather4_kernel, grid_for(n * d / 4, kThreads), kThreads, 0, src, d, index, n, dst);
  else
    launch(ctx, gather_kernel, grid_for(n * d, kThreads), kThreads, 0, src, d, index, n, dst);
}

void split_halves(const Context& ctx, const float* h, std::int64_t n, std::int64_t d, float* mu,
                  float* logvar) {
  if (n == 0) return;
  launch(ctx, split_kernel, grid_for(n * d, kThreads), kThreads, 0, h, n, d, mu, logvar);
}

void vae_encoder_grad(const Context& ctx, const float* grad_z, const float* eps,
                      const float* logvar, const float* grad_mu_kl, const float* grad_logvar_kl,
                      std::int64_t n, std::int64_t d, float* grad_h) {
  if (n == 0) return;
  launch(ctx, vae_grad_kernel, grid_for(n * 2 * d, kThreads), kThreads, 0, grad_z, eps, logvar,
         grad_mu_kl, grad_logvar_kl, n, d, grad_h);
}

}  // namespace genai::cuda
