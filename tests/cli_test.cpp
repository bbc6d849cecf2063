// The `genai` program end to end: output, exit codes, .npy input and output, `genai info`, and
// the demo. Each module's commands: tests/<module>_cli_test.cpp.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "cli_test_util.hpp"
#include "genai/io.hpp"

namespace genai {
namespace {

using test::CliRun;
using test::genai_cli;

class Cli : public test::CliTest {};

TEST_F(Cli, EntropyOfTheSeedCoins) {
  const CliRun r = genai_cli("entropy --p 0.9,0.1 --device cpu");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "H(P) = 0.468996 bits\n");
  EXPECT_EQ(genai_cli("entropy --p 0.5,0.5 --base e --device cpu").output, "H(P) = 0.693147 nats\n");
}

TEST_F(Cli, KlReadsAndWritesNpy) {
  const auto& dir = this->dir();
  const std::vector<float> p = {0.5f, 0.5f, 0.9f, 0.1f}, q = {0.9f, 0.1f, 0.5f, 0.5f};
  io::write_npy((dir / "p.npy").string(), std::span<const float>(p), {2, 2});
  io::write_npy((dir / "q.npy").string(), std::span<const float>(q), {2, 2});
  const CliRun r = genai_cli("kl --device cpu --p " + (dir / "p.npy").string() + " --q " +
                          (dir / "q.npy").string() + " --out " + (dir / "kl.npy").string());
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("row 0: KL(P||Q) = 0.736966 bits"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("row 1: KL(P||Q) = 0.531004 bits"), std::string::npos) << r.output;
  const auto kl = io::read_npy((dir / "kl.npy").string()).to_float();
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
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("tpu"), std::string::npos) << r.output;
}

TEST_F(Cli, InfoSaysWhatRuns) {
  const CliRun r = genai_cli("info");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("genai-kernels"), std::string::npos);
  EXPECT_NE(r.output.find("build: CUDA"), std::string::npos);
}

TEST_F(Cli, DemoOnTheCpuPassesItsChecks) {
  const auto& dir = this->dir();
  const CliRun r = genai_cli("demo --device cpu --out " + dir.string());
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("all checks passed"), std::string::npos) << r.output;
  EXPECT_TRUE(std::filesystem::exists(dir / "demo.md"));
}


}  // namespace
}  // namespace genai
