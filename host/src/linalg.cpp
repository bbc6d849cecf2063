// genai linalg module: argument checks, method choice, then the CPU reference or cuSOLVER.
#include "genai/linalg.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu_reference/linalg.hpp"
#include "cpu_reference/parallel.hpp"
#include "genai/buffer.hpp"
#include "genai/nvtx.hpp"
#include "host/src/finite.hpp"
#if GENAI_WITH_CUDA
#include "kernels/linalg.cuh"
#endif

namespace genai {
namespace {

constexpr std::int64_t kMaxDim = std::numeric_limits<std::int32_t>::max();  // LAPACK's int

struct Name {
  SvdMethod m;
  const char* name;
};
constexpr Name kNames[] = {{SvdMethod::auto_, "auto"},
                           {SvdMethod::qr, "qr"},
                           {SvdMethod::jacobi, "jacobi"},
                           {SvdMethod::batched_jacobi, "batched_jacobi"},
                           {SvdMethod::randomized, "randomized"},
                           {SvdMethod::gram, "gram"}};

void check_options(const char* fn, std::int64_t m, std::int64_t n, const SvdOptions& o) {
  const std::int64_t k = std::min(m, n);
  if (o.k < 0 || o.k > k)
    detail::throw_argument(fn, "options.k", "must be in [0, min(m, n) = ", k, "] (got ", o.k,
                           ")");
  if (o.full && o.k != 0)
    detail::throw_argument(fn, "options.full", "excludes top-k (options.k = ", o.k, ")");
  if (!(std::isfinite(o.tolerance) && o.tolerance >= 0))
    detail::throw_argument(fn, "options.tolerance", "must be finite and >= 0 (got ",
                           o.tolerance, ")");
  detail::require_at_least(fn, "options.max_sweeps", o.max_sweeps, 1);
  detail::require_at_least(fn, "options.oversampling", o.oversampling, 0);
  detail::require_at_least(fn, "options.power_iterations", o.power_iterations, 0);
  if (!(o.rank_tolerance >= 0 && o.rank_tolerance < 1))
    detail::throw_argument(fn, "options.rank_tolerance", "must be in [0, 1) (got ",
                           o.rank_tolerance, ")");
  // cusolverDnXgesvdr: "k: rank ... is less than min(m,n)", "p: oversampling ... (k+p) is less
  // than min(m,n)" (strictly; the sketch of k + p columns must be narrower than the matrix).
  if (o.method == SvdMethod::randomized && (o.k == 0 || o.k + o.oversampling >= k))
    detail::throw_argument(fn, "options.k", "must be >= 1 with k + oversampling < min(m, n) = ",
                           k, " for the randomized method (got k = ", o.k, ", oversampling = ",
                           o.oversampling, ")");
  if (o.method == SvdMethod::batched_jacobi && (m > 32 || n > 32))
    detail::throw_argument(fn, "m", "and n must be <= 32 for batched_jacobi (got ", m, " x ", n,
                           ")");
}

template <class T>
SvdReport svd_impl(const char* fn, const Context& ctx, const T* X, std::int64_t batch,
                   std::int64_t m, std::int64_t n, const SvdOptions& options,
                   const SvdOutputs<T>& out) {
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "batch", batch, 1);
  detail::require_at_least(fn, "m", m, 1);
  detail::require_at_least(fn, "n", n, 1);
  if (m > kMaxDim) detail::throw_argument(fn, "m", "must be <= ", kMaxDim, " (got ", m, ")");
  if (n > kMaxDim) detail::throw_argument(fn, "n", "must be <= ", kMaxDim, " (got ", n, ")");
  detail::require_not_null(fn, "X", X);
  detail::require_not_null(fn, "out.S", out.S);
  check_options(fn, m, n, options);
  // Element counts of X, U and Vt (and of the GPU's full U_A / V_A): batch * m * n etc. must fit
  // in int64 bytes (m, n <= 2^31 - 1 keep each per-matrix product below 2^62).
  {
    const std::int64_t r = options.k > 0 ? options.k : std::min(m, n);
    const std::int64_t ucols = options.full ? m : r, vrows = options.full ? n : r;
    const std::int64_t per = std::max({m * n, m * ucols, vrows * n});
    const auto most = std::numeric_limits<std::int64_t>::max() / std::int64_t{sizeof(T)};
    if (batch > most / per)
      detail::throw_argument(fn, "batch", "is too large: ", batch, " matrices of ", m, " x ", n,
                             " overflow a 64-bit size");
  }
  SvdOptions o = options;
  o.method = svd_method(ctx.device(), batch, m, n, options);
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) {
    detail::require_finite_matrix(ctx, fn, "X", X, batch * m, n);
    return cuda::svd(ctx, X, batch, m, n, o, out);
  }
#endif
  detail::require_finite_matrix(ctx, fn, "X", X, batch * m, n);
  const std::int64_t r = o.k > 0 ? o.k : std::min(m, n);
  const std::int64_t ucols = o.full ? m : r, vrows = o.full ? n : r;
  // One matrix: LAPACK on the backend's thread count (OpenBLAS's threads); a batch: its members
  // on the backend's threads, LAPACK on one each. Reports combined in batch order.
  std::vector<SvdReport> reps(static_cast<std::size_t>(batch));
  auto one = [&](std::int64_t b) {
    const SvdOutputs<T> ob{out.U ? out.U + b * m * ucols : nullptr, out.S + b * r,
                           out.Vt ? out.Vt + b * vrows * n : nullptr};
    reps[b] = ref::svd(X + b * m * n, m, n, o, ob);
  };
  if (batch == 1) {
    const ref::BlasThreads threads(ref::num_threads());
    one(0);
  } else {
    ref::parallel_for(batch, one);
  }
  SvdReport total;
  for (std::int64_t b = 0; b < batch; ++b) {
    const SvdReport& rep = reps[b];
    if (b == 0) total = rep;
    total.sweeps = std::max(total.sweeps, rep.sweeps);
    total.converged = total.converged && rep.converged;
    if (b > 0) total.dropped += rep.dropped;
  }
  return total;
}

