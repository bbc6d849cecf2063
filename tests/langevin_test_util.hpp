// Helpers of the Langevin tests (tests/langevin_test.cpp, langevin_gpu_test.cpp,
// langevin_device_test.cu): a run's outputs on the host, the chain-by-chain parity count, the
// parity cases, and the banana target.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "genai/detail/langevin.hpp"
#include "genai/detail/langevin_chain.hpp"
#include "genai/langevin.hpp"
#include "genai/rng.hpp"
#include "test_util.hpp"

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

// Steps of a run: steps per level times the levels of an annealed run.
inline std::int64_t total_steps(const LangevinOptions& o) {
  return o.steps * (o.method == LangevinMethod::Annealed ? o.anneal.levels : 1);
}

// detail::run_chain in T on the host over the built-in target's TargetView, chain after chain:
// in float the kernels' code path, in double the formulas the CPU reference evaluates.
template <class T>
Outputs host_path(const LangevinTarget& target, std::vector<float> x, std::int64_t chains,
                  const LangevinOptions& o) {
  const int d = static_cast<int>(target.d);
  const std::int64_t records = o.thin > 0 ? total_steps(o) / o.thin : 0;
  Outputs out{std::move(x), std::vector<float>(records * chains * d, NAN), {}, {}, {}};
  if (o.moments) out.mean = out.var = std::vector<float>(chains * d, NAN);
  if (o.method == LangevinMethod::MALA) out.accepted.assign(chains, -1);
  const auto packed = detail::pack(target);
  const detail::TargetView view = detail::view(target, packed.data());
  const detail::ChainSetup s{
      .method = o.method,
      .step_size = o.step_size,
      .beta = o.beta,
      .steps = o.steps,
      .levels = static_cast<int>(o.method == LangevinMethod::Annealed ? o.anneal.levels : 1),
      .sigma_first = o.anneal.sigma_first,
      .sigma_last = o.anneal.sigma_last,
      .seed = o.seed,
      .first_step = o.first_step,
      .chains = chains,
      .d = d,
      .burn_in = o.burn_in,
      .thin = o.thin,
      .trajectory = records > 0 ? out.trajectory.data() : nullptr,
      .mean = o.moments ? out.mean.data() : nullptr,
      .var = o.moments ? out.var.data() : nullptr,
      .accepted = o.method == LangevinMethod::MALA ? out.accepted.data() : nullptr};
  std::vector<T> work(6 * d);
  T *a = work.data(), *y = a + d, *gx = y + d, *gy = gx + d, *mu = gy + d, *m2 = mu + d;
  for (std::int64_t c = 0; c < chains; ++c)
    detail::run_chain<T, 0>(view, s, c, out.x.data() + c * d, a, y, gx, gy, mu, m2);
  return out;
}

// The kernels' code path -- detail::run_chain in float -- run on the host.
inline Outputs float_path(const LangevinTarget& target, std::vector<float> x, std::int64_t chains,
                          const LangevinOptions& o) {
  return host_path<float>(target, std::move(x), chains, o);
}

// The parity cases of the GPU tests (tests/langevin_gpu_test.cpp), with the tolerances that the
// host float path is held to as well (tests/langevin_test.cpp): float against double is
// rounding only, amplified where the drift expands (between mixture modes: up to ~7x per step
// near gmm8's centre), and a MALA decision flips where log u and log alpha agree to rounding
// (expected count: chain-steps x ~1e-6). Measured on the host float path: worst in-tolerance
// error 2e-6 (ULA Gaussian) and 4e-5 (mixtures, MALA, annealed), 3 of 5000 double-well MALA
// chains off. ULA on a diagonal Gaussian is, on both sides, a sequence of single correctly
// rounded IEEE operations (no exp or log, no a*b+c that nvcc could fuse; the chain step's own
// fma/add are explicit), so the GPU equals the host float path bit for bit
// (LangevinGpu.UlaGaussianIsTheFloatPathBitForBit) and no chain may be off the reference. The
// other cases use exp/log, whose device ulps differ from the host's, or a*b+c that nvcc fuses
// (the Cholesky solve): tolerances 50x and 25x the float path's errors, and at most 1% of chains
// off, for a MALA decision where log u and log alpha agree to rounding (expected count:
// chain-steps x ~1e-6 = 1.2 of 4096 chains x 300 steps); any error in the shared code, the
// noise layout or the launch puts nearly every chain off.
struct ParityCase {
  const char* name;
  LangevinTarget target;
  std::int64_t chains;
  LangevinOptions opts;
  double tol;
  std::int64_t max_off;  // chains allowed off
};

