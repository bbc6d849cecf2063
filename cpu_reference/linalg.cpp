#include "cpu_reference/linalg.hpp"

#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <type_traits>

#include "genai/error.hpp"

namespace genai::ref {
namespace {

constexpr double kEps = std::numeric_limits<double>::epsilon();

// An SVD in double: U [m x ucols], S [k], Vt [vrows x n], all row-major.
struct Factors {
  std::vector<double> U, S, Vt;
  std::int64_t ucols = 0, vrows = 0;
  SvdReport report;
};

Factors lapack_svd(const std::vector<double>& X, std::int64_t m, std::int64_t n, bool full,
                   bool vectors) {
  const std::int64_t k = std::min(m, n);
  Factors f;
  f.ucols = vectors ? (full ? m : k) : 1;
  f.vrows = vectors ? (full ? n : k) : 1;
  f.S.resize(k);
  f.U.resize(m * f.ucols);
  f.Vt.resize(f.vrows * n);
  const char job = vectors ? (full ? 'A' : 'S') : 'N';
  std::vector<double> a = X;
  const auto M = static_cast<lapack_int>(m), N = static_cast<lapack_int>(n);
  const auto ldu = static_cast<lapack_int>(f.ucols), ldvt = static_cast<lapack_int>(n);
  lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, job, M, N, a.data(), N, f.S.data(),
                                   f.U.data(), ldu, f.Vt.data(), ldvt);
  f.report = {.method = SvdMethod::qr, .driver = "LAPACKE_dgesdd"};
  if (info > 0) {  // divide and conquer did not converge: the QR-iteration driver
    a = X;
    std::vector<double> superb(std::max<std::int64_t>(k, 2));
    info = LAPACKE_dgesvd(LAPACK_ROW_MAJOR, job, job, M, N, a.data(), N, f.S.data(),
                          f.U.data(), ldu, f.Vt.data(), ldvt, superb.data());
    f.report.driver = "LAPACKE_dgesvd";
  }
  if (info != 0)
    throw Error(detail::concat("genai::svd: ", f.report.driver, " failed (info ", info, ")"));
  return f;
}

// Problem 1.5 for m >= n: G = X^T X, G = V diag(lambda) V^T, S = sqrt(lambda), U = X V / S.
Factors gram_svd(const std::vector<double>& X, std::int64_t m, std::int64_t n, bool full,
                 const SvdOptions& o) {
  std::vector<double> G(n * n, 0.0);
  for (std::int64_t r = 0; r < m; ++r) {
    const double* x = X.data() + r * n;
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = i; j < n; ++j) G[i * n + j] += x[i] * x[j];
  }
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < i; ++j) G[i * n + j] = G[j * n + i];
  std::vector<double> lambda, V;
  const EigenReport e = symmetric_eigen(G, n, o.max_sweeps, o.tolerance, lambda, V);

  Factors f;
  f.ucols = full ? m : n;
  f.vrows = n;
  f.report = {.method = SvdMethod::gram, .driver = "jacobi-eigen", .sweeps = e.sweeps,
              .converged = e.converged};
  f.S.resize(n);
  for (std::int64_t i = 0; i < n; ++i) f.S[i] = std::sqrt(std::max(lambda[i], 0.0));
  // lambda carries an absolute error ~ eps * lambda_0: below sqrt(n eps) S[0], S is noise.
  const double rel = o.rank_tolerance > 0 ? o.rank_tolerance : std::sqrt(n * kEps);
  const double threshold = rel * f.S[0];
  std::int64_t valid = 0;
  while (valid < n && f.S[valid] > threshold) ++valid;
  f.report.dropped = n - valid;
  for (std::int64_t i = valid; i < n; ++i) f.S[i] = 0.0;

  f.U.assign(m * f.ucols, 0.0);
  for (std::int64_t r = 0; r < m; ++r)
    for (std::int64_t i = 0; i < valid; ++i) {
      double acc = 0;
      for (std::int64_t j = 0; j < n; ++j) acc += X[r * n + j] * V[j * n + i];
      f.U[r * f.ucols + i] = acc / f.S[i];
    }
  complete_orthonormal(f.U.data(), m, f.ucols, valid);
  f.Vt.resize(n * n);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j) f.Vt[i * n + j] = V[j * n + i];
  return f;
}

