// genai flow module: argument checks, then the CPU reference (the module runs on the host).
#include "genai/flow.hpp"

#include <cmath>
#include <numbers>

#include "cpu_reference/flow.hpp"
#include "genai/detail/ode.hpp"
#include "genai/error.hpp"
#include "genai/nvtx.hpp"
#include "genai/rng.hpp"

namespace genai {
namespace {

using detail::throw_argument;

void require_finite(const char* fn, const char* arg, const std::vector<double>& v) {
  for (std::size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i])) throw_argument(fn, arg, "entry ", i, " is ", v[i], " (must be finite)");
}

void check_rows(const char* fn, const void* in, const char* in_name, std::int64_t n, const void* out,
                const char* out_name) {
  detail::require_at_least(fn, "n", n, 1);
  detail::require_not_null(fn, in_name, in);
  detail::require_not_null(fn, out_name, out);
}

void check_mixture(const char* fn, const GaussianMixture& m) {
  detail::require_at_least(fn, "m.K", m.K, 1);
  detail::require_at_least(fn, "m.d", m.d, 1);
  const auto kd = static_cast<std::size_t>(m.K * m.d);
  if (m.weights.size() != static_cast<std::size_t>(m.K) || m.means.size() != kd || m.variances.size() != kd)
    throw_argument(fn, "m", "has ", m.weights.size(), " weights, ", m.means.size(), " means and ",
                   m.variances.size(), " variances (need K = ", m.K, ", K x d = ", kd, ")");
  for (std::size_t i = 0; i < kd; ++i)
    if (!(m.variances[i] > 0) || !std::isfinite(m.means[i]))
      throw_argument(fn, "m", "entry ", i, " has mean ", m.means[i], " and variance ", m.variances[i],
                     " (need finite means, variances > 0)");
  for (float w : m.weights)
    if (!(w > 0)) throw_argument(fn, "m.weights", "must be > 0 (got ", w, ")");
}

}  // namespace

FlowMap FlowMap::exp() { return {Kind::Exp, {}, {}}; }
FlowMap FlowMap::sigmoid() { return {Kind::Sigmoid, {}, {}}; }
FlowMap FlowMap::logit() { return {Kind::Logit, {}, {}}; }

FlowMap FlowMap::scale_shift(std::vector<double> scale, std::vector<double> shift) {
  constexpr const char* fn = "genai::FlowMap::scale_shift";
  if (scale.empty()) throw_argument(fn, "scale", "must have at least one entry");
  if (shift.size() != scale.size())
    throw_argument(fn, "shift", "has ", shift.size(), " entries, scale ", scale.size());
  require_finite(fn, "scale", scale);
  require_finite(fn, "shift", shift);
  for (std::size_t j = 0; j < scale.size(); ++j)
    if (scale[j] == 0) throw_argument(fn, "scale", "entry ", j, " is 0 (the map must be invertible)");
  return {Kind::ScaleShift, std::move(scale), std::move(shift)};
}

FlowMap FlowMap::affine(std::vector<double> A, std::vector<double> b) {
  constexpr const char* fn = "genai::FlowMap::affine";
  if (b.empty()) throw_argument(fn, "b", "must have at least one entry");
  if (A.size() != b.size() * b.size())
    throw_argument(fn, "A", "has ", A.size(), " entries (need d x d = ", b.size() * b.size(), ")");
  require_finite(fn, "A", A);
  require_finite(fn, "b", b);
  return {Kind::Affine, std::move(A), std::move(b)};
}

