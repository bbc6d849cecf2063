// genai langevin module: targets, argument checks, then the CPU reference or the kernels.
#include "genai/langevin.hpp"

#include <cmath>
#include <limits>

#include "cpu_reference/langevin.hpp"
#include "genai/detail/langevin.hpp"
#include "genai/detail/langevin_chain.hpp"
#include "genai/linalg.hpp"
#include "genai/nvtx.hpp"
#include "host/src/finite.hpp"
#if GENAI_WITH_CUDA
#include "kernels/langevin.cuh"
#endif

namespace genai {

namespace detail {

std::vector<float> pack(const LangevinTarget& t) {
  std::vector<float> p;
  for (float w : t.weights) p.push_back(static_cast<float>(std::log(static_cast<double>(w))));
  p.insert(p.end(), t.means.begin(), t.means.end());
  p.insert(p.end(), t.vars.begin(), t.vars.end());
  p.insert(p.end(), t.chol.begin(), t.chol.end());
  return p;
}

TargetView view(const LangevinTarget& t, const float* packed) {
  const std::int64_t kd = t.K * t.d;
  return {.kind = t.kind,
          .d = static_cast<int>(t.d),
          .K = static_cast<int>(t.K),
          .log_weights = packed,
          .means = packed + t.K,
          .vars = packed + t.K + kd,
          .chol = packed + t.K + 2 * kd,
          .height = t.height,
          .tilt = t.tilt};
}

}  // namespace detail

namespace {

using detail::throw_argument;

void require_finite(const char* fn, const char* arg, const std::vector<float>& v) {
  for (std::size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i])) throw_argument(fn, arg, "entry ", i, " is ", v[i], " (must be finite)");
}

void require_positive(const char* fn, const char* arg, const std::vector<float>& v) {
  for (std::size_t i = 0; i < v.size(); ++i)
    if (!(std::isfinite(v[i]) && v[i] > 0.0f))
      throw_argument(fn, arg, "entry ", i, " is ", v[i], " (must be finite and > 0)");
}

void require_positive(const char* fn, const char* arg, float v) {
  if (!(std::isfinite(v) && v > 0.0f)) throw_argument(fn, arg, "must be finite and > 0 (got ", v, ")");
}

// A lower triangle with a finite, positive diagonal.
void check_cholesky(const char* fn, const char* arg, const std::vector<float>& L, std::int64_t d) {
  for (std::int64_t i = 0; i < d; ++i)
    for (std::int64_t k = 0; k <= i; ++k) {
      const float v = L[i * d + k];
      if (!std::isfinite(v) || (k == i && !(v > 0.0f)))
        throw_argument(fn, arg, "entry (", i, ", ", k, ") is ", v,
                       k == i ? " (the diagonal must be finite and > 0)" : " (must be finite)");
    }
}

// A hand-built target: sizes consistent with kind, d and K.
void check_target(const char* fn, const LangevinTarget& t) {
  detail::require_at_least(fn, "target.d", t.d, 1);
  if (t.d > std::numeric_limits<int>::max()) throw_argument(fn, "target.d", "is too large (", t.d, ")");
  if (t.kind == LangevinTarget::Kind::Custom) {
    if (!t.log_density_grad) throw_argument(fn, "target.log_density_grad", "is empty");
    return;
  }
  if (t.kind == LangevinTarget::Kind::DoubleWell) {
    require_positive(fn, "target.height", t.height);
    if (!std::isfinite(t.tilt)) throw_argument(fn, "target.tilt", "must be finite (got ", t.tilt, ")");
    return;
  }
  detail::require_at_least(fn, "target.K", t.K, 1);
  if (t.K > std::numeric_limits<int>::max()) throw_argument(fn, "target.K", "is too large (", t.K, ")");
  const auto kd = static_cast<std::size_t>(t.K * t.d);
  if (t.weights.size() != static_cast<std::size_t>(t.K) || t.means.size() != kd || t.vars.size() != kd)
    throw_argument(fn, "target", "has ", t.weights.size(), " weights, ", t.means.size(),
                   " means and ", t.vars.size(), " variances (need K = ", t.K, ", K x d = ", kd, ")");
  require_positive(fn, "target.weights", t.weights);
  require_finite(fn, "target.means", t.means);
  require_positive(fn, "target.vars", t.vars);
  if (t.kind == LangevinTarget::Kind::GaussianCholesky) {
    if (t.K != 1 || t.chol.size() != static_cast<std::size_t>(t.d * t.d))
      throw_argument(fn, "target.chol", "has ", t.chol.size(), " entries (need d x d = ", t.d * t.d,
                     ", and K = 1)");
    check_cholesky(fn, "target.chol", t.chol, t.d);
  }
}

}  // namespace

