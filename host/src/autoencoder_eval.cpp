// The autoencoder module's measures on host arrays: PSNR, latent statistics, k-NN
// classification of codes, principal angles, the affine map of a linear MLP, pixel moments.
#include <algorithm>
#include <cmath>
#include <limits>

#include "genai/autoencoder.hpp"
#include "genai/linalg.hpp"
#include "genai/nvtx.hpp"

namespace genai {
namespace {

// Cholesky factor of the symmetric a [n x n] in place (lower triangle); false if a is not
// positive definite.
bool cholesky(std::vector<double>& a, std::int64_t n) {
  for (std::int64_t j = 0; j < n; ++j) {
    double d = a[j * n + j];
    for (std::int64_t k = 0; k < j; ++k) d -= a[j * n + k] * a[j * n + k];
    if (!(d > 0)) return false;
    a[j * n + j] = std::sqrt(d);
    for (std::int64_t i = j + 1; i < n; ++i) {
      double s = a[i * n + j];
      for (std::int64_t k = 0; k < j; ++k) s -= a[i * n + k] * a[j * n + k];
      a[i * n + j] = s / a[j * n + j];
    }
  }
  return true;
}

// Per-feature mean and variance (n - 1) of x [n x d].
void feature_moments(const float* x, std::int64_t n, std::int64_t d, std::vector<double>& mean,
                     std::vector<double>& var) {
  mean.assign(d, 0.0);
  var.assign(d, 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < d; ++j) mean[j] += x[i * d + j];
  for (double& m : mean) m /= static_cast<double>(n);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < d; ++j) {
      const double c = x[i * d + j] - mean[j];
      var[j] += c * c;
    }
  for (double& v : var) v /= static_cast<double>(n - 1);
}

// The economy SVD of a host matrix [m x n] on ctx, in double: U [m x min], S [min].
struct HostSvd {
  std::vector<double> U, S;
};
HostSvd svd_host(const Context& ctx, const std::vector<double>& X, std::int64_t m,
                 std::int64_t n) {
  const std::int64_t r = std::min(m, n);
  Buffer<double> x(ctx, std::span<const double>(X)), U(ctx, m * r), S(ctx, r);
  svd(ctx, x.data(), m, n, {}, {U.data(), S.data(), nullptr});
  return {U.to_host(), S.to_host()};
}

}  // namespace

double psnr(double mse, double peak) {
  constexpr const char* fn = "genai::psnr";
  if (!(mse >= 0 && std::isfinite(mse)))
    detail::throw_argument(fn, "mse", "must be finite and >= 0 (got ", mse, ")");
  if (!(peak > 0 && std::isfinite(peak)))
    detail::throw_argument(fn, "peak", "must be finite and > 0 (got ", peak, ")");
  return 10 * std::log10(peak * peak / mse);
}

LatentStatistics latent_statistics(const float* z, std::int64_t n, std::int64_t dim) {
  constexpr const char* fn = "genai::latent_statistics";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "n", n, 2);
  detail::require_at_least(fn, "dim", dim, 1);
  detail::require_not_null(fn, "z", z);
  LatentStatistics s;
  s.samples = n;
  s.dim = dim;
  std::vector<double> var;
  feature_moments(z, n, dim, s.mean, var);
  s.covariance.assign(dim * dim, 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t a = 0; a < dim; ++a) {
      const double ca = z[i * dim + a] - s.mean[a];
      for (std::int64_t b = 0; b <= a; ++b) s.covariance[a * dim + b] += ca * (z[i * dim + b] - s.mean[b]);
    }
  for (std::int64_t a = 0; a < dim; ++a)
    for (std::int64_t b = 0; b <= a; ++b)
      s.covariance[b * dim + a] = s.covariance[a * dim + b] /= static_cast<double>(n - 1);
  s.variance.resize(dim);
  for (std::int64_t a = 0; a < dim; ++a) s.variance[a] = s.covariance[a * dim + a];
  for (std::int64_t a = 0; a < dim; ++a)
    for (std::int64_t b = a + 1; b < dim; ++b) {
      const double den = std::sqrt(s.variance[a] * s.variance[b]);
      if (!(den > 0)) continue;
      const double r = std::abs(s.covariance[a * dim + b]) / den;
      if (r > s.max_correlation) {
        s.max_correlation = r;
        s.max_correlation_i = a;
        s.max_correlation_j = b;
      }
    }
  std::vector<double> L = s.covariance;
  if (!cholesky(L, dim)) {
    s.kl_to_standard_normal = std::numeric_limits<double>::infinity();
    return s;
  }
  double trace = 0, norm2 = 0, logdet = 0;
  for (std::int64_t a = 0; a < dim; ++a) {
    trace += s.variance[a];
    norm2 += s.mean[a] * s.mean[a];
    logdet += 2 * std::log(L[a * dim + a]);
  }
  s.kl_to_standard_normal = 0.5 * (trace + norm2 - static_cast<double>(dim) - logdet);
  return s;
}

