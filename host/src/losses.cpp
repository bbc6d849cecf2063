// genai losses module: argument checks, then the CPU reference or the kernels.
#include "genai/losses.hpp"

#include <cmath>

#include "cpu_reference/losses.hpp"
#include "genai/buffer.hpp"
#include "genai/nvtx.hpp"
#if GENAI_WITH_CUDA
#include "kernels/losses.cuh"
#endif

namespace genai {
namespace {

void require_reduced(const char* fn, const char* arg, Reduction r) {
  if (r == Reduction::None)
    detail::throw_argument(fn, arg, "must be Mean or Sum (got None: the per-row ",
                           "outputs hold the unreduced values)");
}

void require_finite_at_least(const char* fn, const char* arg, double v, double lo) {
  if (!(std::isfinite(v) && v >= lo))
    detail::throw_argument(fn, arg, "must be finite and >= ", lo, " (got ", v, ")");
}

template <class T>
void cross_entropy(const Context& ctx, const T* logits, const std::int64_t* targets,
                   std::int64_t N, std::int64_t C, float* loss, T* grad,
                   const CrossEntropyOptions& opts) {
  constexpr const char* fn = "genai::cross_entropy_loss";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "N", N, 0);
  detail::require_at_least(fn, "C", C, 1);
  const double eps = opts.label_smoothing;
  if (!(eps >= 0.0 && eps <= 1.0))
    detail::throw_argument(fn, "opts.label_smoothing", "must be in [0, 1] (got ", eps, ")");
  require_finite_at_least(fn, "opts.z_loss", opts.z_loss, 0.0);
  if (N == 0 && opts.reduction == Reduction::None) return;
  detail::require_not_null(fn, "loss", loss);
  if (N > 0) {
    detail::require_not_null(fn, "logits", logits);
    detail::require_not_null(fn, "targets", targets);
  }
  const auto bad_target = [&](std::int64_t row, std::int64_t value) {
    detail::throw_argument(fn, "targets", "row ", row, " is ", value, " (must be in [0, ", C,
                           ") or ignore_index ", opts.ignore_index, ")");
  };
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) {
    const std::int64_t row =
        cuda::cross_entropy_loss(ctx, logits, targets, N, C, loss, grad, opts);
    if (row >= 0) {
      std::int64_t value = 0;
      detail::copy_bytes(ctx, &value, Device::CPU, targets + row, Device::CUDA, sizeof value);
      bad_target(row, value);
    }
    return;
  }
#endif
  (void)ctx;
  if (opts.check_targets) {
    const std::int64_t row = ref::first_bad_target(targets, N, C, opts.ignore_index);
    if (row >= 0) bad_target(row, targets[row]);
  }
  ref::cross_entropy_loss_float(logits, targets, N, C, loss, grad, opts);
}

void element_loss(const char* fn, detail::ElementLoss kind, const Context& ctx,
                  const float* pred, const float* target, std::int64_t n, std::int64_t d,
                  const LossOutputs& out, Reduction reduction) {
  GENAI_NVTX_RANGE(fn);
  const char* pred_name = kind == detail::ElementLoss::SquaredError ? "pred" : "logits";
  detail::require_at_least(fn, "n", n, 0);
  detail::require_at_least(fn, "d", d, 1);
  require_reduced(fn, "reduction", reduction);
  if (!out.loss && !out.row_loss && !out.grad)
    detail::throw_argument(fn, "out", "has no output (loss, row_loss and grad all null)");
  if (n > 0) {
    detail::require_not_null(fn, pred_name, pred);
    detail::require_not_null(fn, "target", target);
  }
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::element_loss(ctx, kind, pred, target, n, d, out, reduction);
#endif
  (void)ctx;
  ref::element_loss(kind, pred, target, n, d, out, reduction);
}

}  // namespace

void cross_entropy_loss(const Context& ctx, const float* logits, const std::int64_t* targets,
                        std::int64_t N, std::int64_t C, float* loss, float* grad,
                        const CrossEntropyOptions& opts) {
  cross_entropy(ctx, logits, targets, N, C, loss, grad, opts);
}

void cross_entropy_loss(const Context& ctx, const bf16* logits, const std::int64_t* targets,
                        std::int64_t N, std::int64_t C, float* loss, bf16* grad,
                        const CrossEntropyOptions& opts) {
  cross_entropy(ctx, logits, targets, N, C, loss, grad, opts);
}

void mse_loss(const Context& ctx, const float* pred, const float* target, std::int64_t n,
              std::int64_t d, const LossOutputs& out, Reduction reduction) {
  element_loss("genai::mse_loss", detail::ElementLoss::SquaredError, ctx, pred, target, n, d,
               out, reduction);
}

void bce_with_logits_loss(const Context& ctx, const float* logits, const float* target,
                          std::int64_t n, std::int64_t d, const LossOutputs& out,
                          Reduction reduction) {
  element_loss("genai::bce_with_logits_loss", detail::ElementLoss::BceWithLogits, ctx, logits,
               target, n, d, out, reduction);
}

void reparameterize(const Context& ctx, const float* mu, const float* logvar, std::int64_t n,
                    std::int64_t d, float* z, const ReparameterizeOptions& opts) {
  constexpr const char* fn = "genai::reparameterize";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "n", n, 0);
  detail::require_at_least(fn, "d", d, 1);
  if (n == 0) return;
  detail::require_not_null(fn, "mu", mu);
  detail::require_not_null(fn, "logvar", logvar);
  detail::require_not_null(fn, "z", z);
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::reparameterize(ctx, mu, logvar, n, d, z, opts);
#endif
  (void)ctx;
  ref::reparameterize(mu, logvar, n, d, z, opts);
}

void vae_loss(const Context& ctx, const float* x, const float* x_recon, std::int64_t n,
              std::int64_t D, const float* mu, const float* logvar, std::int64_t d,
              const VaeLossOutputs& out, const VaeLossOptions& opts) {
  constexpr const char* fn = "genai::vae_loss";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "n", n, 0);
  detail::require_at_least(fn, "D", D, 1);
  detail::require_at_least(fn, "d", d, 1);
  require_finite_at_least(fn, "opts.beta", opts.beta, 0.0);
  require_reduced(fn, "opts.reduction", opts.reduction);
  if (n > 0) {
    detail::require_not_null(fn, "x", x);
    detail::require_not_null(fn, "x_recon", x_recon);
    detail::require_not_null(fn, "mu", mu);
    detail::require_not_null(fn, "logvar", logvar);
  }
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::vae_loss(ctx, x, x_recon, n, D, mu, logvar, d, out, opts);
#endif
  (void)ctx;
  ref::vae_loss(x, x_recon, n, D, mu, logvar, d, out, opts);
}

}  // namespace genai
