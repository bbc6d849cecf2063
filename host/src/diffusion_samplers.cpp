// genai diffusion module, samplers: forward noising, the DDPM / DDIM / PF-ODE steps, the sampler
// loop over any model, and the epsilon loss; argument checks, then the CPU reference or the
// kernels.
#include <cmath>

#include "cpu_reference/diffusion.hpp"
#include "genai/buffer.hpp"
#include "genai/diffusion.hpp"
#include "genai/losses.hpp"
#include "genai/nvtx.hpp"
#include "host/src/diffusion_internal.hpp"
#include "host/src/finite.hpp"
#if GENAI_WITH_CUDA
#include "kernels/diffusion.cuh"
#endif

namespace genai {

namespace detail {

void require_shape(const char* fn, std::int64_t n, std::int64_t d) {
  detail::require_at_least(fn, "n", n, 0);
  detail::require_at_least(fn, "d", d, 1);
}

void check_step_options(const char* fn, const StepOptions& o) {
  if (!(std::isfinite(o.eta) && o.eta >= 0))
    throw_argument(fn, "opts.eta", "must be finite and >= 0 (got ", o.eta, ")");
  if (o.clip_sample && !(std::isfinite(o.clip_sample_range) && o.clip_sample_range > 0))
    throw_argument(fn, "opts.clip_sample_range", "must be finite and > 0 (got ",
                   o.clip_sample_range, ")");
}

void check_sampler(const char* fn, const NoiseSchedule& s, std::int64_t n, std::int64_t d,
                   const float* x, const SamplerOptions& o) {
  require_shape(fn, n, d);
  check_step_options(fn, o.step);
  detail::require_at_least(fn, "opts.keep_every", o.keep_every, 0);
  if (n > 0) detail::require_not_null(fn, "x", x);
  if (n > 0 && intermediate_count(s, o) > 0)
    detail::require_not_null(fn, "opts.intermediates", o.intermediates);
}

float clip_of(SamplerKind kind, const StepOptions& o) {
  const bool clips = o.clip_sample && (kind == SamplerKind::DDPM || kind == SamplerKind::DDIM);
  return clips ? static_cast<float>(o.clip_sample_range) : 0.0f;
}

// The dispatch of the per-element kernels shared by the steps and the samplers.
void affine(const Context& ctx, const detail::StepCoeffs& k, const float* x, const float* m,
            std::int64_t n, std::int64_t d, std::uint64_t seed, std::uint32_t step, float clip,
            float* out) {
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::affine_step(ctx, k, x, m, n, d, seed, step, clip, out);
#endif
  (void)ctx;
  ref::affine_step(k, x, m, n, d, seed, step, clip, out);
}

void check_samples(const char* fn, const Context& ctx, const float* x, std::int64_t n,
                   std::int64_t d, const SamplerOptions& o, std::int64_t steps) {
  if (!o.check_divergence) return;
  const NonFiniteRows bad = non_finite_rows(ctx, x, n, d);
  if (bad.count == 0) return;
  const char* names[] = {"ddpm", "ddim", "pf-ode-euler", "pf-ode-heun"};
  throw DivergenceError(concat(fn, ": ", bad.count, " of ", n, " samples are not finite after the ",
                               steps, "-step ", names[static_cast<int>(o.sampler)],
                               " loop (first: sample ", bad.first,
                               "); the model's output or the schedule overflowed"));
}

}  // namespace detail

namespace {

using detail::throw_argument;
using detail::require_shape;
using detail::require_timestep;
using detail::check_step_options;
using detail::clip_of;
using detail::affine;
using detail::check_sampler;

std::vector<float> to_float(const std::vector<double>& v) { return {v.begin(), v.end()}; }

void draw_initial(const Context& ctx, std::int64_t n, std::int64_t d, std::uint64_t seed,
                  std::uint32_t step, float* x) {
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::draw_sampler_noise(ctx, n, d, seed, step, x);
#endif
  (void)ctx;
  ref::draw_sampler_noise(n, d, seed, step, x);
}

void reverse_step(const char* fn, SamplerKind kind, const Context& ctx, const NoiseSchedule& s,
                  std::int64_t t, std::int64_t prev_t, const float* model_output,
                  const float* x_t, std::int64_t n, std::int64_t d, float* x_prev,
                  const StepOptions& o) {
  GENAI_NVTX_RANGE(fn);
  require_shape(fn, n, d);
  require_timestep(fn, "t", t, 0, s.num_train_timesteps());
  require_timestep(fn, "prev_t", prev_t, -1, t);
  check_step_options(fn, o);
  if (n == 0) return;
  detail::require_not_null(fn, "model_output", model_output);
  detail::require_not_null(fn, "x_t", x_t);
  detail::require_not_null(fn, "x_prev", x_prev);
  affine(ctx, detail::step_coeffs(s, kind, t, prev_t, o), x_t, model_output, n, d, o.seed,
         static_cast<std::uint32_t>(t), clip_of(kind, o), x_prev);
}

}  // namespace

// ---- forward noising -----------------------------------------------------------------------

void add_noise(const Context& ctx, const NoiseSchedule& s, const float* x0,
               const std::int64_t* timesteps, std::int64_t n, std::int64_t d, float* x_t,
               const NoiseOptions& o) {
  constexpr const char* fn = "genai::add_noise";
  GENAI_NVTX_RANGE(fn);
  require_shape(fn, n, d);
  if (n == 0) return;
  detail::require_not_null(fn, "x0", x0);
  detail::require_not_null(fn, "timesteps", timesteps);
  detail::require_not_null(fn, "x_t", x_t);
  const std::int64_t T = s.num_train_timesteps();
  auto check_rows = [&](const std::int64_t* ts) {
    for (std::int64_t r = 0; r < n; ++r)
      if (ts[r] < 0 || ts[r] >= T)
        throw_argument(fn, "timesteps", "entry ", r, " is ", ts[r], " (must lie in [0, ", T - 1,
                       "])");
  };
  const auto sa = to_float(s.sqrt_alphas_cumprod()), sb = to_float(s.sqrt_one_minus_alphas_cumprod());
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) {
    std::int64_t lo, hi;
    cuda::timestep_range(ctx, timesteps, n, lo, hi);
    if (lo < 0 || hi >= T) {  // name the first bad entry, as the CPU does
      std::vector<std::int64_t> h(n);
      detail::copy_bytes(ctx, h.data(), Device::CPU, timesteps, Device::CUDA,
                         h.size() * sizeof(std::int64_t));
      check_rows(h.data());
    }
    return cuda::add_noise(ctx, sa, sb, x0, timesteps, n, d, x_t, o);
  }
#endif
  (void)ctx;
  check_rows(timesteps);
  ref::add_noise(sa.data(), sb.data(), x0, timesteps, n, d, x_t, o);
}