LangevinTarget LangevinTarget::gaussian(std::vector<float> mean, std::vector<float> var) {
  constexpr const char* fn = "genai::LangevinTarget::gaussian";
  if (mean.empty()) throw_argument(fn, "mean", "must have at least one entry");
  if (var.size() != mean.size())
    throw_argument(fn, "var", "has ", var.size(), " entries, mean ", mean.size());
  require_finite(fn, "mean", mean);
  require_positive(fn, "var", var);
  LangevinTarget t;
  t.kind = Kind::Gaussian;
  t.d = static_cast<std::int64_t>(mean.size());
  t.K = 1;
  t.weights = {1.0f};
  t.means = std::move(mean);
  t.vars = std::move(var);
  return t;
}

LangevinTarget LangevinTarget::gaussian_cholesky(std::vector<float> mean, std::vector<float> L) {
  constexpr const char* fn = "genai::LangevinTarget::gaussian_cholesky";
  if (mean.empty()) throw_argument(fn, "mean", "must have at least one entry");
  const auto d = static_cast<std::int64_t>(mean.size());
  if (static_cast<std::int64_t>(L.size()) != d * d)
    throw_argument(fn, "L", "has ", L.size(), " entries (need d x d = ", d * d, ")");
  require_finite(fn, "mean", mean);
  check_cholesky(fn, "L", L, d);
  LangevinTarget t;
  t.kind = Kind::GaussianCholesky;
  t.d = d;
  t.K = 1;
  t.weights = {1.0f};
  t.means = std::move(mean);
  t.vars.assign(d, 1.0f);  // unused: the covariance is L L^T
  t.chol = std::move(L);
  return t;
}

LangevinTarget LangevinTarget::mixture(std::int64_t d, std::vector<float> weights,
                                       std::vector<float> means, std::vector<float> vars) {
  constexpr const char* fn = "genai::LangevinTarget::mixture";
  detail::require_at_least(fn, "d", d, 1);
  const auto K = static_cast<std::int64_t>(weights.size());
  detail::require_at_least(fn, "weights.size()", K, 1);
  if (static_cast<std::int64_t>(means.size()) != K * d)
    throw_argument(fn, "means", "has ", means.size(), " entries (need K x d = ", K * d, ")");
  if (static_cast<std::int64_t>(vars.size()) != K && static_cast<std::int64_t>(vars.size()) != K * d)
    throw_argument(fn, "vars", "has ", vars.size(), " entries (need K = ", K, " or K x d = ", K * d, ")");
  require_positive(fn, "weights", weights);
  require_finite(fn, "means", means);
  require_positive(fn, "vars", vars);
  double total = 0;
  for (float w : weights) total += w;
  for (float& w : weights) w = static_cast<float>(w / total);
  LangevinTarget t;
  t.kind = Kind::Mixture;
  t.d = d;
  t.K = K;
  t.weights = std::move(weights);
  t.means = std::move(means);
  if (static_cast<std::int64_t>(vars.size()) == K && d > 1) {  // isotropic: repeat per dimension
    t.vars.resize(K * d);
    for (std::int64_t k = 0; k < K * d; ++k) t.vars[k] = vars[k / d];
  } else {
    t.vars = std::move(vars);
  }
  return t;
}