Flow::Flow(std::int64_t d, std::vector<FlowMap> maps) : d_(d), maps_(std::move(maps)) {
  constexpr const char* fn = "genai::Flow";
  detail::require_at_least(fn, "d", d, 1);
  inverses_.resize(maps_.size());
  for (std::size_t i = 0; i < maps_.size(); ++i) {
    const FlowMap& f = maps_[i];
    const std::string arg = "maps[" + std::to_string(i) + "]";
    const auto du = static_cast<std::size_t>(d);
    const bool elementwise = f.kind == FlowMap::Kind::Exp || f.kind == FlowMap::Kind::Sigmoid ||
                             f.kind == FlowMap::Kind::Logit;
    const std::size_t want_a = elementwise ? 0 : f.kind == FlowMap::Kind::Affine ? du * du : du;
    if (f.a.size() != want_a || f.b.size() != (elementwise ? 0 : du))
      throw_argument(fn, arg.c_str(), "has ", f.a.size(), " + ", f.b.size(),
                     " parameters: not a map of R^", d, " (build maps with FlowMap's factories)");
    require_finite(fn, arg.c_str(), f.a);
    require_finite(fn, arg.c_str(), f.b);
    if (f.kind == FlowMap::Kind::ScaleShift)
      for (std::size_t j = 0; j < du; ++j)
        if (f.a[j] == 0) throw_argument(fn, arg.c_str(), "scale ", j, " is 0 (not invertible)");
    if (f.kind == FlowMap::Kind::Affine &&
        !ref::invert(f.a, d, inverses_[i].inv, inverses_[i].log_abs_det))
      throw_argument(fn, arg.c_str(), "(affine) has a singular matrix A");
  }
}

void Flow::forward(const double* z, std::int64_t n, double* x, double* logdet) const {
  constexpr const char* fn = "genai::Flow::forward";
  GENAI_NVTX_RANGE(fn);
  check_rows(fn, z, "z", n, x, "x");
  ref::flow_forward(maps_, inverses_, d_, z, n, x, logdet);
}

void Flow::inverse(const double* x, std::int64_t n, double* z, double* logdet) const {
  constexpr const char* fn = "genai::Flow::inverse";
  GENAI_NVTX_RANGE(fn);
  check_rows(fn, x, "x", n, z, "z");
  ref::flow_inverse(maps_, inverses_, d_, x, n, z, logdet);
}

void Flow::log_prob(const double* x, std::int64_t n, double* out, double* grad) const {
  constexpr const char* fn = "genai::Flow::log_prob";
  GENAI_NVTX_RANGE(fn);
  check_rows(fn, x, "x", n, out, "out");
  ref::flow_log_prob(maps_, inverses_, d_, x, n, out, grad);
}