std::int64_t active_units(const LatentStatistics& s, double threshold) {
  return std::count_if(s.variance.begin(), s.variance.end(),
                       [&](double v) { return v > threshold; });
}

std::vector<std::int64_t> knn_classify(const Context& ctx, const float* reference,
                                       const std::int64_t* labels, std::int64_t n,
                                       const float* queries, std::int64_t m, std::int64_t dim,
                                       const KnnOptions& opts) {
  constexpr const char* fn = "genai::knn_classify";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "n", n, 1);
  detail::require_at_least(fn, "m", m, 0);
  detail::require_at_least(fn, "dim", dim, 1);
  detail::require_at_least(fn, "opts.chunk", opts.chunk, 1);
  if (opts.k < 1 || opts.k > n)
    detail::throw_argument(fn, "opts.k", "must be in [1, n = ", n, "] (got ", opts.k, ")");
  detail::require_not_null(fn, "reference", reference);
  detail::require_not_null(fn, "labels", labels);
  if (m > 0) detail::require_not_null(fn, "queries", queries);
  std::vector<std::int64_t> predicted(m);
  if (m == 0) return predicted;
  // score(q, r) = q.r - |r|^2 / 2: the largest score is the nearest r.
  std::vector<float> half_norm(n);
  for (std::int64_t j = 0; j < n; ++j) {
    double s = 0;
    for (std::int64_t a = 0; a < dim; ++a) s += static_cast<double>(reference[j * dim + a]) * reference[j * dim + a];
    half_norm[j] = static_cast<float>(-0.5 * s);
  }
  const std::int64_t chunk = std::min(opts.chunk, m), k = opts.k;
  Buffer<float> W(ctx, std::span<const float>(reference, n * dim)),
      b(ctx, std::span<const float>(half_norm)), q(ctx, chunk * dim), y(ctx, chunk * n);
  std::vector<float> scores(chunk * n), query(chunk * dim);
  std::vector<std::pair<float, std::int64_t>> best(k);  // (score, reference row), best first
  for (std::int64_t r0 = 0; r0 < m; r0 += chunk) {
    const std::int64_t rows = std::min(chunk, m - r0);
    std::copy_n(queries + r0 * dim, rows * dim, query.begin());
    q.copy_from_host(query);
    linear_forward(ctx, {rows, dim, n}, q.data(), W.data(), b.data(), y.data());
    y.copy_to_host(scores);
    for (std::int64_t i = 0; i < rows; ++i) {
      const float* s = scores.data() + i * n;
      std::int64_t filled = 0;
      for (std::int64_t j = 0; j < n; ++j) {
        if (filled == k && !(s[j] > best[k - 1].first)) continue;
        std::int64_t at = filled < k ? filled++ : k - 1;
        while (at > 0 && s[j] > best[at - 1].first) {
          best[at] = best[at - 1];
          --at;
        }
        best[at] = {s[j], j};
      }
      // Votes; a tie goes to the class met first in nearest-first order.
      std::int64_t winner = labels[best[0].second], most = 0;
      for (std::int64_t a = 0; a < k; ++a) {
        const std::int64_t c = labels[best[a].second];
        std::int64_t votes = 0;
        for (std::int64_t t = 0; t < k; ++t) votes += labels[best[t].second] == c;
        if (votes > most) most = votes, winner = c;
      }
      predicted[r0 + i] = winner;
    }
  }
  return predicted;
}

std::vector<double> principal_angles(const Context& ctx, const double* A, const double* B,
                                     std::int64_t rows, std::int64_t p, std::int64_t q) {
  constexpr const char* fn = "genai::principal_angles";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "p", p, 1);
  detail::require_at_least(fn, "q", q, 1);
  if (p > rows || q > rows)
    detail::throw_argument(fn, p > rows ? "p" : "q", "must be <= rows = ", rows, " (got ",
                           std::max(p, q), ")");
  detail::require_not_null(fn, "A", A);
  detail::require_not_null(fn, "B", B);
  // Orthonormal bases, the larger space first (then the q <= p sines below are the angles').
  auto basis = [&](const double* X, std::int64_t cols, const char* name) {
    HostSvd s = svd_host(ctx, std::vector<double>(X, X + rows * cols), rows, cols);
    if (!(s.S[cols - 1] > 1e-12 * s.S[0]))
      detail::throw_argument(fn, name, "is not of full column rank (singular values ", s.S[0],
                             " ... ", s.S[cols - 1], ")");
    return s.U;
  };
  std::vector<double> Qa = basis(A, p, "A"), Qb = basis(B, q, "B");
  if (q > p) {
    std::swap(Qa, Qb);
    std::swap(p, q);
  }
  std::vector<double> M(p * q, 0.0), R = Qb;  // M = Qa^T Qb, R = Qb - Qa M
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t i = 0; i < p; ++i)
      for (std::int64_t j = 0; j < q; ++j) M[i * q + j] += Qa[r * p + i] * Qb[r * q + j];
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t j = 0; j < q; ++j)
      for (std::int64_t i = 0; i < p; ++i) R[r * q + j] -= Qa[r * p + i] * M[i * q + j];
  const std::vector<double> cosines = svd_host(ctx, M, p, q).S;  // descending: angles ascending
  const std::vector<double> sines = svd_host(ctx, R, rows, q).S;  // descending
  std::vector<double> angles(q);
  for (std::int64_t i = 0; i < q; ++i) {
    const double c = std::min(cosines[i], 1.0);
    angles[i] = c * c < 0.5 ? std::acos(c) : std::asin(std::min(sines[q - 1 - i], 1.0));
  }
  return angles;
}

