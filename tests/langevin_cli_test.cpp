// `genai langevin` end to end: diagnostics, the written states and trace against one library
// call, progress lines, divergence, the picture's data, bad input refused with status 2.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "cli_test_util.hpp"
#include "genai/io.hpp"
#include "genai/langevin.hpp"
#include "genai/rng.hpp"

namespace genai {
namespace {

using test::CliRun;
using test::expect_refused;
using test::genai_cli;

class LangevinCli : public test::CliTest {};

std::int64_t lines_of(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::string line;
  std::int64_t n = 0;
  while (std::getline(f, line)) n += !line.empty();
  return n;
}

// The final states of `genai langevin` from its documented start (uniform on [-8, 8]^d, Philox
// key (seed, user stream, 0)) through one library call: the CLI runs the steps in chunks (for its
// progress lines), which must be the same paths bit for bit.
std::vector<float> one_call(const LangevinTarget& target, LangevinOptions o,
                            std::int64_t chains) {
  const auto cpu = Context::cpu();
  std::vector<float> x(chains * target.d);
  fill_uniform(cpu, x.data(), static_cast<std::int64_t>(x.size()),
                      {o.seed, rng::streams::user, 0}, -8.0f, 8.0f);
  langevin(cpu, target, x.data(), chains, target.d, o);
  return x;
}

TEST_F(LangevinCli, LangevinPrintsDiagnosticsAndWritesWhatItRan) {
  const auto& dir = this->dir();
  const CliRun r = genai_cli("langevin --device cpu --target gmm8 --method mala --chains 256 "
                             "--steps 400 --step-size 0.05 --seed 7 --quiet --out " +
                             (dir / "s.npy").string() + " --trace " + (dir / "t.npy").string());
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("mala on gmm8: 256 chains x 400 steps in d = 2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("acceptance rate 0."), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("diagnostics over the last 100 of 200 records (thin 2) of 64 chains"),
            std::string::npos) << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex("dim 1: ESS [0-9.]+, R-hat [0-9.]+"))) << r.output;
  EXPECT_EQ(r.output.find("langevin: step"), std::string::npos) << "--quiet printed progress";
  const auto s = io::read_npy((dir / "s.npy").string());
  EXPECT_EQ(s.shape, (std::vector<std::int64_t>{256, 2}));
  EXPECT_EQ(s.to_float(), one_call(LangevinTarget::gmm8(),
                                   {.method = LangevinMethod::MALA, .step_size = 0.05f,
                                    .steps = 400, .seed = 7, .thin = 2}, 256));
  const auto t = io::read_npy((dir / "t.npy").string());
  EXPECT_EQ(t.shape, (std::vector<std::int64_t>{200, 256, 2}));
  const auto tv = t.to_float();
  EXPECT_EQ(std::vector<float>(tv.end() - 512, tv.end()), s.to_float());  // record 199: step 400
}

// --progress-every 0 prints "langevin: step S/T (P%) E s" after every chunk of one thin period,
// whatever the machine's speed: 40 ULA steps, thin 1, are 40 chunks and 39 lines (none after
// the last), and the chunked run is the one-call run bit for bit.
TEST_F(LangevinCli, LangevinReportsProgressAfterEveryChunk) {
  const auto& dir = this->dir();
  const CliRun r = genai_cli("langevin --device cpu --target gaussian --dim 1 --chains 10 "
                             "--steps 40 --step-size 0.1 --seed 3 --progress-every 0 --out " +
                             (dir / "s.npy").string());
  EXPECT_EQ(r.status, 0) << r.output;
  const std::regex line("langevin: step ([0-9]+)/40 \\(([0-9]+)%\\) [0-9.]+ s\n");
  std::vector<int> steps;
  for (auto it = std::sregex_iterator(r.output.begin(), r.output.end(), line);
       it != std::sregex_iterator(); ++it)
    steps.push_back(std::stoi((*it)[1]));
  ASSERT_EQ(steps.size(), 39u) << r.output;
  for (int i = 0; i < 39; ++i) EXPECT_EQ(steps[i], i + 1);
  EXPECT_EQ(io::read_npy((dir / "s.npy").string()).to_float(),
            one_call(LangevinTarget::gaussian({0}, {1}),
                     {.step_size = 0.1f, .steps = 40, .seed = 3, .thin = 1}, 10));
}

// A step size past the known stability limit is refused before running (status 2, the limit
// named); where no limit is known the run is reported as diverged (status 3, how many chains and
// during which steps), not as bad input of the next piece of the run.
TEST_F(LangevinCli, LangevinDivergenceIsReportedAsSuch) {
  CliRun r = genai_cli("langevin --device cpu --target two_modes --method annealed --step-size 0.1");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("argument 'opts.step_size' is 0.1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("at or past the stability limit 0.0404"), std::string::npos) << r.output;
  r = genai_cli("langevin --device cpu --target double_well --dim 1 --step-size 1 --chains 100 "
                "--steps 50 --progress-every 0 --quiet");
  EXPECT_EQ(r.status, 3) << r.output;
  // Chunks of one step: the 16 chains that left for infinity did so at step 3.
  EXPECT_NE(r.output.find("genai: diverged: genai::langevin: 16 of 100 chains diverged (states "
                          "not finite) during step 3, ULA with step size 1 (first: chain 4)"),
            std::string::npos) << r.output;
  EXPECT_NE(r.output.find("no stability limit is known for this target"), std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("argument 'x'"), std::string::npos) << r.output;
}

// --plot writes the data beside the picture always, and the PNG when gnuplot is installed.
TEST_F(LangevinCli, LangevinPlotWritesThePictureAndItsData) {
  const auto& dir = this->dir();
  const auto png = dir / "s.png";
  const CliRun r = genai_cli("langevin --device cpu --target double_well --dim 3 --chains 300 "
                             "--steps 100 --step-size 0.05 --quiet --plot " + png.string());
  EXPECT_EQ(lines_of(dir / "s.png.samples.dat"), 300) << r.output;
  EXPECT_EQ(lines_of(dir / "s.png.density.dat"), 200 * 200) << r.output;
  if (!test::have_gnuplot()) {
    EXPECT_EQ(r.status, 2) << r.output;
    EXPECT_NE(r.output.find("gnuplot failed"), std::string::npos) << r.output;
    GTEST_SKIP() << "gnuplot is not installed: the data files were checked, the PNG cannot be";
  }
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("wrote " + png.string()), std::string::npos) << r.output;
  std::ifstream f(png, std::ios::binary);
  char magic[8] = {};
  f.read(magic, 8);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG");
  EXPECT_GT(std::filesystem::file_size(png), 10000u);
}

TEST_F(LangevinCli, LangevinBadInputExitsWithStatus2AndAMessage) {
  expect_refused("langevin --device cpu --step-size 0 --steps 10",
                 "argument 'opts.step_size' must be finite and > 0 (got 0)");
  expect_refused("langevin --device cpu --chains 0", "genai langevin: argument '--chains' must be >= 1 (got 0)");
  expect_refused("langevin --device cpu --beta -1 --steps 10", "argument 'opts.beta'");
  expect_refused("langevin --device cpu --target gaussian --dim 1 --steps 10 --plot p.png",
                 "argument '--plot' draws the first two dimensions: needs d >= 2 (got --dim 1)");
  const CliRun r = genai_cli("langevin --device cpu --method hmc");
  EXPECT_EQ(r.status, 2);  // the parser's refusal is bad input too
  EXPECT_NE(r.output.find("hmc"), std::string::npos) << r.output;
}


}  // namespace
}  // namespace genai
