// `genai noise` and `genai sample` end to end: the written .npy files against the library, bad
// input refused with status 2.
#include <gtest/gtest.h>

#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "cli_test_util.hpp"
#include "genai/diffusion.hpp"
#include "genai/io.hpp"

namespace genai {
namespace {

using test::CliRun;
using test::expect_refused;
using test::genai_cli;

class DiffusionCli : public test::CliTest {};

// x_t and eps of 5 rows of d = 3 at t = 300 (cosine schedule): the library's add_noise with the
// same seed, bit for bit.
TEST_F(DiffusionCli, NoiseWritesTheLibrarysXtAndEps) {
  const std::int64_t n = 5, d = 3;
  const std::vector<float> x0 = test::normals(n * d, 31);
  const std::string in = path("x0.npy"), out = path("xt.npy"), eps_out = path("eps.npy");
  io::write_npy(in, std::span<const float>(x0), {n, d});
  const CliRun r = genai_cli("noise --device cpu --schedule cosine --t 300 --seed 5 --x0 " + in +
                             " --out " + out + " --eps-out " + eps_out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(r.printed("x_t of 5 x 3 at t = 300")) << r.output;
  const NoiseSchedule s({.beta_schedule = BetaSchedule::SquaredCosCapV2});
  const std::vector<std::int64_t> ts(n, 300);
  std::vector<float> xt(n * d), eps(n * d);
  add_noise(Context::cpu(), s, x0.data(), ts.data(), n, d, xt.data(),
            {.seed = 5, .eps_out = eps.data()});
  const io::Array a = io::read_npy(out), e = io::read_npy(eps_out);
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{n, d}));
  EXPECT_EQ(a.to_float(), xt);
  EXPECT_EQ(e.to_float(), eps);
}

// 64 DDIM samples of two_modes: the library's sample_mixture with the same options.
TEST_F(DiffusionCli, SampleWritesTheLibrarysSamples) {
  const std::string out = path("x.npy");
  const CliRun r = genai_cli("sample --device cpu --target two_modes --sampler ddim --steps 20 "
                             "--n 64 --seed 3 --out " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(r.printed("64 samples of two_modes (ddim, 20 steps) -> " + out)) << r.output;
  std::vector<float> x(64 * 2);
  sample_mixture(Context::cpu(), NoiseSchedule(), GaussianMixture::preset("two_modes"), 64,
                 x.data(), {.sampler = SamplerKind::DDIM, .num_inference_steps = 20,
                            .step = {.seed = 3}});
  const io::Array a = io::read_npy(out);
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{64, 2}));
  EXPECT_EQ(a.to_float(), x);
}

TEST_F(DiffusionCli, BadInputIsRefusedAndNothingWritten) {
  const std::string in = path("x0.npy"), out = path("xt.npy");
  io::write_npy(in, std::span<const float>(std::vector<float>{1, 2, 3, 4}), {2, 2});
  expect_refused("noise --device cpu --t 1000 --x0 " + in + " --out " + out,
                 "genai::add_noise: argument 'timesteps' entry 0 is 1000 (must lie in [0, 999])");
  expect_refused("noise --device cpu --schedule quadratic --x0 " + in + " --out " + out,
                 "'quadratic' is unknown (valid: linear, scaled_linear, squaredcos_cap_v2, "
                 "cosine, sigmoid)");
  expect_refused("sample --device cpu --steps 2000 --n 4 --out " + out,
                 "argument 'num_inference_steps' must be <= num_train_timesteps 1000");
  EXPECT_FALSE(std::filesystem::exists(out));
}

}  // namespace
}  // namespace genai