AffineMap affine_map(Mlp& mlp) {
  constexpr const char* fn = "genai::affine_map";
  GENAI_NVTX_RANGE(fn);
  if (mlp.layers() > 1 && mlp.options().activation != Activation::None)
    detail::throw_argument(fn, "mlp", "has activation ", to_string(mlp.options().activation),
                           " between its layers: it is not an affine map");
  if (mlp.options().time_embedding_dim > 0)
    detail::throw_argument(fn, "mlp", "has a time embedding: it is not an affine map of x");
  std::vector<float> params(mlp.flat_size());
  detail::copy_bytes(mlp.context(), params.data(), Device::CPU, mlp.parameters(),
                     mlp.context().device(), params.size() * sizeof(float));
  const std::vector<MlpParam> list = mlp.parameter_list();
  AffineMap map{mlp.input_dim(), mlp.input_dim(), {}, {}};
  // Start from the identity map x -> x, compose each layer h -> W h + b (+ h when residual).
  map.A.assign(map.rows * map.cols, 0.0);
  for (std::int64_t i = 0; i < map.rows; ++i) map.A[i * map.cols + i] = 1;
  map.b.assign(map.rows, 0.0);
  for (int l = 0; l < mlp.layers(); ++l) {
    const MlpParam& W = list[2 * l];
    const MlpParam& bias = list[2 * l + 1];
    const std::int64_t out = W.shape[0], in = W.shape[1];
    std::vector<double> A(out * map.cols, 0.0), b(out, 0.0);
    for (std::int64_t o = 0; o < out; ++o) {
      b[o] = params[bias.offset + o];
      for (std::int64_t i = 0; i < in; ++i) {
        const double w = params[W.offset + o * in + i];
        b[o] += w * map.b[i];
        for (std::int64_t c = 0; c < map.cols; ++c) A[o * map.cols + c] += w * map.A[i * map.cols + c];
      }
    }
    if (mlp.is_residual(l)) {
      for (std::int64_t o = 0; o < out; ++o) {
        b[o] += map.b[o];
        for (std::int64_t c = 0; c < map.cols; ++c) A[o * map.cols + c] += map.A[o * map.cols + c];
      }
    }
    map.A = std::move(A);
    map.b = std::move(b);
    map.rows = out;
  }
  return map;
}

MomentComparison compare_moments(const float* a, std::int64_t na, const float* b, std::int64_t nb,
                                 std::int64_t d) {
  constexpr const char* fn = "genai::compare_moments";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "na", na, 2);
  detail::require_at_least(fn, "nb", nb, 2);
  detail::require_at_least(fn, "d", d, 1);
  detail::require_not_null(fn, "a", a);
  detail::require_not_null(fn, "b", b);
  std::vector<double> ma, va, mb, vb;
  feature_moments(a, na, d, ma, va);
  feature_moments(b, nb, d, mb, vb);
  MomentComparison c;
  for (std::int64_t j = 0; j < d; ++j) {
    c.mean_a += ma[j];
    c.mean_b += mb[j];
    c.variance_a += va[j];
    c.variance_b += vb[j];
    c.mean_rmse += (ma[j] - mb[j]) * (ma[j] - mb[j]);
    const double ds = std::sqrt(va[j]) - std::sqrt(vb[j]);
    c.std_rmse += ds * ds;
  }
  const double D = static_cast<double>(d);
  c.mean_a /= D;
  c.mean_b /= D;
  c.variance_a /= D;
  c.variance_b /= D;
  c.mean_rmse = std::sqrt(c.mean_rmse / D);
  c.std_rmse = std::sqrt(c.std_rmse / D);
  return c;
}

}  // namespace genai
