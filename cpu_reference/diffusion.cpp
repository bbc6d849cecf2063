#include "cpu_reference/diffusion.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu_reference/parallel.hpp"
#include "cpu_reference/rng.hpp"

namespace genai::ref {

namespace {

std::int64_t blocks_per_row(std::int64_t d) { return (d + 3) / 4; }

// Rows per chunk of the mixture score and the fused sampler.
constexpr std::int64_t kMixtureRows = 256;

// Rows per chunk for the backend's threads: about kBlocksPerChunk Philox blocks.
std::int64_t rows_per_chunk(std::int64_t d) {
  return std::max<std::int64_t>(1, kBlocksPerChunk / blocks_per_row(d));
}

// body(r0, r1, z) over rows [0, n) of width d in chunks: z[(r - r0) * 4 nb + j] is element j's
// normal of row r (block r * nb + j / 4 of `key`, lane j % 4), or z = nullptr without noise.
template <class Body>
void for_noise_rows(bool noise, const RngKey& key, std::int64_t n, std::int64_t d, Body&& body) {
  const std::int64_t nb = blocks_per_row(d), rows = rows_per_chunk(d);
  if (!noise)
    return parallel_rows(n, rows, [&](std::int64_t r0, std::int64_t r1) { body(r0, r1, nullptr); });
  for_blocks(true, key, n * nb, rows * nb, [&](std::int64_t b0, std::int64_t b1, const float* z) {
    body(b0 / nb, b1 / nb, z);
  });
}

// Rows [0, rows) of width d: out[r, j] = step_element(k, x, m, z[r * zs + j] or 0, clip).
GENAI_CPU_CLONES void affine_rows(const StepCoeffs& k, const float* x, const float* m,
                                  std::int64_t rows, std::int64_t d, const float* z,
                                  std::int64_t zs, float clip, float* out) {
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t j = 0; j < d; ++j)
      out[r * d + j] = detail::step_element(k, x[r * d + j], m[r * d + j], z ? z[r * zs + j] : 0.0f, clip);
}

// Rows [0, rows) of width d, row r at timestep t[r]: x_t = noised(sa, sb, x0, eps), and eps and
// the v-target where asked; eps[r, j] at eps[r * es + j].
GENAI_CPU_CLONES void noise_rows(const float* sa, const float* sb, const std::int64_t* t,
                                 const float* x0, const float* eps, std::int64_t es,
                                 std::int64_t rows, std::int64_t d, float* x_t, float* eps_out,
                                 float* v_out) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float a = sa[t[r]], b = sb[t[r]];
    for (std::int64_t j = 0; j < d; ++j) {
      const float e = eps[r * es + j], x = x0[r * d + j];
      x_t[r * d + j] = detail::noised(a, b, x, e);
      if (eps_out) eps_out[r * d + j] = e;
      if (v_out) v_out[r * d + j] = detail::v_target(a, b, x, e);
    }
  }
}

}  // namespace

void affine_step(const StepCoeffs& k, const float* x, const float* m, std::int64_t n,
                 std::int64_t d, std::uint64_t seed, std::uint32_t step, float clip, float* out) {
  const std::int64_t zs = 4 * blocks_per_row(d);
  for_noise_rows(k.sigma != 0.0f, {seed, rng::streams::diffusion_sampler, step}, n, d,
                 [&](std::int64_t r0, std::int64_t r1, const float* z) {
                   affine_rows(k, x + r0 * d, m + r0 * d, r1 - r0, d, z, zs, clip, out + r0 * d);
                 });
}

void draw_sampler_noise(std::int64_t n, std::int64_t d, std::uint64_t seed, std::uint32_t step,
                        float* x) {
  const std::int64_t zs = 4 * blocks_per_row(d);
  for_noise_rows(true, {seed, rng::streams::diffusion_sampler, step}, n, d,
                 [&](std::int64_t r0, std::int64_t r1, const float* z) {
                   for (std::int64_t r = r0; r < r1; ++r)
                     std::copy_n(z + (r - r0) * zs, d, x + r * d);
                 });
}