LangevinTarget LangevinTarget::double_well(std::int64_t d, float height, float tilt) {
  constexpr const char* fn = "genai::LangevinTarget::double_well";
  detail::require_at_least(fn, "d", d, 1);
  require_positive(fn, "height", height);
  if (!std::isfinite(tilt)) throw_argument(fn, "tilt", "must be finite (got ", tilt, ")");
  LangevinTarget t;
  t.kind = Kind::DoubleWell;
  t.d = d;
  t.K = 0;
  t.height = height;
  t.tilt = tilt;
  return t;
}

LangevinTarget LangevinTarget::gmm8() {
  std::vector<float> means;
  for (int k = 0; k < 8; ++k) {
    const double a = k * std::acos(-1.0) / 4;
    means.push_back(static_cast<float>(4 * std::cos(a)));
    means.push_back(static_cast<float>(4 * std::sin(a)));
  }
  return mixture(2, std::vector<float>(8, 0.125f), means, std::vector<float>(8, 0.25f));
}

LangevinTarget LangevinTarget::two_modes() {
  return mixture(2, {0.8f, 0.2f}, {5.0f, 5.0f, -5.0f, -5.0f}, {1.0f, 1.0f});
}

LangevinTarget LangevinTarget::custom(std::int64_t d, LogDensityGrad f) {
  constexpr const char* fn = "genai::LangevinTarget::custom";
  detail::require_at_least(fn, "d", d, 1);
  if (!f) throw_argument(fn, "f", "is empty");
  LangevinTarget t;
  t.kind = Kind::Custom;
  t.d = d;
  t.K = 0;
  t.log_density_grad = std::move(f);
  return t;
}

LangevinTarget LangevinTarget::noised(float sigma) const {
  constexpr const char* fn = "genai::LangevinTarget::noised";
  if (!(std::isfinite(sigma) && sigma >= 0.0f))
    throw_argument(fn, "sigma", "must be finite and >= 0 (got ", sigma, ")");
  if (kind == Kind::DoubleWell || kind == Kind::GaussianCholesky || kind == Kind::Custom)
    throw_argument(fn, "this", "is a ",
                   kind == Kind::DoubleWell         ? "double well"
                   : kind == Kind::GaussianCholesky ? "Cholesky Gaussian"
                                                    : "custom target",
                   ": noised() takes a diagonal Gaussian or a mixture");
  LangevinTarget t = *this;
  for (float& v : t.vars) v += sigma * sigma;
  return t;
}

