// genai diffusion module, Gaussian mixtures: presets, draws, the exact score and epsilon of a
// noised mixture (detail::noised_mixture's table), the mixture as a sampler model, and the fused
// GPU sampler's dispatch.
#include <algorithm>
#include <cmath>
#include <numbers>

#include "cpu_reference/diffusion.hpp"
#include "genai/diffusion.hpp"
#include "genai/nvtx.hpp"
#include "host/src/diffusion_internal.hpp"
#if GENAI_WITH_CUDA
#include "kernels/diffusion.cuh"
#endif

namespace genai {

namespace detail {

void check_mixture(const char* fn, const GaussianMixture& m) {
  detail::require_at_least(fn, "mixture.K", m.K, 1);
  detail::require_at_least(fn, "mixture.d", m.d, 1);
  const auto K = static_cast<std::size_t>(m.K), Kd = static_cast<std::size_t>(m.K * m.d);
  if (m.weights.size() != K)
    throw_argument(fn, "mixture.weights", "has ", m.weights.size(), " entries, K = ", m.K);
  if (m.means.size() != Kd)
    throw_argument(fn, "mixture.means", "has ", m.means.size(), " entries, K x d = ", Kd);
  if (m.variances.size() != Kd)
    throw_argument(fn, "mixture.variances", "has ", m.variances.size(), " entries, K x d = ", Kd);
  double sum = 0;
  for (std::size_t k = 0; k < K; ++k) {
    if (!(std::isfinite(m.weights[k]) && m.weights[k] > 0))
      throw_argument(fn, "mixture.weights", "entry ", k, " is ", m.weights[k],
                     " (must be finite and > 0)");
    sum += m.weights[k];
  }
  if (std::abs(sum - 1) > 1e-4)
    throw_argument(fn, "mixture.weights", "sum to ", sum, " (must be 1 within 1e-4)");
  for (std::size_t i = 0; i < Kd; ++i) {
    if (!std::isfinite(m.means[i]))
      throw_argument(fn, "mixture.means", "entry ", i, " is ", m.means[i], " (must be finite)");
    if (!(std::isfinite(m.variances[i]) && m.variances[i] > 0))
      throw_argument(fn, "mixture.variances", "entry ", i, " is ", m.variances[i],
                     " (must be finite and > 0)");
  }
}

NoisedMixture noised_mixture(const GaussianMixture& m, double alpha_bar) {
  const std::int64_t K = m.K, d = m.d;
  const double sa = std::sqrt(alpha_bar);
  NoisedMixture t{std::vector<double>(K), std::vector<double>(K * d), std::vector<double>(K * d)};
  for (std::int64_t k = 0; k < K; ++k) {
    double lc = std::log(static_cast<double>(m.weights[k]));
    for (std::int64_t j = 0; j < d; ++j) {
      const double v = alpha_bar * m.variances[k * d + j] + (1 - alpha_bar);
      t.center[k * d + j] = sa * m.means[k * d + j];
      t.inv_v[k * d + j] = 1 / v;
      lc -= 0.5 * std::log(v);
    }
    t.log_c[k] = lc;
  }
  return t;
}

}  // namespace detail

namespace {

using detail::throw_argument;
using detail::check_mixture;
using detail::check_sampler;
using detail::clip_of;
using detail::require_timestep;

void check_mixture_call(const char* fn, const GaussianMixture& m, double alpha_bar,
                        const float* x, std::int64_t n, const float* out) {
  check_mixture(fn, m);
  detail::require_at_least(fn, "n", n, 0);
  if (!(alpha_bar > 0 && alpha_bar <= 1))
    throw_argument(fn, "alpha_bar", "must lie in (0, 1] (got ", alpha_bar, ")");
  if (n == 0) return;
  detail::require_not_null(fn, "x", x);
  detail::require_not_null(fn, "out", out);
}

void mixture_scaled(const Context& ctx, const GaussianMixture& m, double alpha_bar,
                    const float* x, std::int64_t n, double scale, float* out) {
  if (n == 0) return;
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::mixture_score(ctx, m, alpha_bar, x, n, scale, out);
#endif
  (void)ctx;
  ref::mixture_score(m, alpha_bar, x, n, scale, out);
}

}  // namespace

// ---- Gaussian mixtures ---------------------------------------------------------------------

GaussianMixture GaussianMixture::isotropic(std::vector<float> weights, std::vector<float> means,
                                           std::int64_t d, const std::vector<float>& variances) {
  GaussianMixture m;
  m.K = static_cast<std::int64_t>(weights.size());
  m.d = d;
  m.weights = std::move(weights);
  m.means = std::move(means);
  for (float v : variances) m.variances.insert(m.variances.end(), std::max<std::int64_t>(d, 0), v);
  check_mixture("genai::GaussianMixture::isotropic", m);
  return m;
}

GaussianMixture GaussianMixture::preset(const std::string& name) {
  if (name == "two_modes")
    return isotropic({0.8f, 0.2f}, {5, 5, -5, -5}, 2, {1, 1});
  if (name == "gmm8") {
    std::vector<float> means;
    for (int k = 0; k < 8; ++k) {
      const double a = 2 * std::numbers::pi * k / 8;
      means.push_back(static_cast<float>(4 * std::cos(a)));
      means.push_back(static_cast<float>(4 * std::sin(a)));
    }
    return isotropic(std::vector<float>(8, 0.125f), means, 2, std::vector<float>(8, 0.04f));
  }
  throw_argument("genai::GaussianMixture::preset", "name", "'", name,
                 "' is unknown (valid: gmm8, two_modes)");
}

void mixture_draw(const GaussianMixture& m, std::int64_t n, RngKey key, float* out) {
  constexpr const char* fn = "genai::mixture_draw";
  check_mixture(fn, m);
  detail::require_at_least(fn, "n", n, 0);
  if (n > 0) detail::require_not_null(fn, "out", out);
  const std::int64_t d = m.d, nb = (d + 3) / 4;
  for (std::int64_t r = 0; r < n; ++r) {
    const float u = rng::uniform4(key.seed, key.stream, static_cast<std::uint64_t>(r),
                                  key.step + 1).v[0];
    std::int64_t k = 0;
    double cum = m.weights[0];
    while (k + 1 < m.K && u > cum) cum += m.weights[++k];
    for (std::int64_t jb = 0; jb < nb; ++jb) {
      const rng::Float4 z =
          rng::normal4(key.seed, key.stream, static_cast<std::uint64_t>(r * nb + jb), key.step);
      for (std::int64_t j = jb * 4; j < std::min(d, jb * 4 + 4); ++j)
        out[r * d + j] = static_cast<float>(m.means[k * d + j] +
                                            std::sqrt(double(m.variances[k * d + j])) * z.v[j % 4]);
    }
  }
}

void mixture_score(const Context& ctx, const GaussianMixture& m, double alpha_bar,
                   const float* x, std::int64_t n, float* score) {
  constexpr const char* fn = "genai::mixture_score";
  GENAI_NVTX_RANGE(fn);
  check_mixture_call(fn, m, alpha_bar, x, n, score);
  mixture_scaled(ctx, m, alpha_bar, x, n, 1.0, score);
}

void mixture_epsilon(const Context& ctx, const GaussianMixture& m, double alpha_bar,
                     const float* x, std::int64_t n, float* eps) {
  constexpr const char* fn = "genai::mixture_epsilon";
  GENAI_NVTX_RANGE(fn);
  check_mixture_call(fn, m, alpha_bar, x, n, eps);
  mixture_scaled(ctx, m, alpha_bar, x, n, -std::sqrt(1 - alpha_bar), eps);
}

Model mixture_model(const GaussianMixture& m, const NoiseSchedule& schedule) {
  check_mixture("genai::mixture_model", m);
  return [m, ab = schedule.alphas_cumprod()](const Context& ctx, std::int64_t t, const float* x,
                                              std::int64_t n, std::int64_t d, float* out) {
    if (d != m.d)
      throw_argument("genai::mixture_model", "d", "must equal the mixture's d = ", m.d,
                     " (got ", d, ")");
    require_timestep("genai::mixture_model", "t", t, 0, static_cast<std::int64_t>(ab.size()));
    mixture_epsilon(ctx, m, ab[t], x, n, out);
  };
}

void sample_mixture(const Context& ctx, const NoiseSchedule& s, const GaussianMixture& m,
                    std::int64_t n, float* x, const SamplerOptions& o) {
  constexpr const char* fn = "genai::sample_mixture";
  GENAI_NVTX_RANGE(fn);
  check_mixture(fn, m);
  check_sampler(fn, s, n, m.d, x, o);
  if (o.step.prediction_type != PredictionType::Epsilon)
    throw_argument(fn, "opts.step.prediction_type",
                   "must be epsilon (the mixture model predicts epsilon)");
  // The fused loops (every step of a row in one pass): the kernels for DDPM and DDIM, the CPU for
  // every sampler with one model call per step unless progress is reported step by step.
  const auto fused_steps = [&](auto step_type) {
    const auto ts = sampler_timesteps(s, o);
    std::vector<decltype(step_type)> steps;
    for (std::size_t i = 0; i < ts.size(); ++i) {
      const std::int64_t prev = i + 1 < ts.size() ? ts[i + 1] : -1;
      steps.push_back({detail::step_coeffs(s, o.sampler, ts[i], prev, o.step),
                       s.alphas_cumprod()[ts[i]], static_cast<std::uint32_t>(ts[i])});
    }
    return steps;
  };
  const auto T = static_cast<std::uint32_t>(s.num_train_timesteps());
  const float clip = clip_of(o.sampler, o.step);
#if GENAI_WITH_CUDA
  const bool fusable = o.sampler == SamplerKind::DDPM || o.sampler == SamplerKind::DDIM;
  if (ctx.is_cuda() && fusable && cuda::fused_supported(m.d, m.K)) {
    const auto steps = fused_steps(cuda::FusedStep{});
    if (n == 0) return;
    cuda::sample_mixture_fused(ctx, m, steps, n, o.step.seed, T, o.draw_initial_noise, clip,
                               o.keep_every, o.intermediates, x);
    if (o.progress) o.progress(static_cast<std::int64_t>(steps.size()),
                               static_cast<std::int64_t>(steps.size()));
    detail::check_samples(fn, ctx, x, n, m.d, o, static_cast<std::int64_t>(steps.size()));
    return;
  }
#endif
  if (!ctx.is_cuda() && o.sampler != SamplerKind::PFOdeHeun && !o.progress) {
    const auto steps = fused_steps(ref::MixtureStep{});
    if (n == 0) return;
    ref::sample_mixture(m, steps, n, o.step.seed, T, o.draw_initial_noise, clip, o.keep_every,
                        o.intermediates, x);
    detail::check_samples(fn, ctx, x, n, m.d, o, static_cast<std::int64_t>(steps.size()));
    return;
  }
  sample(ctx, s, mixture_model(m, s), n, m.d, x, o);
}

}  // namespace genai
