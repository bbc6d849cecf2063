// The `genai` program end to end: output, exit codes, .npy input and output.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "genai/io.hpp"
#include "genai/langevin.hpp"
#include "genai/rng.hpp"
#include "test_util.hpp"

namespace {

namespace test = genai::test;

struct CliRun {
  int status;
  std::string output;  // stdout and stderr
};

CliRun genai_cli(const std::string& args) {
  const char* exe = std::getenv("GENAI_CLI");
  CliRun r{-1, ""};
  if (!exe || !*exe) return r;
  FILE* pipe = popen((std::string(exe) + " " + args + " 2>&1").c_str(), "r");
  char buf[4096];
  while (std::fgets(buf, sizeof buf, pipe)) r.output += buf;
  r.status = WEXITSTATUS(pclose(pipe));
  return r;
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::getenv("GENAI_CLI") || !*std::getenv("GENAI_CLI"))
      GTEST_SKIP() << "the genai program is not built (GENAI_BUILD_CLI=OFF)";
  }
};

TEST_F(Cli, EntropyOfTheSeedCoins) {
  const CliRun r = genai_cli("entropy --p 0.9,0.1 --device cpu");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "H(P) = 0.468996 bits\n");
  EXPECT_EQ(genai_cli("entropy --p 0.5,0.5 --base e --device cpu").output, "H(P) = 0.693147 nats\n");
}

TEST_F(Cli, KlReadsAndWritesNpy) {
  const test::TempDir tmp;
  const auto& dir = tmp.path();
  const std::vector<float> p = {0.5f, 0.5f, 0.9f, 0.1f}, q = {0.9f, 0.1f, 0.5f, 0.5f};
  genai::io::write_npy((dir / "p.npy").string(), std::span<const float>(p), {2, 2});
  genai::io::write_npy((dir / "q.npy").string(), std::span<const float>(q), {2, 2});
  const CliRun r = genai_cli("kl --device cpu --p " + (dir / "p.npy").string() + " --q " +
                          (dir / "q.npy").string() + " --out " + (dir / "kl.npy").string());
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("row 0: KL(P||Q) = 0.736966 bits"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("row 1: KL(P||Q) = 0.531004 bits"), std::string::npos) << r.output;
  const auto kl = genai::io::read_npy((dir / "kl.npy").string()).to_float();
  ASSERT_EQ(kl.size(), 2u);
  EXPECT_NEAR(kl[0], 0.736966, 1e-6);
}

TEST_F(Cli, BadInputExitsWithStatus2AndAMessage) {
  CliRun r = genai_cli("kl --device cpu --p 0.5,0.5 --q 0.9,0.2");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("argument 'q' row 0 sums to"), std::string::npos) << r.output;
  r = genai_cli("entropy --device cpu --p 0.5,abc");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("'abc' is not a number"), std::string::npos) << r.output;
  r = genai_cli("entropy --device tpu --p 0.5,0.5");
  EXPECT_NE(r.status, 0);
}

TEST_F(Cli, InfoSaysWhatRuns) {
  const CliRun r = genai_cli("info");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("genai-kernels"), std::string::npos);
  EXPECT_NE(r.output.find("build: CUDA"), std::string::npos);
}

