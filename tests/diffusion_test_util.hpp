// Helpers of the diffusion tests (tests/diffusion_test.cpp, diffusion_samplers_test.cpp,
// diffusion_gpu_test.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "genai/diffusion.hpp"
#include "test_util.hpp"

namespace genai::test {

// A 3-component, 3-dimensional mixture with unequal diagonal variances.
inline GaussianMixture diag_mixture_3d() {
  GaussianMixture m;
  m.K = 3;
  m.d = 3;
  m.weights = {0.5f, 0.3f, 0.2f};
  m.means = {1, 0, -1, -2, 1, 0.5f, 0, -1.5f, 2};
  m.variances = {0.5f, 1, 2, 0.3f, 0.3f, 0.7f, 1.5f, 0.2f, 1};
  return m;
}

// 3 components in d dimensions, unit-normal means; component k has variance 1e4 along the
// dimensions j = k (mod 3) and 1 elsewhere, so which one is nearest a far point depends on
// the point's direction.
inline GaussianMixture anisotropic_mixture(std::int64_t d) {
  GaussianMixture m;
  m.K = 3;
  m.d = d;
  m.weights = {0.5f, 0.3f, 0.2f};
  m.means = normals(3 * d, 900 + d);
  for (std::int64_t k = 0; k < 3; ++k)
    for (std::int64_t j = 0; j < d; ++j) m.variances.push_back(j % 3 == k ? 1e4f : 1.0f);
  return m;
}

// n points [n x d] so far out that float log densities overflow: row r is s_r z_r, z_r a unit
// normal vector, s_r cycling through 2e19 (at d = 2 some components still finite in float),
// 1e25, 1e30 and 3e37 (none; x is finite for any normal below 11 sigma).
inline std::vector<float> far_points(std::int64_t n, std::int64_t d, std::uint64_t seed) {
  constexpr float kScales[] = {2e19f, 1e25f, 1e30f, 3e37f};
  std::vector<float> x = normals(n * d, seed);
  for (std::int64_t r = 0; r < n; ++r)
    for (std::int64_t j = 0; j < d; ++j) x[r * d + j] *= kScales[r % 4];
  return x;
}

}  // namespace genai::test