// The qr method on float input, in float: LAPACK's sgesdd (sgesvd when divide and conquer does
// not converge), always on the tall (or square) orientation of X, whose path (QR first, then
// the small SVD) is 2-3x faster with OpenBLAS than the wide one (LQ first). m <= n: X's
// row-major storage is the column-major X^T, tall or square as it is; X^T = U' S V'^T gives
// X = V' S U'^T, so the routine's U' (n x k, column-major) holds the row-major Vt and its V'^T
// (k x m) the row-major U: no transposes. m > n: X is transposed into column-major storage,
// and U and V^T are transposed on their way out. The sign rule is applied as the factors are written, and only what the caller asked
// for is written. Work arrays per thread, kept from call to call (a batch reuses them).
struct FloatWork {
  std::vector<float> a, u, vt, work;
  std::vector<lapack_int> iwork;
};

// a = X in the tall column-major orientation (see above).
void load_tall(const float* X, std::int64_t m, std::int64_t n, std::vector<float>& a) {
  a.resize(static_cast<std::size_t>(m * n));
  if (m <= n) return void(std::copy_n(X, m * n, a.data()));
  constexpr std::int64_t kB = 32;  // blocked transpose
  for (std::int64_t r0 = 0; r0 < m; r0 += kB)
    for (std::int64_t c0 = 0; c0 < n; c0 += kB)
      for (std::int64_t r = r0; r < std::min(m, r0 + kB); ++r)
        for (std::int64_t c = c0; c < std::min(n, c0 + kB); ++c) a[c * m + r] = X[r * n + c];
}

// dst[r * ldd + c] = sign[c] src[r + c * lds] (column-major src to row-major dst), r < rows,
// c < cols; sign may be shorter than cols (1 past its end).
void store_transposed(const float* src, std::int64_t lds, std::int64_t rows, std::int64_t cols,
                      const std::vector<float>& sign, float* dst, std::int64_t ldd) {
  constexpr std::int64_t kB = 32;
  const auto k = static_cast<std::int64_t>(sign.size());
  for (std::int64_t c0 = 0; c0 < cols; c0 += kB)
    for (std::int64_t r0 = 0; r0 < rows; r0 += kB)
      for (std::int64_t c = c0; c < std::min(cols, c0 + kB); ++c) {
        const float sg = c < k ? sign[c] : 1.0f;
        for (std::int64_t r = r0; r < std::min(rows, r0 + kB); ++r)
          dst[r * ldd + c] = sg * src[r + c * lds];
      }
}

// The sign rule of linalg.hpp for pair i, from row i of Vt read as v(j) = vt[i * row + j * col].
float sign_of(const float* vt, std::int64_t i, std::int64_t row, std::int64_t col, std::int64_t n) {
  std::int64_t big = 0;
  for (std::int64_t j = 1; j < n; ++j)
    if (std::abs(vt[i * row + j * col]) > std::abs(vt[i * row + big * col])) big = j;
  return vt[i * row + big * col] >= 0 ? 1.0f : -1.0f;
}

