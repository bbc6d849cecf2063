// Diffusion models (problem set 9.1-9.4): noise schedules, forward noising, DDPM / DDIM reverse
// steps, samplers around any model, the probability-flow ODE, the epsilon-MSE loss, and the
// exact score of Gaussian-mixture data as a built-in model.
//
// Conventions follow Hugging Face diffusers' DDPMScheduler / DDIMScheduler, so the option names
// and defaults read the same: beta_schedule linear | scaled_linear | squaredcos_cap_v2 (alias
// cosine) | sigmoid, timestep_spacing leading | trailing | linspace plus steps_offset,
// variance_type fixed_small | fixed_large, prediction_type epsilon | sample | v_prediction,
// clip_sample + clip_sample_range, DDIM eta. One difference: clip_sample defaults to false here
// (diffusers' true assumes images in [-1, 1]).
//
// Data are row-major [n x d]: n samples of d features. Timesteps t index the training schedule,
// 0 <= t < T (T = num_train_timesteps); alpha_bar_t = prod_{s <= t} (1 - beta_s).
// Pointers are host pointers with a CPU context, device pointers with a CUDA context.
//
// Random numbers (layout of rng.hpp): element j of sample row r draws lane j % 4 of Philox block
// r * ceil(d / 4) + j / 4. Forward noising uses stream rng::streams::diffusion_noise with
// step = NoiseOptions::step; the samplers use rng::streams::diffusion_sampler with step = the
// timestep t of the step (and step = T for the initial x_T). The GPU draws the same numbers, so
// its paths equal the CPU reference's.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "genai/context.hpp"
#include "genai/rng.hpp"

namespace genai {

enum class BetaSchedule { Linear, ScaledLinear, SquaredCosCapV2, Sigmoid };
enum class TimestepSpacing { Leading, Trailing, Linspace };
enum class VarianceType { FixedSmall, FixedLarge };
enum class PredictionType { Epsilon, Sample, VPrediction };
enum class SamplerKind { DDPM, DDIM, PFOdeEuler, PFOdeHeun };

// diffusers' names ("squaredcos_cap_v2" or "cosine"; "pf-ode-euler", "pf-ode-heun" and
// "pf-ode" = Heun for the samplers). Unknown names throw ArgumentError listing the valid ones.
BetaSchedule parse_beta_schedule(const std::string& name);
TimestepSpacing parse_timestep_spacing(const std::string& name);
VarianceType parse_variance_type(const std::string& name);
PredictionType parse_prediction_type(const std::string& name);
SamplerKind parse_sampler(const std::string& name);

struct ScheduleOptions {
  std::int64_t num_train_timesteps = 1000;
  BetaSchedule beta_schedule = BetaSchedule::Linear;
  double beta_start = 1e-4;  // linear, scaled_linear, sigmoid
  double beta_end = 0.02;
  double max_beta = 0.999;   // squaredcos_cap_v2's cap
};

// The tables of a discrete schedule, computed once in double:
//   linear            beta_i = beta_start + (beta_end - beta_start) i / (T - 1)
//   scaled_linear     beta_i = (sqrt(beta_start) + (sqrt(beta_end) - sqrt(beta_start)) i/(T-1))^2
//   squaredcos_cap_v2 beta_i = min(1 - f((i+1)/T) / f(i/T), max_beta),
//                     f(s) = cos((s + 0.008) / 1.008 * pi / 2)^2   (Nichol & Dhariwal)
//   sigmoid           beta_i = beta_start + (beta_end - beta_start) sigmoid(-6 + 12 i / (T - 1))
// alpha = 1 - beta, alpha_bar = cumprod(alpha), snr = alpha_bar / (1 - alpha_bar).
// Every beta must lie in (0, 1): T < 1 or a beta outside throws ArgumentError.
class NoiseSchedule {
 public:
  explicit NoiseSchedule(const ScheduleOptions& opts = {});
  static NoiseSchedule from_betas(const std::vector<double>& betas);

  std::int64_t num_train_timesteps() const { return static_cast<std::int64_t>(beta_.size()); }
  const std::vector<double>& betas() const { return beta_; }
  const std::vector<double>& alphas() const { return alpha_; }
  const std::vector<double>& alphas_cumprod() const { return alpha_bar_; }
  const std::vector<double>& sqrt_alphas_cumprod() const { return sqrt_alpha_bar_; }
  const std::vector<double>& sqrt_one_minus_alphas_cumprod() const { return sqrt_one_minus_; }
  const std::vector<double>& snr() const { return snr_; }

