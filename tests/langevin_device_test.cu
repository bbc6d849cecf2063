// genai/langevin_device.cuh used as a user would, from a .cu file: a __device__ functor with the
// built-in diagonal Gaussian's formulas runs the built-in kernels' paths bit for bit, the
// banana (the header's example) follows the CPU reference's custom-target paths, and bad input
// is refused as genai::langevin refuses it.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "genai/langevin_device.cuh"
#include "langevin_test_util.hpp"
#include "test_util.hpp"

namespace genai {
namespace {

using test::error_of;

// N(mean, diag(var)) with TargetView::log_density_grad's formulas; mean and var in device memory.
struct DiagonalGaussian {
  const float* mean;
  const float* var;
  __device__ float log_density_grad(const float* x, float* g, int d) const {
    float l = 0;
    for (int j = 0; j < d; ++j) {
      const float v = var[j], r = mean[j] - x[j];
      l += r * r / v;
      g[j] = r / v;
    }
    return -0.5f * l;
  }
};

// The launcher needs a CUDA context; this runs without a device.
TEST(LangevinDevice, RefusesACpuContext) {
  std::vector<float> x = {0.5f, -1};
  const std::string m = error_of([&] {
    langevin_device(Context::cpu(), test::Banana{1, 0.5f}, x.data(), 1, 2);
  });
  EXPECT_NE(m.find("genai::langevin_device: argument 'ctx' must be a CUDA context"), std::string::npos) << m;
  EXPECT_EQ(x, (std::vector<float>{0.5f, -1}));
}

class LangevinDeviceGpu : public test::GpuTest {};

// d = 2 (registers) and d = 5 (the workspace, rows for pointer targets against the built-in's
// interleaved layout), ULA with moments and a trajectory, MALA with acceptance counts: every
// output equal to the built-in Gaussian's on the device, bit for bit.
TEST_F(LangevinDeviceGpu, UserGaussianMatchesReference) {
  for (std::int64_t d : {2, 5}) {
    const std::int64_t chains = 3000, n = chains * d;
    const LangevinTarget gaussian = test::parity_gaussian(d);
    const auto dmean = test::to_device(ctx, gaussian.means), dvar = test::to_device(ctx, gaussian.vars);
    const auto x0 = test::normals(n, 700 + d, 0, 2);
    for (auto method : {LangevinMethod::ULA, LangevinMethod::MALA}) {
      const LangevinOptions o{.method = method, .step_size = 0.2f, .steps = 300, .seed = 8,
                              .moments = true, .burn_in = 100, .thin = 50};
      auto xb = test::to_device(ctx, x0), xu = test::to_device(ctx, x0);
      const auto rb = langevin(ctx, gaussian, xb.data(), chains, d, o);
      const auto ru = langevin_device(ctx, DiagonalGaussian{dmean.data(), dvar.data()}, xu.data(),
                                      chains, d, o);
      const auto got = test::outputs_of(xu.to_host(), ru), want = test::outputs_of(xb.to_host(), rb);
      EXPECT_TRUE(got == want) << "d = " << d << ", method " << int(method);
      EXPECT_EQ(got.trajectory.size(), std::size_t(6 * n));
      EXPECT_NE(got.x, x0);
    }
  }
}

// MALA on the banana: the device functor against the CPU reference running the same formulas
// in double through LangevinTarget::custom. Tolerance and share of chains off as in
// langevin_test's parity cases for MALA (float against double; a decision may flip at rounding).
TEST_F(LangevinDeviceGpu, BananaMatchesReference) {
  const std::int64_t chains = test::sized<std::int64_t>(4096, 512), d = 2;
  const test::Banana banana{1.0f, 0.5f};
  const auto x0 = test::normals(chains * d, 17);
  const LangevinOptions o{.method = LangevinMethod::MALA, .step_size = 0.1f, .steps = 300,
                          .seed = 18, .moments = true, .burn_in = 100, .thin = 100};
  auto x = x0;
  const auto r = langevin(Context::cpu(), test::banana_target(banana), x.data(), chains, d, o);
  auto dx = test::to_device(ctx, x0);
  const auto rg = langevin_device(ctx, banana, dx.data(), chains, d, o);
  EXPECT_LE(test::chains_off(test::outputs_of(dx.to_host(), rg), test::outputs_of(x, r), chains, d, 1e-3),
            chains / 100);
}

TEST_F(LangevinDeviceGpu, BadInputIsRefusedAsLangevinRefusesIt) {
  std::vector<float> x = {1, 2, 3, NAN};
  auto dx = test::to_device(ctx, x);
  const test::Banana banana{1.0f, 0.5f};
  std::string m = error_of([&] { langevin_device(ctx, banana, dx.data(), 2, 2); });
  EXPECT_NE(m.find("genai::langevin_device: argument 'x' chain 1 dimension 1 is not finite"),
            std::string::npos) << m;
  x[3] = 4;
  dx.copy_from_host(x);
  m = error_of([&] { langevin_device(ctx, banana, dx.data(), 2, 2, {.step_size = 0}); });
  EXPECT_NE(m.find("genai::langevin_device: argument 'opts.step_size' must be finite and > 0 (got 0)"),
            std::string::npos) << m;
  m = error_of([&] { langevin_device(ctx, banana, dx.data(), 0, 2); });
  EXPECT_NE(m.find("argument 'chains' must be >= 1 (got 0)"), std::string::npos) << m;
  m = error_of([&] { langevin_device(ctx, banana, dx.data(), 2, 2, {.method = LangevinMethod::Annealed}); });
  EXPECT_NE(m.find("argument 'target' is a user target: annealing needs"), std::string::npos) << m;
  m = error_of([&] { langevin_device(ctx, banana, static_cast<float*>(nullptr), 2, 2); });
  EXPECT_NE(m.find("argument 'x' must not be null"), std::string::npos) << m;
  EXPECT_EQ(dx.to_host(), x);
}

}  // namespace
}  // namespace genai
