// genai diffusion module: schedules, argument checks, then the CPU reference or the kernels.
#include "genai/diffusion.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <span>

#include "cpu_reference/diffusion.hpp"
#include "genai/buffer.hpp"
#include "genai/losses.hpp"
#include "genai/nvtx.hpp"
#if GENAI_WITH_CUDA
#include "kernels/diffusion.cuh"
#endif

namespace genai {
namespace {

using detail::throw_argument;

template <class E>
struct Named {
  const char* name;
  E value;
};

template <class E, std::size_t N>
E parse(const char* fn, const std::string& name, const Named<E> (&table)[N]) {
  std::string valid;
  for (const auto& e : table) {
    if (name == e.name) return e.value;
    valid += valid.empty() ? e.name : std::string(", ") + e.name;
  }
  throw_argument(fn, "name", "'", name, "' is unknown (valid: ", valid, ")");
}

void require_finite_in(const char* fn, const char* arg, double v, double lo, double hi) {
  if (!(v > lo && v < hi))
    throw_argument(fn, arg, "must lie in (", lo, ", ", hi, ") (got ", v, ")");
}

void require_shape(const char* fn, std::int64_t n, std::int64_t d) {
  detail::require_at_least(fn, "n", n, 0);
  detail::require_at_least(fn, "d", d, 1);
}

void require_timestep(const char* fn, const char* arg, std::int64_t t, std::int64_t lo,
                      std::int64_t T) {
  if (t < lo || t >= T)
    throw_argument(fn, arg, "must lie in [", lo, ", ", T - 1, "] (got ", t, ")");
}

void check_step_options(const char* fn, const StepOptions& o) {
  if (!(std::isfinite(o.eta) && o.eta >= 0))
    throw_argument(fn, "opts.eta", "must be finite and >= 0 (got ", o.eta, ")");
  if (o.clip_sample && !(std::isfinite(o.clip_sample_range) && o.clip_sample_range > 0))
    throw_argument(fn, "opts.clip_sample_range", "must be finite and > 0 (got ",
                   o.clip_sample_range, ")");
}

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

std::vector<float> to_float(const std::vector<double>& v) { return {v.begin(), v.end()}; }

// The dispatch of the per-element kernels shared by the steps and the samplers.
void affine(const Context& ctx, const ref::StepCoeffs& k, const float* x, const float* m,
            std::int64_t n, std::int64_t d, std::uint64_t seed, std::uint32_t step, float clip,
            float* out) {
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::affine_step(ctx, k, x, m, n, d, seed, step, clip, out);
#endif
  (void)ctx;
  ref::affine_step(k, x, m, n, d, seed, step, clip, out);
}

void draw_initial(const Context& ctx, std::int64_t n, std::int64_t d, std::uint64_t seed,
                  std::uint32_t step, float* x) {
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::draw_sampler_noise(ctx, n, d, seed, step, x);
#endif
  (void)ctx;
  ref::draw_sampler_noise(n, d, seed, step, x);
}

float clip_of(SamplerKind kind, const StepOptions& o) {
  const bool clips = o.clip_sample && (kind == SamplerKind::DDPM || kind == SamplerKind::DDIM);
  return clips ? static_cast<float>(o.clip_sample_range) : 0.0f;
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
  affine(ctx, ref::step_coeffs(s, kind, t, prev_t, o), x_t, model_output, n, d, o.seed,
         static_cast<std::uint32_t>(t), clip_of(kind, o), x_prev);
}

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

void check_sampler(const char* fn, const NoiseSchedule& s, std::int64_t n, std::int64_t d,
                   const float* x, const SamplerOptions& o) {
  require_shape(fn, n, d);
  check_step_options(fn, o.step);
  detail::require_at_least(fn, "opts.keep_every", o.keep_every, 0);
  if (n > 0) detail::require_not_null(fn, "x", x);
  if (n > 0 && intermediate_count(s, o) > 0)
    detail::require_not_null(fn, "opts.intermediates", o.intermediates);
}

}  // namespace

// ---- names ---------------------------------------------------------------------------------

BetaSchedule parse_beta_schedule(const std::string& name) {
  static constexpr Named<BetaSchedule> table[] = {
      {"linear", BetaSchedule::Linear},
      {"scaled_linear", BetaSchedule::ScaledLinear},
      {"squaredcos_cap_v2", BetaSchedule::SquaredCosCapV2},
      {"cosine", BetaSchedule::SquaredCosCapV2},
      {"sigmoid", BetaSchedule::Sigmoid}};
  return parse("genai::parse_beta_schedule", name, table);
}
TimestepSpacing parse_timestep_spacing(const std::string& name) {
  static constexpr Named<TimestepSpacing> table[] = {{"leading", TimestepSpacing::Leading},
                                                     {"trailing", TimestepSpacing::Trailing},
                                                     {"linspace", TimestepSpacing::Linspace}};
  return parse("genai::parse_timestep_spacing", name, table);
}
VarianceType parse_variance_type(const std::string& name) {
  static constexpr Named<VarianceType> table[] = {{"fixed_small", VarianceType::FixedSmall},
                                                  {"fixed_large", VarianceType::FixedLarge}};
  return parse("genai::parse_variance_type", name, table);
}
PredictionType parse_prediction_type(const std::string& name) {
  static constexpr Named<PredictionType> table[] = {
      {"epsilon", PredictionType::Epsilon},
      {"sample", PredictionType::Sample},
      {"v_prediction", PredictionType::VPrediction}};
  return parse("genai::parse_prediction_type", name, table);
}
SamplerKind parse_sampler(const std::string& name) {
  static constexpr Named<SamplerKind> table[] = {{"ddpm", SamplerKind::DDPM},
                                                 {"ddim", SamplerKind::DDIM},
                                                 {"pf-ode", SamplerKind::PFOdeHeun},
                                                 {"pf-ode-heun", SamplerKind::PFOdeHeun},
                                                 {"pf-ode-euler", SamplerKind::PFOdeEuler}};
  return parse("genai::parse_sampler", name, table);
}

// ---- schedules -----------------------------------------------------------------------------

NoiseSchedule::NoiseSchedule(const char* fn, const std::vector<double>& betas) {
  detail::require_at_least(fn, "T", static_cast<std::int64_t>(betas.size()), 1);
  for (std::size_t i = 0; i < betas.size(); ++i)
    if (!(betas[i] > 0 && betas[i] < 1))
      throw_argument(fn, "betas", "entry ", i, " is ", betas[i], " (must lie in (0, 1))");
  beta_ = betas;
  double prod = 1;
  for (double b : beta_) {
    alpha_.push_back(1 - b);
    prod *= 1 - b;
    alpha_bar_.push_back(prod);
    sqrt_alpha_bar_.push_back(std::sqrt(prod));
    sqrt_one_minus_.push_back(std::sqrt(1 - prod));
    snr_.push_back(prod / (1 - prod));
  }
}

namespace {
std::vector<double> make_betas(const ScheduleOptions& o) {
  constexpr const char* fn = "genai::NoiseSchedule";
  detail::require_at_least(fn, "opts.num_train_timesteps", o.num_train_timesteps, 1);
  const std::int64_t T = o.num_train_timesteps;
  if (o.beta_schedule == BetaSchedule::SquaredCosCapV2) {
    require_finite_in(fn, "opts.max_beta", o.max_beta, 0, 1);
  } else {
    require_finite_in(fn, "opts.beta_start", o.beta_start, 0, 1);
    require_finite_in(fn, "opts.beta_end", o.beta_end, 0, 1);
  }
  std::vector<double> b(T);
  const double span = T > 1 ? static_cast<double>(T - 1) : 1.0;
  for (std::int64_t i = 0; i < T; ++i) {
    const double u = static_cast<double>(i) / span;  // linspace(0, 1, T)
    switch (o.beta_schedule) {
      case BetaSchedule::Linear: b[i] = o.beta_start + (o.beta_end - o.beta_start) * u; break;
      case BetaSchedule::ScaledLinear: {
        const double s0 = std::sqrt(o.beta_start), s1 = std::sqrt(o.beta_end);
        b[i] = (s0 + (s1 - s0) * u) * (s0 + (s1 - s0) * u);
        break;
      }
      case BetaSchedule::SquaredCosCapV2: {
        auto f = [](double s) {
          const double c = std::cos((s + 0.008) / 1.008 * std::numbers::pi / 2);
          return c * c;
        };
        const double Td = static_cast<double>(T);
        b[i] = std::min(1 - f((i + 1) / Td) / f(i / Td), o.max_beta);
        break;
      }
      case BetaSchedule::Sigmoid:
        b[i] = o.beta_start + (o.beta_end - o.beta_start) / (1 + std::exp(6 - 12 * u));
        break;
    }
  }
  return b;
}
}  // namespace

NoiseSchedule::NoiseSchedule(const ScheduleOptions& opts)
    : NoiseSchedule("genai::NoiseSchedule", make_betas(opts)) {}

NoiseSchedule NoiseSchedule::from_betas(const std::vector<double>& betas) {
  return NoiseSchedule("genai::NoiseSchedule::from_betas", betas);
}

std::vector<std::int64_t> inference_timesteps(std::int64_t T, std::int64_t N,
                                              TimestepSpacing spacing, std::int64_t offset) {
  constexpr const char* fn = "genai::inference_timesteps";
  detail::require_at_least(fn, "num_train_timesteps", T, 1);
  detail::require_at_least(fn, "num_inference_steps", N, 1);
  if (N > T)
    throw_argument(fn, "num_inference_steps", "must be <= num_train_timesteps ", T, " (got ",
                   N, ")");
  std::vector<std::int64_t> ts(N);
  for (std::int64_t i = 0; i < N; ++i) {
    const std::int64_t k = N - 1 - i;
    switch (spacing) {
      case TimestepSpacing::Leading: ts[i] = k * (T / N) + offset; break;
      case TimestepSpacing::Trailing:
        ts[i] = static_cast<std::int64_t>(std::nearbyint(
                    static_cast<double>(T) - static_cast<double>(i) * T / static_cast<double>(N))) -
                1;
        break;
      case TimestepSpacing::Linspace:
        ts[i] = N == 1 ? 0
                       : static_cast<std::int64_t>(std::nearbyint(
                             static_cast<double>(k) * (T - 1) / static_cast<double>(N - 1)));
        break;
    }
  }
  for (std::int64_t t : ts) require_timestep(fn, "steps_offset", t, 0, T);
  return ts;
}

double vp_alpha_bar(double t, double beta_min, double beta_max) {
  return std::exp(-beta_min * t - 0.5 * (beta_max - beta_min) * t * t);
}

double ve_sigma(double t, double sigma_min, double sigma_max) {
  return sigma_min * std::pow(sigma_max / sigma_min, t);
}

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
    const ref::StepCoeffs k = ref::step_coeffs(s, o.sampler, t, prev, o.step);
    if (o.sampler != SamplerKind::PFOdeHeun) {
      affine(ctx, k, x, m.data(), n, d, seed, step, clip, x);
    } else {
      // Heun: d1 = eps(x, t); xe = b x + c d1; d2 = eps(xe, prev); x = b x + c (d1 + d2) / 2.
      affine(ctx, ref::epsilon_coeffs(s, o.step.prediction_type, t), x, m.data(), n, d, seed,
             step, 0, e1.data());
      affine(ctx, {0, 0, 0, 1, 0, k.b, k.c, 0}, x, e1.data(), n, d, seed, step, 0, xe.data());
      if (prev < 0) {
        detail::copy_bytes(ctx, x, ctx.device(), xe.data(), ctx.device(), nd * sizeof(float));
      } else {
        model(ctx, prev, xe.data(), n, d, m.data());
        affine(ctx, ref::epsilon_coeffs(s, o.step.prediction_type, prev), xe.data(), m.data(), n,
               d, seed, step, 0, m.data());
        affine(ctx, {0, 0, 1, 1, 0, 0, 1, 0}, e1.data(), m.data(), n, d, seed, step, 0,
               e1.data());
        affine(ctx, {0, 0, 0, 1, 0, k.b, 0.5f * k.c, 0}, x, e1.data(), n, d, seed, step, 0, x);
      }
    }
    if (o.keep_every > 0 && (i + 1) % o.keep_every == 0)
      detail::copy_bytes(ctx, o.intermediates + ((i + 1) / o.keep_every - 1) * n * d,
                         ctx.device(), x, ctx.device(), nd * sizeof(float));
    if (o.progress) o.progress(i + 1, N);
  }
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
#if GENAI_WITH_CUDA
  const bool fusable = o.sampler == SamplerKind::DDPM || o.sampler == SamplerKind::DDIM;
  if (ctx.is_cuda() && fusable && cuda::fused_supported(m.d, m.K)) {
    const auto ts = sampler_timesteps(s, o);
    if (n == 0) return;
    std::vector<cuda::FusedStep> steps;
    for (std::size_t i = 0; i < ts.size(); ++i) {
      const std::int64_t prev = i + 1 < ts.size() ? ts[i + 1] : -1;
      steps.push_back({ref::step_coeffs(s, o.sampler, ts[i], prev, o.step),
                       s.alphas_cumprod()[ts[i]],
                       static_cast<std::uint32_t>(ts[i])});
    }
    cuda::sample_mixture_fused(ctx, m, steps, n, o.step.seed,
                               static_cast<std::uint32_t>(s.num_train_timesteps()),
                               o.draw_initial_noise, clip_of(o.sampler, o.step), o.keep_every,
                               o.intermediates, x);
    if (o.progress) o.progress(static_cast<std::int64_t>(ts.size()),
                               static_cast<std::int64_t>(ts.size()));
    return;
  }
#endif
  sample(ctx, s, mixture_model(m, s), n, m.d, x, o);
}

}  // namespace genai
