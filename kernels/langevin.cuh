// CUDA launchers of the Langevin module (genai::cuda, internal).
#pragma once

#include <cstdint>

#include "genai/context.hpp"
#include "genai/detail/langevin_chain.hpp"
#include "genai/langevin.hpp"

namespace genai::cuda {

// The chains of a built-in target on the device (genai::langevin's CUDA path): x [chains x d]
// and the outputs in `setup` are device pointers; the target's parameters are copied here.
void langevin(const Context& ctx, const LangevinTarget& target, const detail::ChainSetup& setup,
              float* x);

void brownian_motion(const Context& ctx, float* out, std::int64_t paths, int d,
                     std::int64_t steps, float dt, std::uint64_t seed);

}  // namespace genai::cuda
