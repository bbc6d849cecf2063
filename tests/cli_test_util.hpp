// The `genai` program as the CLI tests (tests/*cli_test.cpp) run it: its exit status and its
// output, a fixture that skips when the program is not built and gives each test a fresh
// directory, and the check of a refused command line.
#pragma once

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "test_util.hpp"

namespace genai::test {

struct CliRun {
  int status = -1;
  std::string output;  // stdout and stderr, interleaved as written
  bool printed(const std::string& part) const { return output.find(part) != std::string::npos; }
};

// Runs `genai <args>`: the program CTest names in GENAI_CLI.
inline CliRun genai_cli(const std::string& args) {
  CliRun r;
  const char* exe = std::getenv("GENAI_CLI");
  if (!exe || !*exe) return r;
  FILE* pipe = popen((std::string(exe) + " " + args + " 2>&1").c_str(), "r");
  if (!pipe) return r;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, pipe)) r.output += buf;
  const int rc = pclose(pipe);
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return r;
}

// Base of the CLI tests: skips, saying why, without the program; dir() is the test's own.
class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* exe = std::getenv("GENAI_CLI");
    if (!exe || !*exe) GTEST_SKIP() << "the genai program is not built (GENAI_BUILD_CLI=OFF)";
    tmp_ = std::make_unique<TempDir>();
  }
  const std::filesystem::path& dir() const { return tmp_->path(); }
  std::string path(const std::string& leaf) const { return *tmp_ / leaf; }

 private:
  std::unique_ptr<TempDir> tmp_;
};

// Whether gnuplot is on PATH (the pictures are drawn by it; their data is written without it).
inline bool have_gnuplot() { return std::system("command -v gnuplot > /dev/null 2>&1") == 0; }

// `genai <args>` exits with status 2 (bad input) and prints `message`.
inline void expect_refused(const std::string& args, const std::string& message) {
  const CliRun r = genai_cli(args);
  EXPECT_EQ(r.status, 2) << args << "\n" << r.output;
  EXPECT_TRUE(r.printed(message)) << args << "\n" << r.output;
}

}  // namespace genai::test