 private:
  NoiseSchedule(const char* fn, const std::vector<double>& betas);
  std::vector<double> beta_, alpha_, alpha_bar_, sqrt_alpha_bar_, sqrt_one_minus_, snr_;
};

// The descending timesteps of an N-step inference run over T training steps (diffusers'
// set_timesteps):
//   leading   t_i = (N-1-i) * (T / N) + steps_offset      (integer T / N)
//   trailing  t_i = round(T - i * T / N) - 1
//   linspace  t_i = round((N-1-i) (T-1) / (N-1))          (N = 1: t = 0, as numpy)
// (round: half to even, as numpy.)
// Requires 1 <= N <= T; every t must land in [0, T-1] (a steps_offset pushing it out throws).
std::vector<std::int64_t> inference_timesteps(std::int64_t num_train_timesteps,
                                              std::int64_t num_inference_steps,
                                              TimestepSpacing spacing = TimestepSpacing::Leading,
                                              std::int64_t steps_offset = 0);

// Continuous-time processes on t in [0, 1] (9.1c, 9.2):
//   VP: beta(t) = beta_min + t (beta_max - beta_min),
//       alpha_bar(t) = exp(-int_0^t beta) = exp(-beta_min t - (beta_max - beta_min) t^2 / 2)
//   VE: sigma(t) = sigma_min (sigma_max / sigma_min)^t
// The discrete linear schedule with beta_i = beta(i / (T-1)) / T approximates the VP one; with
// T = 1000 the defaults 0.1 / 20 are diffusers' 1e-4 / 0.02.
double vp_alpha_bar(double t, double beta_min = 0.1, double beta_max = 20.0);
double ve_sigma(double t, double sigma_min = 0.01, double sigma_max = 50.0);

// ---- forward noising (9.4 forward_diffusion) -------------------------------------------------

struct NoiseOptions {
  std::uint64_t seed = 0;
  std::uint32_t step = 0;         // Philox step (e.g. the training iteration)
  const float* noise = nullptr;   // [n x d] caller's epsilon; nullptr: drawn from Philox
  float* eps_out = nullptr;       // [n x d] the epsilon used, when not null
  float* v_out = nullptr;         // [n x d] v = sqrt(ab) eps - sqrt(1 - ab) x0, when not null
};

// x_t[r] = sqrt(alpha_bar_{t_r}) x0[r] + sqrt(1 - alpha_bar_{t_r}) eps[r], one timestep per
// row: timesteps[n], each in [0, T-1]. x0, x_t [n x d]. On a CUDA context the range check of the
// timesteps is one pass over them and one synchronisation.
void add_noise(const Context& ctx, const NoiseSchedule& schedule, const float* x0,
               const std::int64_t* timesteps, std::int64_t n, std::int64_t d, float* x_t,
               const NoiseOptions& opts = {});

// ---- reverse steps (9.4 reverse_step) --------------------------------------------------------

struct StepOptions {
  PredictionType prediction_type = PredictionType::Epsilon;
  VarianceType variance_type = VarianceType::FixedSmall;  // DDPM
  double eta = 0.0;                                        // DDIM: 0 deterministic, 1 ~ DDPM
  bool clip_sample = false;                                // clamp predicted x0 to +-range
  double clip_sample_range = 1.0;
  std::uint64_t seed = 0;                                  // Philox seed of the step noise
};

// One reverse step from timestep t to prev_t (the next entry of the inference timesteps;
// -1 after the last, where alpha_bar_prev = 1 and no noise is added). -1 <= prev_t < t < T.
// model_output, x_t, x_prev: [n x d]; x_prev may alias x_t.
//   predicted x0:  epsilon  (x - sqrt(1-ab) m) / sqrt(ab);   sample  m;
//                  v_prediction  sqrt(ab) x - sqrt(1-ab) m;  then clipped if clip_sample.
//   DDPM: x_prev = sqrt(ab_prev) b_t / (1-ab) x0 + sqrt(a_t) (1-ab_prev) / (1-ab) x + s z,
//         a_t = ab / ab_prev, b_t = 1 - a_t, s^2 = (1-ab_prev)/(1-ab) b_t (fixed_small) or b_t
//         (fixed_large).
//   DDIM: x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - s^2) eps + s z,
//         s = eta sqrt((1-ab_prev)/(1-ab) (1 - ab/ab_prev)), eps the model's (unclipped) epsilon.
// z: Philox, stream diffusion_sampler, step t.
void ddpm_step(const Context& ctx, const NoiseSchedule& schedule, std::int64_t t,
               std::int64_t prev_t, const float* model_output, const float* x_t, std::int64_t n,
               std::int64_t d, float* x_prev, const StepOptions& opts = {});
void ddim_step(const Context& ctx, const NoiseSchedule& schedule, std::int64_t t,
               std::int64_t prev_t, const float* model_output, const float* x_t, std::int64_t n,
               std::int64_t d, float* x_prev, const StepOptions& opts = {});

// ---- samplers ---------------------------------------------------------------------------------

// A model: writes its prediction (of opts.step.prediction_type) for x_t [n x d] at timestep t
// into out [n x d]; pointers on ctx's device.
using Model = std::function<void(const Context& ctx, std::int64_t t, const float* x_t,
                                 std::int64_t n, std::int64_t d, float* out)>;

struct SamplerOptions {
  SamplerKind sampler = SamplerKind::DDPM;
  std::int64_t num_inference_steps = 50;
  TimestepSpacing timestep_spacing = TimestepSpacing::Leading;
  std::int64_t steps_offset = 0;
  std::vector<std::int64_t> timesteps = {};  // custom: strictly descending in [0, T-1]; overrides
  StepOptions step = {};
  bool draw_initial_noise = true;       // x_T ~ N(0, I) (Philox step T); false: x holds x_T
  // Every k-th state: after step i (0-based) with (i + 1) % keep_every == 0 the state is copied
  // to intermediates + ((i + 1) / keep_every - 1) * n * d, on ctx's device
  // (intermediate_count of them). 0: none.
  std::int64_t keep_every = 0;
  float* intermediates = nullptr;
  std::function<void(std::int64_t done, std::int64_t total)> progress = {};  // after a step
  // After the loop, scan x: a non-finite sample throws DivergenceError (one pass; on a CUDA
  // context it synchronises the stream, so false keeps the call asynchronous).
  bool check_divergence = true;
};

// The timesteps a sampler with these options visits.
std::vector<std::int64_t> sampler_timesteps(const NoiseSchedule& schedule,
                                            const SamplerOptions& opts);
std::int64_t intermediate_count(const NoiseSchedule& schedule, const SamplerOptions& opts);

// Runs the reverse process for n samples of d features; x [n x d] receives x_0.
// PF-ODE (9.3c, deterministic): in xbar = x / sqrt(ab) and sigma = sqrt((1-ab)/ab) the
// probability-flow ODE of the VP process is d xbar / d sigma = eps(x, t); Euler steps (which
// coincide with DDIM, eta = 0) or Heun steps (Karras et al. 2022; the last step, to sigma = 0,
// is Euler). clip_sample applies to DDPM and DDIM only.
// Bad options throw before x is touched; an exception from the model propagates and leaves x
// holding the state of the step it failed in. Samples that end non-finite (a model returning
// inf or NaN, an overflowing schedule) throw DivergenceError naming how many and the sampler.
void sample(const Context& ctx, const NoiseSchedule& schedule, const Model& model,
            std::int64_t n, std::int64_t d, float* x, const SamplerOptions& opts = {});

// ---- annealed Langevin on the schedule's noise levels (challenge C2) --------------------------

// Song & Ermon's annealed Langevin dynamics (NCSN) with a diffusion model's score at the
// schedule's own noise levels, so that it and the reverse diffusion can be compared on one
// model ("diffusion = annealed Langevin"). The levels are timesteps t_0 > t_1 > ... (the samplers'
// inference timesteps); level t targets the noised marginal p_t, whose score is
// -eps(x, t) / sqrt(1 - ab_t) (eps from the model's prediction of any prediction_type). In the
// variance-exploding view xbar = x / sqrt(ab_t), sigma_t^2 = (1 - ab_t) / ab_t, the chains carry
// xbar from level to level (NCSN); in x, entering level t from level t' rescales the state by
// sqrt(ab_t / ab_t'). Then steps_per_level ULA steps
//   x <- x + h_t score_t(x) + sqrt(2 h_t) z,   h_t = step_scale (1 - ab_t)
// (NCSN's alpha_i = eps sigma_i^2 / sigma_L^2 in xbar is this step with step_scale =
// eps / (2 sigma_L^2); h_t is at most step_scale times p_t's smallest variance, so any
// step_scale < 2 is stable on Gaussian data), or, with step_size > 0, h_t = step_size at every
// level (plain ULA, e.g. on one level). Score evaluations: n x levels x steps_per_level.
// Noise: Philox stream diffusion_sampler, step T + 1 + i for the i-th Langevin step of the run
// (the initial x_T at step T, as sample()), blocks as the other samplers.
struct AnnealedLangevinOptions {
  std::int64_t num_levels = 100;  // levels from inference_timesteps(T, num_levels, spacing)
  TimestepSpacing timestep_spacing = TimestepSpacing::Leading;
  std::vector<std::int64_t> timesteps = {};  // custom levels, strictly descending; override
  // The defaults, on the mixtures here with 100 levels: TV of the mode weights at the sampling
  // noise of 10^4 samples, as DDPM's. A larger step_scale mixes faster but ULA's O(h) bias
  // shifts the weights (two_modes, 100 levels: TV 0.004 at 0.2 x 10 steps, 0.02 at 0.5 x 3,
  // 0.07 at 1.0 x 3).
  std::int64_t steps_per_level = 10;         // >= 1
  double step_scale = 0.2;                   // in (0, 2)
  double step_size = 0;                      // > 0: this h at every level instead
  PredictionType prediction_type = PredictionType::Epsilon;
  std::uint64_t seed = 0;
  bool draw_initial_noise = true;  // x ~ N(0, I) first; false: x holds the start
  bool check_divergence = true;    // as SamplerOptions::check_divergence
};

void sample_annealed_langevin(const Context& ctx, const NoiseSchedule& schedule, const Model& model,
                              std::int64_t n, std::int64_t d, float* x,
                              const AnnealedLangevinOptions& opts = {});

// ---- loss (9.2b) ------------------------------------------------------------------------------

// Denoising score matching as epsilon-MSE: row_loss[r] = (1/d) sum_j (pred - target)^2, the
// batch loss L = (1/n) sum_r row_loss[r], and grad = dL/dpred = 2 (pred - target) / (n d)
// (grad may be nullptr). pred, target, grad [n x d]; row_loss [n].
void eps_mse_loss(const Context& ctx, const float* prediction, const float* target,
                  std::int64_t n, std::int64_t d, float* row_loss, float* grad = nullptr);

// ---- Gaussian mixtures: exact scores of the noised marginal ---------------------------------

// p_0 = sum_k w_k N(mu_k, diag(var_k)); then p_t = sum_k w_k N(sqrt(ab) mu_k,
// diag(ab var_k + 1 - ab)).
struct GaussianMixture {
  std::int64_t K = 0, d = 0;
  std::vector<float> weights;    // [K], > 0, summing to 1
  std::vector<float> means;      // [K x d]
  std::vector<float> variances;  // [K x d], > 0 (isotropic: equal within a row)