inline std::vector<ParityCase> parity_cases(bool small) {
  std::vector<ParityCase> cases;
  const std::int64_t n = small ? 512 : 4096;
  for (std::int64_t d : {1, 2, 3, 4, 5, 8}) {
    cases.push_back({"ULA Gaussian", parity_gaussian(d), n,
                     {.step_size = 0.05f, .steps = 300, .seed = 1, .moments = true, .burn_in = 100, .thin = 50}, 1e-4, 0});
  }
  cases.push_back({"MALA Cholesky Gaussian", LangevinTarget::gaussian_cholesky({1, 0, -1}, {1, 0, 0, 0.5f, 0.8f, 0, -0.3f, 0.2f, 0.6f}),
                   n, {.method = LangevinMethod::MALA, .step_size = 0.05f, .steps = 300, .seed = 6, .thin = 100}, 1e-3, n / 100});
  cases.push_back({"ULA 6-D Cholesky Gaussian", LangevinTarget::gaussian_cholesky(std::vector<float>(6, 0.5f), [] {
                     std::vector<float> L(36, 0.0f);
                     for (int i = 0; i < 6; ++i)
                       for (int k = 0; k <= i; ++k) L[i * 6 + k] = k == i ? 1.0f : 0.2f;
                     return L;
                   }()),
                   n, {.step_size = 0.02f, .steps = 300, .seed = 7, .moments = true}, 1e-4, n / 100});
  cases.push_back({"ULA 13-D mixture", LangevinTarget::mixture(13, {1, 2, 3}, normals(39, 61), {1.0f, 2.0f, 0.5f}),
                   n, {.step_size = 0.02f, .steps = 200, .seed = 2, .moments = true, .thin = 40}, 1e-3, n / 100});
  cases.push_back({"MALA gmm8", LangevinTarget::gmm8(), n,
                   {.method = LangevinMethod::MALA, .step_size = 0.05f, .steps = 300, .seed = 3, .moments = true, .burn_in = 100}, 1e-3, n / 100});
  cases.push_back({"MALA double well, beta 3", LangevinTarget::double_well(3, 1.0f, 0.3f), n,
                   {.method = LangevinMethod::MALA, .step_size = 0.05f, .beta = 3.0f, .steps = 400, .seed = 4}, 1e-3, n / 100});
  cases.push_back({"Annealed two_modes", LangevinTarget::two_modes(), n,
                   {.method = LangevinMethod::Annealed, .step_size = 0.01f, .steps = 50, .seed = 5,
                    .anneal = {.levels = 8, .sigma_first = 20.0f, .sigma_last = 0.1f}, .thin = 100}, 1e-3, n / 100});
  return cases;
}

// Pooled moments over chains and the moment window, from the per-chain Welford outputs of
// dimension j: the mean, the variance of all samples, and the standard error of the mean
// estimated from the spread of the chains' own means (independent chains).
struct Pooled {
  double mean, var, se_mean;
};
inline Pooled pooled(const LangevinResult& r, std::int64_t chains, std::int64_t d, std::int64_t j) {
  const auto mean = r.mean.to_host(), var = r.var.to_host();
  double m = 0;
  for (std::int64_t c = 0; c < chains; ++c) m += mean[c * d + j];
  m /= chains;
  double within = 0, between = 0;
  for (std::int64_t c = 0; c < chains; ++c) {
    within += var[c * d + j];
    between += (mean[c * d + j] - m) * (mean[c * d + j] - m);
  }
  return {m, (within + between) / chains, std::sqrt(between / (chains - 1) / chains)};
}

}  // namespace genai::test
