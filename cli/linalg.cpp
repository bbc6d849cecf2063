// genai svd / genai pca: the linalg module on the command line, and its demo rows.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "cli/common.hpp"
#include "genai/buffer.hpp"
#include "genai/io.hpp"
#include "genai/linalg.hpp"
#include "genai/rng.hpp"

namespace genai::cli {
namespace {

// A .npy file (2-D) or an IDX file (>= 2-D, e.g. MNIST images: N x 28 x 28 -> N x 784) as fp64,
// rows x cols.
struct Matrix {
  std::vector<double> values;
  std::int64_t rows = 0, cols = 0;
};

Matrix read_matrix(const std::string& path) {
  const bool npy = path.ends_with(".npy");
  const io::Array a = npy ? io::read_npy(path) : io::read_idx(path);
  if (npy ? a.shape.size() != 2 : a.shape.size() < 2)
    throw ArgumentError("--in: " + path + " must be a " + (npy ? "2-D" : "2-D or higher") +
                        " array (rows x columns), it has " + std::to_string(a.shape.size()) +
                        " dimensions");
  return {a.to_double(), a.shape[0], a.size() / std::max<std::int64_t>(a.shape[0], 1)};
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
    std::string in, method = "auto", out_prefix, device = "auto";
    double components = 0.95;
    bool whiten = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("pca", "principal component analysis of a 2-D .npy data set "
                                        "(one sample a row)");
  cmd->add_option("--in", a->in, "DATA.npy (samples x features) or an uncompressed IDX file")
      ->required();
  cmd->add_option("--components", a->components,
                  "a fraction of the variance in (0, 1), or a count")
      ->capture_default_str();
  cmd->add_flag("--whiten", a->whiten, "scale the scores to unit variance");
  cmd->add_option("--method", a->method, "the SVD method")->capture_default_str();
  cmd->add_option("--out-prefix", a->out_prefix,
                  "writes P.components.npy, P.mean.npy, P.explained_variance.npy, P.scores.npy");
  add_device_option(*cmd, a->device);
  cmd->callback([a] {
    const Context ctx = Context::from_name(a->device);
    const Matrix x = read_matrix(a->in);
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
}

}  // namespace

GENAI_CLI_MODULE(40, "linalg", add_linalg_commands, tour_linalg);

}  // namespace genai::cli