// ---- reverse steps and samplers ------------------------------------------------------------

void ddpm_step(const Context& ctx, const NoiseSchedule& s, std::int64_t t, std::int64_t prev_t,
               const float* model_output, const float* x_t, std::int64_t n, std::int64_t d,
               float* x_prev, const StepOptions& o) {
  reverse_step("genai::ddpm_step", SamplerKind::DDPM, ctx, s, t, prev_t, model_output, x_t, n,
               d, x_prev, o);
}

void ddim_step(const Context& ctx, const NoiseSchedule& s, std::int64_t t, std::int64_t prev_t,
               const float* model_output, const float* x_t, std::int64_t n, std::int64_t d,
               float* x_prev, const StepOptions& o) {
  reverse_step("genai::ddim_step", SamplerKind::DDIM, ctx, s, t, prev_t, model_output, x_t, n,
               d, x_prev, o);
}

std::vector<std::int64_t> sampler_timesteps(const NoiseSchedule& s, const SamplerOptions& o) {
  constexpr const char* fn = "genai::sample";
  const std::int64_t T = s.num_train_timesteps();
  if (o.timesteps.empty())
    return inference_timesteps(T, o.num_inference_steps, o.timestep_spacing, o.steps_offset);
  for (std::size_t i = 0; i < o.timesteps.size(); ++i) {
    require_timestep(fn, "opts.timesteps", o.timesteps[i], 0, T);
    if (i > 0 && o.timesteps[i] >= o.timesteps[i - 1])
      throw_argument(fn, "opts.timesteps", "must be strictly descending (entry ", i, " is ",
                     o.timesteps[i], " after ", o.timesteps[i - 1], ")");
  }
  return o.timesteps;
}