// The economy SVD of host data through ctx (copied to the device and back for CUDA).
template <class T>
SvdReport svd_host(const Context& ctx, const std::vector<T>& X, std::int64_t m, std::int64_t n,
                   const SvdOptions& o, std::vector<T>& S, std::vector<T>& Vt) {
  const std::int64_t k = std::min(m, n);
  S.resize(k);
  Vt.resize(k * n);
  if (!ctx.is_cuda()) return svd(ctx, X.data(), m, n, o, {nullptr, S.data(), Vt.data()});
  Buffer<T> dX(ctx, std::span<const T>(X)), dS(ctx, k), dVt(ctx, k * n);
  const SvdReport rep = svd(ctx, dX.data(), m, n, o, {nullptr, dS.data(), dVt.data()});
  dS.copy_to_host(S);
  dVt.copy_to_host(Vt);
  return rep;
}

template <class T>
Pca pca_fit_impl(const Context& ctx, const T* X, std::int64_t rows, std::int64_t cols,
                 const PcaOptions& o) {
  const char* fn = "genai::pca_fit";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "n_samples", rows, 2);
  detail::require_at_least(fn, "n_features", cols, 1);
  detail::require_not_null(fn, "X", X);
  const std::int64_t k = std::min(rows, cols);
  const double nc = o.n_components;
  if (!(nc == 0 || (nc > 0 && nc < 1) || (nc >= 1 && nc <= k && nc == std::floor(nc))))
    detail::throw_argument(fn, "options.n_components",
                           "must be 0, a fraction in (0, 1) or an integer in [1, ", k,
                           "] (got ", nc, ")");
  if (!(o.rank_tolerance >= 0 && o.rank_tolerance < 1))
    detail::throw_argument(fn, "options.rank_tolerance", "must be in [0, 1) (got ",
                           o.rank_tolerance, ")");
  detail::require_finite_matrix(Context::cpu(), fn, "X", X, rows, cols);

  Pca p;
  p.n_samples = rows;
  p.n_features = cols;
  p.whiten = o.whiten;
  p.mean.assign(cols, 0.0);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) p.mean[c] += X[r * cols + c];
  for (double& v : p.mean) v /= static_cast<double>(rows);
  std::vector<T> centred(rows * cols), S, Vt;
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c)
      centred[r * cols + c] = static_cast<T>(X[r * cols + c] - p.mean[c]);
  p.report = svd_host(ctx, centred, rows, cols, {.method = o.method}, S, Vt);

  const std::vector<double> s(S.begin(), S.end());
  const double dof = static_cast<double>(rows - 1);
  p.total_variance = spectrum_energy(s) / dof;
  std::int64_t r = nc == 0 ? k : nc < 1 ? components_for_energy(s, nc) : std::int64_t(nc);
  r = std::max<std::int64_t>(r, 1);
  if (o.whiten) {  // 1.3(c): a direction without variance cannot be scaled to variance 1
    std::int64_t kept = 0;
    while (kept < r && s[kept] > o.rank_tolerance * s[0]) ++kept;
    p.dropped = r - kept;
    r = kept;
  }
  p.n_components = r;
  p.components.assign(Vt.begin(), Vt.begin() + r * cols);
  p.singular_values.assign(s.begin(), s.begin() + r);
  p.spectrum = s;
  for (std::int64_t i = 0; i < r; ++i) {
    p.explained_variance.push_back(s[i] * s[i] / dof);
    p.explained_variance_ratio.push_back(p.total_variance > 0
                                             ? p.explained_variance[i] / p.total_variance
                                             : 0.0);
  }
  return p;
}