SvdReport lapack_svd_float(const float* X, std::int64_t m, std::int64_t n, const SvdOptions& o,
                           const SvdOutputs<float>& out) {
  const std::int64_t k = std::min(m, n);
  const bool tall = m > n, vectors = out.U != nullptr || out.Vt != nullptr, full = o.full;
  // Full or economy factors: U [m x ucols], Vt [vrows x n]; the caller's r, ucols_out, vrows_out.
  const std::int64_t ucols = vectors ? (full ? m : k) : 1, vrows = vectors ? (full ? n : k) : 1;
  const std::int64_t r = o.k > 0 ? o.k : k;
  const std::int64_t ucols_out = full ? m : r, vrows_out = full ? n : r;
  const char job = vectors ? (full ? 'A' : 'S') : 'N';
  // The column-major problem M x N (M >= N): U [M x uc], V^T [vr x N].
  const std::int64_t M = tall ? m : n, N = tall ? n : m;
  const std::int64_t uc = tall ? ucols : vrows, vr = tall ? vrows : ucols;
  thread_local FloatWork w;
  load_tall(X, m, n, w.a);
  w.u.resize(static_cast<std::size_t>(M * uc));
  w.vt.resize(static_cast<std::size_t>(vr * N));
  w.iwork.resize(static_cast<std::size_t>(8 * k));
  std::vector<float> S(k);
  const auto LM = static_cast<lapack_int>(M), LN = static_cast<lapack_int>(N);
  const auto ldvt = static_cast<lapack_int>(vr);
  float query = 0;
  lapack_int info = LAPACKE_sgesdd_work(LAPACK_COL_MAJOR, job, LM, LN, w.a.data(), LM, S.data(),
                                        w.u.data(), LM, w.vt.data(), ldvt, &query, -1,
                                        w.iwork.data());
  if (info == 0) {
    w.work.resize(static_cast<std::size_t>(query) + 1);
    info = LAPACKE_sgesdd_work(LAPACK_COL_MAJOR, job, LM, LN, w.a.data(), LM, S.data(),
                               w.u.data(), LM, w.vt.data(), ldvt, w.work.data(),
                               static_cast<lapack_int>(w.work.size()), w.iwork.data());
  }
  SvdReport report{.method = SvdMethod::qr, .driver = "LAPACKE_sgesdd"};
  if (info > 0) {  // divide and conquer did not converge: the QR-iteration driver
    load_tall(X, m, n, w.a);
    std::vector<float> superb(std::max<std::int64_t>(k, 2));
    info = LAPACKE_sgesvd(LAPACK_COL_MAJOR, job, job, LM, LN, w.a.data(), LM, S.data(),
                          w.u.data(), LM, w.vt.data(), ldvt, superb.data());
    report.driver = "LAPACKE_sgesvd";
  }
  if (info != 0)
    throw Error(detail::concat("genai::svd: ", report.driver, " failed (info ", info, ")"));
  std::copy_n(S.data(), r, out.S);
  if (!vectors) return report;
  // Row i of Vt: m > n, V^T's row i (column-major, rows vr apart); m <= n, U''s column i.
  std::vector<float> sign(k);
  for (std::int64_t i = 0; i < k; ++i)
    sign[i] = tall ? sign_of(w.vt.data(), i, 1, vr, n) : sign_of(w.u.data(), i, n, 1, n);
  if (tall) {
    if (out.U) store_transposed(w.u.data(), m, m, ucols_out, sign, out.U, ucols_out);
    if (out.Vt)  // Vt [i, j] = V^T (i, j) = vt[i + j vr]: the transpose of the [n x vr] array
      for (std::int64_t i = 0; i < vrows_out; ++i)
        for (std::int64_t j = 0; j < n; ++j)
          out.Vt[i * n + j] = (i < k ? sign[i] : 1.0f) * w.vt[i + j * vr];
  } else {
    if (out.U)  // U [row, c] = V'^T (c, row) = vt[c + row ucols]: row-major already
      for (std::int64_t row = 0; row < m; ++row)
        for (std::int64_t c = 0; c < ucols_out; ++c)
          out.U[row * ucols_out + c] = (c < k ? sign[c] : 1.0f) * w.vt[c + row * ucols];
    if (out.Vt)  // Vt [i, j] = U' (j, i) = u[j + i n]: row-major already
      for (std::int64_t i = 0; i < vrows_out; ++i)
        for (std::int64_t j = 0; j < n; ++j)
          out.Vt[i * n + j] = (i < k ? sign[i] : 1.0f) * w.u[j + i * n];
  }
  return report;
}

