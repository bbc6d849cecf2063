// CPU reference of the Langevin module: the chains in double, on the backend's threads.
//
// The step code is detail::run_chain (genai/detail/langevin_chain.hpp) and the built-in targets'
// density code detail::TargetView (genai/detail/langevin.hpp), written once for the host
// (T = double, the reference) and the device (T = float): the same formulas, the same Philox
// draws, so the two follow the same paths up to rounding.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "genai/langevin.hpp"
#include "genai/detail/langevin.hpp"
#include "genai/detail/langevin_chain.hpp"
#include "genai/rng.hpp"

namespace genai::ref {

// A Custom target's callable as a run_chain target.
struct HostCallable {
  const LangevinTarget::LogDensityGrad* f;
  double log_density_grad(const double* x, double* g, int) const { return (*f)(x, g); }
};

// The reference, in double: the built-in targets' chains in chunks on the backend's threads
// (each chain's numbers are its own: the same bits on any thread count; ULA and annealed runs on
// a mixture 16 chains at a time in SIMD lanes, each lane the chain-after-chain arithmetic bit
// for bit), a Custom target's chains in turn on the calling thread (its function need not be
// thread-safe).
void langevin(const detail::TargetView& target, const detail::ChainSetup& setup, float* x);
void langevin(const detail::PointerTarget<HostCallable>& target, const detail::ChainSetup& setup,
              float* x);
void brownian_motion(float* out, std::int64_t paths, int d, std::int64_t steps, float dt,
                     std::uint64_t seed);
void effective_sample_size(const float* samples, std::int64_t draws, std::int64_t chains,
                           std::int64_t d, double* out);
void split_rhat(const float* samples, std::int64_t draws, std::int64_t chains, std::int64_t d,
                double* out);

}  // namespace genai::ref
