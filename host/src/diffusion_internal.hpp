// What the three source files of the diffusion module (schedules, samplers, mixtures) share:
// argument checks and the dispatch of the per-element step. Internal to host/src.
#pragma once

#include <cstdint>

#include "genai/context.hpp"
#include "genai/detail/diffusion.hpp"
#include "genai/diffusion.hpp"

namespace genai::detail {

void require_shape(const char* fn, std::int64_t n, std::int64_t d);
void require_timestep(const char* fn, const char* arg, std::int64_t t, std::int64_t lo,
                      std::int64_t T);
void check_step_options(const char* fn, const StepOptions& o);
void check_mixture(const char* fn, const GaussianMixture& m);
void check_sampler(const char* fn, const NoiseSchedule& s, std::int64_t n, std::int64_t d,
                   const float* x, const SamplerOptions& o);
// The x0 clip of a sampler: clip_sample_range for DDPM / DDIM with clip_sample, else 0 (none).
float clip_of(SamplerKind kind, const StepOptions& o);
// Throws DivergenceError when a row of x [n x d] is not finite after fn's sampler loop.
void check_samples(const char* fn, const Context& ctx, const float* x, std::int64_t n,
                   std::int64_t d, const SamplerOptions& o, std::int64_t steps);
// out = step_element(k, x, m, z, clip) on either backend (detail/diffusion.hpp).
void affine(const Context& ctx, const StepCoeffs& k, const float* x, const float* m,
            std::int64_t n, std::int64_t d, std::uint64_t seed, std::uint32_t step, float clip,
            float* out);

}  // namespace genai::detail
