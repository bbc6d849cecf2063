// Langevin samplers over many chains at once, Brownian paths, and MCMC diagnostics
// (problem set 7.1, 7.2, 7.4; challenge C2's Langevin half).
//
// State: x is row-major [chains x d], one chain per row, updated in place (host pointer with a
// CPU context, device pointer with a CUDA context). With inverse temperature beta, the chains
// target p_beta(x) proportional to p(x)^beta = exp(-beta E(x)):
//
//   ULA       x <- x + h grad log p(x) + sqrt(2h/beta) xi                          (7.2, 7.4)
//   MALA      the ULA move as a proposal y, accepted with probability
//             min(1, p_beta(y) q(x|y) / (p_beta(x) q(y|x))),
//             q(y|x) = N(y; x + h grad log p(x), (2h/beta) I); counts per chain
//   Annealed  Song & Ermon's annealed Langevin dynamics (NCSN): a geometric ladder
//             sigma_1 > ... > sigma_L, and at level i, T ULA steps on p convolved with
//             N(0, sigma_i^2 I) with alpha_i = eps sigma_i^2 / sigma_L^2:
//             x <- x + (alpha_i / 2) grad log p_sigma_i(x) + sqrt(alpha_i / beta) xi
//
// Noise: Philox (genai/rng.hpp), keyed by (seed, chain, step), so the CPU reference and the
// kernels follow the same paths. Step s (counted from 0, plus LangevinOptions::first_step;
// annealed: s = level * T + t) of chain c draws its d normals from stream rng::streams::langevin,
// step s, blocks c * ceil(d/4) .. c * ceil(d/4) + ceil(d/4) - 1 (dimension j: lane j % 4 of the
// block c * ceil(d/4) + j / 4); MALA's acceptance uniform is lane 0 of block c of stream
// rng::streams::langevin_accept, step s.
//
// Every proposal is rounded to float, the state's type (the reference computes it in double),
// so a ULA or MALA run split into pieces -- each continuing from the last one's x with
// first_step = the steps done so far -- is the unsplit run exactly (Welford moments and
// acceptance counts are per call; trajectories concatenate when each piece is whole thin
// periods).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "genai/buffer.hpp"
#include "genai/context.hpp"

namespace genai {

// A target density p on R^d, given by a few parameters (host data, copied to the device per
// call). Built with the factories, which check their arguments.
//   Gaussian    N(mean, diag(var))                                (K = 1)
//   GaussianCholesky  N(mean, L L^T), L lower triangular [d x d] with a positive diagonal
//               (only the lower triangle is read); O(d^2) per gradient
//   Mixture     sum_k w_k N(mean_k, diag(var_k))                   (weights normalised to 1)
//   DoubleWell  E(x) = height (x_0^2 - 1)^2 + tilt x_0 + 1/2 sum_{j>=1} x_j^2,  p = exp(-E)
//               (tilt > 0 makes x_0 = -1 the global minimum)
//   Custom      the caller's log p and grad log p (custom()): a host callable, so CPU contexts
//               only (on the GPU: genai/langevin_device.cuh with a __device__ functor); not
//               annealed, since p's sigma-noised score is not known from p
// noised(sigma) is p convolved with N(0, sigma^2 I): every variance grows by sigma^2 (the
// diagonal Gaussian and the mixture; the annealed sampler adds its own sigma_i^2 on top).
struct LangevinTarget {
  enum class Kind { Gaussian, GaussianCholesky, Mixture, DoubleWell, Custom };
  // log p(x) up to a constant (the same for every x), with grad[d] = grad log p(x); x and grad
  // are double because the CPU reference runs in double.
  using LogDensityGrad = std::function<double(const double* x, double* grad)>;
  Kind kind = Kind::Gaussian;
  std::int64_t d = 1;
  std::int64_t K = 1;
  std::vector<float> weights;  // [K], summing to 1
  std::vector<float> means;    // [K x d]
  std::vector<float> vars;     // [K x d], diagonal variances, noise included (Cholesky: ones)
  std::vector<float> chol;     // [d x d], row-major L (GaussianCholesky)
  float height = 1.0f, tilt = 0.0f;
  LogDensityGrad log_density_grad;  // Custom

