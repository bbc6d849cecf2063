// genai ode module: problems, argument checks, then the CPU reference or the kernels.
#include "genai/ode.hpp"

#include <cmath>
#include <limits>
#include <span>

#include "cpu_reference/ode.hpp"
#include "genai/detail/ode.hpp"
#include "genai/nvtx.hpp"
#include "host/src/finite.hpp"
#if GENAI_WITH_CUDA
#include "kernels/ode.cuh"
#endif

namespace genai {
namespace {

using detail::throw_argument;

void require_finite(const char* fn, const char* arg, double v) {
  if (!std::isfinite(v)) throw_argument(fn, arg, "must be finite (got ", v, ")");
}

void require_positive(const char* fn, const char* arg, double v) {
  if (!(std::isfinite(v) && v > 0)) throw_argument(fn, arg, "must be finite and > 0 (got ", v, ")");
}

// Fixed-step grid steps over span (a last step under 1e-9 dt merged into the one before).
double grid_steps(double span, double dt) {
  return span == 0 ? 0.0 : std::max(1.0, std::ceil(span / dt - 1e-9));
}

bool is_fixed_step(const OdeOptions& o) { return o.method != OdeMethod::Dopri5 || !o.adaptive; }

template <class T>
void require_finite_rows(const char* fn, const T* y, std::int64_t batch, std::int64_t d) {
  for (std::int64_t i = 0; i < batch * d; ++i)
    if (!std::isfinite(y[i]))
      throw_argument(fn, "y", "row ", i / d, " dimension ", i % d, " is not finite (", y[i], ")");
}

// A hand-built problem: d and parameters consistent with its kind.
void check_problem(const char* fn, const OdeProblem& p) {
  using Kind = OdeProblem::Kind;
  detail::require_at_least(fn, "problem.d", p.d, 1);
  if (p.kind == Kind::Custom) {
    if (!p.f) throw_argument(fn, "problem.f", "is empty");
    return;
  }
  if (p.kind != Kind::Decay && p.d != 2)
    throw_argument(fn, "problem.d", "must be 2 for this problem (got ", p.d, ")");
  for (double v : p.p)
    if (!std::isfinite(v)) throw_argument(fn, "problem.p", "has a non-finite parameter (", v, ")");
}

detail::BuiltinOde builtin(const OdeProblem& p) {
  return {p.kind, {p.p[0], p.p[1], p.p[2], p.p[3]}};
}

}  // namespace

OdeMethod parse_ode_method(const std::string& name) {
  if (name == "euler") return OdeMethod::Euler;
  if (name == "midpoint") return OdeMethod::Midpoint;
  if (name == "rk4") return OdeMethod::RK4;
  if (name == "rk4_38" || name == "rk4-38") return OdeMethod::RK4_38;
  if (name == "dopri5") return OdeMethod::Dopri5;
  throw_argument("genai::parse_ode_method", "name", "is '", name,
                 "' (valid: euler, midpoint, rk4, rk4_38, dopri5)");
}

std::string to_string(OdeMethod m) {
  switch (m) {
    case OdeMethod::Euler: return "euler";
    case OdeMethod::Midpoint: return "midpoint";
    case OdeMethod::RK4: return "rk4";
    case OdeMethod::RK4_38: return "rk4_38";
    case OdeMethod::Dopri5: return "dopri5";
  }
  return "unknown";
}

OdeProblem OdeProblem::decay(std::int64_t d, double rate) {
  constexpr const char* fn = "genai::OdeProblem::decay";
  detail::require_at_least(fn, "d", d, 1);
  require_finite(fn, "rate", rate);
  OdeProblem p;
  p.kind = Kind::Decay;
  p.d = d;
  p.p[0] = rate;
  return p;
}

OdeProblem OdeProblem::oscillator(double omega) {
  require_positive("genai::OdeProblem::oscillator", "omega", omega);
  OdeProblem p;
  p.kind = Kind::Oscillator;
  p.d = 2;
  p.p[0] = omega;
  return p;
}

OdeProblem OdeProblem::lotka_volterra(double alpha, double beta, double gamma, double delta) {
  constexpr const char* fn = "genai::OdeProblem::lotka_volterra";
  require_positive(fn, "alpha", alpha);
  require_positive(fn, "beta", beta);
  require_positive(fn, "gamma", gamma);
  require_positive(fn, "delta", delta);
  OdeProblem p;
  p.kind = Kind::LotkaVolterra;
  p.d = 2;
  p.p[0] = alpha, p.p[1] = beta, p.p[2] = gamma, p.p[3] = delta;
  return p;
}

OdeProblem OdeProblem::spiral() {
  OdeProblem p;
  p.kind = Kind::Spiral;
  p.d = 2;
  p.p[0] = -0.1, p.p[1] = 2.0, p.p[2] = -2.0, p.p[3] = -0.1;
  return p;
}

OdeProblem OdeProblem::custom(std::int64_t d, OdeFunction f) {
  constexpr const char* fn = "genai::OdeProblem::custom";
  detail::require_at_least(fn, "d", d, 1);
  if (!f) throw_argument(fn, "f", "is empty");
  OdeProblem p;
  p.kind = Kind::Custom;
  p.d = d;
  p.f = std::move(f);
  return p;
}

OdeProblem OdeProblem::named(const std::string& name) {
  if (name == "decay") return decay();
  if (name == "oscillator") return oscillator();
  if (name == "lotka-volterra" || name == "lotka_volterra") return lotka_volterra();
  if (name == "spiral") return spiral();
  throw_argument("genai::OdeProblem::named", "name", "is '", name,
                 "' (valid: decay, oscillator, lotka-volterra, spiral)");
}

namespace detail {

void check_ode(const char* fn, std::int64_t batch, std::int64_t d, const void* y, double t0,
               double t1, const OdeOptions& o, const void* trajectory) {
  require_at_least(fn, "batch", batch, 1);
  require_at_least(fn, "d", d, 1);
  if (d > std::numeric_limits<int>::max()) throw_argument(fn, "d", "is too large (", d, ")");
  require_not_null(fn, "y", y);
  require_finite(fn, "t0", t0);
  require_finite(fn, "t1", t1);
  switch (o.method) {
    case OdeMethod::Euler: case OdeMethod::Midpoint: case OdeMethod::RK4:
    case OdeMethod::RK4_38: case OdeMethod::Dopri5: break;
    default: throw_argument(fn, "opts.method", "is not an OdeMethod (", static_cast<int>(o.method), ")");
  }
  const double span = std::abs(t1 - t0);
  if (is_fixed_step(o)) {
    if (!(std::isfinite(o.dt) && o.dt > 0))
      throw_argument(fn, "opts.dt", "must be finite and > 0 for ", to_string(o.method),
                     o.method == OdeMethod::Dopri5 ? " with adaptive = false" : "", " (got ", o.dt, ")");
    const double steps = grid_steps(span, o.dt);
    if (steps > static_cast<double>(o.max_steps))
      throw_argument(fn, "opts.dt", "= ", o.dt, " needs ", steps, " steps from t0 = ", t0,
                     " to t1 = ", t1, ", more than opts.max_steps = ", o.max_steps);
  } else if (!(std::isfinite(o.dt) && o.dt >= 0)) {
    throw_argument(fn, "opts.dt", "(dopri5's first step) must be finite and >= 0 (got ", o.dt, ")");
  }
  require_positive(fn, "opts.rtol", o.rtol);
  if (!(std::isfinite(o.atol) && o.atol >= 0))
    throw_argument(fn, "opts.atol", "must be finite and >= 0 (got ", o.atol, ")");
  if (!(o.max_step > 0)) throw_argument(fn, "opts.max_step", "must be > 0 (got ", o.max_step, ")");
  if (!(o.safety > 0 && o.safety <= 1))
    throw_argument(fn, "opts.safety", "must be in (0, 1] (got ", o.safety, ")");
  if (!(o.min_factor > 0 && o.min_factor < 1))
    throw_argument(fn, "opts.min_factor", "must be in (0, 1) (got ", o.min_factor, ")");
  if (!(std::isfinite(o.max_factor) && o.max_factor > 1))
    throw_argument(fn, "opts.max_factor", "must be finite and > 1 (got ", o.max_factor, ")");
  require_at_least(fn, "opts.max_steps", o.max_steps, 1);
  const double dir = t1 >= t0 ? 1.0 : -1.0;
  for (std::size_t i = 0; i < o.t_eval.size(); ++i) {
    const double te = o.t_eval[i];
    if (!std::isfinite(te) || (te - t0) * dir < 0 || (te - t1) * dir > 0)
      throw_argument(fn, "opts.t_eval", "entry ", i, " is ", te, ", outside [t0, t1] = [", t0,
                     ", ", t1, "]");
    if (i > 0 && !((te - o.t_eval[i - 1]) * dir > 0))
      throw_argument(fn, "opts.t_eval", "entry ", i, " is ", te, " after ", o.t_eval[i - 1],
                     ": the times must be strictly ", dir > 0 ? "increasing" : "decreasing",
                     " from t0 to t1");
  }
  if (o.t_eval.empty() != (trajectory == nullptr))
    throw_argument(fn, "trajectory", o.t_eval.empty() ? "is given but opts.t_eval is empty"
                                                      : "must not be null when opts.t_eval is given");
  const double records = static_cast<double>(o.t_eval.size()) * static_cast<double>(batch) *
                         static_cast<double>(d);
  if (records > 0x1p62)
    throw_argument(fn, "opts.t_eval", "asks for ", records, " trajectory values (too many)");
}

template <class T>
OdeSetup<T> make_ode_setup(std::int64_t batch, std::int64_t d, double t0, double t1,
                           const OdeOptions& o, const double* t_eval, T* trajectory) {
  OdeSetup<T> s{};
  s.method = o.method;
  s.adaptive = !is_fixed_step(o);
  s.batch = batch;
  s.d = static_cast<int>(d);
  s.t0 = t0, s.t1 = t1;
  s.dir = t1 >= t0 ? 1.0 : -1.0;
  s.span = std::abs(t1 - t0);
  s.dt = o.dt;
  s.grid_steps = s.adaptive ? 0 : static_cast<std::int64_t>(grid_steps(s.span, o.dt));
  s.slack = s.adaptive ? 0.0 : 1e-9 * o.dt;
  s.rtol = o.rtol, s.atol = o.atol, s.max_step = o.max_step;
  s.safety = o.safety, s.min_factor = o.min_factor, s.max_factor = o.max_factor;
  s.max_steps = o.max_steps;
  s.n_eval = static_cast<std::int64_t>(o.t_eval.size());
  s.t_eval = s.n_eval > 0 ? t_eval : nullptr;
  s.trajectory = trajectory;
  return s;
}

template <class T>
void throw_ode_failure(const char* fn, const OdeSetup<T>& s, std::int64_t row, const OdeRow<T>& f,
                       std::int64_t failed) {
  const std::string others = concat(" (", failed, " of ", s.batch, " rows failed)");
  if (f.status == kOdeMaxSteps)
    throw Error(concat(fn, ": row ", row, " did not reach t1 = ", s.t1, " within opts.max_steps = ",
                       s.max_steps, " steps (", f.accepted, " accepted, ", f.rejected,
                       " rejected): stopped at t = ", f.t, " with step size ", f.h, others));
  throw Error(concat(fn, ": row ", row, " failed at t = ", f.t, ": the step size ", f.h,
                     " fell below 10 ulp of t or is not finite (f may be non-finite, singular or "
                     "too stiff there for rtol = ", s.rtol, ", atol = ", s.atol, ")", others));
}

template <class T>
OdeStats ode_stats(const char* fn, const OdeSetup<T>& s, const OdeRow<T>* rows, bool counts) {
  OdeStats st;
  std::int64_t failed = 0, first = -1;
  for (std::int64_t r = 0; r < s.batch; ++r) {
    if (counts) {
      st.nfev.push_back(rows[r].nfev);
      st.accepted.push_back(rows[r].accepted);
      st.rejected.push_back(rows[r].rejected);
    }
    if (rows[r].status != kOdeDone) {
      ++failed;
      if (first < 0) first = r;
    }
  }
  if (first >= 0) throw_ode_failure(fn, s, first, rows[first], failed);
  return st;
}

template OdeSetup<float> make_ode_setup(std::int64_t, std::int64_t, double, double,
                                        const OdeOptions&, const double*, float*);
template OdeSetup<double> make_ode_setup(std::int64_t, std::int64_t, double, double,
                                         const OdeOptions&, const double*, double*);
template OdeStats ode_stats(const char*, const OdeSetup<float>&, const OdeRow<float>*, bool);
template OdeStats ode_stats(const char*, const OdeSetup<double>&, const OdeRow<double>*, bool);

OdeDeviceRun prepare_ode_device(const char* fn, const Context& ctx, float* y, std::int64_t batch,
                                std::int64_t d, double t0, double t1, const OdeOptions& o,
                                float* trajectory) {
  check_ode(fn, batch, d, y, t0, t1, o, trajectory);
  const std::int64_t bad = detail::first_non_finite(ctx, static_cast<const float*>(y), batch * d);
  if (bad >= 0) throw_argument(fn, "y", "row ", bad / d, " dimension ", bad % d, " is not finite");
  OdeDeviceRun run;
  run.t_eval = Buffer<double>(ctx, std::span<const double>(o.t_eval));
  run.rows = Buffer<OdeRow<float>>(ctx, static_cast<std::size_t>(batch));
  run.rows.fill_bytes(0);  // the kernels assign members, not OdeRow<float>'s padding: copied back
  run.setup = make_ode_setup<float>(batch, d, t0, t1, o, run.t_eval.data(), trajectory);
  run.counts = o.counts;
  return run;
}

OdeStats finish_ode_device(const char* fn, const OdeDeviceRun& run) {
#if GENAI_WITH_CUDA
  if (!run.counts) {
    const Context& ctx = run.rows.context();
    const cuda::OdeFailures f = cuda::ode_failures(ctx, run.rows.data(), run.setup.batch);  // waits
    if (f.first < 0) return {};
    OdeRow<float> row;
    copy_bytes(ctx, &row, Device::CPU, run.rows.data() + f.first, Device::CUDA, sizeof row);
    throw_ode_failure(fn, run.setup, f.first, row, f.count);
  }
#endif
  const std::vector<OdeRow<float>> rows = run.rows.to_host();  // waits for the kernel
  return ode_stats(fn, run.setup, rows.data());
}

}  // namespace detail

OdeStats ode_solve(const Context& ctx, const OdeProblem& problem, float* y, std::int64_t batch,
                   double t0, double t1, const OdeOptions& opts, float* trajectory) {
  constexpr const char* fn = "genai::ode_solve";
  GENAI_NVTX_RANGE(fn);
  check_problem(fn, problem);
  const std::int64_t d = problem.d;
  if (problem.kind == OdeProblem::Kind::Custom && ctx.is_cuda())
    throw_argument(fn, "problem", "is a custom (host) problem: run it with a CPU context, or on "
                   "the GPU through genai::ode_solve_device with a __device__ functor");
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) {
    detail::OdeDeviceRun run =
        detail::prepare_ode_device(fn, ctx, y, batch, d, t0, t1, opts, trajectory);
    cuda::ode_solve(ctx, builtin(problem), run.setup, y, run.rows.data());
    return detail::finish_ode_device(fn, run);
  }
#endif
  detail::check_ode(fn, batch, d, y, t0, t1, opts, trajectory);
  require_finite_rows(fn, y, batch, d);
  const std::size_t n = static_cast<std::size_t>(batch * d);
  std::vector<double> yd(y, y + n), traj(opts.t_eval.size() * n);
  const auto s = detail::make_ode_setup<double>(batch, d, t0, t1, opts, opts.t_eval.data(), traj.data());
  std::vector<detail::OdeRow<double>> rows(static_cast<std::size_t>(batch));
  if (problem.kind == OdeProblem::Kind::Custom)
    ref::ode_solve(problem.f, s, yd.data(), rows.data());
  else
    ref::ode_solve(builtin(problem), s, yd.data(), rows.data());
  for (std::size_t i = 0; i < n; ++i) y[i] = static_cast<float>(yd[i]);
  for (std::size_t i = 0; i < traj.size(); ++i) trajectory[i] = static_cast<float>(traj[i]);
  return detail::ode_stats(fn, s, rows.data(), opts.counts);
}

