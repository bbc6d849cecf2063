// CUDA launchers of the rng fills (genai::cuda, internal). Declared with plain types so that
// host/src can call them from ordinary C++.
#pragma once

#include <cstdint>

#include "genai/context.hpp"
#include "genai/rng.hpp"

namespace genai::cuda {
void fill_uniform(const Context& ctx, float* out, std::int64_t n, RngKey key, float low,
                  float high);
void fill_normal(const Context& ctx, float* out, std::int64_t n, RngKey key, float mean,
                 float stddev);
}  // namespace genai::cuda