// `genai pca` on gzip IDX images (MNIST's format): 40 images of 2 x 2, all pixels 255 in the
// even ones and 0 in the odd ones. Scaled to [0, 1] each feature has variance
// 0.25 * 40 / 39 = 0.25641, all of it along one component: explained variance 4 * 0.25641.
TEST_F(Cli, PcaOfGzipIdxImagesWithAPicture) {
  const test::TempDir tmp;
  const auto& dir = tmp.path();
  std::string idx = {0, 0, 8, 3, 0, 0, 0, 40, 0, 0, 0, 2, 0, 0, 0, 2};
  for (int i = 0; i < 40; ++i) idx += std::string(4, i % 2 ? '\0' : '\xff');
  const std::string images = (dir / "images-idx3-ubyte.gz").string();
  gzFile gz = gzopen(images.c_str(), "wb");
  ASSERT_NE(gz, nullptr);
  ASSERT_EQ(gzwrite(gz, idx.data(), static_cast<unsigned>(idx.size())), int(idx.size()));
  ASSERT_EQ(gzclose(gz), Z_OK);

  CliRun r = genai_cli("pca --device cpu --in " + images);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("PCA of 40 samples x 4 features on cpu (LAPACKE_dgesdd): 1 components"),
            std::string::npos) << r.output;
  EXPECT_NE(r.output.find("  1            1.02564   1.0000     1.0000\n"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("components for 90% / 95% / 99% of the variance: 1 / 1 / 1 (of 4)"),
            std::string::npos) << r.output;
  EXPECT_NE(r.output.find("||X - X_k||_F / ||X - mean||_F:  k = 1: 0.0000\n"), std::string::npos)
      << r.output;

  if (std::system("command -v gnuplot > /dev/null") != 0)
    GTEST_SKIP() << "gnuplot is not installed (scripts/setup.sh installs gnuplot-nox)";
  const std::string png = (dir / "pca.png").string();
  r = genai_cli("pca --device cpu --in " + images + " --plot " + png);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_GT(std::filesystem::file_size(png), 1000u);
  std::ifstream energy(png + ".energy.dat");
  double k = 0, cumulative = 0, ratio = 0;
  energy >> k >> cumulative >> ratio;
  EXPECT_EQ(k, 1);
  EXPECT_NEAR(cumulative, 1.0, 1e-12);
  // The image grid: 6 images (rows of 2 pixels, 1-pixel gaps), columns k = 1 and the original.
  std::ifstream grid(png + ".images.dat");
  std::string line;
  int lines = 0;
  while (std::getline(grid, line)) ++lines;
  EXPECT_EQ(lines, 6 * (2 + 1) - 1);
}

TEST_F(Cli, PcaRejectsBadInputNamingIt) {
  const test::TempDir tmp;
  const auto& dir = tmp.path();
  const std::string cut = (dir / "cut.gz").string();
  std::ofstream(cut, std::ios::binary) << std::string("\x1f\x8b\x08\x00", 4);
  CliRun r = genai_cli("pca --device cpu --in " + cut);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find(cut + ": truncated gzip data"), std::string::npos) << r.output;
  const std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  genai::io::write_npy((dir / "x.npy").string(), std::span<const float>(x), {2, 6});
  r = genai_cli("pca --device cpu --in " + (dir / "x.npy").string() + " --image-shape 2x2");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("--image-shape: '2x2' must be HxW with H W = 6"), std::string::npos)
      << r.output;
  const std::vector<float> same = {1, 2, 3, 1, 2, 3};
  genai::io::write_npy((dir / "same.npy").string(), std::span<const float>(same), {2, 3});
  r = genai_cli("pca --device cpu --in " + (dir / "same.npy").string() + " --plot " +
                (dir / "p.png").string());
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("genai pca --plot: the data has no variance"), std::string::npos)
      << r.output;
}

TEST_F(Cli, DemoOnTheCpuPassesItsChecks) {
  const test::TempDir tmp;
  const auto& dir = tmp.path();
  const CliRun r = genai_cli("demo --device cpu --out " + dir.string());
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("all checks passed"), std::string::npos) << r.output;
  EXPECT_TRUE(std::filesystem::exists(dir / "demo.md"));
}


// ---- genai langevin --------------------------------------------------------------------------

// Lines of a text file.
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
std::vector<float> one_call(const genai::LangevinTarget& target, genai::LangevinOptions o,
                            std::int64_t chains) {
  const auto cpu = genai::Context::cpu();
  std::vector<float> x(chains * target.d);
  genai::fill_uniform(cpu, x.data(), static_cast<std::int64_t>(x.size()),
                      {o.seed, genai::rng::streams::user, 0}, -8.0f, 8.0f);
  genai::langevin(cpu, target, x.data(), chains, target.d, o);
  return x;
}

