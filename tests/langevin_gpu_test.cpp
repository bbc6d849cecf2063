// Langevin chains on the GPU against the CPU reference: every parity case (tests/langevin_test_util.hpp),
// Brownian paths, and a non-finite start refused before running.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "cpu_reference/langevin.hpp"
#include "genai/langevin.hpp"
#include "langevin_test_util.hpp"
#include "test_util.hpp"

namespace genai {
namespace {

const Context kCpu = Context::cpu();

using test::chains_off;
using test::error_of;
using test::outputs_of;
using test::parity_cases;
using test::ParityCase;
using test::total_steps;
using test::float_path;

class LangevinGpu : public test::GpuTest {};

// Every parity case (every register-resident d, the workspace path for d = 5 and 13, every
// method and target kind) on the device against the CPU reference. The call allocates its
// outputs, so the stream-ordered pool they come from is poisoned first: an element the kernel
// forgets is NaN (or at least garbage) and fails.
TEST_F(LangevinGpu, EverySamplerMatchesReference) {
  for (const ParityCase& p : parity_cases(test::small_run())) {
    const std::int64_t d = p.target.d, n = p.chains * d;
    const auto x0 = test::normals(n, 600 + d, 0, 2);
    auto x = x0;
    const auto r = langevin(kCpu, p.target, x.data(), p.chains, d, p.opts);
    Buffer<float> dx(ctx, std::span<const float>(x0));
    {
      const std::int64_t records = p.opts.thin > 0 ? total_steps(p.opts) / p.opts.thin : 0;
      Buffer<float> a(ctx, records * n), b(ctx, n), c(ctx, n);
      Buffer<std::int64_t> e(ctx, p.chains);
      test::poison(a);
      test::poison(b);
      test::poison(c);
      test::poison(e);
    }
    const auto rg = langevin(ctx, p.target, dx.data(), p.chains, d, p.opts);
    EXPECT_LE(chains_off(outputs_of(dx.to_host(), rg), outputs_of(x, r), p.chains, d, p.tol),
              p.max_off) << p.name << ", d = " << d;
  }
}

// ULA on a diagonal Gaussian (register and workspace kernels): the device runs the host float
// path's operations one for one (see the parity cases), so states, trajectory, and moments are
// its bits exactly.
TEST_F(LangevinGpu, UlaGaussianIsTheFloatPathBitForBit) {
  const std::int64_t chains = test::sized<std::int64_t>(4096, 512);
  for (std::int64_t d : {1, 2, 3, 4, 5, 8}) {
    const LangevinTarget target = test::parity_gaussian(d);
    const LangevinOptions o{.step_size = 0.05f, .steps = 300, .seed = 1, .moments = true,
                            .burn_in = 100, .thin = 50};
    const auto x0 = test::normals(chains * d, 600 + d, 0, 2);
    Buffer<float> dx(ctx, std::span<const float>(x0));
    const auto rg = langevin(ctx, target, dx.data(), chains, d, o);
    EXPECT_EQ(outputs_of(dx.to_host(), rg), float_path(target, x0, chains, o)) << "d = " << d;
  }
}

// Every tile shape of the kernel: whole paths per tile (d = 1, 3, 5: 128, 128, 64 paths; d = 130:
// 3 paths of 33 Philox blocks), blocks of one path split over tiles (d = 600: 128 + 22 blocks),
// step counts that leave a partial pass of staged rows, path counts that leave a partial tile.
TEST_F(LangevinGpu, BrownianMotionMatchesReference) {
  struct Case {
    std::int64_t paths, d, steps;
  };
  for (const Case c : {Case{1001, 3, 64}, Case{257, 1, 37}, Case{130, 5, 20}, Case{7, 130, 33},
                       Case{3, 600, 17}}) {
    const std::size_t n = c.paths * (c.steps + 1) * c.d;
    Buffer<float> dw(ctx, n);
    test::poison(dw);
    brownian_motion(ctx, dw.data(), c.paths, c.d, c.steps, 0.01f, 7);
    std::vector<float> cpu(n);
    brownian_motion(Context::cpu(), cpu.data(), c.paths, c.d, c.steps, 0.01f, 7);
    // One rounding per step apart (the device may fuse W + sqrt(dt) z): at most 64 ulps of
    // |W| <= ~4.5, 1.5e-5; bounds 1e-5 relative norm and 1e-5 x max |W|.
    EXPECT_TRUE(test::close(dw.to_host(), cpu, {1e-5, 1e-5})) << "d " << c.d;
  }
}

TEST_F(LangevinGpu, NonFiniteInitialStateIsRejectedBeforeRunning) {
  std::vector<float> x = {1, 2, 3, NAN, 5, 6};
  Buffer<float> dx(ctx, std::span<const float>(x));
  const std::string m = error_of([&] { langevin(ctx, LangevinTarget::two_modes(), dx.data(), 3, 2, {}); });
  EXPECT_NE(m.find("argument 'x' chain 1 dimension 1 is not finite"), std::string::npos) << m;
  const auto after = dx.to_host();
  EXPECT_EQ(after[0], 1.0f);
  EXPECT_EQ(after[5], 6.0f);
}

}  // namespace
}  // namespace genai
