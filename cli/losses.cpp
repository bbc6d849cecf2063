// The losses module's demo rows: fused cross-entropy, the VAE loss and the reparameterisation,
// each on the tour's device against the CPU reference; the problem-set checks 6.4, 8.1(b), 8.3.
#include <cmath>
#include <cstdint>
#include <vector>

#include "cli/common.hpp"
#include "genai/buffer.hpp"
#include "genai/losses.hpp"
#include "genai/rng.hpp"

namespace genai::cli {
namespace {

std::vector<float> normals(std::int64_t n, std::uint64_t seed, float stddev = 1.0f) {
  std::vector<float> v(n);
  fill_normal(Context::cpu(), v.data(), n, {seed, 0, 0}, 0.0f, stddev);
  return v;
}

void tour_losses(Tour& t) {
  const Context cpu = Context::cpu();
  {  // cross-entropy: out = [loss | grad]
    const std::int64_t N = 2048, C = 4096;
    const auto x = normals(N * C, 60, 2.0f);
    std::vector<std::int64_t> y(N);
    for (std::int64_t i = 0; i < N; ++i) y[i] = (i * 7919) % C;
    Buffer<float> dx(t.ctx, std::span<const float>(x));
    Buffer<std::int64_t> dy(t.ctx, std::span<const std::int64_t>(y));
    const CrossEntropyOptions o{.label_smoothing = 0.1f};
    t.add("losses", "cross-entropy fwd+bwd 2048x4096 (label smoothing 0.1)", 1 + N * C,
          8.0 * N * C + 8.0 * N,
          [&](const Context& c, float* out) {
            cross_entropy_loss(c, dx.data(), dy.data(), N, C, out, out + 1, o);
          },
          [&](float* out) { cross_entropy_loss(cpu, x.data(), y.data(), N, C, out, out + 1, o); },
          1e-5);
  }
  {  // VAE loss (Bernoulli, MNIST's shape): out = [reduced | grad_recon | grad_mu | grad_logvar]
    const std::int64_t n = 1024, D = 784, d = 32;
    std::vector<float> x(n * D), xr = normals(n * D, 61), mu = normals(n * d, 62),
                                 lv = normals(n * d, 63, 0.5f);
    fill_uniform(cpu, x.data(), n * D, {64, 0, 0});
    Buffer<float> dx(t.ctx, std::span<const float>(x)), dxr(t.ctx, std::span<const float>(xr)),
        dmu(t.ctx, std::span<const float>(mu)), dlv(t.ctx, std::span<const float>(lv));
    const VaeLossOptions o{.beta = 4.0f, .reconstruction = Reconstruction::BernoulliLogits};
    const auto outputs = [&](float* out) {
      return VaeLossOutputs{.reduced = out, .grad_recon = out + 3, .grad_mu = out + 3 + n * D,
                            .grad_logvar = out + 3 + n * D + n * d};
    };
    t.add("losses", "beta-VAE loss 1024x784, latent 32 (Bernoulli)", 3 + n * D + 2 * n * d,
          12.0 * n * D + 16.0 * n * d,
          [&](const Context& c, float* out) {
            vae_loss(c, dx.data(), dxr.data(), n, D, dmu.data(), dlv.data(), d, outputs(out), o);
          },
          [&](float* out) {
            vae_loss(cpu, x.data(), xr.data(), n, D, mu.data(), lv.data(), d, outputs(out), o);
          },
          1e-5);
  }
  {  // reparameterisation: the same bits on every device
    const std::int64_t n = 65536, d = 16;
    const auto mu = normals(n * d, 65), lv = normals(n * d, 66);
    Buffer<float> dmu(t.ctx, std::span<const float>(mu)), dlv(t.ctx, std::span<const float>(lv));
    t.add("losses", "reparameterize 65536x16 (bit-exact)", n * d, 16.0 * n * d,
          [&](const Context& c, float* z) {
            reparameterize(c, dmu.data(), dlv.data(), n, d, z, {.seed = 3});
          },
          [&](float* z) { reparameterize(cpu, mu.data(), lv.data(), n, d, z, {.seed = 3}); }, 0.0);
  }

  // 6.4: F.cross_entropy([[2, 1, 0.1], [0.5, 2.5, 0.3]], [0, 1]) on the tour's device.
  const std::vector<float> logits = {2.0f, 1.0f, 0.1f, 0.5f, 2.5f, 0.3f};
  const std::vector<std::int64_t> targets = {0, 1};
  Buffer<std::int64_t> dt(t.ctx, std::span<const std::int64_t>(targets));
  const float ce = on_device(t.ctx, {&logits}, 1, [&](const auto& in, float* out) {
    cross_entropy_loss(t.ctx, in[0], dt.data(), 2, 3, out);
  })[0];
  t.check("6.4", "cross-entropy of the seed's logits", ce, 0.3185398, 1e-5);

  // 8.1(b) / 8.3: z = mu + sigma eps over 2^20 draws has mean mu and variance sigma^2; the
  // closed-form KL of N(0.5, e^-0.7) || N(0, 1); beta scales only the KL (8.2(c)).
  const std::int64_t draws = 1 << 20;
  const std::vector<float> mu(draws, 0.5f), lv(draws, -0.7f);
  const auto z = on_device(t.ctx, {&mu, &lv}, draws, [&](const auto& in, float* out) {
    reparameterize(t.ctx, in[0], in[1], draws, 1, out, {.seed = 11});
  });
  double mean = 0, var = 0;
  for (float v : z) mean += v;
  mean /= draws;
  for (float v : z) var += (v - mean) * (v - mean);
  var /= draws - 1;
  const double s2 = std::exp(-0.7);
  t.check("8.1(b)", "mean of mu + sigma eps, mu = 0.5", mean, 0.5, 5 * std::sqrt(s2 / draws));
  t.check("8.1(b)", "variance, sigma^2 = e^-0.7", var, s2, 5 * s2 * std::sqrt(2.0 / draws));
  const std::vector<float> one_mu = {0.5f}, one_lv = {-0.7f}, x1 = {1.0f}, xr1 = {0.25f};
  const auto terms = [&](float beta) {
    return on_device(t.ctx, {&x1, &xr1, &one_mu, &one_lv}, 3, [&](const auto& in, float* out) {
      vae_loss(t.ctx, in[0], in[1], 1, 1, in[2], in[3], 1, {.reduced = out}, {.beta = beta});
    });
  };
  const auto b1 = terms(1.0f), b4 = terms(4.0f);
  const double kl = 0.5 * (s2 + 0.25 - 1 + 0.7);
  t.check("8.3", "KL(N(0.5, e^-0.7) ‖ N(0, 1)), closed form", b1[2], kl, 1e-6);
  t.check("8.3", "reconstruction (x - x_recon)^2", b1[1], 0.5625, 1e-6);
  t.check("8.2(c)", "beta = 4: total - reconstruction = 4 KL", b4[0] - b4[1], 4 * kl, 1e-5);
}

}  // namespace

GENAI_CLI_MODULE(60, "losses", nullptr, tour_losses);

}  // namespace genai::cli