std::vector<double> transposed(const std::vector<double>& A, std::int64_t rows,
                               std::int64_t cols) {
  std::vector<double> T(A.size());
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) T[c * rows + r] = A[r * cols + c];
  return T;
}

}  // namespace

EigenReport symmetric_eigen(std::vector<double>& A, std::int64_t n, int max_sweeps,
                            double tolerance, std::vector<double>& w, std::vector<double>& V) {
  const double tol = tolerance > 0 ? tolerance : kEps;
  V.assign(n * n, 0.0);
  for (std::int64_t i = 0; i < n; ++i) V[i * n + i] = 1.0;
  double norm2 = 0;
  for (double a : A) norm2 += a * a;
  EigenReport rep;
  for (;;) {
    double off2 = 0;
    for (std::int64_t p = 0; p < n; ++p)
      for (std::int64_t q = p + 1; q < n; ++q) off2 += 2 * A[p * n + q] * A[p * n + q];
    if (off2 <= tol * tol * norm2) {
      rep.converged = true;
      break;
    }
    if (rep.sweeps == max_sweeps) break;
    ++rep.sweeps;
    for (std::int64_t p = 0; p < n; ++p)
      for (std::int64_t q = p + 1; q < n; ++q) {
        const double apq = A[p * n + q];
        if (apq == 0.0) continue;
        // J = [[c, s], [-s, c]] in the (p, q) plane zeroes A'_pq of A' = J^T A J:
        // t = tan(angle) is the smaller root of t^2 + 2 theta t - 1 = 0.
        const double theta = (A[q * n + q] - A[p * n + p]) / (2 * apq);
        const double t = std::abs(theta) > 1e150
                             ? 0.5 / theta
                             : std::copysign(1.0, theta) /
                                   (std::abs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (std::int64_t r = 0; r < n; ++r) {  // A J
          const double arp = A[r * n + p], arq = A[r * n + q];
          A[r * n + p] = c * arp - s * arq;
          A[r * n + q] = s * arp + c * arq;
        }
        for (std::int64_t r = 0; r < n; ++r) {  // J^T (A J)
          const double apr = A[p * n + r], aqr = A[q * n + r];
          A[p * n + r] = c * apr - s * aqr;
          A[q * n + r] = s * apr + c * aqr;
        }
        A[p * n + q] = A[q * n + p] = 0.0;
        for (std::int64_t r = 0; r < n; ++r) {  // V J
          const double vrp = V[r * n + p], vrq = V[r * n + q];
          V[r * n + p] = c * vrp - s * vrq;
          V[r * n + q] = s * vrp + c * vrq;
        }
      }
  }
  std::vector<std::int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::int64_t a, std::int64_t b) { return A[a * n + a] > A[b * n + b]; });
  w.resize(n);
  std::vector<double> sorted(n * n);
  for (std::int64_t i = 0; i < n; ++i) {
    w[i] = A[order[i] * n + order[i]];
    for (std::int64_t r = 0; r < n; ++r) sorted[r * n + i] = V[r * n + order[i]];
  }
  V.swap(sorted);
  return rep;
}

void normalize_signs(double* U, std::int64_t m, std::int64_t ldu, double* Vt, std::int64_t k,
                     std::int64_t n) {
  for (std::int64_t i = 0; i < k; ++i) {
    double* v = Vt + i * n;
    std::int64_t big = 0;
    for (std::int64_t j = 1; j < n; ++j)
      if (std::abs(v[j]) > std::abs(v[big])) big = j;
    if (v[big] >= 0) continue;
    for (std::int64_t j = 0; j < n; ++j) v[j] = -v[j];
    for (std::int64_t r = 0; r < m; ++r) U[r * ldu + i] = -U[r * ldu + i];
  }
}