namespace detail {

LangevinRun prepare_langevin(const char* fn, const Context& ctx, float* x, std::int64_t chains,
                             std::int64_t d, const LangevinOptions& opts, const char* no_annealing) {
  require_at_least(fn, "chains", chains, 1);
  require_at_least(fn, "d", d, 1);
  if (d > std::numeric_limits<int>::max()) throw_argument(fn, "d", "is too large (", d, ")");
  require_not_null(fn, "x", x);
  require_positive(fn, "opts.step_size", opts.step_size);
  require_positive(fn, "opts.beta", opts.beta);
  require_at_least(fn, "opts.steps", opts.steps, 1);
  const bool annealed = opts.method == LangevinMethod::Annealed;
  if (annealed) {
    if (no_annealing)
      throw_argument(fn, "target", "is ", no_annealing,
                     ": annealing needs a diagonal Gaussian or a mixture target");
    require_at_least(fn, "opts.anneal.levels", opts.anneal.levels, 1);
    if (opts.anneal.levels > std::numeric_limits<int>::max())  // ChainSetup holds levels as int
      throw_argument(fn, "opts.anneal.levels", "is too large (", opts.anneal.levels, ")");
    require_positive(fn, "opts.anneal.sigma_first", opts.anneal.sigma_first);
    require_positive(fn, "opts.anneal.sigma_last", opts.anneal.sigma_last);
    if (opts.anneal.sigma_last > opts.anneal.sigma_first)
      throw_argument(fn, "opts.anneal.sigma_last", "is ", opts.anneal.sigma_last,
                     ", above sigma_first ", opts.anneal.sigma_first);
    if (opts.anneal.first_level < 0 || opts.anneal.first_level >= opts.anneal.levels)
      throw_argument(fn, "opts.anneal.first_level", "must be in [0, ", opts.anneal.levels - 1,
                     "] (got ", opts.anneal.first_level, ")");
    if (opts.anneal.level_count < 0 ||
        opts.anneal.level_count > opts.anneal.levels - opts.anneal.first_level)
      throw_argument(fn, "opts.anneal.level_count", "must be in [0, ",
                     opts.anneal.levels - opts.anneal.first_level, "] from first_level ",
                     opts.anneal.first_level, " (got ", opts.anneal.level_count, ")");
  }
  // Levels this call runs (1 unless annealed).
  const std::int64_t first_level = annealed ? opts.anneal.first_level : 0;
  const std::int64_t levels = !annealed                    ? 1
                              : opts.anneal.level_count > 0 ? opts.anneal.level_count
                                                            : opts.anneal.levels - first_level;
  constexpr std::int64_t kCounters = std::int64_t{1} << 32;  // Philox step counter: 32 bits
  if (opts.steps > kCounters / levels || opts.first_step + opts.steps * levels > kCounters)
    throw_argument(fn, "opts.steps", "times levels from opts.first_step ", opts.first_step,
                   " passes 2^32 steps (got ", opts.steps, " x ", levels, ")");
  const std::int64_t total = opts.steps * levels;
  require_at_least(fn, "opts.thin", opts.thin, 0);
  if (opts.moments && (opts.burn_in < 0 || opts.burn_in >= total))
    throw_argument(fn, "opts.burn_in", "must be in [0, ", total, ") (got ", opts.burn_in, ")");
  const std::int64_t records = opts.thin > 0 ? total / opts.thin : 0;
  const double trajectory_bytes = static_cast<double>(records) * static_cast<double>(chains) *
                                  static_cast<double>(d) * sizeof(float);
  if (trajectory_bytes > static_cast<double>(opts.max_trajectory_bytes))
    throw_argument(fn, "opts.thin", "= ", opts.thin, " records ", records, " x ", chains, " x ",
                   d, " floats = ", trajectory_bytes, " bytes, more than opts.max_trajectory_bytes ",
                   opts.max_trajectory_bytes, " (raise thin or the limit)");
  const std::int64_t n = chains * d;
  const std::int64_t bad = detail::first_non_finite(ctx, x, n);
  if (bad >= 0)
    throw_argument(fn, "x", "chain ", bad / d, " dimension ", bad % d, " is not finite");

  LangevinRun run;
  LangevinResult& r = run.result;
  r.total_steps = total;
  if (records > 0) r.trajectory = Buffer<float>(ctx, static_cast<std::size_t>(records * n));
  if (opts.moments) {
    r.mean = Buffer<float>(ctx, static_cast<std::size_t>(n));
    r.var = Buffer<float>(ctx, static_cast<std::size_t>(n));
  }
  if (opts.method == LangevinMethod::MALA)
    r.accepted = Buffer<std::int64_t>(ctx, static_cast<std::size_t>(chains));
  run.setup = {.method = opts.method,
               .step_size = opts.step_size,
               .beta = opts.beta,
               .steps = opts.steps,
               .levels = static_cast<int>(annealed ? opts.anneal.levels : 1),
               .sigma_first = opts.anneal.sigma_first,
               .sigma_last = opts.anneal.sigma_last,
               .seed = opts.seed,
               .first_step = opts.first_step,
               .chains = chains,
               .d = static_cast<int>(d),
               .burn_in = opts.burn_in,
               .thin = opts.thin,
               .trajectory = records > 0 ? r.trajectory.data() : nullptr,
               .mean = opts.moments ? r.mean.data() : nullptr,
               .var = opts.moments ? r.var.data() : nullptr,
               .accepted = r.accepted.data(),
               .first_level = static_cast<int>(first_level),
               .level_end = static_cast<int>(first_level + levels)};
  return run;
}

}  // namespace detail

