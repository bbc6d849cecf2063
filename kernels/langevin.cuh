// CUDA launchers of the Langevin module (genai::cuda, internal).
#pragma once

#include <cstdint>

#include "cpu_reference/langevin.hpp"
#include "genai/context.hpp"

namespace genai::cuda {

// ref::langevin on the device: x [chains x d] and the outputs in `setup` are device pointers;
// the target's parameters are copied to the device here.
void langevin(const Context& ctx, const LangevinTarget& target, const detail::ChainSetup& setup,
              float* x);

void brownian_motion(const Context& ctx, float* out, std::int64_t paths, int d,
                     std::int64_t steps, float dt, std::uint64_t seed);

// Index of the first non-finite element of x[n] (device memory), or -1; synchronises.
std::int64_t first_non_finite(const Context& ctx, const float* x, std::int64_t n);

}  // namespace genai::cuda
