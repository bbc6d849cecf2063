// `genai ode` end to end: the .npy trajectory against the library, the picture's data, and bad
// input refused with exit status 2.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cli_test_util.hpp"
#include "genai/io.hpp"
#include "genai/ode.hpp"
#include "genai/rng.hpp"

namespace genai {
namespace {

namespace fs = std::filesystem;

// `genai ode --device cpu <args>`, its output kept in `output`; the exit status returned.
class OdeCli : public test::CliTest {
 protected:
  int ode(const std::string& args) {
    run = test::genai_cli("ode --device cpu " + args);
    output = run.output;
    return run.status;
  }
  bool printed(const std::string& part) const { return run.printed(part); }

  test::CliRun run;
  std::string output;
};

// The documented starts: row 0 at the problem's usual start, row r > 0 at start + spread z_r,
// z ~ N(0, I) from Philox (seed, user stream, step 0).
std::vector<float> starts(const std::vector<double>& start, std::int64_t batch, float spread,
                          std::uint64_t seed) {
  const auto d = static_cast<std::int64_t>(start.size());
  std::vector<float> z(batch * d), y(batch * d);
  fill_normal(Context::cpu(), z.data(), batch * d, {seed, rng::streams::user, 0});
  for (std::int64_t r = 0; r < batch; ++r)
    for (std::int64_t j = 0; j < d; ++j)
      y[r * d + j] = static_cast<float>(start[j] + (r > 0 ? spread * z[r * d + j] : 0.0));
  return y;
}

// 2.4 from the command line: Euler, dt = 0.01, three rows recorded at t = 0, 1 and 5.
TEST_F(OdeCli, DecayTrajectoryIsTheLibrarys) {
  const std::string out = (dir() / "y.npy").string();
  ASSERT_EQ(ode("--problem decay --method euler --dt 0.01 --t-end 5 --batch 3 --seed 4 "
                "--t-eval 0,1,5 --out " + out), 0) << output;
  EXPECT_TRUE(printed("decay, euler (dt 0.01): 3 rows of d = 1 from t = 0 to 5 on cpu")) << output;
  EXPECT_TRUE(printed("steps per row: accepted 500.0 (min 500, max 500), rejected 0.0; f evaluations 500.0"))
      << output;
  EXPECT_TRUE(printed("y(5), row 0: 0.00657048")) << output;  // 0.99^500
  EXPECT_TRUE(printed("wrote " + out + " [3 times x 3 rows x 1]")) << output;
  const io::Array a = io::read_npy(out);
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{3, 3, 1}));
  auto y = starts({1.0}, 3, 0.5f, 4);
  std::vector<float> want(9);
  ode_solve(Context::cpu(), OdeProblem::decay(), y.data(), 3, 0.0, 5.0,
            {.method = OdeMethod::Euler, .dt = 0.01, .t_eval = {0, 1, 5}}, want.data());
  EXPECT_EQ(a.to_float(), want);
}

// dopri5 on the spiral without --t-eval: 1001 evenly spaced records; the picture's data holds
// one block per row.
TEST_F(OdeCli, SpiralRecordsEvenlySpacedTimesAndDrawsThem) {
  const std::string out = (dir() / "s.npy").string(), png = (dir() / "s.png").string();
  const bool have_gnuplot = test::have_gnuplot();
  ASSERT_EQ(ode("--problem spiral --t-end 25 --batch 4 --rtol 1e-5 --atol 1e-8 --out " + out +
                (have_gnuplot ? " --plot " + png : "")), 0) << output;
  const io::Array a = io::read_npy(out);
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{1001, 4, 2}));
  std::vector<double> times;
  for (int k = 0; k <= 1000; ++k) times.push_back(k == 1000 ? 25.0 : 25.0 * k / 1000);
  auto y = starts({2.0, 0.0}, 4, 0.5f, 0);
  std::vector<float> want(1001 * 8);
  ode_solve(Context::cpu(), OdeProblem::spiral(), y.data(), 4, 0.0, 25.0,
            {.rtol = 1e-5, .atol = 1e-8, .t_eval = times}, want.data());
  EXPECT_EQ(a.to_float(), want);
  if (!have_gnuplot) GTEST_SKIP() << "gnuplot is not installed: the trajectory was checked, the picture cannot be";
  EXPECT_GT(fs::file_size(png), 1000u);
  std::ifstream f(png + ".dat");
  std::string line;
  int lines = 0;
  while (std::getline(f, line)) lines += !line.empty();
  EXPECT_EQ(lines, 4 * 1001);
}

TEST_F(OdeCli, BadInputExitsWithStatus2AndAMessage) {
  EXPECT_EQ(ode("--method rk4"), 2);
  EXPECT_TRUE(printed("genai ode: argument '--dt' is required for rk4")) << output;
  EXPECT_EQ(ode("--method rk4 --dt 0.1 --rtol 1e-4"), 2);
  EXPECT_TRUE(printed("argument '--rtol' and --atol set dopri5's error control")) << output;
  EXPECT_EQ(ode("--t-eval 2,1"), 2);
  EXPECT_TRUE(printed("argument 'opts.t_eval' entry 1 is 1 after 2")) << output;
  EXPECT_EQ(ode("--t-eval 1,x"), 2);
  EXPECT_TRUE(printed("--t-eval: 'x' is not a number")) << output;
  EXPECT_EQ(ode("--problem oscillator --y0 1"), 2);
  EXPECT_TRUE(printed("argument '--y0' has 1 values; oscillator has d = 2")) << output;
  EXPECT_EQ(ode("--batch 0"), 2);
  EXPECT_TRUE(printed("argument '--batch' must be >= 1 (got 0)")) << output;
  EXPECT_EQ(ode("--problem decay --max-steps 3"), 2);
  EXPECT_TRUE(printed("row 0 did not reach t1 = 5 within opts.max_steps = 3 steps")) << output;
  EXPECT_EQ(ode("--problem brusselator"), 2);  // the parser's refusal is bad input too
  EXPECT_TRUE(printed("brusselator")) << output;
}

}  // namespace
}  // namespace genai
