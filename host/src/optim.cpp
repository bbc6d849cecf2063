// genai optim module: argument checks, then the CPU reference or the kernels; the schedules.
#include "genai/optim.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include "cpu_reference/optim.hpp"
#include "genai/nvtx.hpp"
#if GENAI_WITH_CUDA
#include "kernels/optim.cuh"
#endif

namespace genai {
namespace {

void require_in(const char* fn, const char* arg, double v, double lo, double hi,
                bool hi_open) {
  if (!(std::isfinite(v) && v >= lo && (hi_open ? v < hi : v <= hi)))
    detail::throw_argument(fn, arg, "must be in [", lo, ", ", hi, hi_open ? ")" : "]", " (got ",
                           v, ")");
}
void require_nonnegative(const char* fn, const char* arg, double v) {
  if (!(std::isfinite(v) && v >= 0.0))
    detail::throw_argument(fn, arg, "must be finite and >= 0 (got ", v, ")");
}

// Tensor i's pointers: non-null when it has elements (a pointer given as null in `optional`
// is skipped), and pairwise distinct.
void require_tensor(const char* fn, std::size_t i, std::int64_t size,
                    std::initializer_list<std::pair<const char*, const void*>> arrays) {
  const auto name = [&](const char* field) { return detail::concat("tensors[", i, "].", field); };
  if (size < 0) detail::throw_argument(fn, name("size").c_str(), "must be >= 0 (got ", size, ")");
  if (size == 0) return;
  for (auto a = arrays.begin(); a != arrays.end(); ++a) {
    detail::require_not_null(fn, name(a->first).c_str(), a->second);
    for (auto b = arrays.begin(); b != a; ++b)
      if (a->second == b->second)
        detail::throw_argument(fn, name(a->first).c_str(), "is the same array as tensors[", i,
                               "].", b->first);
  }
}

}  // namespace

void adam_step(const Context& ctx, std::span<const AdamTensor> tensors, std::int64_t step,
               const AdamOptions& opts) {
  constexpr const char* fn = "genai::adam_step";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "step", step, 1);
  require_nonnegative(fn, "opts.lr", opts.lr);
  require_in(fn, "opts.beta1", opts.beta1, 0.0, 1.0, true);
  require_in(fn, "opts.beta2", opts.beta2, 0.0, 1.0, true);
  require_nonnegative(fn, "opts.eps", opts.eps);
  require_nonnegative(fn, "opts.weight_decay", opts.weight_decay);
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const AdamTensor& t = tensors[i];
    if (opts.amsgrad)
      require_tensor(fn, i, t.size,
                     {{"param", t.param}, {"grad", t.grad}, {"m", t.m}, {"v", t.v},
                      {"v_max", t.v_max}});
    else
      require_tensor(fn, i, t.size, {{"param", t.param}, {"grad", t.grad}, {"m", t.m}, {"v", t.v}});
  }
  const detail::AdamCoeffs k = detail::adam_coeffs(opts, step);
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::adam_step(ctx, tensors, k);
#endif
  (void)ctx;
  ref::adam_step(tensors, k);
}

void sgd_step(const Context& ctx, std::span<const SgdTensor> tensors, std::int64_t step,
              const SgdOptions& opts) {
  constexpr const char* fn = "genai::sgd_step";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "step", step, 1);
  require_nonnegative(fn, "opts.lr", opts.lr);
  require_nonnegative(fn, "opts.momentum", opts.momentum);
  require_in(fn, "opts.dampening", opts.dampening, 0.0, 1.0, false);
  require_nonnegative(fn, "opts.weight_decay", opts.weight_decay);
  if (opts.nesterov && (opts.momentum <= 0.0f || opts.dampening != 0.0f))
    detail::throw_argument(fn, "opts.nesterov", "needs momentum > 0 and dampening 0 (got ",
                           "momentum ", opts.momentum, ", dampening ", opts.dampening, ")");
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const SgdTensor& t = tensors[i];
    if (opts.momentum != 0.0f)
      require_tensor(fn, i, t.size,
                     {{"param", t.param}, {"grad", t.grad}, {"momentum_buffer", t.momentum_buffer}});
    else
      require_tensor(fn, i, t.size, {{"param", t.param}, {"grad", t.grad}});
  }
  const detail::SgdCoeffs k = detail::sgd_coeffs(opts, step);
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::sgd_step(ctx, tensors, k);
#endif
  (void)ctx;
  ref::sgd_step(tensors, k);
}