void complete_orthonormal(double* U, std::int64_t m, std::int64_t cols, std::int64_t first) {
  // |P e_i|^2 = 1 - sum_j U_ij^2 for the projector P onto the complement of the columns so
  // far: the e_i of smallest row norm keeps the most length (>= (m - c) / m).
  std::vector<double> row2(m, 0.0), x(m);
  for (std::int64_t r = 0; r < m; ++r)
    for (std::int64_t j = 0; j < first; ++j) row2[r] += U[r * cols + j] * U[r * cols + j];
  for (std::int64_t c = first; c < cols; ++c) {
    const auto best = std::min_element(row2.begin(), row2.end()) - row2.begin();
    std::fill(x.begin(), x.end(), 0.0);
    x[best] = 1.0;
    for (int pass = 0; pass < 2; ++pass)
      for (std::int64_t j = 0; j < c; ++j) {
        double dot = 0;
        for (std::int64_t r = 0; r < m; ++r) dot += U[r * cols + j] * x[r];
        for (std::int64_t r = 0; r < m; ++r) x[r] -= dot * U[r * cols + j];
      }
    double norm = 0;
    for (double v : x) norm += v * v;
    norm = std::sqrt(norm);
    for (std::int64_t r = 0; r < m; ++r) {
      U[r * cols + c] = x[r] / norm;
      row2[r] += U[r * cols + c] * U[r * cols + c];
    }
  }
}

template <class T>
SvdReport svd(const T* X, std::int64_t m, std::int64_t n, const SvdOptions& o,
              const SvdOutputs<T>& out) {
  const std::int64_t k = std::min(m, n);
  const bool vectors = out.U != nullptr || out.Vt != nullptr;
  if constexpr (std::is_same_v<T, float>)
    if (o.method != SvdMethod::gram) return lapack_svd_float(X, m, n, o, out);
  std::vector<double> A(X, X + m * n);
  Factors f;
  if (o.method != SvdMethod::gram) {
    f = lapack_svd(A, m, n, o.full, vectors);
  } else if (m >= n) {
    f = gram_svd(A, m, n, o.full, o);
  } else {
    // X^T = V S U^T: the Gram method on X^T [n x m], roles of U and V swapped.
    Factors g = gram_svd(transposed(A, m, n), n, m, o.full, o);
    f.report = g.report;
    f.S = std::move(g.S);
    f.ucols = m;                              // U = V_g [m x m]
    f.U = transposed(g.Vt, m, m);
    f.vrows = g.ucols;                        // Vt = U_g^T [ucols_g x n]
    f.Vt = transposed(g.U, n, g.ucols);
  }
  if (vectors) normalize_signs(f.U.data(), m, f.ucols, f.Vt.data(), k, n);

  const std::int64_t r = o.k > 0 ? o.k : k;
  const std::int64_t ucols = o.full ? m : r, vrows = o.full ? n : r;
  for (std::int64_t i = 0; i < r; ++i) out.S[i] = static_cast<T>(f.S[i]);
  if (out.U)
    for (std::int64_t row = 0; row < m; ++row)
      for (std::int64_t c = 0; c < ucols; ++c)
        out.U[row * ucols + c] = static_cast<T>(f.U[row * f.ucols + c]);
  if (out.Vt)
    for (std::int64_t i = 0; i < vrows * n; ++i) out.Vt[i] = static_cast<T>(f.Vt[i]);
  return f.report;
}

template SvdReport svd(const float*, std::int64_t, std::int64_t, const SvdOptions&,
                       const SvdOutputs<float>&);
template SvdReport svd(const double*, std::int64_t, std::int64_t, const SvdOptions&,
                       const SvdOutputs<double>&);

}  // namespace genai::ref
