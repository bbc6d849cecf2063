#include "cpu_reference/flow.hpp"

#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

namespace genai::ref {
namespace {

using Kind = FlowMap::Kind;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double sigmoid(double u) { return u >= 0 ? 1 / (1 + std::exp(-u)) : std::exp(u) / (1 + std::exp(u)); }
// log(sigmoid(u) (1 - sigmoid(u))), the log-derivative of the sigmoid, without underflow.
double log_dsigmoid(double u) { return -std::abs(u) - 2 * std::log1p(std::exp(-std::abs(u))); }

// y = M x for M [d x d].
void matvec(const std::vector<double>& M, std::int64_t d, const double* x, double* y) {
  for (std::int64_t i = 0; i < d; ++i) {
    double acc = 0;
    for (std::int64_t j = 0; j < d; ++j) acc += M[i * d + j] * x[j];
    y[i] = acc;
  }
}

// u <- f(u) for one row; returns log|det J_f(u)|.
double apply(const FlowMap& f, const Flow::Inverse& inv, std::int64_t d, double* u,
             std::vector<double>& tmp) {
  double ld = 0;
  switch (f.kind) {
    case Kind::Exp:
      for (std::int64_t j = 0; j < d; ++j) {
        ld += u[j];
        u[j] = std::exp(u[j]);
      }
      return ld;
    case Kind::Sigmoid:
      for (std::int64_t j = 0; j < d; ++j) {
        ld += log_dsigmoid(u[j]);
        u[j] = sigmoid(u[j]);
      }
      return ld;
    case Kind::Logit:
      for (std::int64_t j = 0; j < d; ++j) {
        ld -= std::log(u[j]) + std::log1p(-u[j]);
        u[j] = std::log(u[j]) - std::log1p(-u[j]);
      }
      return ld;
    case Kind::ScaleShift:
      for (std::int64_t j = 0; j < d; ++j) {
        ld += std::log(std::abs(f.a[j]));
        u[j] = f.a[j] * u[j] + f.b[j];
      }
      return ld;
    case Kind::Affine:
      matvec(f.a, d, u, tmp.data());
      for (std::int64_t j = 0; j < d; ++j) u[j] = tmp[j] + f.b[j];
      return inv.log_abs_det;
  }
  return ld;
}

// u <- f^{-1}(u) for one row; returns log|det J_f| at the result, or NaN when u is outside f's
// range (u unchanged then).
double unapply(const FlowMap& f, const Flow::Inverse& inv, std::int64_t d, double* u,
               std::vector<double>& tmp) {
  double ld = 0;
  switch (f.kind) {
    case Kind::Exp:
      for (std::int64_t j = 0; j < d; ++j)
        if (!(u[j] > 0)) return kNaN;
      for (std::int64_t j = 0; j < d; ++j) {
        u[j] = std::log(u[j]);
        ld += u[j];
      }
      return ld;
    case Kind::Sigmoid:
      for (std::int64_t j = 0; j < d; ++j)
        if (!(u[j] > 0 && u[j] < 1)) return kNaN;
      for (std::int64_t j = 0; j < d; ++j) {
        ld += std::log(u[j]) + std::log1p(-u[j]);
        u[j] = std::log(u[j]) - std::log1p(-u[j]);
      }
      return ld;
    case Kind::Logit:
      for (std::int64_t j = 0; j < d; ++j) {
        ld -= log_dsigmoid(u[j]);
        u[j] = sigmoid(u[j]);
      }
      return ld;
    case Kind::ScaleShift:
      for (std::int64_t j = 0; j < d; ++j) {
        u[j] = (u[j] - f.b[j]) / f.a[j];
        ld += std::log(std::abs(f.a[j]));
      }
      return ld;
    case Kind::Affine:
      for (std::int64_t j = 0; j < d; ++j) tmp[j] = u[j] - f.b[j];
      matvec(inv.inv, d, tmp.data(), u);
      return inv.log_abs_det;
  }
  return ld;
}

// v <- J_{f^{-1}}(x)^T v + grad_x log|det J_{f^{-1}}(x)| for the map f, at x = f(u) (u the
// inverse's result): the step of the chain rule for log p through f^{-1}.
void pull_back(const FlowMap& f, const Flow::Inverse& inv, std::int64_t d, const double* x,
               const double* u, double* v, std::vector<double>& tmp) {
  switch (f.kind) {
    case Kind::Exp:  // f^{-1} = log: J = diag(1/x), log|det| = -sum log x
      for (std::int64_t j = 0; j < d; ++j) v[j] = (v[j] - 1) / x[j];
      return;
    case Kind::Sigmoid:  // f^{-1} = logit: J = diag(1/(x(1-x))), log|det| = -sum log(x(1-x))
      for (std::int64_t j = 0; j < d; ++j)
        v[j] = v[j] / (x[j] * (1 - x[j])) - 1 / x[j] + 1 / (1 - x[j]);
      return;
    case Kind::Logit:  // f^{-1} = sigmoid: u = sigmoid(x), J = diag(u(1-u)), log|det| = sum log(u(1-u))
      for (std::int64_t j = 0; j < d; ++j) v[j] = v[j] * u[j] * (1 - u[j]) + 1 - 2 * u[j];
      return;
    case Kind::ScaleShift:
      for (std::int64_t j = 0; j < d; ++j) v[j] /= f.a[j];
      return;
    case Kind::Affine:  // J = A^{-1}: v <- A^{-T} v
      for (std::int64_t j = 0; j < d; ++j) {
        double acc = 0;
        for (std::int64_t i = 0; i < d; ++i) acc += inv.inv[i * d + j] * v[i];
        tmp[j] = acc;
      }
      std::copy_n(tmp.begin(), d, v);
      return;
  }
}

}  // namespace

bool invert(const std::vector<double>& A, std::int64_t d, std::vector<double>& inv,
            double& log_abs_det) {
  inv = A;
  std::vector<lapack_int> piv(d);
  const auto n = static_cast<lapack_int>(d);
  if (LAPACKE_dgetrf(LAPACK_ROW_MAJOR, n, n, inv.data(), n, piv.data()) != 0) return false;
  log_abs_det = 0;
  for (std::int64_t i = 0; i < d; ++i) log_abs_det += std::log(std::abs(inv[i * d + i]));
  return std::isfinite(log_abs_det) &&
         LAPACKE_dgetri(LAPACK_ROW_MAJOR, n, inv.data(), n, piv.data()) == 0;
}

void flow_forward(const std::vector<FlowMap>& maps, const std::vector<Flow::Inverse>& inverses,
                  std::int64_t d, const double* z, std::int64_t n, double* x, double* logdet) {
  std::vector<double> tmp(d);
  for (std::int64_t r = 0; r < n; ++r) {
    double* u = x + r * d;
    std::copy_n(z + r * d, d, u);
    double ld = 0;
    for (std::size_t i = 0; i < maps.size(); ++i) ld += apply(maps[i], inverses[i], d, u, tmp);
    if (logdet) logdet[r] = ld;
  }
}

void flow_inverse(const std::vector<FlowMap>& maps, const std::vector<Flow::Inverse>& inverses,
                  std::int64_t d, const double* x, std::int64_t n, double* z, double* logdet) {
  std::vector<double> tmp(d);
  for (std::int64_t r = 0; r < n; ++r) {
    double* u = z + r * d;
    std::copy_n(x + r * d, d, u);
    double ld = 0;
    for (std::size_t i = maps.size(); i-- > 0 && !std::isnan(ld);)
      ld += unapply(maps[i], inverses[i], d, u, tmp);
    if (std::isnan(ld)) std::fill_n(u, d, kNaN);
    if (logdet) logdet[r] = ld;
  }
}

void flow_log_prob(const std::vector<FlowMap>& maps, const std::vector<Flow::Inverse>& inverses,
                   std::int64_t d, const double* x, std::int64_t n, double* out, double* grad) {
  const std::size_t K = maps.size();
  // The points u_K = x, u_{i-1} = f_i^{-1}(u_i) of one row: stage i at us[i * d].
  std::vector<double> us((K + 1) * d), tmp(d);
  const double log_norm = -0.5 * static_cast<double>(d) * std::log(2 * std::numbers::pi);
  for (std::int64_t r = 0; r < n; ++r) {
    std::copy_n(x + r * d, d, us.begin() + K * d);
    double ld = 0;
    for (std::size_t i = K; i-- > 0 && !std::isnan(ld);) {
      std::copy_n(us.begin() + (i + 1) * d, d, us.begin() + i * d);
      ld += unapply(maps[i], inverses[i], d, us.data() + i * d, tmp);
    }
    double* g = grad ? grad + r * d : nullptr;
    if (std::isnan(ld)) {  // outside the support
      out[r] = -std::numeric_limits<double>::infinity();
      if (g) std::fill_n(g, d, 0.0);
      continue;
    }
    double q = 0;
    for (std::int64_t j = 0; j < d; ++j) q += us[j] * us[j];
    out[r] = log_norm - 0.5 * q - ld;
    if (!g) continue;
    for (std::int64_t j = 0; j < d; ++j) g[j] = -us[j];  // grad of log N at z = u_0
    for (std::size_t i = 0; i < K; ++i)
      pull_back(maps[i], inverses[i], d, us.data() + (i + 1) * d, us.data() + i * d, g, tmp);
  }
}

double mixture_row(const GaussianMixture& m, double ab, const double* x, double* s, double* trace,
                   std::int64_t probes, const double* v, double* jv, std::vector<double>& logits) {
  const std::int64_t K = m.K, d = m.d;
  const double sa = std::sqrt(ab);
  auto var = [&](std::int64_t k, std::int64_t j) { return ab * m.variances[k * d + j] + (1 - ab); };
  auto center = [&](std::int64_t k, std::int64_t j) { return sa * m.means[k * d + j]; };
  double mx = -std::numeric_limits<double>::infinity();
  for (std::int64_t k = 0; k < K; ++k) {
    double l = std::log(static_cast<double>(m.weights[k]));
    for (std::int64_t j = 0; j < d; ++j) {
      const double vk = var(k, j), diff = x[j] - center(k, j);
      l -= 0.5 * (diff * diff / vk + std::log(vk));
    }
    logits[k] = l;
    mx = std::max(mx, l);
  }
  double total = 0;
  for (std::int64_t k = 0; k < K; ++k) total += logits[k] = std::exp(logits[k] - mx);
  const double log_p = mx + std::log(total) - 0.5 * static_cast<double>(d) * std::log(2 * std::numbers::pi);
  if (!s) return log_p;
  // r_k = logits[k] / total; g_k = -(x - c_k) / v_k; s = sum r_k g_k.
  std::fill_n(s, d, 0.0);
  if (jv) std::fill_n(jv, probes * d, 0.0);
  double tr = 0;
  for (std::int64_t k = 0; k < K; ++k) {
    const double rk = logits[k] / total;
    double g2 = 0, inv_sum = 0;
    for (std::int64_t j = 0; j < d; ++j) {
      const double vk = var(k, j), g = -(x[j] - center(k, j)) / vk;
      s[j] += rk * g;
      g2 += g * g;
      inv_sum += 1 / vk;
    }
    tr += rk * (g2 - inv_sum);
    for (std::int64_t p = 0; p < probes && jv; ++p) {
      const double* vp = v + p * d;
      double gv = 0;
      for (std::int64_t j = 0; j < d; ++j) gv += -(x[j] - center(k, j)) / var(k, j) * vp[j];
      for (std::int64_t j = 0; j < d; ++j) {
        const double vk = var(k, j), g = -(x[j] - center(k, j)) / vk;
        jv[p * d + j] += rk * (g * gv - vp[j] / vk);
      }
    }
  }
  double s2 = 0;
  for (std::int64_t j = 0; j < d; ++j) s2 += s[j] * s[j];
  if (trace) *trace = tr - s2;
  for (std::int64_t p = 0; p < probes && jv; ++p) {
    double sv = 0;
    for (std::int64_t j = 0; j < d; ++j) sv += s[j] * v[p * d + j];
    for (std::int64_t j = 0; j < d; ++j) jv[p * d + j] -= s[j] * sv;
  }
  return log_p;
}

}  // namespace genai::ref
