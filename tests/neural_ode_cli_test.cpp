// `genai neural-ode` end to end on the CPU: small deterministic training runs (fixed seeds,
// --progress-every 0, so that nothing depends on the machine's speed) whose loss must fall below
// a bound, the model file and the pictures' data, and bad input refused (exit 2) or a blow-up
// reported (exit 3).
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "genai/nn.hpp"
#include "cli_test_util.hpp"

namespace genai {
namespace {

namespace fs = std::filesystem;

class NeuralOdeCli : public test::CliTest {
 protected:
  // Runs `genai neural-ode --device cpu <args>`: its exit status; stdout in `out`, stderr in `err`
  // (apart: the numbers are read from stdout).
  int run(const std::string& args) {
    const std::string o = path("out.txt"), e = path("err.txt");
    const int rc = std::system((std::string(std::getenv("GENAI_CLI")) + " neural-ode --device cpu " +
                                args + " > " + o + " 2> " + e)
                                   .c_str());
    out = read(o);
    err = read(e);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  }
  static std::string read(const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  // The number after `label` in the output.
  double number_after(const std::string& label) const {
    const std::size_t at = out.find(label);
    if (at == std::string::npos) {
      ADD_FAILURE() << "no '" << label << "' in:\n" << out;
      return NAN;
    }
    return std::stod(out.substr(at + label.size()));
  }
  static int data_lines(const std::string& path) {
    std::ifstream f(path);
    std::string line;
    int n = 0;
    while (std::getline(f, line)) n += !line.empty() && line[0] != '#';
    return n;
  }

  std::string out, err;
};

// ode_demo's task, 500 Adam steps of 20 windows: the mean loss of the last 10 iterations below a
// tenth of the first 10's and below 0.005 (measured over seeds 0-5: 0.001-0.0022 against
// 0.035-0.051 at the start); the model file holds f; the pictures' data beside them.
TEST_F(NeuralOdeCli, SpiralTrainingLossFallsBelowABound) {
  const std::string model = path("f.safetensors"), png = path("spiral.png"),
                    loss = path("loss.png");
  const std::string plots = test::have_gnuplot() ? " --plot " + png + " --loss-plot " + loss : "";
  ASSERT_EQ(run("--iters 500 --seed 0 --progress-every 0 --out " + model + plots), 0) << out << err;
  EXPECT_NE(out.find("neural-ode spiral: f = MLP 2-50-50-2 tanh (2802 parameters, t none), rk4 dt "
                     "0.05, adjoint gradient, Adam lr 0.003, 500 iterations of 20 windows of 10 "
                     "times, on cpu"),
            std::string::npos)
      << out;
  const double first = number_after("mean of the first 10 "),
               last = number_after("of the last 10 ");
  EXPECT_LT(last, 0.1 * first);
  EXPECT_LT(last, 0.005);
  // --progress-every 0: a line at every iteration but the last, whatever the machine's speed.
  EXPECT_NE(err.find("neural-ode: iteration 499/500 loss "), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 499);
  const Mlp f = Mlp::load(Context::cpu(), model);
  EXPECT_EQ(f.options().sizes, (std::vector<std::int64_t>{2, 50, 50, 2}));
  if (plots.empty())
    GTEST_SKIP() << "gnuplot is not installed: the training was checked, the pictures cannot be";
  EXPECT_GT(fs::file_size(png), 1000u);
  EXPECT_GT(fs::file_size(loss), 1000u);
  EXPECT_EQ(data_lines(png + ".trajectory.dat"), 1000);  // every data time
  EXPECT_EQ(data_lines(png + ".field.dat"), 21 * 21);
  EXPECT_EQ(data_lines(loss + ".dat"), 500 + 25);  // the losses, and the tests every 20
}

// The same run by backpropagation through the steps learns the same way (the two gradients agree
// to float rounding at these steps).
TEST_F(NeuralOdeCli, BackpropTrainsLikeTheAdjoint) {
  ASSERT_EQ(run("--iters 500 --seed 0 --gradient backprop --quiet"), 0) << out << err;
  EXPECT_TRUE(err.empty()) << err;
  EXPECT_LT(number_after("of the last 10 "), 0.005);
}

// Concentric circles: the flow and a linear read-out separate a disc from the ring around it (a
// 2-D flow cannot unlink them; it squeezes the disc out between the sampled points).
TEST_F(NeuralOdeCli, CirclesFlowSeparatesTheClasses) {
  const std::string png = path("circles.png");
  const std::string plots = test::have_gnuplot() ? " --plot " + png : "";
  ASSERT_EQ(run("--task circles --points 64 --iters 100 --seed 0 --progress-every 0" + plots), 0)
      << out << err;
  EXPECT_LT(number_after("of the last 10 "), 0.1 * number_after("mean of the first 10 "));
  EXPECT_GE(number_after("accuracy over the 64 points: "), 0.95);
  if (plots.empty()) GTEST_SKIP() << "gnuplot is not installed";
  EXPECT_EQ(data_lines(png + ".trajectories.dat"), 64 * 21);
  EXPECT_EQ(data_lines(png + ".field.dat"), 21 * 21);
}

TEST_F(NeuralOdeCli, BadInputExitsWithStatus2AndBlowUpsWith3) {
  EXPECT_EQ(run("--lr 0"), 2);
  EXPECT_NE(err.find("genai neural-ode: argument '--lr' must be finite and > 0 (got 0)"),
            std::string::npos)
      << err;
  EXPECT_EQ(run("--rtol 1e-4"), 2);
  EXPECT_NE(err.find("argument '--rtol' and --atol set adaptive dopri5's error control"),
            std::string::npos)
      << err;
  EXPECT_EQ(run("--dt 0"), 2);
  EXPECT_NE(err.find("argument 'opts.dt' must be finite and > 0 for rk4 (got 0)"),
            std::string::npos)
      << err;
  EXPECT_EQ(run("--batch-time 1"), 2);
  EXPECT_NE(err.find("argument '--batch-time' must be >= 2 (got 1)"), std::string::npos) << err;
  EXPECT_EQ(run("--task circles --points 1"), 2);
  EXPECT_NE(err.find("argument '--points' must be >= 2 (got 1)"), std::string::npos) << err;
  EXPECT_EQ(run("--iters 50 --lr 1e30 --quiet"), 3);
  EXPECT_NE(err.find("genai neural-ode: the loss is inf at iteration 2"), std::string::npos) << err;
  EXPECT_NE(run("--task torus"), 0);
}

}  // namespace
}  // namespace genai