OdeStats cnf_integrate(const CnfFunction& f, double* y, std::int64_t batch, std::int64_t d,
                       double t0, double t1, double* delta_logp, const CnfOptions& o) {
  constexpr const char* fn = "genai::cnf_integrate";
  GENAI_NVTX_RANGE(fn);
  if (!f) throw_argument(fn, "f", "is empty");
  detail::check_ode(fn, batch, d, y, t0, t1, o.ode, nullptr);
  detail::require_not_null(fn, "delta_logp", delta_logp);
  if (!o.ode.t_eval.empty()) throw_argument(fn, "opts.ode.t_eval", "must be empty (no trajectory here)");
  if (o.hutchinson) detail::require_at_least(fn, "opts.probes", o.probes, 1);
  const std::int64_t probes = o.hutchinson ? o.probes : d, aug = d + 1;
  // Row r's probes [probes x d]: Rademacher signs (Hutchinson) or the unit vectors.
  std::vector<double> signs;
  if (o.hutchinson) {
    const std::int64_t blocks = (d + 3) / 4;
    signs.resize(static_cast<std::size_t>(batch * probes * d));
    for (std::int64_t r = 0; r < batch; ++r)
      for (std::int64_t p = 0; p < probes; ++p)
        for (std::int64_t j = 0; j < d; ++j) {
          const rng::Float4 u = rng::uniform4(o.seed, rng::streams::ode,
                                              static_cast<std::uint64_t>(r * blocks + j / 4),
                                              static_cast<std::uint32_t>(p));
          signs[(r * probes + p) * d + j] = u.v[j % 4] <= 0.5f ? -1.0 : 1.0;
        }
  }
  std::vector<double> ys, dydt, v, jv;
  const OdeFunction g = [&](const OdeEval& e) {
    const std::int64_t n = e.n;
    ys.resize(n * d);
    dydt.resize(n * d);
    v.assign(probes * n * d, 0.0);
    jv.assign(probes * n * d, 0.0);
    for (std::int64_t i = 0; i < n; ++i) {
      std::copy_n(e.y + i * aug, d, ys.begin() + i * d);
      for (std::int64_t p = 0; p < probes; ++p)
        for (std::int64_t j = 0; j < d; ++j)
          v[(p * n + i) * d + j] = o.hutchinson ? signs[(e.rows[i] * probes + p) * d + j] : (j == p ? 1.0 : 0.0);
    }
    f(CnfEval{n, d, probes, e.rows, e.t, ys.data(), dydt.data(), v.data(), jv.data()});
    for (std::int64_t i = 0; i < n; ++i) {
      std::copy_n(dydt.begin() + i * d, d, e.dydt + i * aug);
      double trace = 0;
      for (std::int64_t p = 0; p < probes; ++p)
        for (std::int64_t j = 0; j < d; ++j) trace += v[(p * n + i) * d + j] * jv[(p * n + i) * d + j];
      e.dydt[i * aug + d] = -(o.hutchinson ? trace / static_cast<double>(probes) : trace);
    }
  };
  std::vector<double> state(static_cast<std::size_t>(batch * aug), 0.0);
  for (std::int64_t r = 0; r < batch; ++r) std::copy_n(y + r * d, d, state.begin() + r * aug);
  const OdeStats st = ode_solve(g, state.data(), batch, aug, t0, t1, o.ode);
  for (std::int64_t r = 0; r < batch; ++r) {
    std::copy_n(state.begin() + r * aug, d, y + r * d);
    delta_logp[r] = state[r * aug + d];
  }
  return st;
}

void mixture_score_trace(const GaussianMixture& m, double alpha_bar, const double* x,
                         std::int64_t n, double* log_p, double* score, double* trace) {
  constexpr const char* fn = "genai::mixture_score_trace";
  GENAI_NVTX_RANGE(fn);
  check_mixture(fn, m);
  if (!(alpha_bar > 0 && alpha_bar <= 1))
    throw_argument(fn, "alpha_bar", "must be in (0, 1] (got ", alpha_bar, ")");
  detail::require_at_least(fn, "n", n, 1);
  detail::require_not_null(fn, "x", x);
  std::vector<double> logits(m.K), s(m.d);
  for (std::int64_t r = 0; r < n; ++r) {
    const double lp = ref::mixture_row(m, alpha_bar, x + r * m.d, score ? score + r * m.d : s.data(),
                                       trace ? trace + r : nullptr, 0, nullptr, nullptr, logits);
    if (log_p) log_p[r] = lp;
  }
}