double langevin_step_limit(const LangevinTarget& target, LangevinMethod method,
                           const AnnealSchedule& anneal) {
  using Kind = LangevinTarget::Kind;
  constexpr double kNone = std::numeric_limits<double>::infinity();
  if (method == LangevinMethod::MALA || target.kind == Kind::DoubleWell ||
      target.kind == Kind::Custom)
    return kNone;
  double v_min = kNone;
  if (target.kind == Kind::GaussianCholesky) {  // smallest eigenvalue of L L^T: sigma_min(L)^2
    const auto d = target.d;
    std::vector<double> L(static_cast<std::size_t>(d * d), 0.0), S(static_cast<std::size_t>(d));
    for (std::int64_t i = 0; i < d; ++i)
      for (std::int64_t k = 0; k <= i; ++k) L[i * d + k] = target.chol[i * d + k];
    svd(Context::cpu(), L.data(), d, d, {}, {.S = S.data()});
    v_min = S[d - 1] * S[d - 1];
  } else {
    for (float v : target.vars) v_min = std::min(v_min, static_cast<double>(v));
  }
  if (method == LangevinMethod::ULA) return 2 * v_min;
  const double top = anneal.levels > 1 ? anneal.sigma_first : anneal.sigma_last;
  const double last = anneal.sigma_last;
  return 4 * last * last * (v_min + top * top) / (top * top);
}

namespace detail {

void check_divergence(const char* fn, const Context& ctx, const float* x, const ChainSetup& s,
                      double step_limit) {
  const NonFiniteRows bad = non_finite_rows(ctx, x, s.chains, s.d);
  if (bad.count == 0) return;
  const bool annealed = s.method == LangevinMethod::Annealed;
  const int level_end = s.level_end > 0 ? s.level_end : s.levels;
  const std::int64_t steps = s.steps * (annealed ? level_end - s.first_level : 1);
  std::string where = steps == 1 ? concat("step ", s.first_step)
                                 : concat("steps ", s.first_step, "..", s.first_step + steps - 1);
  if (annealed) {
    double sigma_a, sigma_b, h;
    anneal_level(s, s.first_level, sigma_a, h);
    anneal_level(s, level_end - 1, sigma_b, h);
    where = concat("levels ", s.first_level, "..", level_end - 1, " of ", s.levels, " (sigma ",
                   sigma_a, " .. ", sigma_b, "; ", where, ")");
  }
  const char* method = s.method == LangevinMethod::ULA    ? "ULA"
                       : s.method == LangevinMethod::MALA ? "MALA"
                                                          : "annealed Langevin";
  const std::string limit =
      std::isinf(step_limit)
          ? std::string("no stability limit is known for this target: try a smaller step size")
          : concat(method, " is stable on this target for step sizes below ", step_limit);
  throw DivergenceError(concat(fn, ": ", bad.count, " of ", s.chains,
                               " chains diverged (states not finite) during ", where, ", ", method,
                               " with step size ", s.step_size, " (first: chain ", bad.first,
                               "); ", limit));
}

}  // namespace detail

