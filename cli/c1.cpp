// genai c1: challenge C1 -- PCA, a linear and a non-linear autoencoder and a VAE with the same
// latent sizes on Fashion-MNIST, compared on the test set; the report DIR/c1.md with its
// pictures (and their data) and DIR/c1_metrics.tsv. Also the autoencoder module's demo row.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <numbers>
#include <sstream>

#include "cli/common.hpp"
#include "cli/plot.hpp"
#include "genai/autoencoder.hpp"
#include "genai/detail/losses.hpp"
#include "genai/io.hpp"
#include "genai/linalg.hpp"

namespace genai::cli {
namespace {

namespace fs = std::filesystem;

constexpr const char* kFashionDir = "/usr/share/datasets/fashion-mnist";
constexpr const char* kClassNames[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                         "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
constexpr std::int64_t kSide = 28, kPixels = kSide * kSide;

// ---- data -------------------------------------------------------------------------------------

struct Images {
  std::vector<float> x;             // [n x 784] in [0, 1]
  std::vector<std::int64_t> label;  // [n] in [0, 10)
  std::int64_t n = 0;
};

struct DataSet {
  Images train, test;
  std::string source;  // what the report says about where the images came from
};

// DIR/name or DIR/name.gz, "" when neither exists.
std::string idx_file(const std::string& dir, const std::string& name) {
  for (const std::string& p : {dir + "/" + name, dir + "/" + name + ".gz"})
    if (fs::exists(p)) return p;
  return "";
}

// The first `limit` (0: all) images and labels of one split.
Images read_split(const std::string& dir, const std::string& prefix, std::int64_t limit) {
  const std::string images = idx_file(dir, prefix + "-images-idx3-ubyte");
  const std::string labels = idx_file(dir, prefix + "-labels-idx1-ubyte");
  const io::Array a = io::read_idx(images), l = io::read_idx(labels);
  if (a.dtype != io::DType::U8 || a.shape.size() != 3 || a.shape[1] != kSide || a.shape[2] != kSide)
    throw Error("genai c1: " + images + " is not uint8 images of 28 x 28");
  if (l.shape.size() != 1 || l.shape[0] != a.shape[0])
    throw Error("genai c1: " + labels + " does not hold one label per image of " + images);
  Images s;
  s.n = limit > 0 ? std::min(limit, a.shape[0]) : a.shape[0];
  s.x.resize(s.n * kPixels);
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(a.bytes.data());
  for (std::int64_t i = 0; i < s.n * kPixels; ++i) s.x[i] = bytes[i] / 255.0f;
  const std::vector<std::int64_t> all = l.to_int64();
  s.label.assign(all.begin(), all.begin() + s.n);
  for (std::int64_t i = 0; i < s.n; ++i)
    if (s.label[i] < 0 || s.label[i] > 9)
      throw Error("genai c1: " + labels + ": label " + std::to_string(s.label[i]) + " of image " +
                  std::to_string(i) + " is not a class 0..9");
  return s;
}

bool has_fashion(const std::string& dir) {
  for (const char* p : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"})
    if (idx_file(dir, p).empty()) return false;
  return true;
}

// Built-in stand-in for Fashion-MNIST: ten classes of 28 x 28 line drawings (a bar, a post, two
// diagonals, a plus, a cross, a box, a ring, a T, an L), each image its class's strokes shifted
// by up to 3 pixels, 1.2 to 2.2 pixels thick, at intensity 0.6 to 1, plus a little noise,
// clipped to [0, 1]. Philox stream user + 0x11, step 0 (train) or 1 (test).
Images builtin_split(std::int64_t n, std::uint64_t seed, std::uint32_t step) {
  struct Seg {
    double y0, x0, y1, x1;
  };
  static const std::vector<std::vector<Seg>> strokes = {
      {{14, 5, 14, 22}},                                  // bar
      {{5, 14, 22, 14}},                                  // post
      {{22, 6, 6, 22}},                                   // diagonal /
      {{6, 6, 22, 22}},                                   // diagonal '\'
      {{14, 5, 14, 22}, {5, 14, 22, 14}},                 // plus
      {{6, 6, 22, 22}, {22, 6, 6, 22}},                   // cross
      {{7, 7, 7, 20}, {20, 7, 20, 20}, {7, 7, 20, 7}, {7, 20, 20, 20}},  // box
      {},                                                 // ring (below)
      {{6, 6, 6, 21}, {6, 14, 22, 14}},                   // T
      {{5, 8, 21, 8}, {21, 8, 21, 20}}};                  // L
  Images s;
  s.n = n;
  s.x.assign(n * kPixels, 0.0f);
  s.label.resize(n);
  std::vector<float> u(5 * n), noise(n * kPixels);
  fill_uniform(Context::cpu(), u.data(), 5 * n, {seed, rng::streams::user + 0x11, step});
  fill_normal(Context::cpu(), noise.data(), n * kPixels, {seed, rng::streams::user + 0x12, step});
  for (std::int64_t i = 0; i < n; ++i) {
    const int c = std::min(9, static_cast<int>(10 * u[5 * i]));
    const double dy = 6 * u[5 * i + 1] - 3, dx = 6 * u[5 * i + 2] - 3;
    const double width = 1.2 + u[5 * i + 3], ink = 0.6 + 0.4 * u[5 * i + 4];
    s.label[i] = c;
    for (std::int64_t py = 0; py < kSide; ++py)
      for (std::int64_t px = 0; px < kSide; ++px) {
        const double y = py - dy, x = px - dx;
        double d = 1e9;
        if (c == 7) d = std::abs(std::hypot(y - 14, x - 14) - 7);
        for (const Seg& g : strokes[c]) {
          const double vy = g.y1 - g.y0, vx = g.x1 - g.x0;
          const double t = std::clamp(((y - g.y0) * vy + (x - g.x0) * vx) / (vy * vy + vx * vx), 0.0, 1.0);
          d = std::min(d, std::hypot(y - g.y0 - t * vy, x - g.x0 - t * vx));
        }
        const double v = ink * std::exp(-d * d / (2 * width * width)) + 0.03 * noise[i * kPixels + py * kSide + px];
        s.x[i * kPixels + py * kSide + px] = static_cast<float>(std::clamp(v, 0.0, 1.0));
      }
  }
  return s;
}

DataSet load_data(const std::string& dir, bool explicit_dir, std::int64_t max_train,
                  std::int64_t max_test, std::uint64_t seed) {
  DataSet d;
  if (dir != "builtin" && has_fashion(dir)) {
    d.train = read_split(dir, "train", max_train);
    d.test = read_split(dir, "t10k", max_test);
    d.source = "Fashion-MNIST from " + dir;
    return d;
  }
  if (dir != "builtin" && explicit_dir)
    throw ArgumentError("genai c1: --data " + dir +
                        " holds no Fashion-MNIST (train-images-idx3-ubyte, "
                        "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, "
                        "each plain or .gz); use --data builtin for the built-in images");
  if (dir != "builtin")
    std::printf("Fashion-MNIST is not installed in %s (Debian package dataset-fashion-mnist, "
                "scripts/setup.sh installs it): using the built-in images\n",
                dir.c_str());
  d.train = builtin_split(max_train > 0 ? max_train : 6000, seed, 0);
  d.test = builtin_split(max_test > 0 ? max_test : 1000, seed, 1);
  d.source = "built-in line drawings (10 classes; Fashion-MNIST was not used)";
  return d;
}

// ---- measures of one method at one k ------------------------------------------------------------

struct Result {
  std::string method;  // "PCA", "linear AE", "AE", "VAE"
  std::int64_t k = 0;
  double mse = 0, psnr = 0;
  LatentStatistics stats = {};     // codes (PCA: whitened scores; VAE: one z ~ q(z|x) per image)
  std::int64_t active = 0;         // active units (VAE: of the posterior means)
  double knn_accuracy = 0;
  bool generative = false;         // samples from N(0, I) decoded
  MomentComparison samples = {};   // those samples against the test images
  double prior_mse = 0;            // decoded prior samples against the test images (pairwise)
  double train_seconds = 0;
  // VAE: the KL term over the test set and its Monte Carlo estimate with standard error, the
  // smallest per-image KL, the negative ELBO per image.
  double kl = 0, kl_mc = 0, kl_se = 0, kl_min = 0, elbo = 0;
  // linear AE: principal angles (degrees) of its decoder's column space against PCA's top k.
  std::vector<double> angles = {};
};

double mse_of(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return s / static_cast<double>(a.size());
}

double knn_accuracy(const Context& ctx, const std::vector<float>& train_codes,
                    const Images& train, const std::vector<float>& test_codes,
                    const Images& test, std::int64_t k, std::int64_t neighbours) {
  const std::vector<std::int64_t> got =
      knn_classify(ctx, train_codes.data(), train.label.data(), train.n, test_codes.data(),
                   test.n, k, {.k = std::min(neighbours, train.n)});
  std::int64_t right = 0;
  for (std::int64_t i = 0; i < test.n; ++i) right += got[i] == test.label[i];
  return static_cast<double>(right) / static_cast<double>(test.n);
}

// ---- pictures -----------------------------------------------------------------------------------

// Rows of 28 x 28 images side by side, a label left of each row: the pixel matrix (one pixel row
// a line, gaps 1) beside the picture in <png>.dat.
struct ImageRow {
  std::string label;
  std::vector<float> pixels;  // count x 784
};

void plot_image_rows(const std::string& png, const std::vector<ImageRow>& rows,
                     const std::string& title) {
  const std::string who = "genai c1", data = png + ".dat";
  require_plot_path(who, png);
  std::int64_t columns = 0;
  for (const ImageRow& r : rows)
    columns = std::max<std::int64_t>(columns, r.pixels.size() / kPixels);
  const std::int64_t gap = 1, H = rows.size() * (kSide + gap) - gap, W = columns * (kSide + gap) - gap;
  std::vector<float> m(H * W, 1.0f);
  for (std::size_t r = 0; r < rows.size(); ++r)
    for (std::size_t i = 0; i < rows[r].pixels.size() / kPixels; ++i)
      for (std::int64_t y = 0; y < kSide; ++y)
        for (std::int64_t x = 0; x < kSide; ++x)
          m[(r * (kSide + gap) + y) * W + i * (kSide + gap) + x] =
              rows[r].pixels[i * kPixels + y * kSide + x];
  {
    std::ofstream f(data);
    for (std::int64_t y = 0; y < H; ++y)
      for (std::int64_t x = 0; x < W; ++x) f << m[y * W + x] << (x + 1 < W ? ' ' : '\n');
    if (!f) throw Error(who + ": cannot write " + data);
  }
  std::string tics;
  for (std::size_t r = 0; r < rows.size(); ++r)
    tics += detail::concat(r ? ", " : "", "'", rows[r].label, "' ",
                           r * (kSide + gap) + (kSide - 1) / 2.0);
  gnuplot(who, png,
          detail::concat("set terminal pngcairo size ", 160 + 3 * W, ",", 60 + 3 * H,
                         " font ',10'\nset output '", png, "'\nset title '", title,
                         "' noenhanced\nset size ratio -1\nset xrange [-0.5:", W - 0.5,
                         "]\nset yrange [", H - 0.5, ":-0.5]\nset ytics (", tics,
                         ") scale 0 noenhanced\nunset xtics\nunset colorbox\nset cbrange [0:1]\n"
                         "set palette grey negative\nplot '",
                         data, "' matrix with image notitle\n"));
}

// The k = 2 codes of the test images, one panel per method, coloured by class: <png>.dat holds
// "x y class" per image, one block per method (gnuplot index i).
void plot_scatter(const std::string& png, const std::vector<std::pair<std::string, std::vector<float>>>& panels,
                  const Images& test, const std::string& title) {
  const std::string who = "genai c1", data = png + ".dat";
  require_plot_path(who, png);
  {
    std::ofstream f(data);
    for (const auto& [name, z] : panels) {
      f << "# " << name << ": x y class\n";
      for (std::int64_t i = 0; i < test.n; ++i)
        f << z[2 * i] << ' ' << z[2 * i + 1] << ' ' << test.label[i] << '\n';
      f << "\n\n";
    }
    if (!f) throw Error(who + ": cannot write " + data);
  }
  std::string tics;
  for (int c = 0; c < 10; ++c) tics += detail::concat(c ? ", " : "", "'", kClassNames[c], "' ", c);
  std::string script = detail::concat(
      "set terminal pngcairo size ", 520 * panels.size() + 120, ",560 font ',10'\nset output '", png,
      "'\nset multiplot layout 1,", panels.size(), " title '", title,
      "' noenhanced\nset palette defined (0 '#1f77b4', 1 '#ff7f0e', 2 '#2ca02c', 3 '#d62728', "
      "4 '#9467bd', 5 '#8c564b', 6 '#e377c2', 7 '#7f7f7f', 8 '#bcbd22', 9 '#17becf')\n"
      "set palette maxcolors 10\nset cbrange [-0.5:9.5]\nset cbtics (",
      tics, ") noenhanced\nset size square\nset key off\n");
  for (std::size_t i = 0; i < panels.size(); ++i)
    script += detail::concat(i + 1 < panels.size() ? "unset colorbox\n" : "set colorbox\n",
                             "set title '", panels[i].first, "' noenhanced\nplot '", data,
                             "' index ", i, " using 1:2:3 with points pt 7 ps 0.25 lc palette\n");
  gnuplot(who, png, script + "unset multiplot\n");
}

// ---- the run -----------------------------------------------------------------------------------

struct C1Args {
  std::string latent = "2,8,32", hidden = "512,256", data = kFashionDir, out = "c1",
              device = "auto", likelihood = "bernoulli";
  int epochs = 3;
  std::int64_t batch = 256, train_images = 0, test_images = 0, knn = 5;
  float lr = 1e-3f, beta = 1.0f;
  std::uint64_t seed = 0;
  double progress_every = 1.0;
  bool quiet = false, data_given = false;
};

std::vector<std::int64_t> parse_list(const std::string& spec, const char* option) {
  std::vector<std::int64_t> v;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    std::size_t used = 0;
    long long x = 0;
    try {
      x = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || item.empty() || x < 1)
      throw ArgumentError(std::string("genai c1: ") + option + ": '" + item +
                          "' is not a positive integer (a list like " +
                          (std::string(option) == "--latent" ? "2,8,32" : "512,256") + ")");
    v.push_back(x);
  }
  if (v.empty() && std::string(option) == "--latent")
    throw ArgumentError("genai c1: --latent: no latent size given");
  return v;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string fixed(double v, int digits) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}

std::string general(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}

// Loss curves: per epoch fraction, the mean of each tenth of an epoch.
struct Curves {
  std::vector<Curve> train_mse, vae_elbo, vae_kl, test_mse;
};

void add_binned(std::vector<Curve>& curves, const std::string& name, const std::vector<float>& y,
                double epoch0) {
  if (curves.empty() || curves.back().name != name) curves.push_back({name, {}, {}});
  const std::size_t n = y.size(), bins = std::min<std::size_t>(10, n);
  for (std::size_t b = 0; b < bins; ++b) {
    const std::size_t lo = b * n / bins, hi = (b + 1) * n / bins;
    double s = 0;
    for (std::size_t i = lo; i < hi; ++i) s += y[i];
    curves.back().x.push_back(epoch0 + (hi / static_cast<double>(n)));
    curves.back().y.push_back(s / static_cast<double>(hi - lo));
  }
}

class C1Run {
 public:
  explicit C1Run(const C1Args& a)
      : a_(a), ctx_(Context::from_name(a.device)), progress_(a.progress_every, a.quiet) {}
  int run();

 private:
  void fit_pca(const std::vector<std::int64_t>& ks);
  Result evaluate_pca(std::int64_t k);
  Result train_and_evaluate(const std::string& method, std::int64_t k);
  void write_report(const std::vector<std::int64_t>& ks);

  C1Args a_;
  Context ctx_;
  Progress progress_;
  DataSet data_;
  std::vector<std::int64_t> hidden_;
  Buffer<float> train_dev_, test_dev_;
  Pca pca_;                                   // whitened, the largest k
  std::vector<float> pca_train_, pca_test_;   // whitened scores [n x kmax]
  std::vector<Result> results_;
  std::map<std::pair<std::string, std::int64_t>, std::vector<float>> recon_, samples_, codes2_;
  Curves curves_;
  std::vector<std::pair<std::string, double>> phases_;  // (what, seconds)
  std::vector<std::string> files_;
  double total_seconds_ = 0;
};

// The truncation of a whitened PCA fit to its first k components.
Pca truncated(const Pca& p, std::int64_t k) {
  Pca t = p;
  t.n_components = k;
  t.components.resize(k * p.n_features);
  t.singular_values.resize(k);
  t.explained_variance.resize(k);
  t.explained_variance_ratio.resize(k);
  return t;
}

// pca_transform of images x [n x 784] (on ctx) as one GEMM on ctx: the whitened scores
// z = x W^T + b with W_i = v_i / sqrt(lambda_i), b_i = -W_i . mean.
std::vector<float> pca_scores(const Context& ctx, const Pca& p, const float* x, std::int64_t n) {
  const std::int64_t k = p.n_components, d = p.n_features;
  std::vector<float> W(k * d), b(k);
  for (std::int64_t i = 0; i < k; ++i) {
    const double scale = 1 / std::sqrt(p.explained_variance[i]);
    double bias = 0;
    for (std::int64_t c = 0; c < d; ++c) {
      W[i * d + c] = static_cast<float>(p.components[i * d + c] * scale);
      bias -= p.components[i * d + c] * scale * p.mean[c];
    }
    b[i] = static_cast<float>(bias);
  }
  Buffer<float> Wd(ctx, std::span<const float>(W)), bd(ctx, std::span<const float>(b)),
      z(ctx, n * k);
  linear_forward(ctx, {n, d, k}, x, Wd.data(), bd.data(), z.data());
  return z.to_host();
}

// The first k columns of scores [n x kmax].
std::vector<float> first_columns(const std::vector<float>& z, std::int64_t n, std::int64_t kmax,
                                 std::int64_t k) {
  std::vector<float> out(n * k);
  for (std::int64_t i = 0; i < n; ++i) std::copy_n(z.begin() + i * kmax, k, out.begin() + i * k);
  return out;
}

void C1Run::fit_pca(const std::vector<std::int64_t>& ks) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::int64_t kmax = *std::max_element(ks.begin(), ks.end());
  progress_.report("c1: PCA of the training images");
  pca_ = pca_fit(ctx_, data_.train.x.data(), data_.train.n, kPixels,
                 {.n_components = double(kmax), .whiten = true});
  if (pca_.n_components < kmax)
    throw Error("genai c1: the training images have only " + std::to_string(pca_.n_components) +
                " directions with variance; --latent asks for " + std::to_string(kmax));
  pca_train_ = pca_scores(ctx_, pca_, train_dev_.data(), data_.train.n);
  pca_test_ = pca_scores(ctx_, pca_, test_dev_.data(), data_.test.n);
  phases_.push_back({"PCA (fit, scores of every image)", seconds_since(t0)});
  std::printf("PCA: %lld components of %lld training images, %.1f s\n",
              static_cast<long long>(kmax), static_cast<long long>(data_.train.n),
              phases_.back().second);
}

Result C1Run::evaluate_pca(std::int64_t k) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::int64_t kmax = pca_.n_components, m = data_.test.n;
  const Pca p = truncated(pca_, k);
  Result r{.method = "PCA", .k = k};
  const std::vector<float> z = first_columns(pca_test_, m, kmax, k);
  std::vector<float> back(m * kPixels);
  pca_inverse_transform(p, z.data(), m, back.data());
  r.mse = mse_of(back, data_.test.x);
  r.psnr = psnr(r.mse);
  r.stats = latent_statistics(z.data(), m, k);
  r.active = active_units(r.stats);
  // k-NN on the unwhitened scores: distances between the images' projections.
  auto raw = [&](std::vector<float> s) {
    for (std::size_t i = 0; i < s.size(); ++i)
      s[i] = static_cast<float>(s[i] * std::sqrt(p.explained_variance[i % k]));
    return s;
  };
  r.knn_accuracy = knn_accuracy(ctx_, raw(first_columns(pca_train_, data_.train.n, kmax, k)),
                                data_.train, raw(z), data_.test, k, a_.knn);
  // Generation: whitened scores from N(0, I) mapped back (probabilistic PCA without noise).
  std::vector<float> prior(m * k), gen(m * kPixels);
  fill_normal(Context::cpu(), prior.data(), m * k, {a_.seed, rng::streams::user + 0x13, 0});
  pca_inverse_transform(p, prior.data(), m, gen.data());
  r.generative = true;
  r.samples = compare_moments(gen.data(), m, data_.test.x.data(), m, kPixels);
  r.prior_mse = mse_of(gen, data_.test.x);
  recon_[{"PCA", k}] = back;
  samples_[{"PCA", k}] = gen;
  if (k == 2) codes2_[{"PCA", k}] = z;
  phases_.push_back({"PCA k = " + std::to_string(k) + ": evaluation", seconds_since(t0)});
  return r;
}

Result C1Run::train_and_evaluate(const std::string& method, std::int64_t k) {
  const bool vae = method == "VAE", linear = method == "linear AE";
  const Images& train = data_.train;
  const Images& test = data_.test;
  const AutoencoderOptions o{
      .input_dim = kPixels,
      .hidden = hidden_,
      .latent_dim = k,
      .activation = linear ? Activation::None : Activation::ReLU,
      .variational = vae,
      .beta = a_.beta,
      .reconstruction = vae && a_.likelihood == "bernoulli" ? Reconstruction::BernoulliLogits
                                                            : Reconstruction::SquaredError,
      .seed = a_.seed};
  Autoencoder model(ctx_, o);
  const std::int64_t steps_per_epoch = (train.n + a_.batch - 1) / a_.batch;
  const LrSchedule schedule = LrSchedule::warmup_cosine(a_.lr, 0, a_.epochs * steps_per_epoch);
  const std::string name = method + " k = " + std::to_string(k);
  Result r{.method = method, .k = k};
  std::vector<float> back(test.n * kPixels);
  const auto t0 = std::chrono::steady_clock::now();
  for (int e = 0; e < a_.epochs; ++e) {
    const EpochLosses l = model.train_epoch(
        train_dev_.data(), train.n, {.batch = a_.batch, .schedule = schedule, .epoch = e},
        [&](std::int64_t s, std::int64_t steps) {
          progress_.report(detail::concat("c1: ", name, ": epoch ", e + 1, "/", a_.epochs,
                                          ", step ", s, "/", steps));
        });
    for (float v : l.total)
      if (!std::isfinite(v))
        throw DivergenceError("genai c1: " + name + ": the training loss became " +
                              std::to_string(v) + " in epoch " + std::to_string(e + 1) +
                              " (lower --lr)");
    if (vae) {
      add_binned(curves_.vae_elbo, name, l.total, e);
      add_binned(curves_.vae_kl, name, l.kl, e);
    } else {
      add_binned(curves_.train_mse, name, l.total, e);
    }
    Buffer<float> out(ctx_, back.size());
    model.reconstruct(test_dev_.data(), test.n, out.data());
    out.copy_to_host(back);
    const double test_mse = mse_of(back, test.x);
    if (curves_.test_mse.empty() || curves_.test_mse.back().name != name)
      curves_.test_mse.push_back({name, {}, {}});
    curves_.test_mse.back().x.push_back(e + 1);
    curves_.test_mse.back().y.push_back(test_mse);
    double mean = 0, kl = 0;
    for (std::size_t i = 0; i < l.total.size(); ++i) mean += l.total[i], kl += l.kl[i];
    mean /= static_cast<double>(l.total.size());
    kl /= static_cast<double>(l.total.size());
    std::printf("  %-16s epoch %d/%d: train loss %s%s, test MSE %.5f, %.1f s\n", name.c_str(),
                e + 1, a_.epochs, general(mean).c_str(),
                vae ? (" (KL " + general(kl) + ")").c_str() : "", test_mse, seconds_since(t0));
    std::fflush(stdout);
  }
  r.train_seconds = seconds_since(t0);
  phases_.push_back({name + ": training", r.train_seconds});
  const auto t1 = std::chrono::steady_clock::now();
  progress_.report("c1: " + name + ": evaluation");
  // Reconstructions (the VAE through its posterior mean).
  r.mse = mse_of(back, test.x);
  r.psnr = psnr(r.mse);
  recon_[{method, k}] = back;
  // Codes of every image; the VAE's posterior means and log-variances.
  Buffer<float> z_train(ctx_, train.n * k), z_test(ctx_, test.n * k), lv_test(ctx_, vae ? test.n * k : 0);
  model.encode(train_dev_.data(), train.n, z_train.data());
  model.encode(test_dev_.data(), test.n, z_test.data(), vae ? lv_test.data() : nullptr);
  const std::vector<float> codes_train = z_train.to_host(), codes = z_test.to_host();
  r.knn_accuracy = knn_accuracy(ctx_, codes_train, train, codes, test, k, a_.knn);
  r.stats = latent_statistics(codes.data(), test.n, k);
  r.active = active_units(r.stats);
  if (k == 2) codes2_[{method, k}] = codes;
  if (vae) {
    // The aggregate posterior: one z ~ q(z|x) per test image.
    Buffer<float> z(ctx_, test.n * k), eps(ctx_, test.n * k);
    const std::vector<float> lv = lv_test.to_host();
    reparameterize(ctx_, z_test.data(), lv_test.data(), test.n, k, z.data(), {.seed = a_.seed + 7});
    r.stats = latent_statistics(z.to_host().data(), test.n, k);
    // The KL term per image (closed form) and its Monte Carlo estimate E_q[log q(z|x) - log p(z)]
    // from 16 reparameterised draws per image.
    double sum = 0, sum2 = 0;
    const int draws = 16;
    r.kl_min = 1e300;
    for (std::int64_t i = 0; i < test.n; ++i) {
      double kl = 0;
      for (std::int64_t j = 0; j < k; ++j)
        kl += detail::gaussian_kl<double>(codes[i * k + j], lv[i * k + j]).value;
      r.kl += kl / static_cast<double>(test.n);
      r.kl_min = std::min(r.kl_min, kl);
    }
    for (int s = 0; s < draws; ++s) {
      reparameterize(ctx_, z_test.data(), lv_test.data(), test.n, k, z.data(),
                     {.seed = a_.seed + 8, .step = static_cast<std::uint32_t>(s), .eps_out = eps.data()});
      const std::vector<float> zh = z.to_host(), eh = eps.to_host();
      for (std::int64_t i = 0; i < test.n; ++i) {
        double v = 0;
        for (std::int64_t j = 0; j < k; ++j) {
          const std::int64_t e = i * k + j;
          v += -0.5 * lv[e] - 0.5 * double(eh[e]) * eh[e] + 0.5 * double(zh[e]) * zh[e];
        }
        sum += v;
        sum2 += v * v;
      }
    }
    const double N = static_cast<double>(draws) * static_cast<double>(test.n);
    r.kl_mc = sum / N;
    r.kl_se = std::sqrt(std::max(0.0, sum2 / N - r.kl_mc * r.kl_mc) / N);
    r.elbo = model.loss(test_dev_.data(), test.n).total;  // one z ~ q(z|x) per image
  }
  if (!linear) {  // generation from the prior N(0, I)
    Buffer<float> gen(ctx_, test.n * kPixels);
    model.sample(test.n, {a_.seed, rng::streams::user + 0x13, 0}, gen.data());
    const std::vector<float> g = gen.to_host();
    r.generative = true;
    r.samples = compare_moments(g.data(), test.n, test.x.data(), test.n, kPixels);
    r.prior_mse = mse_of(g, test.x);
    samples_[{method, k}] = g;
  } else {  // the decoder's subspace against PCA's top k
    const AffineMap map = affine_map(model.decoder());
    std::vector<double> V(kPixels * k);
    for (std::int64_t i = 0; i < k; ++i)
      for (std::int64_t c = 0; c < kPixels; ++c) V[c * k + i] = pca_.components[i * kPixels + c];
    for (double angle : principal_angles(Context::cpu(), map.A.data(), V.data(), kPixels, k, k))
      r.angles.push_back(angle * 180 / std::numbers::pi);
  }
  phases_.push_back({name + ": evaluation", seconds_since(t1)});
  return r;
}

int C1Run::run() {
  const auto start = std::chrono::steady_clock::now();
  constexpr const char* fn = "genai c1";
  detail::require_at_least(fn, "--epochs", a_.epochs, 1);
  detail::require_at_least(fn, "--batch", a_.batch, 1);
  detail::require_at_least(fn, "--knn", a_.knn, 1);
  detail::require_at_least(fn, "--train-images", a_.train_images, 0);
  detail::require_at_least(fn, "--test-images", a_.test_images, 0);
  if (!(a_.lr > 0 && std::isfinite(a_.lr)))
    detail::throw_argument(fn, "--lr", "must be > 0 (got ", a_.lr, ")");
  std::vector<std::int64_t> ks = parse_list(a_.latent, "--latent");
  std::sort(ks.begin(), ks.end());
  ks.erase(std::unique(ks.begin(), ks.end()), ks.end());
  if (ks.back() > kPixels)
    detail::throw_argument(fn, "--latent", "sizes must be <= 784 (got ", ks.back(), ")");
  hidden_ = parse_list(a_.hidden, "--hidden");
  require_plot_path(fn, a_.out);
  fs::create_directories(a_.out);

  auto t0 = std::chrono::steady_clock::now();
  data_ = load_data(a_.data, a_.data_given, a_.train_images, a_.test_images, a_.seed);
  if (data_.train.n < 2 || data_.test.n < 2)
    throw ArgumentError("genai c1: needs at least 2 training and 2 test images");
  if (ks.back() >= data_.train.n)
    detail::throw_argument(fn, "--latent", "sizes must be below the number of training images (",
                           data_.train.n, ")");
  train_dev_ = Buffer<float>(ctx_, std::span<const float>(data_.train.x));
  test_dev_ = Buffer<float>(ctx_, std::span<const float>(data_.test.x));
  phases_.push_back({"reading the images", seconds_since(t0)});
  std::printf("C1 on %s: %s; %lld training and %lld test images; k = %s; %d epochs of batch "
              "%lld, hidden %s; on %s\n",
              a_.out.c_str(), data_.source.c_str(), static_cast<long long>(data_.train.n),
              static_cast<long long>(data_.test.n), a_.latent.c_str(), a_.epochs,
              static_cast<long long>(a_.batch), a_.hidden.c_str(),
              to_string(ctx_.device()).c_str());
  fit_pca(ks);
  for (const std::int64_t k : ks) {
    results_.push_back(evaluate_pca(k));
    for (const char* method : {"linear AE", "AE", "VAE"}) results_.push_back(train_and_evaluate(method, k));
  }
  t0 = std::chrono::steady_clock::now();
  write_report(ks);
  phases_.push_back({"report and pictures", seconds_since(t0)});
  total_seconds_ = seconds_since(start);
  // The time goes into the report's last line too.
  std::ofstream(fs::path(a_.out) / "c1.md", std::ios::app)
      << "\nTotal wall time of `genai c1`: " << fixed(total_seconds_, 1) << " s.\n";
  std::printf("wrote %s/c1.md, %s/c1_metrics.tsv and %zu pictures (data beside each); %.1f s in all\n",
              a_.out.c_str(), a_.out.c_str(), files_.size(), total_seconds_);
  return 0;
}

// ---- the report ---------------------------------------------------------------------------------

struct Claim {
  std::string what;
  bool holds;
};

// "Near N(0, I)": a moment-matched KL below 0.25 nats per dimension -- in one dimension the KL
// (s^2 - 1 - ln s^2) / 2 of N(0, s^2) stays below it for s^2 in [0.42, 2.25], and that of
// N(m, 1) for |m| < 0.7.
constexpr double kNearNormal = 0.25;

void C1Run::write_report(const std::vector<std::int64_t>& ks) {
  const fs::path dir(a_.out);
  auto find = [&](const std::string& method, std::int64_t k) -> const Result& {
    for (const Result& r : results_)
      if (r.method == method && r.k == k) return r;
    throw Error("genai c1: no result for " + method);
  };
  // Metrics, one row per method and k.
  {
    std::ofstream f(dir / "c1_metrics.tsv");
    f << "method\tk\tmse\tpsnr\tkl_mm\tmax_corr\tactive\tknn\tsample_mean_rmse\tsample_std_rmse\t"
         "prior_mse\tkl\tkl_mc\tkl_se\tkl_min\tneg_elbo\tmax_angle_deg\ttrain_s\n";
    for (const Result& r : results_)
      f << r.method << '\t' << r.k << '\t' << r.mse << '\t' << r.psnr << '\t'
        << r.stats.kl_to_standard_normal << '\t' << r.stats.max_correlation << '\t' << r.active
        << '\t' << r.knn_accuracy << '\t' << (r.generative ? r.samples.mean_rmse : NAN) << '\t'
        << (r.generative ? r.samples.std_rmse : NAN) << '\t' << (r.generative ? r.prior_mse : NAN)
        << '\t' << (r.method == "VAE" ? r.kl : NAN) << '\t' << (r.method == "VAE" ? r.kl_mc : NAN)
        << '\t' << (r.method == "VAE" ? r.kl_se : NAN) << '\t'
        << (r.method == "VAE" ? r.kl_min : NAN) << '\t' << (r.method == "VAE" ? r.elbo : NAN)
        << '\t' << (r.angles.empty() ? NAN : r.angles.back()) << '\t' << r.train_seconds << '\n';
  }
  // Claims of the problem set, checked on this run.
  std::vector<Claim> claims;
  const std::int64_t k0 = ks.front();
  for (const std::int64_t k : ks) {
    const Result &pca = find("PCA", k), &lin = find("linear AE", k);
    claims.push_back({detail::concat("k = ", k, ": the linear AE's test MSE is within 2% of PCA's "
                                     "(Eckart-Young, 1.1/1.2): ratio ", fixed(lin.mse / pca.mse, 4)),
                      lin.mse <= 1.02 * pca.mse});
    const std::size_t next = static_cast<std::size_t>(k);
    const double gap = next < pca_.spectrum.size()
                           ? pca_.spectrum[k - 1] * pca_.spectrum[k - 1] /
                                 (pca_.spectrum[next] * pca_.spectrum[next])
                           : INFINITY;
    claims.push_back({detail::concat("k = ", k, ": the linear AE's decoder spans PCA's top-", k,
                                     " subspace: largest principal angle ", fixed(lin.angles.back(), 2),
                                     " degrees (< 10; PCA's eigengap lambda_k / lambda_k+1 = ",
                                     fixed(gap, 3), ": the nearer 1, the flatter the error "
                                     "around the subspace and the slower its last angles converge)"),
                      lin.angles.back() < 10});
  }
  {
    const Result &pca = find("PCA", k0), &ae = find("AE", k0);
    claims.push_back({detail::concat("k = ", k0, ": the non-linear AE beats PCA: test MSE ",
                                     general(ae.mse), " against ", general(pca.mse)),
                      ae.mse < pca.mse});
  }
  for (const std::int64_t k : ks) {
    const Result& v = find("VAE", k);
    claims.push_back({detail::concat("k = ", k, ": the VAE's KL term is >= 0 (smallest per image ",
                                     general(v.kl_min), ") and matches its Monte Carlo estimate: ",
                                     fixed(v.kl, 3), " against ", fixed(v.kl_mc, 3), " +- ",
                                     fixed(v.kl_se, 3), " (within 5 SE)"),
                      v.kl_min >= 0 && std::abs(v.kl - v.kl_mc) <= 5 * v.kl_se});
    claims.push_back({detail::concat("k = ", k, ": reconstruction from the VAE's posterior mean beats "
                                     "decoded prior samples: MSE ", general(v.mse), " against ",
                                     general(v.prior_mse)),
                      v.mse < v.prior_mse});
  }
  {
    // Whitened PCA scores of the training images: covariance I (1.3, with the errata).
    const std::int64_t kmax = pca_.n_components;
    const LatentStatistics s = latent_statistics(pca_train_.data(), data_.train.n, kmax);
    double worst = 0;
    for (std::int64_t i = 0; i < kmax; ++i)
      for (std::int64_t j = 0; j < kmax; ++j)
        worst = std::max(worst, std::abs(s.covariance[i * kmax + j] - (i == j ? 1.0 : 0.0)));
    claims.push_back({detail::concat("whitened PCA scores of the training images (k = ", kmax,
                                     ") have identity covariance: max |C - I| = ", general(worst)),
                      worst < 1e-4});
  }
  for (const std::int64_t k : ks) {
    const Result &v = find("VAE", k), &ae = find("AE", k);
    const double vk = v.stats.kl_to_standard_normal, ak = ae.stats.kl_to_standard_normal;
    claims.push_back({detail::concat("k = ", k, ": the VAE's aggregate posterior is near N(0, I) and "
                                     "the AE's codes are not: moment-matched KL ", general(vk),
                                     " against ", general(ak), " nats (VAE < 0.25 k, AE > 4x the VAE's)"),
                      vk < kNearNormal * static_cast<double>(k) && ak > 4 * vk});
  }
  const auto held = std::count_if(claims.begin(), claims.end(), [](const Claim& c) { return c.holds; });

  // Pictures (each with its data beside it); a missing gnuplot leaves the data and says so.
  auto picture = [&](const std::string& file, const std::function<void(const std::string&)>& draw) {
    const std::string png = (dir / file).string();
    try {
      draw(png);
      files_.push_back(file);
    } catch (const Error& e) {
      std::fprintf(stderr, "genai c1: no picture %s: %s\n", file.c_str(), e.what());
    }
  };
  std::vector<std::int64_t> shown;  // the first test image of each class
  for (int c = 0; c < 10; ++c)
    for (std::int64_t i = 0; i < data_.test.n; ++i)
      if (data_.test.label[i] == c) {
        shown.push_back(i);
        break;
      }
  auto pick = [&](const std::vector<float>& images) {
    std::vector<float> out;
    for (std::int64_t i : shown)
      out.insert(out.end(), images.begin() + i * kPixels, images.begin() + (i + 1) * kPixels);
    return out;
  };
  picture("c1_reconstructions.png", [&](const std::string& png) {
    std::vector<ImageRow> rows{{"test image", pick(data_.test.x)}};
    for (const std::int64_t k : ks)
      for (const char* m : {"PCA", "linear AE", "AE", "VAE"})
        rows.push_back({detail::concat(m, " k=", k), pick(recon_.at({m, k}))});
    plot_image_rows(png, rows, "reconstructions of the same test images (one per class)");
  });
  picture("c1_samples.png", [&](const std::string& png) {
    // Two rows of 12 draws per method and k (fewer when there are fewer test images).
    const std::int64_t per_row = std::min<std::int64_t>(12, data_.test.n);
    const std::int64_t row_count = std::min<std::int64_t>(2, data_.test.n / per_row);
    std::vector<ImageRow> rows;
    for (const std::int64_t k : ks)
      for (const char* m : {"PCA", "AE", "VAE"}) {
        const std::vector<float>& s = samples_.at({m, k});
        for (std::int64_t r = 0; r < row_count; ++r)
          rows.push_back({detail::concat(m, " k=", k),
                          std::vector<float>(s.begin() + r * per_row * kPixels,
                                             s.begin() + (r + 1) * per_row * kPixels)});
      }
    plot_image_rows(png, rows, "decoded samples z ~ N(0, I) (PCA: whitened scores)");
  });
  if (codes2_.size() == 4)
    picture("c1_latent_k2.png", [&](const std::string& png) {
      plot_scatter(png, {{"PCA (whitened scores)", codes2_.at({"PCA", 2})},
                         {"linear AE", codes2_.at({"linear AE", 2})},
                         {"AE", codes2_.at({"AE", 2})},
                         {"VAE (posterior means)", codes2_.at({"VAE", 2})}},
                   data_.test, "k = 2 codes of the test images by class");
    });
  picture("c1_loss_ae.png", [&](const std::string& png) {
    plot_curves("genai c1", png, curves_.train_mse, "autoencoders: training MSE per pixel",
                "epoch", "MSE per pixel", true);
  });
  picture("c1_loss_vae.png", [&](const std::string& png) {
    std::vector<Curve> c = curves_.vae_elbo;
    for (Curve k : curves_.vae_kl) {
      k.name += " (KL term)";
      c.push_back(k);
    }
    plot_curves("genai c1", png, c, "VAE: training -ELBO per image and its KL term (nats)",
                "epoch", "nats", true);
  });
  picture("c1_test_mse.png", [&](const std::string& png) {
    std::vector<Curve> c = curves_.test_mse;
    for (const std::int64_t k : ks)
      c.push_back({detail::concat("PCA k = ", k), {1, double(a_.epochs)},
                   {find("PCA", k).mse, find("PCA", k).mse}});
    plot_curves("genai c1", png, c, "test MSE per pixel after each epoch (PCA: flat)", "epoch",
                "MSE per pixel", true);
  });

  std::ofstream f(dir / "c1.md");
  f << "# C1: PCA, autoencoders and a VAE on " << data_.source << "\n\n"
    << "`genai c1 --latent " << a_.latent << " --epochs " << a_.epochs << " --hidden " << a_.hidden
    << " --batch " << a_.batch << " --lr " << a_.lr << " --beta " << a_.beta << " --likelihood "
    << a_.likelihood << " --seed " << a_.seed << "` on " << to_string(ctx_.device()) << ": "
    << data_.train.n << " training and " << data_.test.n << " test images (28 x 28, pixels in [0, 1]). "
    << "Every number below is on the test images.\n\n"
    << "- **PCA**: the SVD of the centred training images (`pca_fit`, whitened); "
       "reconstruction from the top k components.\n"
    << "- **linear AE**: encoder 784 -> " << a_.hidden << " -> k and the mirrored decoder, no "
       "activations, squared error.\n"
    << "- **AE**: the same with ReLU, squared error.\n"
    << "- **VAE**: the same with ReLU, encoder output 2k (mu, log sigma^2), beta = " << a_.beta
    << ", "
    << (a_.likelihood == "bernoulli"
            ? "**Bernoulli decoder** (the decoder outputs logits; the reconstruction term is the "
              "binary cross-entropy summed over the pixels). Why: the pixels are intensities in "
              "[0, 1] with most of them at 0 or near 1, which a Bernoulli mean models directly "
              "(as Kingma and Welling did for MNIST); a Gaussian decoder of fixed variance sigma^2 "
              "weighs the reconstruction by 1/(2 sigma^2), a free constant that with sigma = 1 "
              "makes the 784-pixel squared error (~20 nats) small against the KL and collapses "
              "the posterior. The Bernoulli likelihood is not normalised for non-binary pixels "
              "(the continuous Bernoulli would be), so the -ELBO below is a loss, not a bound on "
              "a density; reconstructions are the decoder's means sigmoid(logits).\n"
            : "**Gaussian decoder** of fixed variance 1/2 (the reconstruction term is the squared "
              "error summed over the pixels; --likelihood bernoulli is the default, see its "
              "reasons in a run with it).\n")
    << "- All three trained with Adam (lr " << a_.lr << ", cosine decay to 0 over the run), "
    << a_.epochs << " epochs of batch " << a_.batch << ", shuffled every epoch.\n\n";

  f << "## Reconstruction and codes\n\n"
    << "| k | method | MSE / pixel | PSNR (dB) | KL(N(m, C) ‖ N(0, I)) | max |corr| | active units | "
    << a_.knn << "-NN accuracy |\n|---|---|---|---|---|---|---|---|\n";
  for (const std::int64_t k : ks)
    for (const char* m : {"PCA", "linear AE", "AE", "VAE"}) {
      const Result& r = find(m, k);
      f << "| " << k << " | " << m << " | " << fixed(r.mse, 5) << " | " << fixed(r.psnr, 2) << " | "
        << general(r.stats.kl_to_standard_normal) << " | " << fixed(r.stats.max_correlation, 3)
        << " | " << r.active << " / " << k << " | " << fixed(100 * r.knn_accuracy, 1) << "% |\n";
    }
  f << "\nCodes: PCA's whitened scores (unit variance on the training set by construction); the "
       "autoencoders' encoder outputs; the VAE's aggregate posterior, one z ~ q(z|x) per test "
       "image. KL(N(m, C) ‖ N(0, I)) is that of the Gaussian with the codes' mean m and covariance "
       "C (moment-matched), in nats. Active units (Burda et al.): dimensions whose variance over "
       "the test set exceeds 0.01 -- for the VAE, the variance of the posterior mean E[z|x]. The "
       "k-NN classifier votes among the "
    << a_.knn << " nearest training codes (Euclidean; PCA: the unwhitened scores, i.e. distances "
       "between the projected images; VAE: posterior means).\n\n";
  f << "Per-dimension mean and variance of the codes (first 8 dimensions):\n\n"
    << "| k | method | mean | variance |\n|---|---|---|---|\n";
  for (const std::int64_t k : ks)
    for (const char* m : {"PCA", "linear AE", "AE", "VAE"}) {
      const Result& r = find(m, k);
      std::string mean, var;
      for (std::int64_t j = 0; j < std::min<std::int64_t>(k, 8); ++j) {
        mean += detail::concat(j ? ", " : "", fixed(r.stats.mean[j], 2));
        var += detail::concat(j ? ", " : "", general(r.stats.variance[j]));
      }
      if (k > 8) mean += ", ...", var += ", ...";
      f << "| " << k << " | " << m << " | " << mean << " | " << var << " |\n";
    }

  f << "\n## The linear autoencoder and PCA\n\n| k | MSE linear AE / PCA | principal angles "
       "(degrees) of its decoder's column space against PCA's top k |\n|---|---|---|\n";
  for (const std::int64_t k : ks) {
    const Result& r = find("linear AE", k);
    std::string angles;
    for (std::size_t i = 0; i < r.angles.size(); ++i) {
      if (r.angles.size() > 8 && i == 4) {
        angles += ", ...";
        i = r.angles.size() - 3;
      }
      angles += detail::concat(i ? ", " : "", fixed(r.angles[i], 2));
    }
    f << "| " << k << " | " << fixed(r.mse / find("PCA", k).mse, 4) << " | " << angles << " |\n";
  }
  f << "\nEckart-Young: no rank-k linear map reconstructs the training images better than PCA, "
       "and a linear autoencoder trained on squared error converges to PCA's subspace (not to its "
       "basis: any invertible mix of the top k components is as good, so its codes are a linear "
       "transform of PCA's scores). The principal angles measure the subspaces, whatever the basis.\n";

  f << "\n## The VAE\n\n| k | -ELBO / image (nats) | KL term (closed form) | KL, Monte Carlo "
       "(16 draws / image) | smallest KL of an image | MSE: posterior mean | MSE: prior sample |\n"
       "|---|---|---|---|---|---|---|\n";
  for (const std::int64_t k : ks) {
    const Result& r = find("VAE", k);
    f << "| " << k << " | " << fixed(r.elbo, 2) << " | " << fixed(r.kl, 3) << " | "
      << fixed(r.kl_mc, 3) << " ± " << fixed(r.kl_se, 3) << " | " << general(r.kl_min) << " | "
      << fixed(r.mse, 5) << " | " << fixed(r.prior_mse, 5) << " |\n";
  }
  f << "\n## Generation from N(0, I)\n\n"
    << "| k | method | pixel mean (data " << fixed(find("PCA", k0).samples.mean_b, 4)
    << ") | pixel variance (data " << fixed(find("PCA", k0).samples.variance_b, 4)
    << ") | RMS of per-pixel mean differences | RMS of per-pixel std differences |\n"
       "|---|---|---|---|---|---|\n";
  for (const std::int64_t k : ks)
    for (const char* m : {"PCA", "AE", "VAE"}) {
      const MomentComparison& s = find(m, k).samples;
      f << "| " << k << " | " << m << " | " << fixed(s.mean_a, 4) << " | " << fixed(s.variance_a, 4)
        << " | " << fixed(s.mean_rmse, 4) << " | " << fixed(s.std_rmse, 4) << " |\n";
    }
  f << "\nFID-free sample statistics: " << data_.test.n << " decoded draws z ~ N(0, I) against the "
       "test images, per pixel. PCA's whitened scores are N(0, I)-distributed by construction on "
       "the training set (a Gaussian model of the images' top-k projection); the VAE's prior is "
       "what it was trained to decode; the AE was never asked to make N(0, I) mean anything -- "
       "its codes' moment-matched KL above says how far from N(0, I) they lie, and its samples "
       "show it.\n";

  f << "\n## Claims, checked on this run\n\n";
  for (const Claim& c : claims) f << "- " << (c.holds ? "holds" : "**DOES NOT HOLD**") << ": " << c.what << "\n";
  f << "\n" << held << " of " << claims.size() << " claims hold.\n";

  f << "\n## Pictures\n\n";
  for (const std::string& p : files_) f << "- [" << p << "](" << p << ") (data: " << p << ".dat)\n";
  if (files_.empty()) f << "None (gnuplot could not draw them; the data files are there).\n";
  f << "\n## Time\n\n| phase | seconds |\n|---|---|\n";
  for (const auto& [what, s] : phases_) f << "| " << what << " | " << fixed(s, 1) << " |\n";
  std::printf("claims: %ld of %zu hold (see c1.md)\n", static_cast<long>(held), claims.size());
}

void add_c1_command(CLI::App& app) {
  auto a = std::make_shared<C1Args>();
  auto* cmd = app.add_subcommand(
      "c1", "challenge C1: PCA, a linear and a non-linear autoencoder and a VAE on Fashion-MNIST, "
            "compared on the test set (report DIR/c1.md)");
  cmd->add_option("--latent", a->latent, "latent sizes k, comma-separated")->capture_default_str();
  cmd->add_option("--epochs", a->epochs, "training epochs of each model")->capture_default_str();
  auto* data = cmd->add_option("--data", a->data,
                               "directory of the IDX files (train-images-idx3-ubyte[.gz], ...), "
                               "or 'builtin' for the built-in line drawings")
                   ->capture_default_str();
  cmd->add_option("--out", a->out, "report directory")->capture_default_str();
  cmd->add_option("--hidden", a->hidden, "encoder widths (the decoder mirrors them)")
      ->capture_default_str();
  cmd->add_option("--batch", a->batch, "batch size")->capture_default_str();
  cmd->add_option("--lr", a->lr, "Adam learning rate (cosine decay to 0)")->capture_default_str();
  cmd->add_option("--beta", a->beta, "the VAE's KL weight")->capture_default_str();
  cmd->add_option("--likelihood", a->likelihood, "the VAE's decoder: bernoulli or gaussian")
      ->check(CLI::IsMember({"bernoulli", "gaussian"}))
      ->capture_default_str();
  cmd->add_option("--train-images", a->train_images, "use the first N training images (0: all)")
      ->capture_default_str();
  cmd->add_option("--test-images", a->test_images, "use the first N test images (0: all)")
      ->capture_default_str();
  cmd->add_option("--knn", a->knn, "neighbours of the k-NN classifier")->capture_default_str();
  cmd->add_option("--seed", a->seed, "initialisation, batch order, sampling")->capture_default_str();
  add_device_option(*cmd, a->device);
  add_progress_options(*cmd, a->progress_every, a->quiet);
  cmd->callback([a, data] {
    C1Args args = *a;
    args.data_given = data->count() > 0;
    exit_code = C1Run(args).run();
  });
}

// Demo row: one VAE training step (loss and every gradient) of a small model on the tour's
// device against the CPU.
void tour_autoencoder(Tour& t) {
  const AutoencoderOptions o{.input_dim = 64, .hidden = {48, 32}, .latent_dim = 4,
                             .variational = true,
                             .reconstruction = Reconstruction::BernoulliLogits, .seed = 3};
  const std::int64_t n = 128;
  std::vector<float> x(n * o.input_dim);
  fill_uniform(Context::cpu(), x.data(), x.size(), {5});
  Autoencoder ref(Context::cpu(), o);
  const std::int64_t total = ref.encoder().flat_size() + ref.decoder().flat_size();
  auto gradients = [&](Autoencoder& m, const float* xd, float* out) {
    m.loss_and_gradients(xd, n, 0, nullptr);
    detail::copy_bytes(m.context(), out, m.context().device(), m.encoder().gradients(),
                       m.context().device(), m.encoder().flat_size() * sizeof(float));
    detail::copy_bytes(m.context(), out + m.encoder().flat_size(), m.context().device(),
                       m.decoder().gradients(), m.context().device(),
                       m.decoder().flat_size() * sizeof(float));
  };
  const double bytes = 4.0 * 3 * static_cast<double>(total);  // parameters read, gradients written (x2)
  t.add("autoencoder", "VAE step 128 x 64 -> 48 -> 32 -> 4", total, bytes,
        [&](const Context& ctx, float* out) {
          Autoencoder m(ctx, o);
          Buffer<float> xd(ctx, std::span<const float>(x));
          gradients(m, xd.data(), out);
        },
        [&](float* out) { gradients(ref, x.data(), out); }, 1e-4);
}

}  // namespace

GENAI_CLI_MODULE(75, "autoencoder", add_c1_command, tour_autoencoder);

}  // namespace genai::cli
