// genai::fill_uniform / fill_normal: argument checks, then the CPU reference or the kernel.
#include <cmath>

#include "cpu_reference/rng.hpp"
#include "genai/nvtx.hpp"
#include "genai/rng.hpp"
#if GENAI_WITH_CUDA
#include "kernels/rng.cuh"
#endif

namespace genai {
namespace {
void check_fill(const char* fn, const float* out, std::int64_t n) {
  detail::require_at_least(fn, "n", n, 0);
  if (n > 0) detail::require_not_null(fn, "out", out);
}
}  // namespace

void fill_uniform([[maybe_unused]] const Context& ctx, float* out, std::int64_t n, RngKey key, float low,
                  float high) {
  constexpr const char* fn = "genai::fill_uniform";
  GENAI_NVTX_RANGE(fn);
  check_fill(fn, out, n);
  if (!(std::isfinite(low) && std::isfinite(high) && low < high))
    detail::throw_argument(fn, "high", "must be finite and > low (got low ", low, ", high ",
                           high, ")");
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::fill_uniform(ctx, out, n, key, low, high);
#endif
  ref::fill_uniform(out, n, key, low, high);
}

void fill_normal([[maybe_unused]] const Context& ctx, float* out, std::int64_t n, RngKey key, float mean,
                 float stddev) {
  constexpr const char* fn = "genai::fill_normal";
  GENAI_NVTX_RANGE(fn);
  check_fill(fn, out, n);
  if (!std::isfinite(mean)) detail::throw_argument(fn, "mean", "must be finite (got ", mean, ")");
  if (!(std::isfinite(stddev) && stddev >= 0.0f))
    detail::throw_argument(fn, "stddev", "must be finite and >= 0 (got ", stddev, ")");
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::fill_normal(ctx, out, n, key, mean, stddev);
#endif
  ref::fill_normal(out, n, key, mean, stddev);
}

}  // namespace genai