std::int64_t intermediate_count(const NoiseSchedule& s, const SamplerOptions& o) {
  if (o.keep_every <= 0) return 0;
  return static_cast<std::int64_t>(sampler_timesteps(s, o).size()) / o.keep_every;
}

void sample(const Context& ctx, const NoiseSchedule& s, const Model& model, std::int64_t n,
            std::int64_t d, float* x, const SamplerOptions& o) {
  constexpr const char* fn = "genai::sample";
  GENAI_NVTX_RANGE(fn);
  if (!model) throw_argument(fn, "model", "must not be empty");
  check_sampler(fn, s, n, d, x, o);
  const auto ts = sampler_timesteps(s, o);
  if (n == 0) return;
  const std::uint64_t seed = o.step.seed;
  const auto T = static_cast<std::uint32_t>(s.num_train_timesteps());
  if (o.draw_initial_noise) draw_initial(ctx, n, d, seed, T, x);
  const auto N = static_cast<std::int64_t>(ts.size());
  const std::size_t nd = static_cast<std::size_t>(n * d);
  Buffer<float> m(ctx, nd), e1, xe;
  if (o.sampler == SamplerKind::PFOdeHeun) {
    e1 = Buffer<float>(ctx, nd);
    xe = Buffer<float>(ctx, nd);
  }
  const float clip = clip_of(o.sampler, o.step);
  for (std::int64_t i = 0; i < N; ++i) {
    const std::int64_t t = ts[i], prev = i + 1 < N ? ts[i + 1] : -1;
    const auto step = static_cast<std::uint32_t>(t);
    model(ctx, t, x, n, d, m.data());
    const detail::StepCoeffs k = detail::step_coeffs(s, o.sampler, t, prev, o.step);
    if (o.sampler != SamplerKind::PFOdeHeun) {
      affine(ctx, k, x, m.data(), n, d, seed, step, clip, x);
    } else {
      // Heun: d1 = eps(x, t); xe = b x + c d1; d2 = eps(xe, prev); x = b x + c (d1 + d2) / 2.
      affine(ctx, detail::epsilon_coeffs(s, o.step.prediction_type, t), x, m.data(), n, d, seed,
             step, 0, e1.data());
      affine(ctx, {.s = 1, .b = k.b, .c = k.c}, x, e1.data(), n, d, seed, step, 0, xe.data());
      if (prev < 0) {
        detail::copy_bytes(ctx, x, ctx.device(), xe.data(), ctx.device(), nd * sizeof(float));
      } else {
        model(ctx, prev, xe.data(), n, d, m.data());
        affine(ctx, detail::epsilon_coeffs(s, o.step.prediction_type, prev), xe.data(), m.data(), n,
               d, seed, step, 0, m.data());
        affine(ctx, {.r = 1, .s = 1, .c = 1}, e1.data(), m.data(), n, d, seed, step, 0,
               e1.data());
        affine(ctx, {.s = 1, .b = k.b, .c = 0.5f * k.c}, x, e1.data(), n, d, seed, step, 0, x);
      }
    }
    if (o.keep_every > 0 && (i + 1) % o.keep_every == 0)
      detail::copy_bytes(ctx, o.intermediates + ((i + 1) / o.keep_every - 1) * n * d,
                         ctx.device(), x, ctx.device(), nd * sizeof(float));
    if (o.progress) o.progress(i + 1, N);
  }
  detail::check_samples(fn, ctx, x, n, d, o, N);
}

