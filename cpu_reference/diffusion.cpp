#include "cpu_reference/diffusion.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace genai::ref {

namespace {

struct Prediction {
  double p, q, r, s;
};

// x0 = p x + q m and eps = r x + s m for a prediction type at alpha_bar ab.
Prediction prediction_coeffs(PredictionType type, double ab) {
  const double sa = std::sqrt(ab), sb = std::sqrt(1.0 - ab);
  switch (type) {
    case PredictionType::Sample: return {0, 1, 1 / sb, -sa / sb};
    case PredictionType::VPrediction: return {sa, -sb, sb, sa};
    case PredictionType::Epsilon: break;
  }
  return {1 / sa, -sb / sa, 0, 1};
}

std::int64_t blocks_per_row(std::int64_t d) { return (d + 3) / 4; }

}  // namespace

StepCoeffs step_coeffs(const NoiseSchedule& sch, SamplerKind kind, std::int64_t t,
                       std::int64_t prev_t, const StepOptions& o) {
  const double ab = sch.alphas_cumprod()[t];
  const double abp = prev_t >= 0 ? sch.alphas_cumprod()[prev_t] : 1.0;
  const Prediction pr = prediction_coeffs(o.prediction_type, ab);
  double a = 0, b = 0, c = 0, sigma = 0;
  switch (kind) {
    case SamplerKind::DDPM: {
      const double alpha_t = ab / abp, beta_t = 1 - alpha_t;
      a = std::sqrt(abp) * beta_t / (1 - ab);
      b = std::sqrt(alpha_t) * (1 - abp) / (1 - ab);
      const double var = o.variance_type == VarianceType::FixedSmall
                             ? std::max((1 - abp) / (1 - ab) * beta_t, 1e-20)
                             : beta_t;
      sigma = prev_t >= 0 ? std::sqrt(var) : 0.0;
      break;
    }
    case SamplerKind::DDIM: {
      const double var = (1 - abp) / (1 - ab) * (1 - ab / abp);
      sigma = o.eta * std::sqrt(var);
      a = std::sqrt(abp);
      c = std::sqrt(std::max(1 - abp - sigma * sigma, 0.0));
      break;
    }
    case SamplerKind::PFOdeEuler:
    case SamplerKind::PFOdeHeun: {
      // xbar' = xbar + (sigma' - sigma) eps, x = sqrt(ab) xbar, sigma = sqrt((1 - ab) / ab).
      const double sg = std::sqrt((1 - ab) / ab), sgp = std::sqrt((1 - abp) / abp);
      b = std::sqrt(abp / ab);
      c = std::sqrt(abp) * (sgp - sg);
      break;
    }
  }
  auto f = [](double v) { return static_cast<float>(v); };
  return {f(pr.p), f(pr.q), f(pr.r), f(pr.s), f(a), f(b), f(c), f(sigma)};
}

StepCoeffs epsilon_coeffs(const NoiseSchedule& sch, PredictionType type, std::int64_t t) {
  const Prediction pr = prediction_coeffs(type, sch.alphas_cumprod()[t]);
  return {0, 0, static_cast<float>(pr.r), static_cast<float>(pr.s), 0, 0, 1, 0};
}

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
        out[i] = step_element(k, x[i], m[i], z.v[j % 4], clip);
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
        x_t[i] = noised(sa[t], sb[t], x, eps);
        if (o.eps_out) o.eps_out[i] = eps;
        if (o.v_out) o.v_out[i] = v_target(sa[t], sb[t], x, eps);
      }
    }
  }
}

NoisedMixture noised_mixture(const GaussianMixture& m, double alpha_bar) {
  const std::int64_t K = m.K, d = m.d;
  const double sa = std::sqrt(alpha_bar);
  NoisedMixture t{std::vector<double>(K), std::vector<double>(K * d), std::vector<double>(K * d)};
  for (std::int64_t k = 0; k < K; ++k) {
    double lc = std::log(static_cast<double>(m.weights[k]));
    for (std::int64_t j = 0; j < d; ++j) {
      const double v = alpha_bar * m.variances[k * d + j] + (1 - alpha_bar);
      t.center[k * d + j] = sa * m.means[k * d + j];
      t.inv_v[k * d + j] = 1 / v;
      lc -= 0.5 * std::log(v);
    }
    t.log_c[k] = lc;
  }
  return t;
}

void mixture_score(const GaussianMixture& m, double alpha_bar, const float* x, std::int64_t n,
                   double scale, float* out) {
  const std::int64_t K = m.K, d = m.d;
  const NoisedMixture t = noised_mixture(m, alpha_bar);
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
