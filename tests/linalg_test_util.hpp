// Helpers of the linalg tests (tests/linalg_test.cpp, linalg_gpu_test.cpp): dense double
// matrix arithmetic, an SVD run on either backend with poisoned outputs, and the measures the
// tests bound (orthogonality, reconstruction, principal angles, the sign rule).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "genai/linalg.hpp"
#include "test_util.hpp"

namespace genai::test::linalg {

using Mat = std::vector<double>;

template <class T>
inline std::vector<T> random_matrix(std::int64_t m, std::int64_t n, std::uint64_t seed) {
  const auto z = test::normals(m * n, seed);
  return std::vector<T>(z.begin(), z.end());
}

// C [m x n] = A [m x l] B [l x n].
inline Mat matmul(const Mat& A, const Mat& B, std::int64_t m, std::int64_t l, std::int64_t n) {
  Mat C(m * n, 0.0);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t p = 0; p < l; ++p)
      for (std::int64_t j = 0; j < n; ++j) C[i * n + j] += A[i * l + p] * B[p * n + j];
  return C;
}

inline Mat transpose(const Mat& A, std::int64_t rows, std::int64_t cols) {
  Mat T(A.size());
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) T[c * rows + r] = A[r * cols + c];
  return T;
}

inline double frobenius(const Mat& A) {
  double s = 0;
  for (double a : A) s += a * a;
  return std::sqrt(s);
}

// max |Q^T Q - I| for the columns of Q [rows x cols].
inline double orthogonality_error(const Mat& Q, std::int64_t rows, std::int64_t cols) {
  const Mat G = matmul(transpose(Q, rows, cols), Q, cols, rows, cols);
  double e = 0;
  for (std::int64_t i = 0; i < cols; ++i)
    for (std::int64_t j = 0; j < cols; ++j) e = std::max(e, std::abs(G[i * cols + j] - (i == j)));
  return e;
}

template <class T>
struct Result {
  std::vector<T> U, S, Vt;
  std::int64_t ucols = 0, vrows = 0;
  SvdReport report;
  Mat u() const { return Mat(U.begin(), U.end()); }
  Mat vt() const { return Mat(Vt.begin(), Vt.end()); }
  Mat s() const { return Mat(S.begin(), S.end()); }
};

template <class T>
inline Result<T> run_svd(const Context& ctx, const std::vector<T>& X, std::int64_t m, std::int64_t n,
                  const SvdOptions& o = {}) {
  const std::int64_t k = std::min(m, n), r = o.k > 0 ? o.k : k;
  Result<T> res;
  res.ucols = o.full ? m : r;
  res.vrows = o.full ? n : r;
  res.U.assign(m * res.ucols, NAN);
  res.S.assign(r, NAN);
  res.Vt.assign(res.vrows * n, NAN);
  if (!ctx.is_cuda()) {
    res.report = svd(ctx, X.data(), m, n, o, {res.U.data(), res.S.data(), res.Vt.data()});
    return res;
  }
  auto dX = test::to_device(ctx, X);
  Buffer<T> dU(ctx, res.U.size()), dS(ctx, r), dVt(ctx, res.Vt.size());
  test::poison(dU);
  test::poison(dS);
  test::poison(dVt);
  res.report = svd(ctx, dX.data(), m, n, o, {dU.data(), dS.data(), dVt.data()});
  res.U = dU.to_host();
  res.S = dS.to_host();
  res.Vt = dVt.to_host();
  return res;
}

// || U[:, :r] diag(S[:r]) Vt[:r, :] - X ||_F / ||X||_F.
template <class T>
inline double reconstruction_error(const Result<T>& f, const std::vector<T>& X, std::int64_t m,
                            std::int64_t n, std::int64_t r) {
  Mat out(m * n);
  reconstruct(f.u().data(), f.s().data(), f.vt().data(), m, n, f.ucols, r, out.data());
  // reconstruct takes U [m x rank] and Vt [rank x n]: here rank = ucols = vrows (economy).
  Mat x(X.begin(), X.end());
  for (std::int64_t i = 0; i < m * n; ++i) out[i] -= x[i];
  return frobenius(out) / frobenius(x);
}

// sin of the largest principal angle between span(columns of A) and span(columns of B), both
// [rows x r] with orthonormal columns: the largest singular value of (I - A A^T) B (accurate for
// small angles, unlike sqrt(1 - cos^2)).
inline double subspace_distance(const Mat& A, const Mat& B, std::int64_t rows, std::int64_t r) {
  Mat R = matmul(A, matmul(transpose(A, rows, r), B, r, rows, r), rows, r, r);
  for (std::int64_t i = 0; i < rows * r; ++i) R[i] = B[i] - R[i];
  Mat s(std::min(rows, r));
  svd(Context::cpu(), R.data(), rows, r, {}, {nullptr, s.data(), nullptr});
  return s[0];
}

// The first r columns of U [rows x ucols].
inline Mat columns(const Mat& U, std::int64_t rows, std::int64_t ucols, std::int64_t r) {
  Mat out(rows * r);
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < r; ++j) out[i * r + j] = U[i * ucols + j];
  return out;
}

// X = Q1 diag(s) Q2^T [m x n], m >= n, with random orthonormal Q1 [m x n], Q2 [n x n].
inline Mat with_spectrum(const Mat& s, std::int64_t m, std::int64_t n, std::uint64_t seed) {
  const auto q1 = run_svd(Context::cpu(), random_matrix<double>(m, n, seed), m, n);
  const auto q2 = run_svd(Context::cpu(), random_matrix<double>(n, n, seed + 1), n, n);
  Mat US = q1.u();
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) US[i * n + j] *= s[j];
  return matmul(US, q2.u(), m, n, n);  // Q2^T: any orthogonal matrix, here a U
}

// Whether the sign rule of linalg.hpp holds: the largest |.| entry of each row of Vt is > 0.
template <class T>
inline bool signs_normalised(const std::vector<T>& Vt, std::int64_t rows, std::int64_t n) {
  for (std::int64_t i = 0; i < rows; ++i) {
    const auto row = Vt.begin() + i * n;
    const auto big = std::max_element(row, row + n, [](T a, T b) { return std::abs(a) < std::abs(b); });
    if (!(*big > 0)) return false;
  }
  return true;
}

inline std::int64_t count_above(const Mat& S, double threshold) {
  return std::count_if(S.begin(), S.end(), [&](double s) { return s > threshold; });
}

// The worst relative error of the 5 smallest singular values of a 100 x 50 matrix with
// singular values kappa^(-i/49), by qr and by gram (which also returns its result).
struct SmallValueErrors {
  double qr_worst = 0, gram_worst = 0;
  Result<double> gram;
};
inline SmallValueErrors small_value_errors(const Context& ctx, double kappa, std::uint64_t seed) {
  const std::int64_t m = 100, n = 50;
  Mat s(n);
  for (std::int64_t i = 0; i < n; ++i) s[i] = std::pow(kappa, -double(i) / (n - 1));
  const Mat X = with_spectrum(s, m, n, seed);
  const auto q = run_svd(ctx, X, m, n, {.method = SvdMethod::qr});
  SmallValueErrors e{0, 0, run_svd(ctx, X, m, n, {.method = SvdMethod::gram})};
  for (std::int64_t i = n - 5; i < n; ++i) {
    e.qr_worst = std::max(e.qr_worst, std::abs(q.S[i] - s[i]) / s[i]);
    e.gram_worst = std::max(e.gram_worst, std::abs(e.gram.S[i] - s[i]) / s[i]);
  }
  return e;
}

}  // namespace genai::test::linalg
