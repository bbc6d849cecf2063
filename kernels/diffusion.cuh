// CUDA launchers of the diffusion module (genai::cuda, internal). Declared with plain types so
// that host/src can call them from ordinary C++.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "genai/context.hpp"
#include "genai/detail/diffusion.hpp"
#include "genai/diffusion.hpp"

namespace genai::cuda {

// Limits of the fused mixture sampler: the state of a point (d floats) lives in registers, one
// step's mixture table (K (2d + 1) floats) in shared memory, within the 48 KiB a block gets
// without opting in (e.g. K <= 1365 at d = 2, K <= 187 at d = 32).
inline constexpr std::int64_t kFusedMaxD = 32;
inline constexpr std::size_t kFusedMaxTableBytes = 48 * 1024;
inline std::size_t fused_table_bytes(std::int64_t d, std::int64_t K) {
  return static_cast<std::size_t>(K * (2 * d + 1)) * sizeof(float);
}
inline bool fused_supported(std::int64_t d, std::int64_t K) {
  return d <= kFusedMaxD && fused_table_bytes(d, K) <= kFusedMaxTableBytes;
}

// One step of a fused run: its coefficients, alpha_bar_t and the Philox step (= t).
struct FusedStep {
  detail::StepCoeffs k;
  double alpha_bar;
  std::uint32_t t;
};

// The smallest and largest of n device timesteps (one pass, one synchronisation).
void timestep_range(const Context& ctx, const std::int64_t* timesteps, std::int64_t n,
                    std::int64_t& lo, std::int64_t& hi);
// genai::add_noise on device pointers; sa, sb are the host tables sqrt(ab), sqrt(1 - ab).
void add_noise(const Context& ctx, const std::vector<float>& sa, const std::vector<float>& sb,
               const float* x0, const std::int64_t* timesteps, std::int64_t n, std::int64_t d,
               float* x_t, const NoiseOptions& o);
void affine_step(const Context& ctx, const detail::StepCoeffs& k, const float* x, const float* m,
                 std::int64_t n, std::int64_t d, std::uint64_t seed, std::uint32_t step,
                 float clip, float* out);
void draw_sampler_noise(const Context& ctx, std::int64_t n, std::int64_t d, std::uint64_t seed,
                        std::uint32_t step, float* x);
void mixture_score(const Context& ctx, const GaussianMixture& m, double alpha_bar,
                   const float* x, std::int64_t n, double scale, float* out);
// The whole DDPM / DDIM loop for n points of a mixture with fused_supported(m.d, m.K), in one
// launch; x_T drawn at Philox step initial_step when draw_initial, else read from x.
void sample_mixture_fused(const Context& ctx, const GaussianMixture& m,
                          const std::vector<FusedStep>& steps, std::int64_t n, std::uint64_t seed,
                          std::uint32_t initial_step, bool draw_initial, float clip,
                          std::int64_t keep_every, float* intermediates, float* x);

}  // namespace genai::cuda
