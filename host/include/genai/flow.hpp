// Change of variables (problem set 5.2, 5.3, 9.3(c)): log-densities through a composition of
// invertible maps, and their continuous version, the instantaneous change of variables along an
// ODE -- with the probability-flow ODE of the diffusion module's VP process and the exact score
// of a Gaussian mixture, the model's log-likelihood of a point (Song et al. 2021).
//
// Discrete: x = f_K(... f_2(f_1(z))), z ~ N(0, I_d), each f_i invertible, so
//   log p(x) = log N(z; 0, I) - sum_i log|det J_{f_i}(z_{i-1})|,
//   z = f_1^{-1}(f_2^{-1}(... f_K^{-1}(x)))
// (z_0 = z, z_i = f_i(z_{i-1}), z_K = x): the inverses apply in the reverse order of the maps,
// the last map's first -- the erratum to 5.3(a), whose f_3^{-1}(f_2^{-1}(f_1^{-1}(x))) is the
// inverse of f_1 o f_2 o f_3. 5.2 is the one-map flow x = e^z: the log-normal,
// p(x) = exp(-(log x)^2 / 2) / (x sqrt(2 pi)).
//
// Continuous: along dy/dt = f(y, t), d log p_t(y(t)) / dt = -tr(df/dy) (Chen et al. 2018), so
//   log p_{t1}(y(t1)) = log p_{t0}(y(t0)) - int_{t0}^{t1} tr(df/dy) dt,
// integrated with genai::ode_solve on the augmented state [y, log p] (the trace exact from d
// Jacobian-vector products, or Hutchinson's estimate v^T (df/dy) v with Rademacher probes, FFJORD).
//
// Everything here runs on the host in double: the change of variables is the reference (these
// maps cost O(d) or O(d^2) per row; the ODE's CPU path is double too).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "genai/diffusion.hpp"
#include "genai/ode.hpp"

namespace genai {

// One invertible map x = f(z) of R^d (or of the part of it the previous map lands in):
//   exp          x = e^z                     R -> (0, inf)^d   log|det J| = sum_j z_j
//   sigmoid      x = 1 / (1 + e^-z)          R -> (0, 1)^d     sum_j log(x_j (1 - x_j))
//   logit        x = log(z / (1 - z))        (0, 1)^d -> R     -sum_j log(z_j (1 - z_j))
//   scale_shift  x = a * z + b (a_j != 0)    elementwise       sum_j log|a_j|
//   affine       x = A z + b (A invertible)  R^d -> R^d        log|det A|
struct FlowMap {
  enum class Kind { Exp, Sigmoid, Logit, ScaleShift, Affine };
  Kind kind = Kind::Exp;
  std::vector<double> a;  // ScaleShift: the scales [d]; Affine: A [d x d], row-major
  std::vector<double> b;  // ScaleShift, Affine: the shift [d]

  static FlowMap exp();
  static FlowMap sigmoid();
  static FlowMap logit();
  static FlowMap scale_shift(std::vector<double> scale, std::vector<double> shift);
  static FlowMap affine(std::vector<double> A, std::vector<double> b);
};

// z ~ N(0, I_d) through maps[0], maps[1], ... (maps[0] is f_1). The constructor checks every map
// against d (sizes, finite values, a_j != 0, A invertible: LU with partial pivoting, which also
// gives log|det A| and A^{-1}). A logit takes (0, 1)^d: put it where the maps before it land
// there (after a sigmoid), or forward gives NaN. x's support is the image of R^d: a point where
// an inverse leaves its map's range (log of x <= 0, logit of x outside (0, 1)) has density 0.
// Rows are row-major [n x d].
class Flow {
 public:
  Flow(std::int64_t d, std::vector<FlowMap> maps);

  std::int64_t dim() const { return d_; }
  const std::vector<FlowMap>& maps() const { return maps_; }

  // x = f_K(... f_1(z)); logdet[n] (may be null) = sum_i log|det J_{f_i}(z_{i-1})|.
  void forward(const double* z, std::int64_t n, double* x, double* logdet = nullptr) const;
  // z = f_1^{-1}(... f_K^{-1}(x)); logdet as forward's at that z. Rows outside the support get
  // NaN z and logdet.
  void inverse(const double* x, std::int64_t n, double* z, double* logdet = nullptr) const;
  // log p(x) = log N(z; 0, I) - sum_i log|det J_{f_i}|; -inf outside the support. grad [n x d]
  // (may be null) = d log p / dx by the chain rule through the inverses (0 outside the support).
  void log_prob(const double* x, std::int64_t n, double* out, double* grad = nullptr) const;

