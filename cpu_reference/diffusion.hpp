// CPU reference of the diffusion module. The per-element formulas and the step / mixture tables
// it shares with kernels/diffusion.cu are in genai/detail/diffusion.hpp.
#pragma once

#include <cstdint>
#include <vector>

#include "genai/detail/diffusion.hpp"
#include "genai/diffusion.hpp"

namespace genai::ref {

using detail::StepCoeffs;

// out[r, j] = step_element(k, x, m, z, clip); z = Philox normal (stream diffusion_sampler,
// step `step`) when k.sigma != 0, else 0. out may alias x or m.
void affine_step(const StepCoeffs& k, const float* x, const float* m, std::int64_t n,
                 std::int64_t d, std::uint64_t seed, std::uint32_t step, float clip, float* out);
// x ~ N(0, I) [n x d] from stream diffusion_sampler at `step`.
void draw_sampler_noise(std::int64_t n, std::int64_t d, std::uint64_t seed, std::uint32_t step,
                        float* x);

// sa[t] = sqrt(alpha_bar_t), sb[t] = sqrt(1 - alpha_bar_t) as float tables.
void add_noise(const float* sa, const float* sb, const float* x0, const std::int64_t* timesteps,
               std::int64_t n, std::int64_t d, float* x_t, const NoiseOptions& o);

// scale * grad log p_t(x) of the mixture at alpha_bar (double accumulation, log-sum-exp).
void mixture_score(const GaussianMixture& m, double alpha_bar, const float* x, std::int64_t n,
                   double scale, float* out);

// One step of a fused mixture sampler: the step's coefficients, alpha_bar at t, t.
struct MixtureStep {
  StepCoeffs k;
  double alpha_bar;
  std::uint32_t t;
};
// genai::sample_mixture for the one-model-call samplers (DDPM, DDIM, PF-ODE Euler): chunks of
// rows on the backend's threads, each taken through every step (the initial noise when asked,
// then per step the mixture's epsilon and the affine step with its noise), keeping every
// keep_every-th state in intermediates [steps / keep_every x n x d]. Each row sees the
// operations of the step-by-step loop (mixture_score, affine_step) in the same order: the same
// bits.
void sample_mixture(const GaussianMixture& m, const std::vector<MixtureStep>& steps,
                    std::int64_t n, std::uint64_t seed, std::uint32_t initial_step,
                    bool draw_initial, float clip, std::int64_t keep_every, float* intermediates,
                    float* x);

}  // namespace genai::ref