double ema_decay_at(std::int64_t step, const EmaOptions& o) {
  constexpr const char* fn = "genai::ema_decay_at";
  detail::require_at_least(fn, "step", step, 1);
  require_in(fn, "opts.decay", o.decay, 0.0, 1.0, false);
  require_in(fn, "opts.min_decay", o.min_decay, 0.0, o.decay, false);
  detail::require_at_least(fn, "opts.update_after_step", o.update_after_step, 0);
  const std::int64_t s = step - o.update_after_step - 1;
  if (s <= 0) return 0.0;
  const double warm = (1.0 + static_cast<double>(s)) / (10.0 + static_cast<double>(s));
  return std::max(static_cast<double>(o.min_decay), std::min(static_cast<double>(o.decay), warm));
}

void ema_update(const Context& ctx, std::span<const EmaTensor> tensors, float decay) {
  constexpr const char* fn = "genai::ema_update";
  GENAI_NVTX_RANGE(fn);
  require_in(fn, "decay", decay, 0.0, 1.0, false);
  for (std::size_t i = 0; i < tensors.size(); ++i)
    require_tensor(fn, i, tensors[i].size, {{"ema", tensors[i].ema}, {"param", tensors[i].param}});
  const float omd = static_cast<float>(1.0 - static_cast<double>(decay));
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::ema_update(ctx, tensors, omd);
#endif
  (void)ctx;
  ref::ema_update(tensors, omd);
}

// ---- schedules -------------------------------------------------------------------------------

LrSchedule LrSchedule::constant(double lr) {
  require_nonnegative("genai::LrSchedule::constant", "lr", lr);
  LrSchedule s;
  s.lr = lr;
  return s;
}

LrSchedule LrSchedule::warmup_cosine(double lr, std::int64_t warmup_steps,
                                     std::int64_t total_steps, double min_lr) {
  constexpr const char* fn = "genai::LrSchedule::warmup_cosine";
  require_nonnegative(fn, "lr", lr);
  detail::require_at_least(fn, "warmup_steps", warmup_steps, 0);
  detail::require_at_least(fn, "total_steps", total_steps, warmup_steps + 1);
  require_in(fn, "min_lr", min_lr, 0.0, lr, false);
  LrSchedule s;
  s.kind = Kind::WarmupCosine;
  s.lr = lr;
  s.min_lr = min_lr;
  s.warmup_steps = warmup_steps;
  s.total_steps = total_steps;
  return s;
}

LrSchedule LrSchedule::step_decay(double lr, std::int64_t step_size, double gamma) {
  constexpr const char* fn = "genai::LrSchedule::step_decay";
  require_nonnegative(fn, "lr", lr);
  detail::require_at_least(fn, "step_size", step_size, 1);
  if (!(std::isfinite(gamma) && gamma > 0.0))
    detail::throw_argument(fn, "gamma", "must be finite and > 0 (got ", gamma, ")");
  LrSchedule s;
  s.kind = Kind::StepDecay;
  s.lr = lr;
  s.step_size = step_size;
  s.gamma = gamma;
  return s;
}

double LrSchedule::lr_at(std::int64_t step) const {
  detail::require_at_least("genai::LrSchedule::lr_at", "step", step, 1);
  const auto t = static_cast<double>(step);
  switch (kind) {
    case Kind::Constant: return lr;
    case Kind::StepDecay:
      return lr * std::pow(gamma, static_cast<double>((step - 1) / step_size));
    case Kind::WarmupCosine: {
      if (step <= warmup_steps) return lr * t / static_cast<double>(warmup_steps);
      if (step >= total_steps) return min_lr;
      const double progress = (t - static_cast<double>(warmup_steps)) /
                              static_cast<double>(total_steps - warmup_steps);
      return min_lr + (lr - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
    }
  }
  return lr;
}

// ---- penalties -------------------------------------------------------------------------------

void add_penalty(const Context& ctx, Penalty penalty, const float* w, std::int64_t n,
                 float lambda, float* value, float* grad) {
  constexpr const char* fn = "genai::add_penalty";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "n", n, 0);
  require_nonnegative(fn, "lambda", lambda);
  if (n > 0) detail::require_not_null(fn, "w", w);
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::add_penalty(ctx, penalty, w, n, lambda, value, grad);
#endif
  (void)ctx;
  ref::add_penalty(penalty, w, n, lambda, value, grad);
}

void l1_proximal_step(const Context& ctx, float* w, std::int64_t n, float threshold) {
  constexpr const char* fn = "genai::l1_proximal_step";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "n", n, 0);
  require_nonnegative(fn, "threshold", threshold);
  if (n == 0) return;
  detail::require_not_null(fn, "w", w);
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::l1_proximal_step(ctx, w, n, threshold);
#endif
  (void)ctx;
  ref::l1_proximal_step(w, n, threshold);
}

}  // namespace genai
