// CPU reference of the rng fills: the same Philox blocks as kernels/rng.cu, element by element.
#pragma once

#include <cstdint>

#include "genai/rng.hpp"

namespace genai::ref {
void fill_uniform(float* out, std::int64_t n, RngKey key, float low, float high);
void fill_normal(float* out, std::int64_t n, RngKey key, float mean, float stddev);
}  // namespace genai::ref