OdeStats ode_solve(const OdeFunction& f, double* y, std::int64_t batch, std::int64_t d, double t0,
                   double t1, const OdeOptions& opts, double* trajectory) {
  constexpr const char* fn = "genai::ode_solve";
  GENAI_NVTX_RANGE(fn);
  if (!f) throw_argument(fn, "f", "is empty");
  detail::check_ode(fn, batch, d, y, t0, t1, opts, trajectory);
  require_finite_rows(fn, y, batch, d);
  const auto s = detail::make_ode_setup<double>(batch, d, t0, t1, opts, opts.t_eval.data(), trajectory);
  std::vector<detail::OdeRow<double>> rows(static_cast<std::size_t>(batch));
  ref::ode_solve(f, s, y, rows.data());
  return detail::ode_stats(fn, s, rows.data(), opts.counts);
}

void ode_exact(const OdeProblem& p, double t0, double t, const double* y0, std::int64_t batch,
               double* out) {
  constexpr const char* fn = "genai::ode_exact";
  check_problem(fn, p);
  detail::require_at_least(fn, "batch", batch, 1);
  detail::require_not_null(fn, "y0", y0);
  detail::require_not_null(fn, "out", out);
  const double tau = t - t0;
  if (p.kind == OdeProblem::Kind::Decay) {
    const double g = std::exp(-p.p[0] * tau);
    for (std::int64_t i = 0; i < batch * p.d; ++i) out[i] = y0[i] * g;
    return;
  }
  if (p.kind != OdeProblem::Kind::Oscillator)
    throw_argument(fn, "problem", "has no closed form here (decay and oscillator have)");
  const double w = p.p[0], c = std::cos(w * tau), s = std::sin(w * tau);
  for (std::int64_t r = 0; r < batch; ++r) {
    const double x = y0[2 * r], v = y0[2 * r + 1];
    out[2 * r] = x * c + v / w * s;
    out[2 * r + 1] = -x * w * s + v * c;
  }
}

}  // namespace genai
