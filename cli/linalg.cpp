// genai svd / genai pca: the linalg module on the command line, and its demo rows.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli/common.hpp"
#include "cli/plot.hpp"
#include "genai/buffer.hpp"
#include "genai/io.hpp"
#include "genai/linalg.hpp"
#include "genai/rng.hpp"

namespace genai::cli {
namespace {

// A .npy file (2-D) or an IDX file (>= 2-D, plain or gzip) as fp64 rows x cols. IDX images
// (n x H x W, e.g. MNIST's n x 28 x 28) become n x (H W) rows with `height` x `width` kept;
// their uint8 pixels are scaled to [0, 1].
struct Matrix {
  std::vector<double> values;
  std::int64_t rows = 0, cols = 0;
  std::int64_t height = 0, width = 0;  // each row an image of this shape; 0: not images
};

Matrix read_matrix(const std::string& path) {
  const bool npy = path.ends_with(".npy");
  const io::Array a = npy ? io::read_npy(path) : io::read_idx(path);
  if (npy ? a.shape.size() != 2 : a.shape.size() < 2)
    throw ArgumentError("--in: " + path + " must be a " + (npy ? "2-D" : "2-D or higher") +
                        " array (rows x columns), it has " + std::to_string(a.shape.size()) +
                        " dimensions");
  Matrix x{a.to_double(), a.shape[0], a.size() / std::max<std::int64_t>(a.shape[0], 1)};
  if (!npy && a.shape.size() == 3) x.height = a.shape[1], x.width = a.shape[2];
  if (!npy && a.dtype == io::DType::U8)
    for (double& v : x.values) v /= 255;
  return x;
}

// "HxW" of --image-shape: each row of x is an image of H x W.
void set_image_shape(Matrix& x, const std::string& spec) {
  long long h = 0, w = 0;
  char sep = 0, extra = 0;
  if (std::sscanf(spec.c_str(), "%lld%c%lld%c", &h, &sep, &w, &extra) != 3 || sep != 'x' ||
      h < 1 || w < 1 || x.cols % h != 0 || x.cols / h != w)
    throw ArgumentError("--image-shape: '" + spec + "' must be HxW with H W = " +
                        std::to_string(x.cols) + " (the number of columns)");
  x.height = h;
  x.width = w;
}

// The counts k of the reconstruction table and pictures, those up to `most`.
std::vector<std::int64_t> ks_up_to(std::int64_t most) {
  std::vector<std::int64_t> ks;
  for (std::int64_t k : {1, 5, 20, 50, 200})
    if (k <= most) ks.push_back(k);
  return ks;
}

// Components for 90 / 95 / 99 % of the variance and the relative error of the best rank-k
// approximation of the centred data, sqrt(sum_{i>=k} S_i^2 / sum S_i^2) (Eckart-Young).
void print_pca_summary(const Pca& p, const char* indent) {
  const std::vector<double>& S = p.spectrum;
  std::printf("%scomponents for 90%% / 95%% / 99%% of the variance: %lld / %lld / %lld (of %zu)\n",
              indent, static_cast<long long>(components_for_energy(S, 0.90)),
              static_cast<long long>(components_for_energy(S, 0.95)),
              static_cast<long long>(components_for_energy(S, 0.99)), S.size());
  const double norm = std::sqrt(spectrum_energy(S));
  std::printf("%srank-k reconstruction error ||X - X_k||_F / ||X - mean||_F:", indent);
  for (std::int64_t k : ks_up_to(static_cast<std::int64_t>(S.size())))
    std::printf("  k = %lld: %.4f", static_cast<long long>(k),
                norm > 0 ? truncation_error(S, k) / norm : 0.0);
  std::printf("\n");
}

// The picture of `genai pca --plot`: the cumulative explained variance against the number of
// components and, for images, a grid of reconstructions (rows: a few images; columns: k
// components for k in 1, 5, 20, 50, 200 up to p.n_components, then p.n_components itself, then
// the original). The data gnuplot draws is written beside the picture: <png>.energy.dat
// (k, cumulative ratio, ratio of component k) and <png>.images.dat (the grid, one pixel row
// a line). Returns the files written.
std::vector<std::string> plot_pca(const std::string& png, const Pca& p, const Matrix& x,
                                  const std::string& title) {
  const std::string who = "genai pca --plot";
  require_plot_path(who, png);
  const std::string energy = png + ".energy.dat", images = png + ".images.dat";
  std::vector<std::string> files = {png, energy};
  const std::vector<double>& S = p.spectrum;
  const double total = spectrum_energy(S);
  if (!(total > 0)) throw ArgumentError(who + ": the data has no variance: no curve to draw");
  {
    std::ofstream f(energy);
    double acc = 0;
    for (std::size_t i = 0; i < S.size(); ++i) {
      acc += S[i] * S[i];
      f << i + 1 << ' ' << acc / total << ' ' << S[i] * S[i] / total << '\n';
    }
    if (!f) throw Error(who + ": cannot write " + energy);
  }
  const bool grid = x.height > 0;
  std::string quoted;  // the title in a gnuplot '...' string, where '' stands for '
  for (char c : title) quoted += c == '\'' ? std::string("''") : std::string(1, c);
  std::string script = detail::concat(
      "set terminal pngcairo size 1000,", grid ? 1150 : 500, " font ',10'\nset output '", png,
      "'\nset multiplot title '", quoted, "' noenhanced\n");
  script += detail::concat(
      "set origin 0,", grid ? 0.62 : 0, "\nset size 1,", grid ? 0.36 : 0.95,
      "\nset logscale x\nset xrange [0.8:", S.size() * 1.25, "]\nset yrange [0:100]\n"
      "set xlabel 'number of components k'\nset ylabel 'cumulative explained variance (%)'\n"
      "set grid\nset key bottom right opaque\n");
  for (double f : {0.90, 0.95, 0.99}) {
    const std::int64_t k = components_for_energy(S, f);
    script += detail::concat("set arrow from graph 0, first ", 100 * f, " to ", k, ", first ",
                             100 * f, " nohead dt 2 lc rgb '#888888'\nset arrow from ", k,
                             ", graph 0 to ", k, ", first ", 100 * f,
                             " nohead dt 2 lc rgb '#888888'\nset label '", 100 * f, "%: k = ", k,
                             "' at ", k, ", first ", 100 * f - 4, " offset 1,0\n");
  }
  script += detail::concat("plot '", energy,
                           "' using 1:($2*100) with lines lw 2 lc rgb '#08519c' title "
                           "'cumulative explained variance', '' using 1:($3*100) with impulses "
                           "lc rgb '#9ecae1' title 'component k'\n"
                           "unset arrow\nunset label\nunset logscale x\nunset grid\n");
  if (grid) {
    const std::int64_t h = x.height, w = x.width, d = h * w, r = p.n_components;
    const std::int64_t gap = std::max<std::int64_t>(1, std::min(h, w) / 14);  // 2 for 28 x 28
    std::vector<std::int64_t> ks = ks_up_to(r - 1);
    ks.push_back(r);
    const std::int64_t shown = std::min<std::int64_t>(6, x.rows), columns = ks.size() + 1;
    // The shown images (spread over the data), their scores and reconstructions from the first
    // k scores (the others zeroed).
    std::vector<double> X(shown * d), Z(shown * r), Zk(shown * r), cell(shown * d);
    for (std::int64_t i = 0; i < shown; ++i)
      std::copy_n(x.values.begin() + (i * x.rows / shown) * d, d, X.begin() + i * d);
    pca_transform(p, X.data(), shown, Z.data());
    double lo = *std::min_element(X.begin(), X.end()), hi = *std::max_element(X.begin(), X.end());
    if (hi <= lo) hi = lo + 1;
    const std::int64_t H = shown * (h + gap) - gap, W = columns * (w + gap) - gap;
    std::vector<double> pixels(H * W, hi);  // gaps white
    for (std::int64_t c = 0; c < columns; ++c) {
      if (c < static_cast<std::int64_t>(ks.size())) {
        for (std::int64_t i = 0; i < shown * r; ++i) Zk[i] = i % r < ks[c] ? Z[i] : 0.0;
        pca_inverse_transform(p, Zk.data(), shown, cell.data());
      } else {
        cell = X;
      }
      for (std::int64_t i = 0; i < shown; ++i)
        for (std::int64_t y = 0; y < h; ++y)
          for (std::int64_t xx = 0; xx < w; ++xx)
            pixels[(i * (h + gap) + y) * W + c * (w + gap) + xx] = cell[i * d + y * w + xx];
    }
    std::ofstream f(images);
    for (std::int64_t y = 0; y < H; ++y)
      for (std::int64_t xx = 0; xx < W; ++xx) f << pixels[y * W + xx] << (xx + 1 < W ? ' ' : '\n');
    if (!f) throw Error(who + ": cannot write " + images);
    files.push_back(images);
    std::string tics;
    for (std::int64_t c = 0; c < columns; ++c)
      tics += detail::concat(c ? ", " : "", "'",
                             c < static_cast<std::int64_t>(ks.size())
                                 ? detail::concat("k = ", ks[c])
                                 : std::string("original"),
                             "' ", c * (w + gap) + (w - 1) / 2.0);
    script += detail::concat(
        "set origin 0,0\nset size ratio -1 1,0.6\nset xrange [-0.5:", W - 0.5,
        "]\nset yrange [", H - 0.5, ":-0.5]\nset x2tics (", tics,
        ") scale 0\nunset xtics\nunset ytics\nset xlabel ''\nset ylabel ''\nunset colorbox\n"
        "set cbrange [", lo, ":", hi, "]\nset palette grey\n"
        "plot '", images, "' matrix with image notitle\n");
  }
  gnuplot(who, png, script + "unset multiplot\n");
  return files;
}

// The economy (or top-k) SVD of host data on ctx.
struct HostSvd {
  std::vector<double> U, S, Vt;
  std::int64_t r = 0;
  SvdReport report;
};

HostSvd svd_on(const Context& ctx, const Matrix& x, const SvdOptions& o) {
  const std::int64_t m = x.rows, n = x.cols, r = o.k > 0 ? o.k : std::min(m, n);
  Buffer<double> X(ctx, std::span<const double>(x.values)), U(ctx, m * r), S(ctx, r),
      Vt(ctx, r * n);
  HostSvd h;
  h.report = svd(ctx, X.data(), m, n, o, {U.data(), S.data(), Vt.data()});
  h.U = U.to_host();
  h.S = S.to_host();
  h.Vt = Vt.to_host();
  h.r = r;
  return h;
}

// `partial`: S is a top-k, so energies and fractions are of those k values only.
void print_spectrum(const std::vector<double>& S, std::int64_t kept, bool partial) {
  const double total = spectrum_energy(S);
  double captured = 0;
  for (std::int64_t i = 0; i < kept; ++i) captured += S[i] * S[i];
  std::printf("singular values:");
  for (std::size_t i = 0; i < std::min<std::size_t>(S.size(), 10); ++i) std::printf(" %.6g", S[i]);
  std::printf("%s\n", S.size() > 10 ? " ..." : "");
  std::printf("energy sum S^2 = %.6g%s; components for 90%% / 99%%: %lld / %lld\n", total,
              partial ? " (of the computed top k)" : "",
              static_cast<long long>(components_for_energy(S, 0.9)),
              static_cast<long long>(components_for_energy(S, 0.99)));
  std::printf("kept %lld: %.4f%% of the energy, Eckart-Young error ||X - X_k||_F = %.6g\n",
              static_cast<long long>(kept), total > 0 ? 100 * captured / total : 100.0,
              truncation_error(S, kept));
}

void add_svd_command(CLI::App& app) {
  struct Args {
    std::string in, method = "auto", out_prefix, device = "auto";
    std::int64_t k = 0;
    double energy = 0;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("svd", "singular value decomposition X = U diag(S) Vt of a "
                                        "2-D .npy matrix");
  cmd->add_option("--in", a->in, "X.npy, rows x columns")->required();
  auto* k = cmd->add_option("--k", a->k, "keep the top K singular triplets");
  cmd->add_option("--energy", a->energy, "keep the fewest triplets with this energy fraction")
      ->excludes(k);
  cmd->add_option("--method", a->method, "auto, qr, jacobi, batched_jacobi, randomized, gram")
      ->capture_default_str();
  cmd->add_option("--out-prefix", a->out_prefix, "writes P.U.npy, P.S.npy, P.Vt.npy")
      ->required();
  add_device_option(*cmd, a->device);
  cmd->callback([a] {
    const Context ctx = Context::from_name(a->device);
    const Matrix x = read_matrix(a->in);
    const SvdMethod method = svd_method_from_name(a->method);
    if (a->energy != 0 && method == SvdMethod::randomized)
      throw ArgumentError("genai svd: --energy needs the whole spectrum; the randomized method "
                          "computes the top --k only");
    const HostSvd all = svd_on(ctx, x, {.method = method, .k = a->k});
    const std::int64_t r = a->energy != 0 ? components_for_energy(all.S, a->energy) : all.r;
    std::printf("X: %lld x %lld on %s, method %s (%s)", static_cast<long long>(x.rows),
                static_cast<long long>(x.cols), to_string(ctx.device()).c_str(),
                to_string(all.report.method).c_str(), all.report.driver.c_str());
    if (all.report.sweeps > 0) std::printf(", %d sweeps", all.report.sweeps);
    if (!all.report.converged) std::printf(", NOT converged");
    if (all.report.fell_back) std::printf(", fell back to qr");
    if (all.report.dropped > 0)
      std::printf(", %lld values below the Gram method's resolution set to 0",
                  static_cast<long long>(all.report.dropped));
    std::printf("\n");
    print_spectrum(all.S, r, a->k > 0);
    std::vector<double> U(x.rows * r);
    for (std::int64_t i = 0; i < x.rows; ++i)
      std::copy_n(all.U.begin() + i * all.r, r, U.begin() + i * r);
    io::write_npy(a->out_prefix + ".U.npy", std::span<const double>(U), {x.rows, r});
    io::write_npy(a->out_prefix + ".S.npy", std::span<const double>(all.S.data(), r), {r});
    io::write_npy(a->out_prefix + ".Vt.npy", std::span<const double>(all.Vt.data(), r * x.cols),
                  {r, x.cols});
    std::printf("wrote %s.{U,S,Vt}.npy\n", a->out_prefix.c_str());
  });
}

void add_pca_command(CLI::App& app) {
  struct Args {
    std::string in, method = "auto", out_prefix, device = "auto", plot, image_shape;
    double components = 0.95;
    bool whiten = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("pca", "principal component analysis of a data set (one sample "
                                        "a row)");
  cmd->add_option("--in", a->in,
                  "DATA.npy (samples x features) or an IDX file, plain or gzip (images n x H x W "
                  "read as n x HW, uint8 scaled to [0, 1])")
      ->required();
  cmd->add_option("--components", a->components,
                  "a fraction of the variance in (0, 1), or a count")
      ->capture_default_str();
  cmd->add_flag("--whiten", a->whiten, "scale the scores to unit variance");
  cmd->add_option("--method", a->method, "the SVD method")->capture_default_str();
  cmd->add_option("--out-prefix", a->out_prefix,
                  "writes P.components.npy, P.mean.npy, P.explained_variance.npy, P.scores.npy");
  cmd->add_option("--plot", a->plot,
                  "draw the energy curve and, for images, reconstructions at several k (PNG, "
                  "gnuplot; the data beside it)");
  cmd->add_option("--image-shape", a->image_shape, "HxW: each row of a .npy is an H x W image");
  add_device_option(*cmd, a->device);
  cmd->callback([a] {
    const Context ctx = Context::from_name(a->device);
    Matrix x = read_matrix(a->in);
    if (!a->image_shape.empty()) set_image_shape(x, a->image_shape);
    const Pca p = pca_fit(ctx, x.values.data(), x.rows, x.cols,
                          {.n_components = a->components,
                           .whiten = a->whiten,
                           .method = svd_method_from_name(a->method)});
    std::printf("PCA of %lld samples x %lld features on %s (%s): %lld components%s\n",
                static_cast<long long>(x.rows), static_cast<long long>(x.cols),
                to_string(ctx.device()).c_str(), p.report.driver.c_str(),
                static_cast<long long>(p.n_components), p.whiten ? ", whitened" : "");
    if (p.dropped > 0)
      std::printf("dropped %lld components without variance (cannot be whitened)\n",
                  static_cast<long long>(p.dropped));
    std::printf("  #  explained variance   ratio   cumulative\n");
    double cumulative = 0;
    for (std::int64_t i = 0; i < p.n_components; ++i) {
      cumulative += p.explained_variance_ratio[i];
      if (i < 20 || i + 1 == p.n_components)
        std::printf("%3lld  %17.6g  %7.4f  %9.4f\n", static_cast<long long>(i + 1),
                    p.explained_variance[i], p.explained_variance_ratio[i], cumulative);
    }
    print_pca_summary(p, "");
    if (!a->plot.empty()) {
      const auto files = plot_pca(a->plot, p, x, "PCA of " + a->in);
      for (const auto& f : files) std::printf("wrote %s\n", f.c_str());
    }
    if (a->out_prefix.empty()) return;
    const std::int64_t r = p.n_components, d = p.n_features;
    std::vector<double> Z(x.rows * r);
    pca_transform(p, x.values.data(), x.rows, Z.data());
    io::write_npy(a->out_prefix + ".components.npy", std::span<const double>(p.components), {r, d});
    io::write_npy(a->out_prefix + ".mean.npy", std::span<const double>(p.mean), {d});
    io::write_npy(a->out_prefix + ".explained_variance.npy",
                  std::span<const double>(p.explained_variance), {r});
    io::write_npy(a->out_prefix + ".scores.npy", std::span<const double>(Z), {x.rows, r});
    std::printf("wrote %s.{components,mean,explained_variance,scores}.npy\n",
                a->out_prefix.c_str());
  });
}

void add_linalg_commands(CLI::App& app) {
  add_svd_command(app);
  add_pca_command(app);
}

// 2000 images of 28 x 28: random non-negative mixtures of 12 Gaussian blobs, plus noise.
Matrix builtin_images() {
  Matrix x{std::vector<double>(2000 * 784), 2000, 784, 28, 28};
  const std::int64_t shapes = 12;
  std::vector<float> w(x.rows * shapes), noise(x.values.size());
  fill_normal(Context::cpu(), w.data(), w.size(), {40, 4, 0});
  fill_normal(Context::cpu(), noise.data(), noise.size(), {40, 5, 0});
  for (std::int64_t i = 0; i < x.rows; ++i)
    for (std::int64_t j = 0; j < shapes; ++j) {
      const double cy = 4 + 5 * ((3 * j) % 5), cx = 4 + 5 * ((7 * j) % 5), s = 2 + j % 4;
      for (std::int64_t y = 0; y < 28; ++y)
        for (std::int64_t c = 0; c < 28; ++c)
          x.values[i * 784 + y * 28 + c] +=
              std::abs(w[i * shapes + j]) *
              std::exp(-((y - cy) * (y - cy) + (c - cx) * (c - cx)) / (2 * s * s));
    }
  for (std::size_t i = 0; i < x.values.size(); ++i) x.values[i] += 0.05 * noise[i];
  return x;
}

// C1's PCA step on images: Fashion-MNIST's 10000 test images (Debian's dataset-fashion-mnist)
// when installed, built-in images otherwise. Prints the components for 90/95/99 % of the
// variance and reconstruction errors; checks that the rank-50 reconstruction through
// pca_transform / pca_inverse_transform is at Eckart-Young's distance; with --out, draws the
// energy curve and reconstructions.
void tour_pca_images(Tour& t) {
  const std::string path = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
  const bool fashion = std::filesystem::exists(path);
  const Matrix x = fashion ? read_matrix(path) : builtin_images();
  const std::string what = fashion ? "Fashion-MNIST test images" : "built-in images";
  if (fashion)
    std::printf("    PCA of %s (%s)\n", what.c_str(), path.c_str());
  else
    std::printf("    PCA of %s, 28 x 28 (install dataset-fashion-mnist for Fashion-MNIST)\n",
                what.c_str());
  const std::int64_t k = 50;
  const auto t0 = std::chrono::steady_clock::now();  // one fit: too slow on a CPU to repeat
  const Pca p = pca_fit(t.ctx, x.values.data(), x.rows, x.cols, {.n_components = double(k)});
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("    %lld x %lld on %s in %.0f ms\n", static_cast<long long>(x.rows),
              static_cast<long long>(x.cols), to_string(t.ctx.device()).c_str(), ms);
  print_pca_summary(p, "    ");
  std::vector<double> Z(x.rows * k), back(x.values.size());
  pca_transform(p, x.values.data(), x.rows, Z.data());
  pca_inverse_transform(p, Z.data(), x.rows, back.data());
  double err2 = 0;
  for (std::size_t i = 0; i < back.size(); ++i)
    err2 += (back[i] - x.values[i]) * (back[i] - x.values[i]);
  const double eckart_young = truncation_error(p.spectrum, k);
  t.check("1.1(c) / C1", "PCA of " + what + ": Frobenius error of rank 50", std::sqrt(err2),
          eckart_young, 1e-9 * eckart_young);
  if (t.out_dir.empty()) return;
  try {
    const auto files = plot_pca(t.out_dir + "/linalg_pca.png", p, x, "PCA of " + what);
    t.files.insert(t.files.end(), files.begin(), files.end());
  } catch (const Error& e) {
    std::fprintf(stderr, "linalg: no picture: %s\n", e.what());
  }
}

// Demo rows: singular values of a 512 x 256 matrix by qr and by the Gram method, and of 1000
// matrices of 16 x 16 (auto: batched Jacobi on a GPU), against LAPACK; the answers of 1.2, 1.3
// and 1.5 computed on the tour's device.
void tour_linalg(Tour& t) {
  const Context cpu = Context::cpu();
  const std::int64_t m = 512, n = 256, batch = 1000, b = 16;
  std::vector<float> X(m * n), Xb(batch * b * b);
  fill_normal(cpu, X.data(), m * n, {40, 0, 0});
  fill_normal(cpu, Xb.data(), batch * b * b, {40, 1, 0});
  Buffer<float> dX(t.ctx, std::span<const float>(X)), dXb(t.ctx, std::span<const float>(Xb));
  const double bytes = 4.0 * m * n;
  for (SvdMethod method : {SvdMethod::qr, SvdMethod::gram})
    t.add("linalg", "SVD 512x256 " + to_string(method) + ", S", n, bytes,
          [&](const Context& c, float* out) {
            svd(c, dX.data(), m, n, {.method = method}, {nullptr, out, nullptr});
          },
          [&](float* out) { svd(cpu, X.data(), m, n, {}, {nullptr, out, nullptr}); }, 1e-4);
  t.add("linalg", "batched SVD 1000x16x16, S", batch * b, 4.0 * batch * b * b,
        [&](const Context& c, float* out) {
          svd_batched(c, dXb.data(), batch, b, b, {}, {nullptr, out, nullptr});
        },
        [&](float* out) { svd_batched(cpu, Xb.data(), batch, b, b, {}, {nullptr, out, nullptr}); },
        1e-4);

  const std::vector<double> S12 = {10, 5, 3, 2, 1, 0.5, 0.3, 0.2, 0.1, 0.05};
  t.check("1.2(a)", "energy of [10, 5, ..., 0.05]", spectrum_energy(S12), 139.39, 0.01);
  t.check("1.2(b)", "components for 90% energy", double(components_for_energy(S12, 0.9)), 3, 0);
  t.check("1.2(c)", "components for 99% energy", double(components_for_energy(S12, 0.99)), 4, 0);

  // 1.3: whitened correlated data (centred, sqrt(n - 1) / S) has covariance I.
  const std::int64_t rows = 1000, d = 8;
  std::vector<double> D(rows * d), Z(rows * d);
  std::vector<float> z(rows * d);
  fill_normal(cpu, z.data(), rows * d, {40, 2, 0});
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < d; ++c)
      D[r * d + c] = 5.0 + z[r * d + c] * (c + 1) + (c > 0 ? z[r * d + c - 1] : 0.0);
  const Pca p = pca_fit(t.ctx, D.data(), rows, d, {.whiten = true});
  pca_transform(p, D.data(), rows, Z.data());
  double cov_err = 0;
  for (std::int64_t i = 0; i < d; ++i)
    for (std::int64_t j = 0; j < d; ++j) {
      double c = 0;
      for (std::int64_t r = 0; r < rows; ++r) c += Z[r * d + i] * Z[r * d + j];
      cov_err = std::max(cov_err, std::abs(c / (rows - 1) - (i == j)));
    }
  t.check("1.3(a)", "max abs(Cov(whitened) - I)", cov_err, 0, 1e-5);

  // 1.5: the Gram method reconstructs a random 100 x 50 matrix.
  const std::int64_t gm = 100, gn = 50;
  std::vector<float> g(gm * gn);
  fill_normal(cpu, g.data(), gm * gn, {40, 3, 0});
  const Matrix G{std::vector<double>(g.begin(), g.end()), gm, gn};
  const HostSvd f = svd_on(t.ctx, G, {.method = SvdMethod::gram});
  std::vector<double> R(gm * gn);
  reconstruct(f.U.data(), f.S.data(), f.Vt.data(), gm, gn, gn, gn, R.data());
  double err = 0;
  for (std::int64_t i = 0; i < gm * gn; ++i) err = std::max(err, std::abs(R[i] - G.values[i]));
  t.check("1.5", "Gram-method SVD, max abs(U S Vt - X)", err, 0, 1e-8);

  tour_pca_images(t);
}

}  // namespace

GENAI_CLI_MODULE(40, "linalg", add_linalg_commands, tour_linalg);

}  // namespace genai::cli
