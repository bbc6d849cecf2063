// genai train / sample --model / c3 / c2 end to end on the CPU: a checkpoint the sampler reads,
// the loss curve's data, progress at every step with --progress-every 0, a run stopped and
// resumed equal to the uninterrupted run tensor for tensor, the challenge reports; bad input
// exits with status 2 and a message naming it, and writes nothing.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "genai/io.hpp"
#include "genai/nn.hpp"
#include "tests/cli_test_util.hpp"

namespace genai {
namespace {

namespace fs = std::filesystem;

// A small model and a short run, for every command here.
const std::string kSmall = " --device cpu --hidden 16,16 --time-dim 8 --batch 64 ";

class TrainCli : public test::CliTest {
 protected:
  // Runs `genai <args>`: its exit status, its stdout and stderr in `output`.
  int run(const std::string& args) {
    const test::CliRun r = test::genai_cli(args);
    output = r.output;
    return r.status;
  }
  bool printed(const std::string& part) const { return output.find(part) != std::string::npos; }

  std::string output;
};

TEST_F(TrainCli, TrainWritesACheckpointAndTheSamplerReadsIt) {
  if (!test::have_gnuplot()) GTEST_SKIP() << "gnuplot is not installed (the loss curve is drawn)";
  const std::string ckpt = path("m.safetensors");
  // 15/16 of an epoch over 2048 rows in batches of 64: 30 steps.
  ASSERT_EQ(run("train --data two_modes --n 2048 --epochs 0.9375 --progress-every 0 --out " + ckpt + kSmall), 0)
      << output;
  // A progress line at every step, the loss read back from the device each time.
  const std::regex line(R"(train: step (\d+)/30, loss ([0-9.]+) [0-9.]+ s)");
  int lines = 0;
  for (auto it = std::sregex_iterator(output.begin(), output.end(), line);
       it != std::sregex_iterator(); ++it)
    EXPECT_EQ(std::stoi((*it)[1]), ++lines);
  EXPECT_EQ(lines, 30);
  EXPECT_TRUE(printed("training on two_modes (2048 x 2) on cpu: MLP 2 -> 16 -> 16 -> 2")) << output;
  const io::Safetensors st = io::read_safetensors(ckpt);
  EXPECT_EQ(st.metadata.at("train.step"), "30");
  EXPECT_EQ(st.tensors.at("train.loss").shape, (std::vector<std::int64_t>{30}));
  // The loss curve's data beside its picture: the loss and its running mean, 30 steps each.
  std::ifstream curve(ckpt + ".loss.png.dat");
  std::string l;
  int points = 0;
  while (std::getline(curve, l)) points += !l.empty() && l[0] != '#';
  EXPECT_EQ(points, 60);
  EXPECT_GT(fs::file_size(ckpt + ".loss.png"), 1000u);

  const std::string out = path("s.npy"), png = path("s.png"), traj = path("t.png");
  ASSERT_EQ(run("sample --device cpu --model " + ckpt + " --n 300 --steps 10 --out " + out +
                " --plot " + png + " --trajectory " + traj),
            0)
      << output;
  EXPECT_TRUE(printed("300 samples of " + ckpt + "'s model (EMA weights, 30 training steps on two_modes; ddpm, 10 steps)"))
      << output;
  EXPECT_TRUE(printed("component weights:")) << output;
  EXPECT_EQ(io::read_npy(out).shape, (std::vector<std::int64_t>{300, 2}));
  EXPECT_TRUE(fs::exists(png + ".dat"));
  // The trajectories: 16 paths of 10 states, and their ends, after the data.
  std::ifstream td(traj + ".dat");
  std::string text((std::istreambuf_iterator<char>(td)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("# " + ckpt + ": ddpm, 10 steps: x_0\n"), std::string::npos);
  EXPECT_EQ(std::count(text.begin(), text.end(), '#'), 1 + 1 + 16);
}

// --stop-after then --resume: the uninterrupted run's tensors byte for byte.
TEST_F(TrainCli, StoppedAndResumedRunEqualsTheUninterruptedRun) {
  if (!test::have_gnuplot()) GTEST_SKIP() << "gnuplot is not installed (the loss curve is drawn)";
  const std::string a = path("a.safetensors"), b = path("b.safetensors"), c = path("c.safetensors");
  const std::string common = "train --data checkerboard --n 1000 --steps 40 --quiet" + kSmall;
  ASSERT_EQ(run(common + "--stop-after 17 --out " + a), 0) << output;
  EXPECT_EQ(io::read_safetensors(a).metadata.at("train.step"), "17");
  ASSERT_EQ(run("train --device cpu --quiet --resume " + a + " --out " + b), 0) << output;
  EXPECT_TRUE(printed("steps 18..40")) << output;
  ASSERT_EQ(run(common + "--out " + c), 0) << output;
  const io::Safetensors sb = io::read_safetensors(b), sc = io::read_safetensors(c);
  ASSERT_EQ(sb.tensors.size(), sc.tensors.size());
  for (const auto& [name, t] : sc.tensors) EXPECT_TRUE(sb.tensors.at(name).bytes == t.bytes) << name;
  EXPECT_EQ(sb.metadata, sc.metadata);
}

TEST_F(TrainCli, BadInputExitsWithStatus2AndWritesNothing) {
  const std::string out = path("out.safetensors");
  auto refused = [&](const std::string& args, const std::string& what) {
    EXPECT_EQ(run(args), 2) << args << "\n" << output;
    EXPECT_TRUE(printed(what)) << args << "\n" << output;
    EXPECT_FALSE(fs::exists(out)) << args;
  };
  refused("train --data gmm8 --steps 0 --out " + out + kSmall, "argument 'opts.steps' must be >= 1 (got 0)");
  refused("train --data gmm8 --batch 0 --out " + out + " --device cpu", "argument 'opts.batch_size' must be >= 1 (got 0)");
  refused("train --data gmm8 --out " + path("no/such/m.safetensors") + kSmall, "no folder");
  refused("train --data gmm8 --steps 5 --epochs 2 --out " + out + kSmall, "give --steps or --epochs, not both");
  refused("train --data spiral --out " + out + kSmall, "is 'spiral' (built-in sets:");
  const std::vector<float> v = {1, 2, 3};
  io::write_npy(path("flat.npy"), std::span<const float>(v), {3});
  refused("train --data " + path("flat.npy") + " --out " + out + kSmall,
          "holds an array of shape [3]: data must be [n x d]");
  refused("train --data " + path("none.npy") + " --out " + out + kSmall, "is not a readable .npy file");
  // Unreadable and mismatched model files.
  io::write_file(path("junk.safetensors"), std::vector<std::byte>(50, std::byte{3}));
  refused("sample --device cpu --model " + path("junk.safetensors") + " --out " + out,
          "cannot read the checkpoint");
  Mlp(Context::cpu(), {.sizes = {2, 4, 2}, .time_embedding_dim = 4}).save(path("plain.safetensors"));
  refused("sample --device cpu --model " + path("plain.safetensors") + " --out " + out,
          "metadata has no 'train.format' (not a training checkpoint?)");
  refused("train --device cpu --resume " + path("plain.safetensors") + " --out " + out,
          "not a training checkpoint");
  // A run on a file whose data then changes shape: d of the model != d of the data.
  const std::vector<float> rows = {0, 1, 1, 0, 2, 2, 3, 1};
  const std::string data = path("data.npy"), ckpt = path("ckpt.safetensors");
  io::write_npy(data, std::span<const float>(rows), {4, 2});
  ASSERT_EQ(run("train --data " + data + " --steps 4 --stop-after 2 --quiet --out " + ckpt + kSmall), 0)
      << output;
  io::write_npy(data, std::span<const float>(rows), {2, 4});
  refused("train --device cpu --resume " + ckpt + " --out " + out, "has d = 4, the checkpoint's network d = 2");
  refused("train --resume " + ckpt + " --steps 9 --out " + out + " --device cpu",
          "--steps comes from the checkpoint with --resume");
  refused("sample --device cpu --raw-weights --out " + out, "--raw-weights and --trajectory need --model");
}

TEST_F(TrainCli, C3WritesItsReportAndPictures) {
  if (!test::have_gnuplot()) GTEST_SKIP() << "gnuplot is not installed (c3 draws its pictures)";
  const std::string out = path("c3");
  ASSERT_EQ(run("c3 --device cpu --data two_modes --n 2000 --steps 60 --batch 64 --samples 400 "
                "--sample-steps 10 --quiet --out " + out),
            0)
      << output;
  std::ifstream f(out + "/c3.md");
  std::string md((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  for (const char* row : {"| fresh data (a third draw): the noise floor of the metrics |",
                          "| trained model (EMA weights), DDPM, 10 steps |",
                          "| exact score of the mixture, DDPM, 10 steps |",
                          "| broken: the trained epsilon with its sign flipped, DDPM, 10 steps |",
                          "s** in all (training"})
    EXPECT_NE(md.find(row), std::string::npos) << row << "\n" << md;
  for (const char* file : {"c3_data.png", "c3_noising.png", "c3_samples.png", "c3_loss.png"}) {
    EXPECT_TRUE(fs::exists(out + "/" + file)) << file;
    EXPECT_TRUE(fs::exists(out + "/" + file + ".dat")) << file;
  }
  EXPECT_EQ(io::read_npy(out + "/c3_samples.npy").shape, (std::vector<std::int64_t>{400, 2}));
  EXPECT_TRUE(fs::exists(out + "/c3_model.safetensors"));
}

TEST_F(TrainCli, C2WritesItsTableAndGrid) {
  if (!test::have_gnuplot()) GTEST_SKIP() << "gnuplot is not installed (c2 draws its grid)";
  const std::string out = path("c2");
  ASSERT_EQ(run("c2 --device cpu --target two_modes --steps 40 --batch 64 --samples 300 --quiet --out " + out), 0)
      << output;
  std::ifstream f(out + "/c2.md");
  std::string md((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  int rows = 0;
  for (std::size_t at = md.find("\n| "); at != std::string::npos; at = md.find("\n| ", at + 1)) ++rows;
  EXPECT_EQ(rows, 1 + 11) << md;  // the header and 11 methods
  for (const char* part : {"| ULA, exact score", "| MALA, exact score", "NCSN ladder",
                           "annealed Langevin on the schedule's levels", "| DDPM, 100 steps, trained model",
                           "| PF-ODE (Heun), 50 steps, exact score", "With the exact score: reverse diffusion"})
    EXPECT_NE(md.find(part), std::string::npos) << part << "\n" << md;
  EXPECT_TRUE(fs::exists(out + "/c2_grid.png.dat"));
}

}  // namespace
}  // namespace genai
