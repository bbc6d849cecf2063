// Helpers of the Langevin tests (tests/langevin_test.cpp, tests/langevin_device_test.cu): a
// run's outputs on the host, the chain-by-chain parity count, and the banana target.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "genai/langevin.hpp"
#include "genai/rng.hpp"

namespace genai::test {

// All outputs of one run, on the host.
struct Outputs {
  std::vector<float> x, trajectory, mean, var;
  std::vector<std::int64_t> accepted;
  bool operator==(const Outputs&) const = default;
};

inline Outputs outputs_of(std::vector<float> x, const LangevinResult& r) {
  return {std::move(x), r.trajectory.to_host(), r.mean.to_host(), r.var.to_host(), r.accepted.to_host()};
}

// Chains of `got` off `expect`: an element beyond tol * max(1, |expect|) or a different
// acceptance count. A non-finite element of `got` (an unwritten, poisoned one) fails outright.
inline std::int64_t chains_off(const Outputs& got, const Outputs& expect, std::int64_t chains,
                               std::int64_t d, double tol) {
  std::vector<bool> off(chains, false);
  auto mark = [&](const std::vector<float>& g, const std::vector<float>& e) {
    EXPECT_EQ(g.size(), e.size());
    for (std::size_t i = 0; i < std::min(g.size(), e.size()); ++i) {
      if (!std::isfinite(g[i])) {
        ADD_FAILURE() << "element " << i << " not written or not finite: " << g[i];
        return;
      }
      if (std::abs(g[i] - e[i]) > tol * std::max(1.0f, std::abs(e[i]))) off[(i / d) % chains] = true;
    }
  };
  mark(got.x, expect.x);
  mark(got.trajectory, expect.trajectory);
  mark(got.mean, expect.mean);
  mark(got.var, expect.var);
  EXPECT_EQ(got.accepted.size(), expect.accepted.size());
  for (std::size_t c = 0; c < std::min(got.accepted.size(), expect.accepted.size()); ++c)
    if (got.accepted[c] != expect.accepted[c]) off[c] = true;
  return std::count(off.begin(), off.end(), true);
}

// The diagonal Gaussian of the parity tests: mean_j = j/2 - 1, var_j = 1/2 + j/4.
inline LangevinTarget parity_gaussian(std::int64_t d) {
  std::vector<float> mean(d), var(d);
  for (std::int64_t j = 0; j < d; ++j) {
    mean[j] = 0.5f * j - 1;
    var[j] = 0.5f + 0.25f * j;
  }
  return LangevinTarget::gaussian(mean, var);
}

// The banana of genai/langevin_device.cuh's example, for the host (double) and the device
// (float): x0 ~ N(0, a^2), x1 | x0 ~ N(b x0^2, 1), so E[x0] = 0, Var[x0] = a^2,
// E[x1] = b a^2, Var[x1] = 1 + 2 b^2 a^4.
struct Banana {
  float a, b;
  template <class T>
  GENAI_HD T log_density_grad(const T* x, T* g, int) const {
    const T r = x[1] - T(b) * x[0] * x[0];
    g[0] = -x[0] / (T(a) * T(a)) + T(2) * T(b) * x[0] * r;
    g[1] = -r;
    return T(-0.5) * (x[0] * x[0] / (T(a) * T(a)) + r * r);
  }
};

inline LangevinTarget banana_target(Banana b) {
  return LangevinTarget::custom(2, [b](const double* x, double* g) { return b.log_density_grad(x, g, 2); });
}

}  // namespace genai::test
