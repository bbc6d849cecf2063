// CPU reference of the Langevin module, and the per-chain step code it shares with the kernels.
//
// run_chain is written once for the host (T = double, the reference) and the device (T = float,
// kernels/langevin.cu): the same formulas, the same Philox draws, so the two follow the same
// paths up to rounding. Arrays are any type with operator[] (plain pointers, or a strided view
// of device memory); D > 0 fixes the dimension at compile time (the kernels keep the state in
// registers), D = 0 takes it from the setup.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "genai/langevin.hpp"
#include "genai/rng.hpp"

namespace genai::ref {

// A LangevinTarget as flat pointers (host or device memory).
struct TargetView {
  LangevinTarget::Kind kind;
  int d, K;
  const float* log_weights;  // [K]
  const float* means;        // [K x d]
  const float* vars;         // [K x d]
  const float* chol;         // [d x d]
  float height, tilt;
};

// t's parameters as one array [log w (K) | means (K x d) | vars (K x d) | chol (d x d)], and
// its view once
// that array is at `packed` (host or device).
std::vector<float> pack(const LangevinTarget& t);
TargetView view(const LangevinTarget& t, const float* packed);

// log p(x) up to a constant (the same constant for every x), and g = grad log p(x). extra_var
// (the annealed sigma_i^2) is added to every variance of a diagonal Gaussian or a mixture; the
// Cholesky Gaussian and the double well ignore it. Mixtures use a streaming log-sum-exp:
// g = sum_k r_k (mu_k - x) / v_k with responsibilities r_k = softmax_k(l_k),
// l_k = log w_k - 1/2 sum_j ((x_j - mu_kj)^2 / v_kj + log v_kj).
template <class T, int D, class A, class G>
GENAI_HD T log_density_grad(const TargetView& t, T extra_var, const A& x, G& g) {
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
  T m = -INFINITY, s = 0;
  for (int j = 0; j < d; ++j) g[j] = 0;
  for (int k = 0; k < t.K; ++k) {
    const float* mu = t.means + static_cast<std::int64_t>(k) * d;
    const float* var = t.vars + static_cast<std::int64_t>(k) * d;
    T l = T(0);
    for (int j = 0; j < d; ++j) {
      const T v = T(var[j]) + extra_var, r = T(x[j]) - T(mu[j]);
      l += r * r / v + log(v);
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

// Everything run_chain needs: the sampler, the counter keys, and where outputs go.
struct ChainSetup {
  TargetView target;
  LangevinMethod method;
  float step_size, beta;
  std::int64_t steps;  // per level when annealed
  int levels;
  float sigma_first, sigma_last;
  std::uint64_t seed;
  std::uint32_t first_step;
  std::int64_t chains;
  int d;
  std::int64_t burn_in, thin;
  float* trajectory;          // nullptr: none
  float* mean;                // nullptr: no moments
  float* var;
  std::int64_t* accepted;     // nullptr: not counted
};

// Level i (from 0) of the annealing ladder: sigma_i and the ULA step h_i = alpha_i / 2.
template <class T>
GENAI_HD void anneal_level(const ChainSetup& s, int i, T& sigma, T& h) {
  const T ratio = T(s.sigma_last) / T(s.sigma_first);
  sigma = s.levels > 1 ? T(s.sigma_first) * exp(T(i) / T(s.levels - 1) * log(ratio))
                       : T(s.sigma_last);
  h = T(0.5) * T(s.step_size) * (sigma * sigma) / (T(s.sigma_last) * T(s.sigma_last));
}

// Chain c from its row x_row[d] (written back at the end). Work arrays x, y, gx, gy of d
// entries; mu, m2 too when s.mean is set.
template <class T, int D, class A>
GENAI_HD void run_chain(const ChainSetup& s, std::int64_t c, float* x_row, A& x, A& y, A& gx,
                        A& gy, A& mu, A& m2) {
  const int d = D > 0 ? D : s.d;
  const std::uint64_t blocks = (static_cast<std::uint64_t>(d) + 3) / 4;
  const bool annealed = s.method == LangevinMethod::Annealed;
  const bool mala = s.method == LangevinMethod::MALA;
  const T beta = T(s.beta);
  for (int j = 0; j < d; ++j) {
    x[j] = T(x_row[j]);
    if (s.mean) mu[j] = m2[j] = T(0);
  }
  std::int64_t step = 0, n = 0, acc = 0;
  for (int level = 0; level < (annealed ? s.levels : 1); ++level) {
    T h = T(s.step_size), extra_var = T(0);
    if (annealed) {
      T sigma;
      anneal_level(s, level, sigma, h);
      extra_var = sigma * sigma;
    }
    const T noise = sqrt(T(2) * h / beta);
    T lpx = log_density_grad<T, D>(s.target, extra_var, x, gx);
    for (std::int64_t t = 0; t < s.steps; ++t, ++step) {
      const std::uint32_t counter = s.first_step + static_cast<std::uint32_t>(step);
      for (std::uint64_t b = 0; b < blocks; ++b) {
        const rng::Float4 z = rng::normal4(s.seed, rng::streams::langevin,
                                           static_cast<std::uint64_t>(c) * blocks + b, counter);
        for (int lane = 0; lane < 4; ++lane) {
          const int j = static_cast<int>(b) * 4 + lane;
          if (j < d) y[j] = x[j] + h * gx[j] + noise * T(z.v[lane]);
        }
      }
      if (mala) {
        // log acceptance = beta (log p(y) - log p(x)) + log q(x|y) - log q(y|x),
        // log q(a|b) = -beta |a - b - h grad log p(b)|^2 / (4h).
        const T lpy = log_density_grad<T, D>(s.target, extra_var, y, gy);
        T forward = 0, backward = 0;
        for (int j = 0; j < d; ++j) {
          const T f = y[j] - x[j] - h * gx[j], b = x[j] - y[j] - h * gy[j];
          forward += f * f;
          backward += b * b;
        }
        const T log_alpha = beta * (lpy - lpx) - beta * (backward - forward) / (T(4) * h);
        const float u = rng::uniform4(s.seed, rng::streams::langevin_accept,
                                      static_cast<std::uint64_t>(c), counter).v[0];
        if (T(log(T(u))) < log_alpha) {
          for (int j = 0; j < d; ++j) {
            x[j] = y[j];
            gx[j] = gy[j];
          }
          lpx = lpy;
          ++acc;
        }
      } else {
        for (int j = 0; j < d; ++j) x[j] = y[j];
        if (t + 1 < s.steps) lpx = log_density_grad<T, D>(s.target, extra_var, x, gx);
      }
      const std::int64_t done = step + 1;
      if (s.mean && done > s.burn_in) {  // Welford
        ++n;
        for (int j = 0; j < d; ++j) {
          const T delta = x[j] - mu[j];
          mu[j] += delta / T(n);
          m2[j] += delta * (x[j] - mu[j]);
        }
      }
      if (s.trajectory && done % s.thin == 0) {
        float* rec = s.trajectory + ((done / s.thin - 1) * s.chains + c) * d;
        for (int j = 0; j < d; ++j) rec[j] = static_cast<float>(x[j]);
      }
    }
  }
  for (int j = 0; j < d; ++j) {
    x_row[j] = static_cast<float>(x[j]);
    if (s.mean) {
      s.mean[c * d + j] = static_cast<float>(mu[j]);
      s.var[c * d + j] = static_cast<float>(m2[j] / T(n));
    }
  }
  if (s.accepted) s.accepted[c] = acc;
}

// Path p of brownian_motion: out_path [(steps+1) x d].
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
        if (j < d) next[j] = static_cast<float>(T(prev[j]) + scale * T(z.v[lane]));
      }
    }
  }
}

// The reference: every chain in turn, in double.
void langevin(const ChainSetup& setup, float* x);
void brownian_motion(float* out, std::int64_t paths, int d, std::int64_t steps, float dt,
                     std::uint64_t seed);
void effective_sample_size(const float* samples, std::int64_t draws, std::int64_t chains,
                           std::int64_t d, double* out);
void split_rhat(const float* samples, std::int64_t draws, std::int64_t chains, std::int64_t d,
                double* out);

}  // namespace genai::ref
