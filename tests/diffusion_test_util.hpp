// Helpers of the diffusion tests (tests/diffusion_test.cpp, diffusion_gpu_test.cpp).
#pragma once

#include "genai/diffusion.hpp"

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

}  // namespace genai::test