OdeStats pf_ode_log_likelihood(const GaussianMixture& m, const double* x, std::int64_t n,
                               double* out, const PfOdeOptions& o) {
  constexpr const char* fn = "genai::pf_ode_log_likelihood";
  GENAI_NVTX_RANGE(fn);
  check_mixture(fn, m);
  check_rows(fn, x, "x", n, out, "out");
  if (!(std::isfinite(o.beta_min) && o.beta_min > 0))
    throw_argument(fn, "opts.beta_min", "must be finite and > 0 (got ", o.beta_min, ")");
  if (!(std::isfinite(o.beta_max) && o.beta_max >= o.beta_min))
    throw_argument(fn, "opts.beta_max", "must be finite and >= beta_min (got ", o.beta_max, ")");
  if (!(std::isfinite(o.t_end) && o.t_end > 0))
    throw_argument(fn, "opts.t_end", "must be finite and > 0 (got ", o.t_end, ")");
  if (!o.cnf.ode.t_eval.empty()) throw_argument(fn, "opts.cnf.ode.t_eval", "must be empty");
  const std::int64_t d = m.d;
  auto beta = [&](double t) { return o.beta_min + t * (o.beta_max - o.beta_min); };
  auto alpha_bar = [&](double t) { return vp_alpha_bar(t, o.beta_min, o.beta_max); };
  std::vector<double> logits(m.K), s(d), xs(x, x + n * d), delta(n);
  OdeStats st;
  if (!o.jvp_trace) {
    // [x, l]' = [-beta/2 (x + s), beta/2 (d + tr ds/dx)]: l' = -tr(df/dx), the closed form.
    const std::int64_t aug = d + 1;
    const OdeFunction g = [&](const OdeEval& e) {
      for (std::int64_t i = 0; i < e.n; ++i) {
        const double* xi = e.y + i * aug;
        double* out_i = e.dydt + i * aug;
        double tr = 0;
        ref::mixture_row(m, alpha_bar(e.t[i]), xi, s.data(), &tr, 0, nullptr, nullptr, logits);
        const double b = beta(e.t[i]);
        for (std::int64_t j = 0; j < d; ++j) out_i[j] = -0.5 * b * (xi[j] + s[j]);
        out_i[d] = 0.5 * b * (static_cast<double>(d) + tr);
      }
    };
    std::vector<double> state(static_cast<std::size_t>(n * aug), 0.0);
    for (std::int64_t r = 0; r < n; ++r) std::copy_n(x + r * d, d, state.begin() + r * aug);
    st = ode_solve(g, state.data(), n, aug, 0.0, o.t_end, o.cnf.ode);
    for (std::int64_t r = 0; r < n; ++r) {
      std::copy_n(state.begin() + r * aug, d, xs.begin() + r * d);
      delta[r] = state[r * aug + d];
    }
  } else {
    // The PF-ODE's Jacobian-vector products: (df/dx) v = -beta/2 (v + (ds/dx) v).
    const CnfFunction g = [&](const CnfEval& e) {
      std::vector<double> sv(e.probes * d);
      for (std::int64_t i = 0; i < e.n; ++i) {
        const double* xi = e.y + i * d;
        std::vector<double> vi(e.probes * d);
        for (std::int64_t p = 0; p < e.probes; ++p)
          std::copy_n(e.v + (p * e.n + i) * d, d, vi.begin() + p * d);
        ref::mixture_row(m, alpha_bar(e.t[i]), xi, s.data(), nullptr, e.probes, vi.data(), sv.data(), logits);
        const double b = beta(e.t[i]);
        for (std::int64_t j = 0; j < d; ++j) e.dydt[i * d + j] = -0.5 * b * (xi[j] + s[j]);
        for (std::int64_t p = 0; p < e.probes; ++p)
          for (std::int64_t j = 0; j < d; ++j)
            e.jv[(p * e.n + i) * d + j] = -0.5 * b * (vi[p * d + j] + sv[p * d + j]);
      }
    };
    st = cnf_integrate(g, xs.data(), n, d, 0.0, o.t_end, delta.data(), o.cnf);
  }
  const double ab_end = alpha_bar(o.t_end);
  const double log_norm = -0.5 * static_cast<double>(d) * std::log(2 * std::numbers::pi);
  for (std::int64_t r = 0; r < n; ++r) {
    const double* xr = xs.data() + r * d;
    double prior = log_norm;
    if (o.exact_prior) {
      prior = ref::mixture_row(m, ab_end, xr, nullptr, nullptr, 0, nullptr, nullptr, logits);
    } else {
      for (std::int64_t j = 0; j < d; ++j) prior -= 0.5 * xr[j] * xr[j];
    }
    out[r] = prior - delta[r];  // log p_0 = log p_T(x_T) - (l(T) - l(0))
  }
  return st;
}

}  // namespace genai