void sample_annealed_langevin(const Context& ctx, const NoiseSchedule& s, const Model& model,
                              std::int64_t n, std::int64_t d, float* x,
                              const AnnealedLangevinOptions& o) {
  constexpr const char* fn = "genai::sample_annealed_langevin";
  GENAI_NVTX_RANGE(fn);
  if (!model) throw_argument(fn, "model", "must not be empty");
  require_shape(fn, n, d);
  detail::require_at_least(fn, "opts.steps_per_level", o.steps_per_level, 1);
  if (!(std::isfinite(o.step_scale) && o.step_scale > 0 && o.step_scale < 2))
    throw_argument(fn, "opts.step_scale", "must be in (0, 2) (got ", o.step_scale, ")");
  if (!(std::isfinite(o.step_size) && o.step_size >= 0))
    throw_argument(fn, "opts.step_size", "must be finite and >= 0 (got ", o.step_size, ")");
  SamplerOptions levels{.num_inference_steps = o.num_levels,
                        .timestep_spacing = o.timestep_spacing,
                        .timesteps = o.timesteps,
                        .step = {.prediction_type = o.prediction_type}};
  const auto ts = sampler_timesteps(s, levels);
  const std::int64_t T = s.num_train_timesteps();
  const auto total = static_cast<double>(ts.size()) * static_cast<double>(o.steps_per_level);
  if (static_cast<double>(T) + 1 + total > 4294967295.0)
    throw_argument(fn, "opts.steps_per_level", "gives ", total, " Langevin steps: past the 2^32 "
                   "Philox steps after T + 1 = ", T + 1);
  if (n > 0) detail::require_not_null(fn, "x", x);
  if (n == 0) return;
  if (o.draw_initial_noise) draw_initial(ctx, n, d, o.seed, static_cast<std::uint32_t>(T), x);
  Buffer<float> m(ctx, static_cast<std::size_t>(n * d));
  const auto& ab = s.alphas_cumprod();
  auto step = static_cast<std::uint32_t>(T + 1);
  for (std::size_t l = 0; l < ts.size(); ++l) {
    const std::int64_t t = ts[l];
    if (l > 0)  // xbar carried over: x scaled by sqrt(ab_t / ab_t')
      affine(ctx, {.b = static_cast<float>(std::sqrt(ab[t] / ab[ts[l - 1]]))}, x, x, n, d, o.seed,
             step, 0, x);
    const double sb = std::sqrt(1 - ab[t]);
    const double h = o.step_size > 0 ? o.step_size : o.step_scale * (1 - ab[t]);
    detail::StepCoeffs k = detail::epsilon_coeffs(s, o.prediction_type, t);
    k.b = 1;
    k.c = static_cast<float>(-h / sb);  // h score = -(h / sb) eps
    k.sigma = static_cast<float>(std::sqrt(2 * h));
    for (std::int64_t i = 0; i < o.steps_per_level; ++i, ++step) {
      model(ctx, t, x, n, d, m.data());
      affine(ctx, k, x, m.data(), n, d, o.seed, step, 0, x);
    }
  }
  if (!o.check_divergence) return;
  const detail::NonFiniteRows bad = detail::non_finite_rows(ctx, x, n, d);
  if (bad.count > 0)
    throw DivergenceError(detail::concat(fn, ": ", bad.count, " of ", n, " samples are not finite "
                                         "after ", ts.size(), " levels of ", o.steps_per_level,
                                         " steps (first: sample ", bad.first, "); h_t = ",
                                         o.step_size > 0 ? "step_size" : "step_scale (1 - ab_t)",
                                         " too large for the model's score?"));
}

// ---- loss ----------------------------------------------------------------------------------

void eps_mse_loss(const Context& ctx, const float* prediction, const float* target,
                  std::int64_t n, std::int64_t d, float* row_loss, float* grad) {
  constexpr const char* fn = "genai::eps_mse_loss";
  GENAI_NVTX_RANGE(fn);
  require_shape(fn, n, d);
  if (n == 0) return;
  detail::require_not_null(fn, "prediction", prediction);
  detail::require_not_null(fn, "target", target);
  detail::require_not_null(fn, "row_loss", row_loss);
  // The losses module's mean squared error: row means and the gradient of their mean.
  mse_loss(ctx, prediction, target, n, d, {.row_loss = row_loss, .grad = grad});
}

}  // namespace genai
