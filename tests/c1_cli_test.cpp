// `genai c1` end to end: a small run on the built-in images (its report, metrics, pictures'
// data, progress lines and the claims that hold after one epoch), IDX files read from --data,
// C1's claim about the latents on a Fashion-MNIST subset, and bad input refused with exit 2.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "genai/rng.hpp"
#include "tests/cli_test_util.hpp"

namespace genai {
namespace {

namespace fs = std::filesystem;

class C1Cli : public test::CliTest {
 protected:
  // Runs `genai c1 --device cpu --out <dir>/out <args>`; its exit status, its output in `output`.
  int c1(const std::string& args) {
    const test::CliRun r = test::genai_cli("c1 --device cpu --out " + out().string() + " " + args);
    output = r.output;
    return r.status;
  }
  fs::path out() const { return dir() / "out"; }
  bool printed(const std::string& part) const { return output.find(part) != std::string::npos; }
  std::string report() const {
    std::ifstream f(out() / "c1.md");
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  // c1_metrics.tsv as (method, k) -> column -> value.
  std::map<std::pair<std::string, int>, std::map<std::string, double>> metrics() const {
    std::ifstream f(out() / "c1_metrics.tsv");
    std::string line;
    std::getline(f, line);
    std::vector<std::string> columns;
    std::stringstream head(line);
    for (std::string c; std::getline(head, c, '\t');) columns.push_back(c);
    std::map<std::pair<std::string, int>, std::map<std::string, double>> m;
    while (std::getline(f, line)) {
      std::stringstream row(line);
      std::vector<std::string> cells;
      for (std::string c; std::getline(row, c, '\t');) cells.push_back(c);
      EXPECT_EQ(cells.size(), columns.size()) << line;
      auto& r = m[{cells[0], std::stoi(cells[1])}];
      for (std::size_t i = 2; i < cells.size() && i < columns.size(); ++i)
        r[columns[i]] = std::strtod(cells[i].c_str(), nullptr);
    }
    return m;
  }

  std::string output;
};

// One epoch on 600 built-in images at k = 2 and 3: every method's row, the report's sections,
// one progress line per training step (--progress-every 0), the pictures' data, and the claims
// that do not need a trained model (whitened PCA, the KL against Monte Carlo).
TEST_F(C1Cli, ASmallRunWritesTheReport) {
  ASSERT_EQ(c1("--data builtin --train-images 600 --test-images 200 --epochs 1 --latent 3,2 "
               "--hidden 32,16 --batch 100 --progress-every 0"),
            0)
      << output;
  EXPECT_TRUE(printed("built-in line drawings")) << output;
  EXPECT_TRUE(printed("c1: VAE k = 3: epoch 1/1, step 6/6")) << output;
  EXPECT_TRUE(printed("c1: linear AE k = 2: epoch 1/1, step 1/6")) << output;
  const auto m = metrics();
  ASSERT_EQ(m.size(), 8u);
  for (const char* method : {"PCA", "linear AE", "AE", "VAE"})
    for (const int k : {2, 3}) {
      ASSERT_TRUE(m.count({method, k})) << method << " " << k;
      const auto& r = m.at({method, k});
      EXPECT_GT(r.at("mse"), 0.0) << method;
      EXPECT_NEAR(r.at("psnr"), -10 * std::log10(r.at("mse")), 1e-3 * r.at("psnr")) << method;
      EXPECT_GE(r.at("knn"), 0.0);
      EXPECT_LE(r.at("knn"), 1.0);
      EXPECT_GE(r.at("kl_mm"), 0.0) << method;
      EXPECT_LE(r.at("active"), k);
    }
  EXPECT_TRUE(std::isfinite(m.at({"linear AE", 2}).at("max_angle_deg")));
  EXPECT_TRUE(std::isnan(m.at({"AE", 2}).at("max_angle_deg")));
  EXPECT_GE(m.at({"VAE", 3}).at("kl_min"), 0.0);
  const std::string md = report();
  for (const char* section : {"## Reconstruction and codes", "## The linear autoencoder and PCA",
                              "## The VAE", "## Generation from N(0, I)",
                              "## Claims, checked on this run", "## Time", "**Bernoulli decoder**",
                              "Total wall time of `genai c1`"})
    EXPECT_NE(md.find(section), std::string::npos) << section;
  EXPECT_NE(md.find("holds: whitened PCA scores of the training images (k = 3) have identity "
                    "covariance"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("holds: k = 3: the VAE's KL term is >= 0"), std::string::npos) << md;
  for (const char* data : {"c1_reconstructions.png.dat", "c1_samples.png.dat",
                           "c1_latent_k2.png.dat", "c1_loss_ae.png.dat", "c1_loss_vae.png.dat",
                           "c1_test_mse.png.dat"})
    EXPECT_TRUE(fs::exists(out() / data)) << data;
  if (!test::have_gnuplot())
    GTEST_SKIP() << "gnuplot is not installed: the data was checked, the pictures cannot be";
  EXPECT_GT(fs::file_size(out() / "c1_reconstructions.png"), 1000u);
  EXPECT_NE(md.find("[c1_latent_k2.png](c1_latent_k2.png)"), std::string::npos);
}

// IDX files (plain, not gzip) in a directory of one's own: 40 training and 12 test images of
// random pixels with labels 0..9.
void write_idx(const fs::path& path, std::uint8_t type, const std::vector<std::uint32_t>& dims,
               const std::vector<std::uint8_t>& values) {
  std::ofstream f(path, std::ios::binary);
  const char magic[4] = {0, 0, static_cast<char>(type), static_cast<char>(dims.size())};
  f.write(magic, 4);
  for (const std::uint32_t d : dims) {
    const char be[4] = {static_cast<char>(d >> 24), static_cast<char>(d >> 16),
                        static_cast<char>(d >> 8), static_cast<char>(d)};
    f.write(be, 4);
  }
  f.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(values.size()));
}

TEST_F(C1Cli, ReadsIdxFilesFromTheDataDirectory) {
  const fs::path data = dir() / "idx";
  fs::create_directories(data);
  for (const auto& [prefix, n] : {std::pair{std::string("train"), 40}, std::pair{std::string("t10k"), 12}}) {
    const std::vector<float> u = test::uniforms(n * 784, prefix == "train" ? 1 : 2);
    std::vector<std::uint8_t> pixels(n * 784), labels(n);
    for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<std::uint8_t>(255 * u[i]);
    for (int i = 0; i < n; ++i) labels[i] = static_cast<std::uint8_t>(i % 10);
    write_idx(data / (prefix + "-images-idx3-ubyte"), 0x08, {std::uint32_t(n), 28, 28}, pixels);
    write_idx(data / (prefix + "-labels-idx1-ubyte"), 0x08, {std::uint32_t(n)}, labels);
  }
  ASSERT_EQ(c1("--data " + data.string() + " --epochs 1 --latent 2 --hidden 8 --batch 16 --quiet"), 0)
      << output;
  EXPECT_TRUE(printed("Fashion-MNIST from " + data.string() + "; 40 training and 12 test images"))
      << output;
  EXPECT_EQ(metrics().size(), 4u);
}

// C1's claim about the latents, on the first 5 000 training and 1 000 test images of
// Fashion-MNIST at k = 8 (2 epochs of batch 64, widths 256, 128: seconds): the plain
// autoencoder's codes are far from N(0, I) in the moment-matched KL -- above the report's
// "near" rule of 0.25 nats per dimension -- and the VAE's aggregate posterior is nearer to it
// than they are. (That the VAE's falls below the rule takes longer training than a test affords:
// tests/autoencoder_test.cpp asserts it on images it learns in seconds, and the default run's
// report checks it on all of Fashion-MNIST.)
TEST_F(C1Cli, FashionMnistAutoencoderCodesAreFarFromTheStandardNormal) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(dir + "/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST is not installed in " << dir
                 << " (Debian package dataset-fashion-mnist, scripts/setup.sh installs it)";
  ASSERT_EQ(c1("--train-images 5000 --test-images 1000 --epochs 2 --latent 8 --hidden 256,128 "
               "--batch 64 --quiet"),
            0)
      << output;
  EXPECT_TRUE(printed("Fashion-MNIST from " + dir)) << output;
  const auto m = metrics();
  const double vae = m.at({"VAE", 8}).at("kl_mm"), ae = m.at({"AE", 8}).at("kl_mm");
  EXPECT_GT(ae, 0.25 * 8);
  EXPECT_LT(vae, ae);
  EXPECT_LT(m.at({"VAE", 8}).at("mse"), m.at({"VAE", 8}).at("prior_mse"));
}

TEST_F(C1Cli, BadInputExitsWithStatus2AndAMessage) {
  EXPECT_EQ(c1("--data builtin --latent 2,0"), 2);
  EXPECT_TRUE(printed("genai c1: --latent: '0' is not a positive integer")) << output;
  EXPECT_EQ(c1("--data builtin --hidden 64,x"), 2);
  EXPECT_TRUE(printed("genai c1: --hidden: 'x' is not a positive integer")) << output;
  EXPECT_EQ(c1("--data builtin --epochs 0"), 2);
  EXPECT_TRUE(printed("argument '--epochs' must be >= 1 (got 0)")) << output;
  EXPECT_EQ(c1("--data " + (dir() / "nothing").string()), 2);
  EXPECT_TRUE(printed("holds no Fashion-MNIST")) << output;
  EXPECT_EQ(c1("--data builtin --train-images 50 --latent 60"), 2);
  EXPECT_TRUE(printed("sizes must be below the number of training images (50)")) << output;
  EXPECT_NE(c1("--likelihood poisson"), 0);
}

}  // namespace
}  // namespace genai