// Whitening scale of component i: Z_i = projection * sqrt(n - 1) / S_i.
double whiten_scale(const Pca& p, std::int64_t i) {
  return p.whiten ? std::sqrt(static_cast<double>(p.n_samples - 1)) / p.singular_values[i] : 1.0;
}

template <class T>
void pca_transform_impl(const Pca& p, const T* X, std::int64_t rows, T* Z) {
  const char* fn = "genai::pca_transform";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "rows", rows, 0);
  if (rows == 0) return;
  detail::require_not_null(fn, "X", X);
  detail::require_not_null(fn, "Z", Z);
  const std::int64_t d = p.n_features, r = p.n_components;
  std::vector<double> x(d);
  for (std::int64_t row = 0; row < rows; ++row) {
    for (std::int64_t c = 0; c < d; ++c) x[c] = X[row * d + c] - p.mean[c];
    for (std::int64_t i = 0; i < r; ++i) {
      double acc = 0;
      for (std::int64_t c = 0; c < d; ++c) acc += x[c] * p.components[i * d + c];
      Z[row * r + i] = static_cast<T>(acc * whiten_scale(p, i));
    }
  }
}

template <class T>
void pca_inverse_impl(const Pca& p, const T* Z, std::int64_t rows, T* X) {
  const char* fn = "genai::pca_inverse_transform";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "rows", rows, 0);
  if (rows == 0) return;
  detail::require_not_null(fn, "Z", Z);
  detail::require_not_null(fn, "X", X);
  const std::int64_t d = p.n_features, r = p.n_components;
  std::vector<double> x(d);
  for (std::int64_t row = 0; row < rows; ++row) {
    x = p.mean;
    for (std::int64_t i = 0; i < r; ++i) {
      const double z = Z[row * r + i] / whiten_scale(p, i);
      for (std::int64_t c = 0; c < d; ++c) x[c] += z * p.components[i * d + c];
    }
    for (std::int64_t c = 0; c < d; ++c) X[row * d + c] = static_cast<T>(x[c]);
  }
}

template <class T>
void reconstruct_impl(const T* U, const T* S, const T* Vt, std::int64_t m, std::int64_t n,
                      std::int64_t rank, std::int64_t r, T* out) {
  const char* fn = "genai::reconstruct";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "m", m, 1);
  detail::require_at_least(fn, "n", n, 1);
  detail::require_at_least(fn, "rank", rank, 1);
  if (r < 0 || r > rank)
    detail::throw_argument(fn, "r", "must be in [0, rank = ", rank, "] (got ", r, ")");
  detail::require_not_null(fn, "U", U);
  detail::require_not_null(fn, "S", S);
  detail::require_not_null(fn, "Vt", Vt);
  detail::require_not_null(fn, "out", out);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (std::int64_t l = 0; l < r; ++l)
        acc += static_cast<double>(U[i * rank + l]) * S[l] * Vt[l * n + j];
      out[i * n + j] = static_cast<T>(acc);
    }
}

void check_spectrum(const char* fn, std::span<const double> S) {
  for (std::size_t i = 0; i < S.size(); ++i)
    if (!(std::isfinite(S[i]) && S[i] >= 0))
      detail::throw_argument(fn, "S", "entry ", i, " is ", S[i], " (must be finite and >= 0)");
}

}  // namespace

std::string to_string(SvdMethod m) {
  for (const Name& n : kNames)
    if (n.m == m) return n.name;
  return "?";
}

SvdMethod svd_method_from_name(const std::string& name) {
  for (const Name& n : kNames)
    if (name == n.name) return n.m;
  detail::throw_argument("genai::svd_method_from_name", "name",
                         "must be auto, qr, jacobi, batched_jacobi, randomized or gram (got '",
                         name, "')");
}