  // Per affine map (in maps order; empty entries for the others): A^{-1} and log|det A|.
  struct Inverse {
    std::vector<double> inv;
    double log_abs_det = 0;
  };

 private:
  std::int64_t d_;
  std::vector<FlowMap> maps_;
  std::vector<Inverse> inverses_;
};

// ---- continuous: the instantaneous change of variables --------------------------------------

// One batched evaluation of a right-hand side with Jacobian-vector products: for i < n (batch row
// rows[i] at time t[i], state y[i*d ..]), write dydt[i*d ..] = f(y, t) and, for every probe
// p < probes, jv[(p*n + i)*d ..] = (df/dy) v[(p*n + i)*d ..] -- or v^T (df/dy): either product
// gives the trace. Pointers as OdeEval's (contiguous copies).
struct CnfEval {
  std::int64_t n, d, probes;
  const std::int64_t* rows;
  const double* t;
  const double* y;
  double* dydt;
  const double* v;
  double* jv;
};
using CnfFunction = std::function<void(const CnfEval&)>;

struct CnfOptions {
  OdeOptions ode = {.rtol = 1e-6, .atol = 1e-9};  // no t_eval here
  // false: the exact trace, sum_j e_j^T (df/dy) e_j (d probes, the unit vectors); true:
  // Hutchinson's estimate (1/P) sum_p v_p^T (df/dy) v_p with P Rademacher probes per row, drawn
  // once per row for the whole integration (FFJORD): row r's probe p, dimension j is the sign of
  // lane j % 4 of Philox uniform block r ceil(d/4) + j / 4 at step p, stream rng::streams::ode
  // (u <= 1/2: -1).
  bool hutchinson = false;
  std::int64_t probes = 1;
  std::uint64_t seed = 0;
};

// Integrates [y, l]' = [f(y, t), -tr(df/dy)] from t0 to t1 for each row: y [batch x d] in place,
// delta_logp[batch] = l(t1) - l(t0) = log p_{t1}(y(t1)) - log p_{t0}(y(t0)). Checks and errors
// as genai::ode_solve's (opts.ode.t_eval must be empty; probes >= 1).
OdeStats cnf_integrate(const CnfFunction& f, double* y, std::int64_t batch, std::int64_t d,
                       double t0, double t1, double* delta_logp, const CnfOptions& opts = {});

// The probability-flow ODE of the VP process (vp_alpha_bar: beta(t) = beta_min +
// t (beta_max - beta_min), x_t = sqrt(ab) x_0 + sqrt(1 - ab) eps) with the exact score s of the
// mixture noised to alpha_bar(t):
//   dx/dt = -beta(t) / 2 (x + s(x, t)),  tr(df/dx) = -beta(t) / 2 (d + tr(ds/dx)),
//   tr(ds/dx) = sum_k r_k (|g_k|^2 - sum_j 1 / v_kj) - |s|^2,  g_k = -(x - c_k) / v_k,
// (r_k the responsibilities, c_k = sqrt(ab) mu_k, v_k = ab var_k + 1 - ab).
struct PfOdeOptions {
  double beta_min = 0.1, beta_max = 20.0;  // diffusers' linear schedule in continuous time
  double t_end = 1.0;                      // integrate x from t = 0 to t_end
  // The density at t_end: true, the mixture noised to alpha_bar(t_end) (exact, so the result is
  // log p_0 up to the ODE's error); false, N(0, I) -- the model's prior, as score-based models
  // report likelihoods (off by the noised mixture's distance from N(0, I) at t_end).
  bool exact_prior = true;
  // The trace: false (default) the closed form above; true, through cnf's Jacobian-vector
  // products (cnf.hutchinson chooses the exact trace or Hutchinson's estimate).
  bool jvp_trace = false;
  CnfOptions cnf = {};
};

// log p_0(x) for rows x [n x m.d] of the mixture's data space, by the PF-ODE from t = 0 to t_end:
// log p_0(x) = log p_{t_end}(x(t_end)) + int_0^{t_end} tr(df/dx) dt. out[n]. The PF-ODE of the
// exact score transports p_0 (the mixture) to p_t, so this is the mixture's own log density.
OdeStats pf_ode_log_likelihood(const GaussianMixture& m, const double* x, std::int64_t n,
                               double* out, const PfOdeOptions& opts = {});

// The mixture noised to alpha_bar at rows x [n x m.d]: log p (out, may be null), the score
// (score [n x d], may be null) and tr(d score / dx) (trace [n], may be null).
void mixture_score_trace(const GaussianMixture& m, double alpha_bar, const double* x,
                         std::int64_t n, double* log_p, double* score, double* trace);

}  // namespace genai