void add_noise(const float* sa, const float* sb, const float* x0, const std::int64_t* timesteps,
               std::int64_t n, std::int64_t d, float* x_t, const NoiseOptions& o) {
  const std::int64_t zs = 4 * blocks_per_row(d);
  for_noise_rows(!o.noise, {o.seed, rng::streams::diffusion_noise, o.step}, n, d,
                 [&](std::int64_t r0, std::int64_t r1, const float* z) {
                   const std::int64_t at = r0 * d;
                   noise_rows(sa, sb, timesteps + r0, x0 + at, z ? z : o.noise + at, z ? zs : d,
                              r1 - r0, d, x_t + at, o.eps_out ? o.eps_out + at : nullptr,
                              o.v_out ? o.v_out + at : nullptr);
                 });
}

namespace {

// Row xr [d] of the mixture score at t: out = scale * grad log p_t(xr) (double accumulation,
// log-sum-exp); logp [K] and acc [d] are work arrays.
void score_row(const detail::NoisedMixture& t, std::int64_t K, std::int64_t d, const float* xr,
               double scale, float* out, std::vector<double>& logp, std::vector<double>& acc) {
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
  for (std::int64_t j = 0; j < d; ++j) out[j] = static_cast<float>(scale * acc[j] / total);
}

}  // namespace

void mixture_score(const GaussianMixture& m, double alpha_bar, const float* x, std::int64_t n,
                   double scale, float* out) {
  const std::int64_t K = m.K, d = m.d;
  const detail::NoisedMixture t = detail::noised_mixture(m, alpha_bar);
  parallel_rows(n, kMixtureRows, [&](std::int64_t r0, std::int64_t r1) {
    std::vector<double> logp(K), acc(d);
    for (std::int64_t row = r0; row < r1; ++row)
      score_row(t, K, d, x + row * d, scale, out + row * d, logp, acc);
  });
}

void sample_mixture(const GaussianMixture& m, const std::vector<MixtureStep>& steps,
                    std::int64_t n, std::uint64_t seed, std::uint32_t initial_step,
                    bool draw_initial, float clip, std::int64_t keep_every, float* intermediates,
                    float* x) {
  const std::int64_t K = m.K, d = m.d, nb = blocks_per_row(d), zs = 4 * nb;
  std::vector<detail::NoisedMixture> mixtures;
  for (const MixtureStep& s : steps) mixtures.push_back(detail::noised_mixture(m, s.alpha_bar));
  parallel_rows(n, kMixtureRows, [&](std::int64_t r0, std::int64_t r1) {
    const std::int64_t rows = r1 - r0;
    std::vector<double> logp(K), acc(d);
    std::vector<float> eps(rows * d), z(rows * zs);
    float* xc = x + r0 * d;
    if (draw_initial) {
      normal_blocks({seed, rng::streams::diffusion_sampler, initial_step},
                    static_cast<std::uint64_t>(r0 * nb), rows * nb, z.data());
      for (std::int64_t r = 0; r < rows; ++r) std::copy_n(z.data() + r * zs, d, xc + r * d);
    }
    for (std::size_t i = 0; i < steps.size(); ++i) {
      const MixtureStep& s = steps[i];
      const double scale = -std::sqrt(1 - s.alpha_bar);  // epsilon = -sqrt(1 - ab) score
      for (std::int64_t r = 0; r < rows; ++r)
        score_row(mixtures[i], K, d, xc + r * d, scale, eps.data() + r * d, logp, acc);
      if (s.k.sigma != 0.0f)
        normal_blocks({seed, rng::streams::diffusion_sampler, s.t},
                      static_cast<std::uint64_t>(r0 * nb), rows * nb, z.data());
      affine_rows(s.k, xc, eps.data(), rows, d, s.k.sigma != 0.0f ? z.data() : nullptr, zs, clip,
                  xc);
      if (keep_every > 0 && (static_cast<std::int64_t>(i) + 1) % keep_every == 0)
        std::copy_n(xc, rows * d,
                    intermediates + ((static_cast<std::int64_t>(i) + 1) / keep_every - 1) * n * d + r0 * d);
    }
  });
}

}  // namespace genai::ref
