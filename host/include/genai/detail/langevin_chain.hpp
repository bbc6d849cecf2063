// The per-chain step code of the Langevin module, written once for the CPU reference
// (T = double), the built-in kernels and genai::langevin_device (T = float), and the argument
// checks they share. Internal (namespace genai::detail); installed because
// genai/langevin_device.cuh instantiates it with users' targets.
//
// A target is any type with
//   template <class T, int D, class A, class G>
//   T log_density_grad(T extra_var, const A& x, G& g) const;
// returning log p(x) up to a constant (the same for every x) and writing g = grad log p(x);
// extra_var is the annealed sigma_i^2 (0 for ULA and MALA). takes_pointers says whether it
// reads x and g through plain pointers (&x[0]), so that the kernels give it contiguous rows.
#pragma once

#include <cstdint>

#include "genai/langevin.hpp"
#include "genai/rng.hpp"

namespace genai::detail {

// Everything run_chain needs beside the target: the sampler, the counter keys, the outputs.
struct ChainSetup {
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
  int first_level = 0;        // annealed: run levels [first_level, level_end) of the ladder
  int level_end = 0;          // (0: through the last)
};

// A target that computes log p and its gradient on plain arrays: F provides
//   float  log_density_grad(const float* x, float* g, int d) const   (device code), or
//   double log_density_grad(const double* x, double* g, int d) const (the CPU reference).
// Annealing is refused for it (p's sigma-noised score is not known from p).
template <class F>
struct PointerTarget {
  F f;
  int d;
  static constexpr bool takes_pointers = true;
  template <class T, int D, class A, class G>
  GENAI_HD T log_density_grad(T /*extra_var*/, const A& x, G& g) const {
    return f.log_density_grad(&x[0], &g[0], D > 0 ? D : d);
  }
};

// The chain step's arithmetic with its rounding spelled out. For float (the kernels, and the
// host float path of the tests) a*b+c is one correctly rounded fma and a-b one correctly rounded
// subtraction (rng::detail: __fmaf_rn / __fadd_rn on the device), so nvcc (-fmad=true) and
// ptxas cannot contract or split them differently in different instantiations -- the built-in
// targets' kernels and genai::langevin_device's kernels for a target with the same formulas give
// the same bits, and a user target's final multiply (return -0.5f * l) cannot fuse into
// log p(y) - log p(x). For double (the CPU reference, built with -ffp-contract=off) they are the
// plain expressions, bit for bit the same as a + b*c etc. written inline (IEEE + is commutative).
GENAI_HD float chain_fma(float a, float b, float c) { return rng::detail::fma(a, b, c); }
GENAI_HD double chain_fma(double a, double b, double c) { return a * b + c; }
GENAI_HD float chain_sub(float a, float b) { return rng::detail::add(a, -b); }
GENAI_HD double chain_sub(double a, double b) { return a - b; }

// Level i (from 0) of the annealing ladder: sigma_i and the ULA step h_i = alpha_i / 2.
template <class T>
GENAI_HD void anneal_level(const ChainSetup& s, int i, T& sigma, T& h) {
  const T ratio = T(s.sigma_last) / T(s.sigma_first);
  sigma = s.levels > 1 ? T(s.sigma_first) * exp(T(i) / T(s.levels - 1) * log(ratio))
                       : T(s.sigma_last);
  h = T(0.5) * T(s.step_size) * (sigma * sigma) / (T(s.sigma_last) * T(s.sigma_last));
}

// Chain c of `target` from its row x_row[d] (written back at the end). Work arrays x, y, gx, gy
// of d entries (any type with operator[]); mu, m2 too when s.mean is set. D > 0 fixes d at
// compile time (the kernels keep the arrays in registers). Each proposal is rounded to float,
// the type of the state, so a run continued from its float output with first_step = steps done
// is the unsplit run exactly.
template <class T, int D, class Target, class A>
GENAI_HD void run_chain(const Target& target, const ChainSetup& s, std::int64_t c, float* x_row,
                        A& x, A& y, A& gx, A& gy, A& mu, A& m2) {
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
  const int level_end = !annealed ? 1 : s.level_end > 0 ? s.level_end : s.levels;
  for (int level = annealed ? s.first_level : 0; level < level_end; ++level) {
    T h = T(s.step_size), extra_var = T(0);
    if (annealed) {
      T sigma;
      anneal_level(s, level, sigma, h);
      extra_var = sigma * sigma;
    }
    const T noise = sqrt(T(2) * h / beta);
    T lpx = target.template log_density_grad<T, D>(extra_var, x, gx);
    for (std::int64_t t = 0; t < s.steps; ++t, ++step) {
      const std::uint32_t counter = s.first_step + static_cast<std::uint32_t>(step);
      for (std::uint64_t b = 0; b < blocks; ++b) {
        const rng::Float4 z = rng::normal4(s.seed, rng::streams::langevin,
                                           static_cast<std::uint64_t>(c) * blocks + b, counter);
        for (int lane = 0; lane < 4; ++lane) {
          const int j = static_cast<int>(b) * 4 + lane;
          // x + h grad + noise z, as fma(noise, z, fma(h, grad, x))
          if (j < d) y[j] = T(static_cast<float>(chain_fma(noise, T(z.v[lane]), chain_fma(h, gx[j], x[j]))));
        }
      }
      if (mala) {
        // log acceptance = beta (log p(y) - log p(x)) + log q(x|y) - log q(y|x),
        // log q(a|b) = -beta |a - b - h grad log p(b)|^2 / (4h).
        const T lpy = target.template log_density_grad<T, D>(extra_var, y, gy);
        T forward = 0, backward = 0;
        for (int j = 0; j < d; ++j) {
          // y - x - h grad p(x) and x - y - h grad p(y)
          const T f = chain_fma(-h, gx[j], chain_sub(y[j], x[j]));
          const T b = chain_fma(-h, gy[j], chain_sub(x[j], y[j]));
          forward = chain_fma(f, f, forward);
          backward = chain_fma(b, b, backward);
        }
        const T log_alpha =
            chain_fma(beta, chain_sub(lpy, lpx), -(beta * chain_sub(backward, forward) / (T(4) * h)));
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
        if (t + 1 < s.steps) lpx = target.template log_density_grad<T, D>(extra_var, x, gx);
      }
      const std::int64_t done = step + 1;
      if (s.mean && done > s.burn_in) {  // Welford
        ++n;
        for (int j = 0; j < d; ++j) {
          const T delta = chain_sub(x[j], mu[j]);
          mu[j] += delta / T(n);
          m2[j] = chain_fma(delta, chain_sub(x[j], mu[j]), m2[j]);
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

// A checked run: its outputs allocated on ctx's device and the setup pointing at them.
struct LangevinRun {
  LangevinResult result;
  ChainSetup setup;
};

// The checks of genai::langevin and genai::langevin_device, in the order they report: chains,
// d, x (not null), the options, the trajectory's size, then x's finiteness (a pass over device
// memory on a CUDA context). no_annealing: nullptr when the target can be annealed, else what
// it is ("a double well"). Throws ArgumentError (naming fn and the argument) before any output
// is allocated or x is touched.
LangevinRun prepare_langevin(const char* fn, const Context& ctx, float* x, std::int64_t chains,
                             std::int64_t d, const LangevinOptions& opts, const char* no_annealing);

// After a run of `s` on x [chains x d]: throws DivergenceError when a chain's state is not finite,
// saying how many chains, the steps (and levels) the run covered, the step size, and
// step_limit (langevin_step_limit; +infinity: none known).
void check_divergence(const char* fn, const Context& ctx, const float* x, const ChainSetup& s,
                      double step_limit);

}  // namespace genai::detail
