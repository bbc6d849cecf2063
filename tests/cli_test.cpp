// The `genai` program end to end: output, exit codes, .npy input and output.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "genai/io.hpp"

namespace {

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
  const auto dir = std::filesystem::temp_directory_path() / "genai_cli_test";
  std::filesystem::create_directories(dir);
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
  std::filesystem::remove_all(dir);
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

TEST_F(Cli, DemoOnTheCpuPassesItsChecks) {
  const auto dir = std::filesystem::temp_directory_path() / "genai_demo_test";
  const CliRun r = genai_cli("demo --device cpu --out " + dir.string());
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("all checks passed"), std::string::npos) << r.output;
  EXPECT_TRUE(std::filesystem::exists(dir / "demo.md"));
  std::filesystem::remove_all(dir);
}

}  // namespace
