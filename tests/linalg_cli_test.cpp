// `genai pca` and `genai svd` end to end: the written .npy files against the library, the
// pictures' data, bad input refused with status 2.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <cmath>
#include <span>
#include <vector>

#include "cli_test_util.hpp"
#include "genai/io.hpp"
#include "genai/linalg.hpp"

namespace genai {
namespace {

using test::CliRun;
using test::expect_refused;
using test::genai_cli;

class LinalgCli : public test::CliTest {};

// `genai pca` on gzip IDX images (MNIST's format): 40 images of 2 x 2, all pixels 255 in the
// even ones and 0 in the odd ones. Scaled to [0, 1] each feature has variance
// 0.25 * 40 / 39 = 0.25641, all of it along one component: explained variance 4 * 0.25641.
TEST_F(LinalgCli, PcaOfGzipIdxImagesWithAPicture) {
  const auto& dir = this->dir();
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

  if (!test::have_gnuplot())
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

TEST_F(LinalgCli, PcaRejectsBadInputNamingIt) {
  const auto& dir = this->dir();
  const std::string cut = (dir / "cut.gz").string();
  std::ofstream(cut, std::ios::binary) << std::string("\x1f\x8b\x08\x00", 4);
  CliRun r = genai_cli("pca --device cpu --in " + cut);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find(cut + ": truncated gzip data"), std::string::npos) << r.output;
  const std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  io::write_npy((dir / "x.npy").string(), std::span<const float>(x), {2, 6});
  r = genai_cli("pca --device cpu --in " + (dir / "x.npy").string() + " --image-shape 2x2");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("--image-shape: '2x2' must be HxW with H W = 6"), std::string::npos)
      << r.output;
  const std::vector<float> same = {1, 2, 3, 1, 2, 3};
  io::write_npy((dir / "same.npy").string(), std::span<const float>(same), {2, 3});
  r = genai_cli("pca --device cpu --in " + (dir / "same.npy").string() + " --plot " +
                (dir / "p.png").string());
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("genai pca --plot: the data has no variance"), std::string::npos)
      << r.output;
}


// `genai svd --k 2` on a 6 x 4 matrix written here: the files hold the library's top-2 factors
// (double, the CLI's precision), the printout its spectrum.
TEST_F(LinalgCli, SvdWritesTheLibrarysFactors) {
  const std::int64_t m = 6, n = 4;
  const std::vector<float> x = test::normals(m * n, 21);
  const std::string in = path("X.npy"), prefix = path("s");
  io::write_npy(in, std::span<const float>(x), {m, n});
  const CliRun r = genai_cli("svd --device cpu --method qr --k 2 --in " + in + " --out-prefix " + prefix);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(r.printed("X: 6 x 4 on cpu, method qr")) << r.output;
  EXPECT_TRUE(r.printed("wrote " + prefix + ".{U,S,Vt}.npy")) << r.output;
  const std::vector<double> xd(x.begin(), x.end());
  std::vector<double> U(m * 2), S(2), Vt(2 * n);
  svd(Context::cpu(), xd.data(), m, n, {.method = SvdMethod::qr, .k = 2},
      {.U = U.data(), .S = S.data(), .Vt = Vt.data()});
  const io::Array u = io::read_npy(prefix + ".U.npy"), sv = io::read_npy(prefix + ".S.npy"),
                  vt = io::read_npy(prefix + ".Vt.npy");
  EXPECT_EQ(u.shape, (std::vector<std::int64_t>{m, 2}));
  EXPECT_EQ(sv.shape, (std::vector<std::int64_t>{2}));
  EXPECT_EQ(vt.shape, (std::vector<std::int64_t>{2, n}));
  EXPECT_EQ(u.to_double(), U);
  EXPECT_EQ(sv.to_double(), S);
  EXPECT_EQ(vt.to_double(), Vt);
}

TEST_F(LinalgCli, SvdRefusesBadInputNamingIt) {
  const std::string in = path("X.npy");
  io::write_npy(in, std::span<const float>(std::vector<float>{1, 2, 3, NAN}), {2, 2});
  expect_refused("svd --device cpu --in " + in + " --out-prefix " + path("s"),
                 "argument 'X' entry 3 (row 1, column 1) is nan (must be finite)");
  expect_refused("svd --device cpu --in " + path("missing.npy") + " --out-prefix " + path("s"),
                 "missing.npy: cannot open for reading");
  EXPECT_FALSE(std::filesystem::exists(path("s.U.npy")));
}

}  // namespace
}  // namespace genai