  static LangevinTarget gaussian(std::vector<float> mean, std::vector<float> var);
  static LangevinTarget gaussian_cholesky(std::vector<float> mean, std::vector<float> L);
  // vars: K values (isotropic components) or K x d (diagonal).
  static LangevinTarget mixture(std::int64_t d, std::vector<float> weights,
                                std::vector<float> means, std::vector<float> vars);
  static LangevinTarget double_well(std::int64_t d, float height = 1.0f, float tilt = 0.0f);
  // 8 equal-weight N(mu_k, 0.5^2 I), mu_k = 4 (cos(k pi/4), sin(k pi/4)).
  static LangevinTarget gmm8();
  // 0.8 N((5, 5), I) + 0.2 N((-5, -5), I).
  static LangevinTarget two_modes();
  // A target on R^d given by f (see LogDensityGrad). With the same formulas as a built-in
  // target, it runs the built-in target's chains bit for bit.
  static LangevinTarget custom(std::int64_t d, LogDensityGrad f);
  LangevinTarget noised(float sigma) const;
};

enum class LangevinMethod { ULA, MALA, Annealed };

struct AnnealSchedule {
  std::int64_t levels = 10;   // L
  float sigma_first = 10.0f;  // sigma_1, the largest
  float sigma_last = 0.1f;    // sigma_L, the smallest
  // sigma_i = sigma_1 (sigma_L / sigma_1)^((i-1)/(L-1)), i = 1..L (L = 1: sigma_L alone)
  // Run only levels first_level .. first_level + level_count - 1 (counted from 0; level_count 0:
  // through the last) of the ladder, to split a run: continue with first_level += the levels
  // done and first_step += their steps, and the pieces are the whole run exactly.
  std::int64_t first_level = 0;
  std::int64_t level_count = 0;
};

struct LangevinOptions {
  LangevinMethod method = LangevinMethod::ULA;
  float step_size = 0.01f;      // h (ULA, MALA); eps (Annealed)
  float beta = 1.0f;            // inverse temperature
  std::int64_t steps = 1000;    // ULA, MALA: steps; Annealed: T, steps per level
  std::uint64_t seed = 0;
  std::uint32_t first_step = 0; // Philox step of the first step (continue a run: + its steps)
  AnnealSchedule anneal{};
  bool moments = false;         // running per-chain mean and variance (Welford)
  std::int64_t burn_in = 0;     // moments over the states after steps burn_in+1 .. total
  std::int64_t thin = 0;        // > 0: record the states after every thin-th step
  std::size_t max_trajectory_bytes = std::size_t{1} << 30;  // refuse larger trajectories
  // After the run, scan the states: any non-finite chain throws DivergenceError (one pass over
  // x; on a CUDA context it synchronises the stream, so false keeps the call asynchronous).
  bool check_divergence = true;
};

// Outputs beside the final states (left in x), on ctx's device; empty when not asked for.
struct LangevinResult {
  std::int64_t total_steps = 0;   // steps (Annealed: levels run * steps)
  Buffer<float> trajectory;       // [total/thin x chains x d]: record r = states after step (r+1)*thin
  Buffer<float> mean, var;        // [chains x d]: mean and (1/n) variance over the moment window
  Buffer<std::int64_t> accepted;  // [chains]: MALA acceptances
};

// Runs the chains x [chains x d] in place. Throws ArgumentError, before touching x, for
// h <= 0, h at or past langevin_step_limit, beta <= 0, chains < 1, d != target.d, a non-finite
// initial state, a trajectory larger than opts.max_trajectory_bytes, or a Custom target on a
// CUDA context; and DivergenceError after the run when chains ended non-finite (see
// opts.check_divergence), naming how many, the steps or levels run and the limit. Users'
// targets on the GPU: genai::langevin_device (genai/langevin_device.cuh).
LangevinResult langevin(const Context& ctx, const LangevinTarget& target, float* x,
                        std::int64_t chains, std::int64_t d, const LangevinOptions& opts = {});

// The step size from which ULA provably diverges on the target, or +infinity where no limit is
// known. ULA's x' = x + h grad log p(x) + sqrt(2h / beta) z contracts a Gaussian of variance v
// only while h / v < 2 (x' - mu = (1 - h/v)(x - mu) + noise), whatever beta. So:
//   ULA       2 v_min: the diagonal Gaussian's smallest variance, the smallest component variance
//             of a mixture, the smallest eigenvalue of L L^T for the Cholesky Gaussian;
//   Annealed  eps with h_i = eps sigma_i^2 / (2 sigma_L^2) on the variances v + sigma_i^2: the
//             largest sigma binds, eps < 4 sigma_L^2 (v_min + sigma_1^2) / sigma_1^2 (sigma_1 the
//             top of the ladder; sigma_L alone when levels = 1);
//   MALA, the double well and custom targets: +infinity (MALA's rejections keep it finite; the
//             others have no Gaussian bound).
// genai::langevin refuses a step size at or past it (ArgumentError on 'opts.step_size').
double langevin_step_limit(const LangevinTarget& target, LangevinMethod method,
                           const AnnealSchedule& anneal = {});

// log p(x) of the target up to a constant (the same for every x), on the host in double, and
// grad log p(x) into grad[d] when grad is not null: the chains' own formulas, for plots and
// checks. x [target.d].
double log_density(const LangevinTarget& target, const double* x, double* grad = nullptr);

// Standard Brownian motion in R^d (7.1): out [paths x (steps+1) x d], W_0 = 0,
// W_{s+1} = W_s + sqrt(dt) xi_s, xi_s drawn as Langevin step s of chain `path`.
void brownian_motion(const Context& ctx, float* out, std::int64_t paths, std::int64_t d,
                     std::int64_t steps, float dt, std::uint64_t seed);

// Diagnostics on host data, per dimension, as ArviZ computes them (Vehtari et al. 2021):
// samples are [draws x chains x d] (the trajectory layout); out[d].
//   effective_sample_size  bulk ESS: split chains, rank-normalised, Geyer's initial monotone
//                          sequence over the autocorrelations.
//   split_rhat             max of the rank-normalised split R-hat of the draws (bulk) and of
//                          their distance to the median (tail); ~1 when the chains agree.
// Needs draws >= 4 and chains >= 1.
void effective_sample_size(const float* samples, std::int64_t draws, std::int64_t chains,
                           std::int64_t d, double* out);
void split_rhat(const float* samples, std::int64_t draws, std::int64_t chains, std::int64_t d,
                double* out);

}  // namespace genai
