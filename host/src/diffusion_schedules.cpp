// genai diffusion module, schedules: beta schedules and their tables, timestep spacings, the
// continuous VP / VE marginals, the names of the enums, and the coefficients of every reverse
// step (detail::step_coeffs), in double.
#include <algorithm>
#include <cmath>
#include <numbers>

#include "genai/diffusion.hpp"
#include "host/src/diffusion_internal.hpp"

namespace genai {
namespace {

using detail::require_timestep;
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

struct Prediction {
  double p, q, r, s;
};

// x0 = p x + q m and eps = r x + s m for a prediction type at alpha_bar ab.
Prediction prediction_coeffs(PredictionType type, double ab) {
  const double sa = std::sqrt(ab), sb = std::sqrt(1.0 - ab);
  switch (type) {
    case PredictionType::Sample: return {0, 1, 1 / sb, -sa / sb};
    case PredictionType::VPrediction: return {sa, -sb, sb, sa};
    case PredictionType::Epsilon: break;
  }
  return {1 / sa, -sb / sa, 0, 1};
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

// ---- step coefficients ---------------------------------------------------------------------

namespace detail {

void require_timestep(const char* fn, const char* arg, std::int64_t t, std::int64_t lo,
                      std::int64_t T) {
  if (t < lo || t >= T)
    throw_argument(fn, arg, "must lie in [", lo, ", ", T - 1, "] (got ", t, ")");
}

StepCoeffs step_coeffs(const NoiseSchedule& sch, SamplerKind kind, std::int64_t t,
                       std::int64_t prev_t, const StepOptions& o) {
  const double ab = sch.alphas_cumprod()[t];
  const double abp = prev_t >= 0 ? sch.alphas_cumprod()[prev_t] : 1.0;
  const Prediction pr = prediction_coeffs(o.prediction_type, ab);
  double a = 0, b = 0, c = 0, sigma = 0;
  switch (kind) {
    case SamplerKind::DDPM: {
      const double alpha_t = ab / abp, beta_t = 1 - alpha_t;
      a = std::sqrt(abp) * beta_t / (1 - ab);
      b = std::sqrt(alpha_t) * (1 - abp) / (1 - ab);
      const double var = o.variance_type == VarianceType::FixedSmall
                             ? std::max((1 - abp) / (1 - ab) * beta_t, 1e-20)
                             : beta_t;
      sigma = prev_t >= 0 ? std::sqrt(var) : 0.0;
      break;
    }
    case SamplerKind::DDIM: {
      const double var = (1 - abp) / (1 - ab) * (1 - ab / abp);
      sigma = o.eta * std::sqrt(var);
      a = std::sqrt(abp);
      c = std::sqrt(std::max(1 - abp - sigma * sigma, 0.0));
      break;
    }
    case SamplerKind::PFOdeEuler:
    case SamplerKind::PFOdeHeun: {
      // xbar' = xbar + (sigma' - sigma) eps, x = sqrt(ab) xbar, sigma = sqrt((1 - ab) / ab).
      const double sg = std::sqrt((1 - ab) / ab), sgp = std::sqrt((1 - abp) / abp);
      b = std::sqrt(abp / ab);
      c = std::sqrt(abp) * (sgp - sg);
      break;
    }
  }
  auto f = [](double v) { return static_cast<float>(v); };
  return {.p = f(pr.p), .q = f(pr.q), .r = f(pr.r), .s = f(pr.s), .a = f(a), .b = f(b), .c = f(c),
          .sigma = f(sigma)};
}

StepCoeffs epsilon_coeffs(const NoiseSchedule& sch, PredictionType type, std::int64_t t) {
  const Prediction pr = prediction_coeffs(type, sch.alphas_cumprod()[t]);
  return {.r = static_cast<float>(pr.r), .s = static_cast<float>(pr.s), .c = 1};
}

}  // namespace detail

}  // namespace genai
