// Uses the installed header-only launcher the way a user would: a __device__ target of one's
// own (the banana of genai/langevin_device.cuh) run by MALA. Without a usable GPU it says so and
// exits 0 (it compiled and linked against the installed package, which is what is checked here);
// with one, the chains' means must match the banana's: E[x0] = 0, E[x1] = b a^2.
#include <genai/langevin_device.cuh>

#include <cmath>
#include <cstdio>
#include <vector>

namespace {

struct Banana {  // x0 ~ N(0, a^2), x1 | x0 ~ N(b x0^2, 1)
  float a, b;
  __device__ float log_density_grad(const float* x, float* g, int) const {
    const float r = x[1] - b * x[0] * x[0];
    g[0] = -x[0] / (a * a) + 2 * b * x[0] * r;
    g[1] = -r;
    return -0.5f * (x[0] * x[0] / (a * a) + r * r);
  }
};

}  // namespace

int main() {
  if (genai::Context::cuda_device_count() == 0) {
    std::printf("langevin_device consumer: built; no usable GPU, not run\n");
    return 0;
  }
  const auto ctx = genai::Context::cuda();
  const std::int64_t chains = 1 << 14;
  genai::Buffer<float> x(ctx, std::vector<float>(chains * 2, 0.0f));
  genai::langevin_device(ctx, Banana{1.0f, 0.5f}, x.data(), chains, 2,
                         {.method = genai::LangevinMethod::MALA, .step_size = 0.1f, .steps = 2000});
  const std::vector<float> h = x.to_host();
  double m0 = 0, m1 = 0;
  for (std::int64_t c = 0; c < chains; ++c) {
    m0 += h[2 * c];
    m1 += h[2 * c + 1];
  }
  m0 /= chains;
  m1 /= chains;
  // Standard errors of the means over 2^14 independent chains: ~0.008 (x0), ~0.011 (x1).
  const bool ok = std::abs(m0) < 0.05 && std::abs(m1 - 0.5) < 0.07;
  std::printf("langevin_device consumer: E[x0] = %.4f (0), E[x1] = %.4f (0.5): %s\n", m0, m1,
              ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
