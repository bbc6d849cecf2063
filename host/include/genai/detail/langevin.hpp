// The Langevin module's target code that both backends run: a built-in LangevinTarget as flat
// pointers (TargetView, a target of detail::run_chain in genai/detail/langevin_chain.hpp) with
// its log density and gradient, and Brownian paths. GENAI_HD: host and device.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "genai/detail/hd.hpp"
#include "genai/langevin.hpp"
#include "genai/rng.hpp"

namespace genai::detail {

// A built-in LangevinTarget as flat pointers (host or device memory): a target of run_chain.
struct TargetView {
  LangevinTarget::Kind kind;
  int d, K;
  const float* log_weights;  // [K]
  const float* means;        // [K x d]
  const float* vars;         // [K x d]
  const float* chol;         // [d x d]
  float height, tilt;

  static constexpr bool takes_pointers = false;
  // log p(x) up to a constant (the same constant for every x), and g = grad log p(x).
  // extra_var (the annealed sigma_i^2) is added to every variance of a diagonal Gaussian or a
  // mixture; the Cholesky Gaussian and the double well ignore it. Mixtures use a streaming
  // log-sum-exp: g = sum_k r_k (mu_k - x) / v_k with responsibilities r_k = softmax_k(l_k),
  // l_k = log w_k - 1/2 sum_j ((x_j - mu_kj)^2 / v_kj + log v_kj).
  template <class T, int D, class A, class G>
  GENAI_HD T log_density_grad(T extra_var, const A& x, G& g) const;
  // The mixture branch of log_density_grad with log v_kj from log_var(k, j, v), v = vars[k, j]
  // + extra_var (LogOf: log(v); the CPU chains pass a table of the same values).
  template <class T, int D, class A, class G, class LogVar>
  GENAI_HD T mixture_log_density_grad(T extra_var, const A& x, G& g, const LogVar& log_var) const;
};

// log v, for TargetView::mixture_log_density_grad.
struct LogOf {
  template <class T>
  GENAI_HD T operator()(int /*k*/, int /*j*/, T v) const {
    return log(v);
  }
};

// t's parameters as one array [log w (K) | means (K x d) | vars (K x d) | chol (d x d)], and
// its view once that array is at `packed` (host or device).
std::vector<float> pack(const LangevinTarget& t);
TargetView view(const LangevinTarget& t, const float* packed);

template <class T, int D, class A, class G>
GENAI_HD T TargetView::log_density_grad(T extra_var, const A& x, G& g) const {
  const TargetView& t = *this;
  const int d = D > 0 ? D : t.d;
  if (t.kind == LangevinTarget::Kind::DoubleWell) {
    const T x0 = x[0], a = x0 * x0 - T(1);
    T e = T(t.height) * a * a + T(t.tilt) * x0;
    g[0] = -(T(4) * T(t.height) * a * x0 + T(t.tilt));
    for (int j = 1; j < d; ++j) {
      const T xj = x[j];
      e += T(0.5) * xj * xj;
      g[j] = -xj;
    }
    return -e;
  }
  if (t.kind == LangevinTarget::Kind::Gaussian) {  // K = 1: no log-sum-exp, constants dropped
    T l = T(0);
    for (int j = 0; j < d; ++j) {
      const T v = T(t.vars[j]) + extra_var, r = T(t.means[j]) - T(x[j]);
      l += r * r / v;
      g[j] = r / v;
    }
    return T(-0.5) * l;
  }
  if (t.kind == LangevinTarget::Kind::GaussianCholesky) {
    // L u = x - mu (forward), L^T w = u (backward, in place): g = -w = -Sigma^{-1} (x - mu),
    // log p = -|u|^2 / 2.
    T l = T(0);
    for (int i = 0; i < d; ++i) {
      T r = T(x[i]) - T(t.means[i]);
      for (int k = 0; k < i; ++k) r -= T(t.chol[i * d + k]) * g[k];
      g[i] = r / T(t.chol[i * d + i]);
      l += g[i] * g[i];
    }
    for (int i = d - 1; i >= 0; --i) {
      T r = g[i];
      for (int k = i + 1; k < d; ++k) r -= T(t.chol[k * d + i]) * g[k];
      g[i] = r / T(t.chol[i * d + i]);
    }
    for (int i = 0; i < d; ++i) g[i] = -g[i];
    return T(-0.5) * l;
  }
  return mixture_log_density_grad<T, D>(extra_var, x, g, LogOf{});
}

template <class T, int D, class A, class G, class LogVar>
GENAI_HD T TargetView::mixture_log_density_grad(T extra_var, const A& x, G& g,
                                                const LogVar& log_var) const {
  const TargetView& t = *this;
  const int d = D > 0 ? D : t.d;
  T m = -INFINITY, s = 0;
  for (int j = 0; j < d; ++j) g[j] = 0;
  for (int k = 0; k < t.K; ++k) {
    const float* mu = t.means + static_cast<std::int64_t>(k) * d;
    const float* var = t.vars + static_cast<std::int64_t>(k) * d;
    T l = T(0);
    for (int j = 0; j < d; ++j) {
      const T v = T(var[j]) + extra_var, r = T(x[j]) - T(mu[j]);
      l += r * r / v + log_var(k, j, v);
    }
    l = T(t.log_weights[k]) - T(0.5) * l;
    if (l > m) {  // rescale what has been summed to the new maximum
      const T scale = exp(m - l);
      s *= scale;
      for (int j = 0; j < d; ++j) g[j] *= scale;
      m = l;
    }
    const T e = exp(l - m);
    s += e;
    for (int j = 0; j < d; ++j) g[j] += e * (T(mu[j]) - T(x[j])) / (T(var[j]) + extra_var);
  }
  for (int j = 0; j < d; ++j) g[j] /= s;
  return m + log(s);
}

// Brownian paths (brownian_motion): W_0 = 0, W_{s+1} = W_s + sqrt(dt) xi_s. Dimensions
// 4b .. 4b + 3 of path p draw xi_s from Philox block (seed, langevin stream, counter
// p * ceil(d/4) + b, step s), so every element has its own numbers whatever the thread layout
// (the GPU runs a thread per (path, b)). brownian_next is one element's step, scale = sqrt(dt)
// in T (the reference's T is double, the GPU's float).
template <class T>
GENAI_HD float brownian_next(float w, T scale, float z) {
  return static_cast<float>(T(w) + scale * T(z));
}

// The Philox blocks of a path, ceil(d / 4), in int for any d in [1, INT_MAX] (where d + 3 would
// overflow): the Brownian kernel's block count.
GENAI_HD int brownian_blocks(int d) { return (d - 1) / 4 + 1; }

// Path p: out_path [(steps+1) x d].
template <class T>
GENAI_HD void brownian_path(float* out_path, std::int64_t p, int d, std::int64_t steps, float dt,
                            std::uint64_t seed) {
  const std::uint64_t blocks = (static_cast<std::uint64_t>(d) + 3) / 4;
  const T scale = sqrt(T(dt));
  for (int j = 0; j < d; ++j) out_path[j] = 0.0f;
  for (std::int64_t s = 0; s < steps; ++s) {
    const float* prev = out_path + s * d;
    float* next = out_path + (s + 1) * d;
    for (std::uint64_t b = 0; b < blocks; ++b) {
      const rng::Float4 z = rng::normal4(seed, rng::streams::langevin,
                                         static_cast<std::uint64_t>(p) * blocks + b,
                                         static_cast<std::uint32_t>(s));
      for (int lane = 0; lane < 4; ++lane) {
        const int j = static_cast<int>(b) * 4 + lane;
        if (j < d) next[j] = brownian_next(prev[j], scale, z.v[lane]);
      }
    }
  }
}

}  // namespace genai::detail
