// genai info module: argument checks, then the CPU reference or the kernel.
#include "genai/info.hpp"

#include <cmath>

#include <vector>

#include "cpu_reference/info.hpp"
#include "genai/buffer.hpp"
#include "genai/nvtx.hpp"
#if GENAI_WITH_CUDA
#include "kernels/info.cuh"
#endif

namespace genai {
namespace {

using detail::InfoOp;

#if GENAI_WITH_CUDA
// Row `row` of a [rows x K] device array, on the host.
std::vector<float> host_row(const Context& ctx, const float* a, std::int64_t row, std::int64_t K) {
  std::vector<float> h(K);
  detail::copy_bytes(ctx, h.data(), Device::CPU, a + row * K, Device::CUDA, K * sizeof(float));
  return h;
}
#endif

void run(const char* fn, InfoOp op, const Context& ctx, const float* p, const float* q,
         std::int64_t rows, std::int64_t K, float* out, const InfoOptions& opts) {
  GENAI_NVTX_RANGE(fn);
  const bool two_inputs = detail::info_uses_q(op);
  const bool distributions = op == InfoOp::Entropy || two_inputs;
  const char* x_name = distributions ? "p" : "x";
  detail::require_at_least(fn, "rows", rows, 0);
  detail::require_at_least(fn, "K", K, 1);
  if (!(opts.sum_tolerance > 0.0 && std::isfinite(opts.sum_tolerance)))
    detail::throw_argument(fn, "opts.sum_tolerance", "must be finite and > 0 (got ",
                           opts.sum_tolerance, ")");
  if (rows == 0) return;
  detail::require_not_null(fn, x_name, p);
  if (two_inputs) detail::require_not_null(fn, "q", q);
  detail::require_not_null(fn, "out", out);
  const bool validate = distributions && opts.validate;
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) {
    const std::int64_t row = cuda::info_rows(ctx, op, p, two_inputs ? q : nullptr, rows, K,
                                             opts.base, validate, opts.sum_tolerance, out);
    if (row < 0) return;
    const double tol = opts.sum_tolerance;
    ref::check_distributions(fn, "p", host_row(ctx, p, row, K).data(), 1, K, tol, row);
    if (two_inputs)
      ref::check_distributions(fn, "q", host_row(ctx, q, row, K).data(), 1, K, tol, row);
    // float (device) and double (host) sums can disagree right at the tolerance.
    detail::throw_argument(fn, "p", "row ", row, " failed the distribution check on the device",
                           " (sum off 1 by about sum_tolerance ", tol, ")");
  }
#endif
  (void)ctx;
  if (validate) {
    ref::check_distributions(fn, "p", p, rows, K, opts.sum_tolerance);
    if (two_inputs) ref::check_distributions(fn, "q", q, rows, K, opts.sum_tolerance);
  }
  ref::info_rows(op, p, two_inputs ? q : nullptr, rows, K, opts.base, out);
}

}  // namespace

void l1_norm(const Context& ctx, const float* x, std::int64_t rows, std::int64_t K, float* out) {
  run("genai::l1_norm", InfoOp::L1, ctx, x, nullptr, rows, K, out, {});
}
void l2_norm_squared(const Context& ctx, const float* x, std::int64_t rows, std::int64_t K,
                     float* out) {
  run("genai::l2_norm_squared", InfoOp::L2Squared, ctx, x, nullptr, rows, K, out, {});
}
void entropy(const Context& ctx, const float* p, std::int64_t rows, std::int64_t K, float* out,
             const InfoOptions& opts) {
  run("genai::entropy", InfoOp::Entropy, ctx, p, nullptr, rows, K, out, opts);
}
void kl_divergence(const Context& ctx, const float* p, const float* q, std::int64_t rows,
                   std::int64_t K, float* out, const InfoOptions& opts) {
  run("genai::kl_divergence", InfoOp::KL, ctx, p, q, rows, K, out, opts);
}
void cross_entropy(const Context& ctx, const float* p, const float* q, std::int64_t rows,
                   std::int64_t K, float* out, const InfoOptions& opts) {
  run("genai::cross_entropy", InfoOp::CrossEntropy, ctx, p, q, rows, K, out, opts);
}

}  // namespace genai