LangevinResult langevin(const Context& ctx, const LangevinTarget& target, float* x,
                        std::int64_t chains, std::int64_t d, const LangevinOptions& opts) {
  constexpr const char* fn = "genai::langevin";
  GENAI_NVTX_RANGE(fn);
  using Kind = LangevinTarget::Kind;
  check_target(fn, target);
  if (d != target.d) throw_argument(fn, "d", "is ", d, " but the target has d = ", target.d);
  if (target.kind == Kind::Custom && ctx.is_cuda())
    throw_argument(fn, "target", "is a custom (host) target: run it with a CPU context, or on the "
                   "GPU through genai::langevin_device with a __device__ functor");
  const char* no_annealing = target.kind == Kind::DoubleWell         ? "a double well"
                             : target.kind == Kind::GaussianCholesky ? "a Cholesky Gaussian"
                             : target.kind == Kind::Custom           ? "a custom target"
                                                                     : nullptr;
  const double limit = langevin_step_limit(target, opts.method, opts.anneal);
  if (opts.step_size >= limit)
    throw_argument(fn, "opts.step_size", "is ", opts.step_size, ", at or past the stability limit ",
                   limit, " of ", opts.method == LangevinMethod::ULA ? "ULA" : "annealed Langevin",
                   " on this target (langevin_step_limit: the chains would diverge)");
  detail::LangevinRun run = detail::prepare_langevin(fn, ctx, x, chains, d, opts, no_annealing);
  if (target.kind == Kind::Custom) {
    const detail::PointerTarget<ref::HostCallable> host{{&target.log_density_grad}, static_cast<int>(d)};
    ref::langevin(host, run.setup, x);
  } else if (ctx.is_cuda()) {
#if GENAI_WITH_CUDA
    cuda::langevin(ctx, target, run.setup, x);
#endif
  } else {
    const std::vector<float> packed = detail::pack(target);
    ref::langevin(detail::view(target, packed.data()), run.setup, x);
  }
  if (opts.check_divergence) detail::check_divergence(fn, ctx, x, run.setup, limit);
  return std::move(run.result);
}

double log_density(const LangevinTarget& target, const double* x, double* grad) {
  constexpr const char* fn = "genai::log_density";
  check_target(fn, target);
  detail::require_not_null(fn, "x", x);
  std::vector<double> g(grad ? 0 : static_cast<std::size_t>(target.d));
  if (!grad) grad = g.data();
  if (target.kind == LangevinTarget::Kind::Custom) return target.log_density_grad(x, grad);
  const std::vector<float> packed = detail::pack(target);
  return detail::view(target, packed.data()).log_density_grad<double, 0>(0.0, x, grad);
}

void brownian_motion(const Context& ctx, float* out, std::int64_t paths, std::int64_t d,
                     std::int64_t steps, float dt, std::uint64_t seed) {
  constexpr const char* fn = "genai::brownian_motion";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "paths", paths, 1);
  detail::require_at_least(fn, "d", d, 1);
  if (d > std::numeric_limits<int>::max()) throw_argument(fn, "d", "is too large (", d, ")");
  detail::require_at_least(fn, "steps", steps, 1);
  if (steps > (std::int64_t{1} << 32)) throw_argument(fn, "steps", "must be <= 2^32 (got ", steps, ")");
  require_positive(fn, "dt", dt);
  detail::require_not_null(fn, "out", out);
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::brownian_motion(ctx, out, paths, static_cast<int>(d), steps, dt, seed);
#endif
  (void)ctx;
  ref::brownian_motion(out, paths, static_cast<int>(d), steps, dt, seed);
}

namespace {
void check_samples(const char* fn, const float* samples, std::int64_t draws, std::int64_t chains,
                   std::int64_t d, const double* out) {
  detail::require_at_least(fn, "draws", draws, 4);
  detail::require_at_least(fn, "chains", chains, 1);
  detail::require_at_least(fn, "d", d, 1);
  detail::require_not_null(fn, "samples", samples);
  detail::require_not_null(fn, "out", out);
}
}  // namespace

void effective_sample_size(const float* samples, std::int64_t draws, std::int64_t chains,
                           std::int64_t d, double* out) {
  constexpr const char* fn = "genai::effective_sample_size";
  GENAI_NVTX_RANGE(fn);
  check_samples(fn, samples, draws, chains, d, out);
  ref::effective_sample_size(samples, draws, chains, d, out);
}

void split_rhat(const float* samples, std::int64_t draws, std::int64_t chains, std::int64_t d,
                double* out) {
  constexpr const char* fn = "genai::split_rhat";
  GENAI_NVTX_RANGE(fn);
  check_samples(fn, samples, draws, chains, d, out);
  ref::split_rhat(samples, draws, chains, d, out);
}

}  // namespace genai