  static GaussianMixture isotropic(std::vector<float> weights, std::vector<float> means,
                                   std::int64_t d, const std::vector<float>& variances);
  // "gmm8": 8 equal components at radius 4 on a circle, variance 0.04;
  // "two_modes": 0.8 N((5,5), I) + 0.2 N((-5,-5), I).
  static GaussianMixture preset(const std::string& name);
};

// n true samples into host memory out [n x d] (the reference set of the tests and the demo):
// row r picks its component with lane 0 of uniform block r at step key.step + 1, and its normals
// from blocks r * ceil(d/4) + j/4 at step key.step (seed and stream of key).
void mixture_draw(const GaussianMixture& m, std::int64_t n, RngKey key, float* out);

// The score grad log p_t(x) and the ideal epsilon-prediction eps = -sqrt(1 - ab) score of the
// mixture noised to alpha_bar = ab in (0, 1]. x, out [n x d].
void mixture_score(const Context& ctx, const GaussianMixture& m, double alpha_bar,
                   const float* x, std::int64_t n, float* score);
void mixture_epsilon(const Context& ctx, const GaussianMixture& m, double alpha_bar,
                     const float* x, std::int64_t n, float* eps);

// The mixture's epsilon-prediction as a Model for `sample` (prediction_type epsilon).
Model mixture_model(const GaussianMixture& m, const NoiseSchedule& schedule);

// sample() with mixture_model. On a CUDA context DDPM and DDIM run fused -- the whole loop in
// one launch for d <= 32 with the per-step mixture table K (2d + 1) floats within 48 KiB (K up to
// 1365 at d = 2, 187 at d = 32), the same Philox numbers as the step-by-step loop; other cases
// run the step-by-step loop. Requires opts.step.prediction_type == epsilon.
void sample_mixture(const Context& ctx, const NoiseSchedule& schedule, const GaussianMixture& m,
                    std::int64_t n, float* x, const SamplerOptions& opts = {});

}  // namespace genai
