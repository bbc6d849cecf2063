// The out-of-line part of kernels/common.cuh: the first-non-finite scan (argument checks of
// device data, divergence reports). One read of x, an atomicMin per non-finite element.
#include "genai/buffer.hpp"
#include "kernels/common.cuh"

namespace genai::cuda {
namespace {

template <class T>
__global__ void first_non_finite_kernel(const T* __restrict__ x, std::int64_t n,
                                        unsigned long long* first) {
  for (const std::int64_t i : grid_stride(n))
    if (!isfinite(x[i])) atomicMin(first, static_cast<unsigned long long>(i));
}

}  // namespace

template <class T>
std::int64_t first_non_finite(const Context& ctx, const T* x, std::int64_t n) {
  if (n == 0) return -1;
  ctx.make_current();
  Buffer<unsigned long long> first(ctx, 1);
  first.fill_bytes(0xFF);  // no index
  constexpr int kThreads = 256;
  launch(ctx, first_non_finite_kernel<T>, grid_for(n, kThreads), kThreads, 0, x, n, first.data());
  const unsigned long long i = first.to_host()[0];
  return i == ~0ull ? -1 : static_cast<std::int64_t>(i);
}

template std::int64_t first_non_finite(const Context&, const float*, std::int64_t);
template std::int64_t first_non_finite(const Context&, const double*, std::int64_t);

}  // namespace genai::cuda