TEST_F(Cli, LangevinPrintsDiagnosticsAndWritesWhatItRan) {
  const test::TempDir tmp;
  const auto& dir = tmp.path();
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
  const auto s = genai::io::read_npy((dir / "s.npy").string());
  EXPECT_EQ(s.shape, (std::vector<std::int64_t>{256, 2}));
  EXPECT_EQ(s.to_float(), one_call(genai::LangevinTarget::gmm8(),
                                   {.method = genai::LangevinMethod::MALA, .step_size = 0.05f,
                                    .steps = 400, .seed = 7, .thin = 2}, 256));
  const auto t = genai::io::read_npy((dir / "t.npy").string());
  EXPECT_EQ(t.shape, (std::vector<std::int64_t>{200, 256, 2}));
  const auto tv = t.to_float();
  EXPECT_EQ(std::vector<float>(tv.end() - 512, tv.end()), s.to_float());  // record 199: step 400
}

// --progress-every 0 prints "langevin: step S/T (P%) E s" after every chunk of one thin period,
// whatever the machine's speed: 40 ULA steps, thin 1, are 40 chunks and 39 lines (none after
// the last), and the chunked run is the one-call run bit for bit.
TEST_F(Cli, LangevinReportsProgressAfterEveryChunk) {
  const test::TempDir tmp;
  const auto& dir = tmp.path();
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
  EXPECT_EQ(genai::io::read_npy((dir / "s.npy").string()).to_float(),
            one_call(genai::LangevinTarget::gaussian({0}, {1}),
                     {.step_size = 0.1f, .steps = 40, .seed = 3, .thin = 1}, 10));
}

// A step size past the known stability limit is refused before running (status 2, the limit
// named); where no limit is known the run is reported as diverged (status 3, how many chains and
// during which steps), not as bad input of the next piece of the run.
TEST_F(Cli, LangevinDivergenceIsReportedAsSuch) {
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
TEST_F(Cli, LangevinPlotWritesThePictureAndItsData) {
  const test::TempDir tmp;
  const auto& dir = tmp.path();
  const auto png = dir / "s.png";
  const CliRun r = genai_cli("langevin --device cpu --target double_well --dim 3 --chains 300 "
                             "--steps 100 --step-size 0.05 --quiet --plot " + png.string());
  EXPECT_EQ(lines_of(dir / "s.png.samples.dat"), 300) << r.output;
  EXPECT_EQ(lines_of(dir / "s.png.density.dat"), 200 * 200) << r.output;
  if (std::system("command -v gnuplot > /dev/null 2>&1") != 0) {
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

// `genai <args>` exits with status 2 and prints `message`.
void expect_refused(const std::string& args, const std::string& message) {
  const CliRun r = genai_cli(args);
  EXPECT_EQ(r.status, 2) << args;
  EXPECT_NE(r.output.find(message), std::string::npos) << r.output;
}

TEST_F(Cli, LangevinBadInputExitsWithStatus2AndAMessage) {
  expect_refused("langevin --device cpu --step-size 0 --steps 10",
                 "argument 'opts.step_size' must be finite and > 0 (got 0)");
  expect_refused("langevin --device cpu --chains 0", "genai langevin: argument '--chains' must be >= 1 (got 0)");
  expect_refused("langevin --device cpu --beta -1 --steps 10", "argument 'opts.beta'");
  expect_refused("langevin --device cpu --target gaussian --dim 1 --steps 10 --plot p.png",
                 "argument '--plot' draws the first two dimensions: needs d >= 2 (got --dim 1)");
  const CliRun r = genai_cli("langevin --device cpu --method hmc");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("hmc"), std::string::npos) << r.output;
}

}  // namespace