SvdMethod svd_method(Device device, std::int64_t batch, std::int64_t m, std::int64_t n,
                     const SvdOptions& o) {
  GENAI_NVTX_RANGE("genai::svd_method");
  if (device == Device::CPU) return o.method == SvdMethod::gram ? SvdMethod::gram : SvdMethod::qr;
  if (o.method != SvdMethod::auto_) return o.method;
  if (batch > 1 && m <= 32 && n <= 32) return SvdMethod::batched_jacobi;
  if (o.k > 0 && (o.k + o.oversampling) * 4 <= std::min(m, n)) return SvdMethod::randomized;
  return SvdMethod::qr;
}

SvdReport svd(const Context& ctx, const float* X, std::int64_t m, std::int64_t n,
              const SvdOptions& options, const SvdOutputs<float>& out) {
  return svd_impl("genai::svd", ctx, X, 1, m, n, options, out);
}
SvdReport svd(const Context& ctx, const double* X, std::int64_t m, std::int64_t n,
              const SvdOptions& options, const SvdOutputs<double>& out) {
  return svd_impl("genai::svd", ctx, X, 1, m, n, options, out);
}
SvdReport svd_batched(const Context& ctx, const float* X, std::int64_t batch, std::int64_t m,
                      std::int64_t n, const SvdOptions& options, const SvdOutputs<float>& out) {
  return svd_impl("genai::svd_batched", ctx, X, batch, m, n, options, out);
}
SvdReport svd_batched(const Context& ctx, const double* X, std::int64_t batch, std::int64_t m,
                      std::int64_t n, const SvdOptions& options, const SvdOutputs<double>& out) {
  return svd_impl("genai::svd_batched", ctx, X, batch, m, n, options, out);
}

double spectrum_energy(std::span<const double> S) {
  GENAI_NVTX_RANGE("genai::spectrum_energy");
  check_spectrum("genai::spectrum_energy", S);
  double e = 0;
  for (double s : S) e += s * s;
  return e;
}

std::int64_t components_for_energy(std::span<const double> S, double fraction) {
  const char* fn = "genai::components_for_energy";
  GENAI_NVTX_RANGE(fn);
  if (!(fraction > 0 && fraction <= 1))
    detail::throw_argument(fn, "fraction", "must be in (0, 1] (got ", fraction, ")");
  check_spectrum(fn, S);
  const double total = spectrum_energy(S);
  double acc = 0;
  std::int64_t r = 0;
  while (r < static_cast<std::int64_t>(S.size()) && acc < fraction * total) {
    acc += S[r] * S[r];
    ++r;
  }
  return r;
}

double truncation_error(std::span<const double> S, std::int64_t r) {
  const char* fn = "genai::truncation_error";
  GENAI_NVTX_RANGE(fn);
  if (r < 0 || r > static_cast<std::int64_t>(S.size()))
    detail::throw_argument(fn, "r", "must be in [0, ", S.size(), "] (got ", r, ")");
  return std::sqrt(spectrum_energy(S.subspan(r)));
}

void reconstruct(const float* U, const float* S, const float* Vt, std::int64_t m,
                 std::int64_t n, std::int64_t rank, std::int64_t r, float* out) {
  reconstruct_impl(U, S, Vt, m, n, rank, r, out);
}
void reconstruct(const double* U, const double* S, const double* Vt, std::int64_t m,
                 std::int64_t n, std::int64_t rank, std::int64_t r, double* out) {
  reconstruct_impl(U, S, Vt, m, n, rank, r, out);
}

Pca pca_fit(const Context& ctx, const float* X, std::int64_t n_samples, std::int64_t n_features,
            const PcaOptions& options) {
  return pca_fit_impl(ctx, X, n_samples, n_features, options);
}
Pca pca_fit(const Context& ctx, const double* X, std::int64_t n_samples,
            std::int64_t n_features, const PcaOptions& options) {
  return pca_fit_impl(ctx, X, n_samples, n_features, options);
}
void pca_transform(const Pca& p, const float* X, std::int64_t rows, float* Z) {
  pca_transform_impl(p, X, rows, Z);
}
void pca_transform(const Pca& p, const double* X, std::int64_t rows, double* Z) {
  pca_transform_impl(p, X, rows, Z);
}
void pca_inverse_transform(const Pca& p, const float* Z, std::int64_t rows, float* X) {
  pca_inverse_impl(p, Z, rows, X);
}
void pca_inverse_transform(const Pca& p, const double* Z, std::int64_t rows, double* X) {
  pca_inverse_impl(p, Z, rows, X);
}

}  // namespace genai
