#include "cpu_reference/diffusion.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace genai::ref {

namespace {

std::int64_t blocks_per_row(std::int64_t d) { return (d + 3) / 4; }

}  // namespace

void affine_step(const StepCoeffs& k, const float* x, const float* m, std::int64_t n,
                 std::int64_t d, std::uint64_t seed, std::uint32_t step, float clip, float* out) {
  const std::int64_t nb = blocks_per_row(d);
  for (std::int64_t row = 0; row < n; ++row)
    for (std::int64_t jb = 0; jb < nb; ++jb) {
      rng::Float4 z = {{0, 0, 0, 0}};
      if (k.sigma != 0.0f)
        z = rng::normal4(seed, rng::streams::diffusion_sampler,
                         static_cast<std::uint64_t>(row * nb + jb), step);
      for (std::int64_t j = jb * 4; j < std::min(d, jb * 4 + 4); ++j) {
        const std::int64_t i = row * d + j;
        out[i] = detail::step_element(k, x[i], m[i], z.v[j % 4], clip);
      }
    }
}

void draw_sampler_noise(std::int64_t n, std::int64_t d, std::uint64_t seed, std::uint32_t step,
                        float* x) {
  const std::int64_t nb = blocks_per_row(d);
  for (std::int64_t row = 0; row < n; ++row)
    for (std::int64_t jb = 0; jb < nb; ++jb) {
      const rng::Float4 z = rng::normal4(seed, rng::streams::diffusion_sampler,
                                         static_cast<std::uint64_t>(row * nb + jb), step);
      for (std::int64_t j = jb * 4; j < std::min(d, jb * 4 + 4); ++j) x[row * d + j] = z.v[j % 4];
    }
}

void add_noise(const float* sa, const float* sb, const float* x0, const std::int64_t* timesteps,
               std::int64_t n, std::int64_t d, float* x_t, const NoiseOptions& o) {
  const std::int64_t nb = blocks_per_row(d);
  for (std::int64_t row = 0; row < n; ++row) {
    const std::int64_t t = timesteps[row];
    for (std::int64_t jb = 0; jb < nb; ++jb) {
      rng::Float4 z = {{0, 0, 0, 0}};
      if (!o.noise)
        z = rng::normal4(o.seed, rng::streams::diffusion_noise,
                         static_cast<std::uint64_t>(row * nb + jb), o.step);
      for (std::int64_t j = jb * 4; j < std::min(d, jb * 4 + 4); ++j) {
        const std::int64_t i = row * d + j;
        const float eps = o.noise ? o.noise[i] : z.v[j % 4];
        const float x = x0[i];
        x_t[i] = detail::noised(sa[t], sb[t], x, eps);
        if (o.eps_out) o.eps_out[i] = eps;
        if (o.v_out) o.v_out[i] = detail::v_target(sa[t], sb[t], x, eps);
      }
    }
  }
}

void mixture_score(const GaussianMixture& m, double alpha_bar, const float* x, std::int64_t n,
                   double scale, float* out) {
  const std::int64_t K = m.K, d = m.d;
  const detail::NoisedMixture t = detail::noised_mixture(m, alpha_bar);
  std::vector<double> logp(K), acc(d);
  for (std::int64_t row = 0; row < n; ++row) {
    const float* xr = x + row * d;
    double mx = -INFINITY;
    for (std::int64_t k = 0; k < K; ++k) {
      double q = 0;
      for (std::int64_t j = 0; j < d; ++j) {
        const double diff = xr[j] - t.center[k * d + j];
        q += diff * diff * t.inv_v[k * d + j];
      }
      logp[k] = t.log_c[k] - 0.5 * q;
      mx = std::max(mx, logp[k]);
    }
    double total = 0;
    std::fill(acc.begin(), acc.end(), 0.0);
    for (std::int64_t k = 0; k < K; ++k) {
      const double w = std::exp(logp[k] - mx);
      total += w;
      for (std::int64_t j = 0; j < d; ++j)
        acc[j] -= w * (xr[j] - t.center[k * d + j]) * t.inv_v[k * d + j];
    }
    for (std::int64_t j = 0; j < d; ++j)
      out[row * d + j] = static_cast<float>(scale * acc[j] / total);
  }
}

}  // namespace genai::ref
