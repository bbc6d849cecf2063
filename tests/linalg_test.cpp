// SVD, spectra, PCA and whitening: seed answers (problem set 1.1, 1.2, 1.3, 1.5 and errata
// 1.3, 1.5), properties (orthogonality, Eckart-Young, subspaces, the sign rule), bad input, and
// CPU-vs-GPU parity of every cuSOLVER method; auto's choice of method; the IDX reader on plain
// and gzip files the tests write.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <unistd.h>
#include <zlib.h>

#include "cpu_reference/linalg.hpp"
#include "genai/linalg.hpp"
#include "test_util.hpp"

namespace genai {
namespace {

const Context kCpu = Context::cpu();
using Mat = std::vector<double>;

template <class T>
std::vector<T> random_matrix(std::int64_t m, std::int64_t n, std::uint64_t seed) {
  const auto z = test::normals(m * n, seed);
  return std::vector<T>(z.begin(), z.end());
}

// C [m x n] = A [m x l] B [l x n].
Mat matmul(const Mat& A, const Mat& B, std::int64_t m, std::int64_t l, std::int64_t n) {
  Mat C(m * n, 0.0);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t p = 0; p < l; ++p)
      for (std::int64_t j = 0; j < n; ++j) C[i * n + j] += A[i * l + p] * B[p * n + j];
  return C;
}

Mat transpose(const Mat& A, std::int64_t rows, std::int64_t cols) {
  Mat T(A.size());
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) T[c * rows + r] = A[r * cols + c];
  return T;
}

double frobenius(const Mat& A) {
  double s = 0;
  for (double a : A) s += a * a;
  return std::sqrt(s);
}

// max |Q^T Q - I| for the columns of Q [rows x cols].
double orthogonality_error(const Mat& Q, std::int64_t rows, std::int64_t cols) {
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
Result<T> run_svd(const Context& ctx, const std::vector<T>& X, std::int64_t m, std::int64_t n,
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
double reconstruction_error(const Result<T>& f, const std::vector<T>& X, std::int64_t m,
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
double subspace_distance(const Mat& A, const Mat& B, std::int64_t rows, std::int64_t r) {
  Mat R = matmul(A, matmul(transpose(A, rows, r), B, r, rows, r), rows, r, r);
  for (std::int64_t i = 0; i < rows * r; ++i) R[i] = B[i] - R[i];
  Mat s(std::min(rows, r));
  svd(kCpu, R.data(), rows, r, {}, {nullptr, s.data(), nullptr});
  return s[0];
}

// The first r columns of U [rows x ucols].
Mat columns(const Mat& U, std::int64_t rows, std::int64_t ucols, std::int64_t r) {
  Mat out(rows * r);
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < r; ++j) out[i * r + j] = U[i * ucols + j];
  return out;
}

// X = Q1 diag(s) Q2^T [m x n], m >= n, with random orthonormal Q1 [m x n], Q2 [n x n].
Mat with_spectrum(const Mat& s, std::int64_t m, std::int64_t n, std::uint64_t seed) {
  const auto q1 = run_svd(kCpu, random_matrix<double>(m, n, seed), m, n);
  const auto q2 = run_svd(kCpu, random_matrix<double>(n, n, seed + 1), n, n);
  Mat US = q1.u();
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) US[i * n + j] *= s[j];
  return matmul(US, q2.u(), m, n, n);  // Q2^T: any orthogonal matrix, here a U
}

// Whether the sign rule of linalg.hpp holds: the largest |.| entry of each row of Vt is > 0.
template <class T>
bool signs_normalised(const std::vector<T>& Vt, std::int64_t rows, std::int64_t n) {
  for (std::int64_t i = 0; i < rows; ++i) {
    const auto row = Vt.begin() + i * n;
    const auto big = std::max_element(row, row + n, [](T a, T b) { return std::abs(a) < std::abs(b); });
    if (!(*big > 0)) return false;
  }
  return true;
}

std::int64_t count_above(const Mat& S, double threshold) {
  return std::count_if(S.begin(), S.end(), [&](double s) { return s > threshold; });
}

// ---- problem set --------------------------------------------------------------------------

// 1.1(a, b): a 100 x 50 matrix of rank 30. Full: U 100x100, S 50, V 50x50; economy: U 100x50;
// exactly 30 non-zero singular values.
TEST(Linalg, ShapesAndRankOfProblem1_1) {
  const std::int64_t m = 100, n = 50;
  const Mat X = matmul(random_matrix<double>(m, 30, 1), random_matrix<double>(30, n, 2), m, 30, n);
  const auto full = run_svd(kCpu, X, m, n, {.full = true});
  EXPECT_EQ(full.U.size(), std::size_t(100 * 100));
  EXPECT_EQ(full.S.size(), std::size_t(50));
  EXPECT_EQ(full.Vt.size(), std::size_t(50 * 50));
  EXPECT_LT(orthogonality_error(full.u(), m, m), 1e-12);
  EXPECT_LT(orthogonality_error(transpose(full.vt(), n, n), n, n), 1e-12);
  const auto eco = run_svd(kCpu, X, m, n);
  EXPECT_EQ(eco.U.size(), std::size_t(100 * 50));
  EXPECT_EQ(eco.Vt.size(), std::size_t(50 * 50));
  EXPECT_LT(reconstruction_error(eco, X, m, n, n), 1e-13);
  EXPECT_EQ(count_above(eco.s(), 1e-10 * eco.S[0]), 30);
  EXPECT_LT(eco.S[30], 1e-13 * eco.S[0]);
  // fp32 input: the rounding of X to float leaves ~1e-7 S[0] where fp64 has 1e-16.
  const std::vector<float> Xf(X.begin(), X.end());
  const auto f = run_svd(kCpu, Xf, m, n);
  EXPECT_EQ(count_above(f.s(), 1e-5 * f.S[0]), 30);
}

// 1.1(c): keeping the top 10 singular values gives a matrix of rank 10, at the Eckart-Young
// distance sqrt(sum_{i>=10} S_i^2) from X.
TEST(Linalg, RankTenReconstructionOfProblem1_1) {
  const std::int64_t m = 100, n = 50;
  const Mat X = matmul(random_matrix<double>(m, 30, 3), random_matrix<double>(30, n, 4), m, 30, n);
  const auto f = run_svd(kCpu, X, m, n);
  Mat X10(m * n);
  reconstruct(f.U.data(), f.S.data(), f.Vt.data(), m, n, n, 10, X10.data());
  const auto g = run_svd(kCpu, X10, m, n);
  EXPECT_EQ(count_above(g.s(), 1e-10 * g.S[0]), 10);
  Mat diff = X10;
  for (std::int64_t i = 0; i < m * n; ++i) diff[i] -= X[i];
  EXPECT_NEAR(frobenius(diff), truncation_error(f.s(), 10), 1e-10 * frobenius(X));
  for (int i = 0; i < 10; ++i) EXPECT_NEAR(g.S[i], f.S[i], 1e-12 * f.S[0]);
}

// 1.2: S = [10, 5, 3, 2, 1, 0.5, 0.3, 0.2, 0.1, 0.05]: energy 139.39; 3 components hold 90 %
// (96.1 %; 2 hold 89.7 %), 4 hold 99 % (99.003 %).
TEST(Linalg, EnergyOfProblem1_2) {
  const Mat S = {10, 5, 3, 2, 1, 0.5, 0.3, 0.2, 0.1, 0.05};
  EXPECT_NEAR(spectrum_energy(S), 139.3925, 1e-12);  // the seed's 139.39, to 4 decimals
  EXPECT_EQ(components_for_energy(S, 0.90), 3);
  EXPECT_EQ(components_for_energy(S, 0.99), 4);
  EXPECT_EQ(components_for_energy(S, 0.897), 3);   // 2 hold 125 / 139.3925 = 0.8967
  EXPECT_EQ(components_for_energy(S, 0.8967), 2);
  EXPECT_EQ(components_for_energy(S, 1.0), 10);
  EXPECT_NEAR(truncation_error(S, 3), std::sqrt(139.3925 - 134), 1e-12);
  EXPECT_EQ(truncation_error(S, 10), 0.0);
}

// 1.3 with errata 1.3(a): whitened data (centred, scaled by sqrt(n - 1) / S) has covariance I
// within 1e-5 in fp64. 1.3(c): a direction without variance is dropped and reported.
TEST(Linalg, WhiteningGivesIdentityCovarianceOfProblem1_3) {
  const std::int64_t rows = 500, d = 6;
  Mat X = matmul(random_matrix<double>(rows, d, 5), random_matrix<double>(d, d, 6), rows, d, d);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < d; ++c) X[r * d + c] += 3.0 + c;  // a mean far from 0
  auto covariance_error = [&](const Mat& Z, std::int64_t k) {
    double e = 0;
    for (std::int64_t i = 0; i < k; ++i)
      for (std::int64_t j = 0; j < k; ++j) {
        double c = 0;
        for (std::int64_t r = 0; r < rows; ++r) c += Z[r * k + i] * Z[r * k + j];
        e = std::max(e, std::abs(c / (rows - 1) - (i == j)));
      }
    return e;
  };
  const Pca p = pca_fit(kCpu, X.data(), rows, d, {.whiten = true});
  ASSERT_EQ(p.n_components, d);
  EXPECT_EQ(p.dropped, 0);
  Mat Z(rows * d);
  pca_transform(p, X.data(), rows, Z.data());
  EXPECT_LT(covariance_error(Z, d), 1e-5);
  Mat back(rows * d);
  pca_inverse_transform(p, Z.data(), rows, back.data());
  for (std::int64_t i = 0; i < rows * d; ++i) ASSERT_NEAR(back[i], X[i], 1e-10);

  // Feature 5 = feature 0 + feature 1: one singular value is 0.
  for (std::int64_t r = 0; r < rows; ++r) X[r * d + 5] = X[r * d + 0] + X[r * d + 1];
  const Pca q = pca_fit(kCpu, X.data(), rows, d, {.whiten = true});
  EXPECT_EQ(q.dropped, 1);
  ASSERT_EQ(q.n_components, d - 1);
  Mat Zq(rows * (d - 1));
  pca_transform(q, X.data(), rows, Zq.data());
  EXPECT_LT(covariance_error(Zq, d - 1), 1e-5);
  // The rank-5 data is still reproduced exactly from the 5 kept components.
  pca_inverse_transform(q, Zq.data(), rows, back.data());
  for (std::int64_t i = 0; i < rows * d; ++i) ASSERT_NEAR(back[i], X[i], 1e-9);
}

// 1.5: the Gram method (X^T X, eigen-decomposition, U = X V / S) reconstructs a random 100 x 50
// matrix, and agrees with LAPACK on well-conditioned input, for m >= n and m < n.
TEST(Linalg, GramMethodOfProblem1_5) {
  for (auto [m, n] : {std::pair<std::int64_t, std::int64_t>{100, 50}, {50, 100}, {40, 40}}) {
    SCOPED_TRACE(std::to_string(m) + "x" + std::to_string(n));
    const auto X = random_matrix<double>(m, n, 7 + m);
    const std::int64_t k = std::min(m, n);
    const auto g = run_svd(kCpu, X, m, n, {.method = SvdMethod::gram});
    EXPECT_EQ(g.report.method, SvdMethod::gram);
    EXPECT_TRUE(g.report.converged);
    EXPECT_EQ(g.report.dropped, 0);
    EXPECT_LT(reconstruction_error(g, X, m, n, k), 1e-12);
    EXPECT_LT(orthogonality_error(g.u(), m, k), 1e-11);
    EXPECT_LT(orthogonality_error(transpose(g.vt(), k, n), n, k), 1e-13);
    const auto q = run_svd(kCpu, X, m, n);
    for (std::int64_t i = 0; i < k; ++i) EXPECT_NEAR(g.S[i], q.S[i], 1e-12 * q.S[0]);
    EXPECT_LT(subspace_distance(columns(g.u(), m, k, k / 2), columns(q.u(), m, k, k / 2), m, k / 2),
              1e-10);
    // fp32 input: the CPU reference computes in double.
    const std::vector<float> Xf(X.begin(), X.end());
    const auto gf = run_svd(kCpu, Xf, m, n, {.method = SvdMethod::gram});
    EXPECT_LT(reconstruction_error(gf, Xf, m, n, k), 1e-6);
  }
}

// Errata 1.5: X^T X squares the condition number. At kappa = 1e6 (fp64) the Gram method's
// smallest singular values carry relative errors ~ eps kappa^2 = 1e-4 where qr's are ~ eps kappa;
// at kappa = 1e9, lambda_min = 1e-18 lambda_max is below the eigen-solver's resolution: the Gram
// method sets those values to 0 and reports them dropped, qr still finds them.
// A 100 x 50 matrix of condition kappa (singular values kappa^(-i/49)) factored by qr and by
// gram on ctx: the worst relative errors of the 5 smallest singular values, and gram's result.
struct SmallValueErrors {
  double qr_worst = 0, gram_worst = 0;
  Result<double> gram;
};
SmallValueErrors small_value_errors(const Context& ctx, double kappa, std::uint64_t seed) {
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

TEST(Linalg, GramLosesSmallSingularValuesQrKeepsThem) {
  const std::int64_t m = 100, n = 50;
  for (double kappa : {1e6, 1e9}) {
    SCOPED_TRACE(kappa);
    const auto [qr_worst, gram_worst, g] = small_value_errors(kCpu, kappa, 11);
    EXPECT_LT(qr_worst, kappa == 1e6 ? 1e-9 : 1e-6);
    if (kappa == 1e6) {
      EXPECT_GT(gram_worst, 1e-7);
      EXPECT_EQ(g.report.dropped, 0);
    } else {
      EXPECT_GT(g.report.dropped, 0);
      EXPECT_EQ(g.S[n - 1], 0.0);
      EXPECT_EQ(gram_worst, 1.0);  // reported as 0, the true value is 1e-9
      // The dropped directions' U columns are completed (unit, orthogonal to every other
      // column), not divided by 0. (The kept columns near the threshold are orthogonal only to
      // ~ eps (S[0] / S[i])^2: the Gram method's limit.)
      const Mat G = matmul(transpose(g.u(), m, n), g.u(), n, m, n);
      for (std::int64_t i = n - g.report.dropped; i < n; ++i)
        for (std::int64_t j = 0; j < n; ++j) ASSERT_NEAR(G[i * n + j], i == j, 1e-6) << i << "," << j;
    }
  }
}

// ---- properties ---------------------------------------------------------------------------

// Every shape, both precisions, qr and gram, economy and full: orthonormal factors,
// reconstruction, descending S, the sign rule; gram and qr give the same (sign-normalised)
// vectors on well-conditioned input.
template <class T>
void check_factors(std::int64_t m, std::int64_t n, std::uint64_t seed, double tol) {
  const auto X = random_matrix<T>(m, n, seed);
  const std::int64_t k = std::min(m, n);
  for (SvdMethod method : {SvdMethod::qr, SvdMethod::gram})
    for (bool full : {false, true}) {
      SCOPED_TRACE(to_string(method) + (full ? " full " : " economy ") + std::to_string(m) +
                   "x" + std::to_string(n));
      const auto f = run_svd(kCpu, X, m, n, {.method = method, .full = full});
      EXPECT_LT(orthogonality_error(f.u(), m, f.ucols), tol);
      EXPECT_LT(orthogonality_error(transpose(f.vt(), f.vrows, n), n, f.vrows), tol);
      EXPECT_TRUE(std::is_sorted(f.S.rbegin(), f.S.rend()));
      EXPECT_GE(f.S[k - 1], 0);
      EXPECT_TRUE(signs_normalised(f.Vt, k, n));
      Mat out(m * n);
      reconstruct(columns(f.u(), m, f.ucols, k).data(), f.s().data(), f.vt().data(), m, n, k, k,
                  out.data());
      Mat x(X.begin(), X.end()), d = out;
      for (std::int64_t i = 0; i < m * n; ++i) d[i] -= x[i];
      EXPECT_LT(frobenius(d) / frobenius(x), tol);
    }
  const auto q = run_svd(kCpu, X, m, n);
  const auto g = run_svd(kCpu, X, m, n, {.method = SvdMethod::gram});
  for (std::size_t i = 0; i < q.Vt.size(); ++i) ASSERT_NEAR(g.Vt[i], q.Vt[i], 1e3 * tol) << i;
}

TEST(Linalg, FactorsOfManyShapes) {
  std::uint64_t seed = 20;
  for (auto [m, n] : {std::pair<std::int64_t, std::int64_t>{1, 1}, {7, 3}, {3, 7}, {1, 9},
                      {33, 33}, {120, 17}, {17, 120}}) {
    check_factors<double>(m, n, ++seed, 1e-11);
    check_factors<float>(m, n, ++seed, 2e-6);
  }
}

TEST(Linalg, TopKIsTheLeadingPartOfTheEconomySvd) {
  const auto X = random_matrix<float>(60, 40, 30);
  const auto e = run_svd(kCpu, X, 60, 40);
  for (SvdMethod method : {SvdMethod::qr, SvdMethod::gram, SvdMethod::randomized}) {
    const auto t = run_svd(kCpu, X, 60, 40, {.method = method, .k = 5});
    ASSERT_EQ(t.S.size(), 5u);
    for (int i = 0; i < 5; ++i) EXPECT_NEAR(t.S[i], e.S[i], 1e-5 * e.S[0]);
    for (std::int64_t i = 0; i < 60; ++i)
      for (int j = 0; j < 5; ++j) EXPECT_NEAR(t.U[i * 5 + j], e.U[i * 40 + j], 1e-4);
    for (std::int64_t i = 0; i < 5 * 40; ++i) EXPECT_NEAR(t.Vt[i], e.Vt[i], 1e-4);
  }
}

TEST(Linalg, BatchedEqualsOneByOne) {
  const std::int64_t batch = 7, m = 5, n = 4;
  const auto X = random_matrix<double>(batch * m * n, 1, 31);
  std::vector<double> U(batch * m * n), S(batch * n), Vt(batch * n * n);
  const SvdReport rep = svd_batched(kCpu, X.data(), batch, m, n, {}, {U.data(), S.data(), Vt.data()});
  EXPECT_TRUE(rep.converged);
  for (std::int64_t b = 0; b < batch; ++b) {
    const std::vector<double> Xb(X.begin() + b * m * n, X.begin() + (b + 1) * m * n);
    const auto f = run_svd(kCpu, Xb, m, n);
    for (std::int64_t i = 0; i < m * n; ++i) EXPECT_EQ(U[b * m * n + i], f.U[i]);
    for (std::int64_t i = 0; i < n; ++i) EXPECT_EQ(S[b * n + i], f.S[i]);
    for (std::int64_t i = 0; i < n * n; ++i) EXPECT_EQ(Vt[b * n * n + i], f.Vt[i]);
  }
}

// A rank-30 100 x 50 matrix through the Gram method: 20 values dropped, their U columns
// completed to an orthonormal basis, the matrix still reconstructed.
TEST(Linalg, GramHandlesZeroSingularValues) {
  const std::int64_t m = 100, n = 50;
  const Mat X = matmul(random_matrix<double>(m, 30, 32), random_matrix<double>(30, n, 33), m, 30, n);
  for (bool full : {false, true}) {
    const auto g = run_svd(kCpu, X, m, n, {.method = SvdMethod::gram, .full = full});
    EXPECT_EQ(g.report.dropped, 20);
    EXPECT_EQ(count_above(g.s(), 0), 30);
    EXPECT_LT(orthogonality_error(g.u(), m, g.ucols), 1e-10);
    Mat out(m * n);
    reconstruct(columns(g.u(), m, g.ucols, n).data(), g.s().data(), g.vt().data(), m, n, n, n,
                out.data());
    for (std::int64_t i = 0; i < m * n; ++i) ASSERT_NEAR(out[i], X[i], 1e-9);
  }
}

// The Jacobi eigen-solver on A = Q diag(lambda) Q^T with negative and repeated eigenvalues.
TEST(Linalg, JacobiEigenSolver) {
  const std::int64_t n = 12;
  const Mat lambda = {7, 5, 5, 3, 1, 0.5, 0, 0, -1, -2, -2, -9};
  const auto q = run_svd(kCpu, random_matrix<double>(n, n, 34), n, n);
  Mat QL = q.u();
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j) QL[i * n + j] *= lambda[j];
  Mat A = matmul(QL, transpose(q.u(), n, n), n, n, n);
  const Mat A0 = A;
  std::vector<double> w, V;
  const auto rep = ref::symmetric_eigen(A, n, 100, 0, w, V);
  EXPECT_TRUE(rep.converged);
  EXPECT_GT(rep.sweeps, 1);
  for (std::int64_t i = 0; i < n; ++i) EXPECT_NEAR(w[i], lambda[i], 1e-13 * 9);
  EXPECT_LT(orthogonality_error(V, n, n), 1e-13);
  const Mat AV = matmul(A0, V, n, n, n);
  for (std::int64_t r = 0; r < n; ++r)
    for (std::int64_t c = 0; c < n; ++c) EXPECT_NEAR(AV[r * n + c], V[r * n + c] * w[c], 1e-12);
  Mat B = A0;
  EXPECT_FALSE(ref::symmetric_eigen(B, n, 1, 0, w, V).converged);
}

// PCA: n_components as a fraction and a count; explained variance = variance of the scores;
// the rank-r inverse transform is the Eckart-Young approximation of the centred data.
TEST(Linalg, PcaComponentsVarianceAndReconstruction) {
  const std::int64_t rows = 300, d = 20;
  const Mat X = matmul(random_matrix<double>(rows, d, 35), random_matrix<double>(d, d, 36), rows, d, d);
  const Pca all = pca_fit(kCpu, X.data(), rows, d);
  ASSERT_EQ(all.n_components, d);
  double ratio = 0;
  for (double r : all.explained_variance_ratio) ratio += r;
  EXPECT_NEAR(ratio, 1.0, 1e-12);
  const Pca p95 = pca_fit(kCpu, X.data(), rows, d, {.n_components = 0.95});
  EXPECT_EQ(p95.n_components, components_for_energy(all.singular_values, 0.95));
  EXPECT_LT(p95.n_components, d);
  const Pca p5 = pca_fit(kCpu, X.data(), rows, d, {.n_components = 5});
  ASSERT_EQ(p5.n_components, 5);
  Mat Z(rows * 5), back(rows * d);
  pca_transform(p5, X.data(), rows, Z.data());
  for (int i = 0; i < 5; ++i) {
    double mean = 0, var = 0;
    for (std::int64_t r = 0; r < rows; ++r) mean += Z[r * 5 + i] / rows;
    for (std::int64_t r = 0; r < rows; ++r) var += (Z[r * 5 + i] - mean) * (Z[r * 5 + i] - mean);
    EXPECT_NEAR(mean, 0, 1e-10);
    EXPECT_NEAR(var / (rows - 1), p5.explained_variance[i], 1e-10 * p5.explained_variance[0]);
  }
  pca_inverse_transform(p5, Z.data(), rows, back.data());
  for (std::int64_t i = 0; i < rows * d; ++i) back[i] -= X[i];
  EXPECT_NEAR(frobenius(back), truncation_error(all.singular_values, 5), 1e-9);
  // fp32 data.
  const std::vector<float> Xf(X.begin(), X.end());
  const Pca pf = pca_fit(kCpu, Xf.data(), rows, d, {.n_components = 5});
  for (int i = 0; i < 5; ++i)
    EXPECT_NEAR(pf.singular_values[i], p5.singular_values[i], 1e-5 * p5.singular_values[0]);
}

// ---- bad input ----------------------------------------------------------------------------

using test::error_of;

TEST(Linalg, BadInputIsRejectedNamingTheArgument) {
  const std::int64_t m = 6, n = 4;
  auto X = random_matrix<float>(m, n, 40);
  std::vector<float> U(m * n, -7), S(n, -7), Vt(n * n, -7);
  const SvdOutputs<float> out{U.data(), S.data(), Vt.data()};
  auto call = [&](std::int64_t mm, std::int64_t nn, SvdOptions o = {}) {
    return error_of([&] { svd(kCpu, X.data(), mm, nn, o, out); });
  };
  X[3 * n + 2] = NAN;
  EXPECT_NE(call(m, n).find("argument 'X' entry 14 (row 3, column 2) is nan"), std::string::npos)
      << call(m, n);
  X[3 * n + 2] = std::numeric_limits<float>::infinity();
  EXPECT_NE(call(m, n).find("(row 3, column 2) is inf"), std::string::npos) << call(m, n);
  X[3 * n + 2] = 1;
  EXPECT_NE(call(m, n, {.k = 5}).find("argument 'options.k' must be in [0, min(m, n) = 4] (got 5)"),
            std::string::npos);
  EXPECT_NE(call(0, n).find("argument 'm' must be >= 1 (got 0)"), std::string::npos);
  EXPECT_NE(call(m, 0).find("argument 'n' must be >= 1 (got 0)"), std::string::npos);
  EXPECT_NE(call(m, n, {.full = true, .k = 2}).find("'options.full'"), std::string::npos);
  EXPECT_NE(call(m, n, {.method = SvdMethod::randomized}).find("'options.k'"), std::string::npos);
  // cusolverDnXgesvdr documents (k + p) < min(m, n), strictly: k + oversampling = 4 = min(6, 4).
  EXPECT_NE(call(m, n, {.method = SvdMethod::randomized, .k = 2, .oversampling = 2})
                .find("k + oversampling < min(m, n) = 4 for the randomized method"),
            std::string::npos);
  EXPECT_EQ(call(m, n, {.method = SvdMethod::randomized, .k = 2, .oversampling = 1}),
            "(no ArgumentError)");
  std::fill(U.begin(), U.end(), -7.f);
  std::fill(S.begin(), S.end(), -7.f);
  std::fill(Vt.begin(), Vt.end(), -7.f);
  EXPECT_NE(call(m, n, {.max_sweeps = 0}).find("'options.max_sweeps'"), std::string::npos);
  EXPECT_NE(call(m, n, {.tolerance = -1}).find("'options.tolerance'"), std::string::npos);
  EXPECT_NE(call(40, 40, {.method = SvdMethod::batched_jacobi}).find("<= 32"), std::string::npos);
  EXPECT_NE(error_of([&] { svd(kCpu, static_cast<const float*>(nullptr), m, n, {}, out); })
                .find("argument 'X' must not be null"),
            std::string::npos);
  EXPECT_NE(error_of([&] { svd(kCpu, X.data(), m, n, {}, {U.data(), nullptr, Vt.data()}); })
                .find("argument 'out.S' must not be null"),
            std::string::npos);
  // Sizes past 64 bits are refused before X is read.
  EXPECT_NE(error_of([&] {
              svd_batched(kCpu, X.data(), std::int64_t{1} << 40, 1 << 20, 1 << 20, {}, out);
            }).find("argument 'batch' is too large"),
            std::string::npos);
  // Nothing was written by the rejected calls.
  for (float v : U) ASSERT_EQ(v, -7);
  for (float v : S) ASSERT_EQ(v, -7);
  for (float v : Vt) ASSERT_EQ(v, -7);

  const std::vector<double> Xd(X.begin(), X.end());
  EXPECT_NE(error_of([&] { pca_fit(kCpu, Xd.data(), m, n, {.n_components = 2.5}); })
                .find("argument 'options.n_components'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { pca_fit(kCpu, Xd.data(), 1, n); }).find("'n_samples' must be >= 2"),
            std::string::npos);
  const Mat bad = {3, -1};
  EXPECT_NE(error_of([&] { spectrum_energy(bad); }).find("argument 'S' entry 1 is -1"),
            std::string::npos);
  EXPECT_NE(error_of([&] { components_for_energy(Mat{1}, 1.5); }).find("'fraction'"),
            std::string::npos);
  // Empty shapes and counts past min(m, n) elsewhere too.
  EXPECT_NE(error_of([&] { svd_batched(kCpu, X.data(), 0, m, n, {}, out); })
                .find("argument 'batch' must be >= 1 (got 0)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { pca_fit(kCpu, Xd.data(), m, n, {.n_components = 5}); })
                .find("an integer in [1, 4] (got 5)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { pca_fit(kCpu, Xd.data(), m, 0); }).find("'n_features' must be >= 1"),
            std::string::npos);
  std::vector<double> Xnan = Xd;
  Xnan[2 * n + 1] = -INFINITY;
  EXPECT_NE(error_of([&] { pca_fit(kCpu, Xnan.data(), m, n); })
                .find("argument 'X' entry 9 (row 2, column 1) is -inf"),
            std::string::npos);
  std::vector<double> R(m * n);
  const std::vector<double> Ud(U.begin(), U.end()), Sd(S.begin(), S.end()),
      Vd(Vt.begin(), Vt.end());
  EXPECT_NE(error_of([&] { reconstruct(Ud.data(), Sd.data(), Vd.data(), m, n, n, 5, R.data()); })
                .find("argument 'r' must be in [0, rank = 4] (got 5)"),
            std::string::npos);
  EXPECT_EQ(spectrum_energy(Mat{}), 0.0);
  EXPECT_EQ(components_for_energy(Mat{}, 0.9), 0);
  EXPECT_EQ(truncation_error(Mat{}, 0), 0.0);
  EXPECT_THROW(svd_method_from_name("lu"), ArgumentError);
  EXPECT_EQ(svd_method_from_name("batched_jacobi"), SvdMethod::batched_jacobi);
}

// ---- IDX files ----------------------------------------------------------------------------

// An IDX image: magic, big-endian dims, then `payload` (already big-endian).
std::vector<unsigned char> idx_file(unsigned char type, const std::vector<std::uint32_t>& dims,
                                    const std::vector<unsigned char>& payload) {
  std::vector<unsigned char> f = {0, 0, type, static_cast<unsigned char>(dims.size())};
  for (std::uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) f.push_back(static_cast<unsigned char>(d >> s));
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

template <class T>
std::vector<unsigned char> big_endian_bytes(const std::vector<T>& v) {
  std::vector<unsigned char> out;
  for (T x : v) {
    unsigned char b[sizeof(T)];
    std::memcpy(b, &x, sizeof(T));
    for (int i = sizeof(T) - 1; i >= 0; --i) out.push_back(b[i]);  // little-endian host
  }
  return out;
}

std::string write_temp(const std::string& name, const std::vector<unsigned char>& bytes) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("genai_linalg_test_" + std::to_string(::getpid()) + "_" + name);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return path.string();
}

std::string idx_error(const std::vector<unsigned char>& bytes, const std::string& name = "f.idx",
                      std::uint64_t max_bytes = io::kIdxMaxBytes) {
  try {
    io::parse_idx(std::as_bytes(std::span<const unsigned char>(bytes)), name, max_bytes);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// `bytes` as one gzip member (zlib's deflate with the gzip wrapper).
std::vector<unsigned char> gzip(const std::vector<unsigned char>& bytes) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                         Z_DEFAULT_STRATEGY),
            Z_OK);
  std::vector<unsigned char> in = bytes, out(deflateBound(&z, in.size()));
  z.next_in = in.data();
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

io::Array parse(const std::vector<unsigned char>& bytes) {
  return io::parse_idx(std::as_bytes(std::span<const unsigned char>(bytes)));
}

TEST(Linalg, IdxFilesOfEveryType) {
  // uint8 images 2 x 3 x 4 (MNIST's layout), read from a file.
  std::vector<unsigned char> pixels(24);
  for (int i = 0; i < 24; ++i) pixels[i] = static_cast<unsigned char>(10 * i);
  const std::string path = write_temp("images.idx", idx_file(0x08, {2, 3, 4}, pixels));
  const io::Array img = io::read_idx(path);
  std::filesystem::remove(path);
  EXPECT_EQ(img.dtype, io::DType::U8);
  EXPECT_EQ(img.shape, (std::vector<std::int64_t>{2, 3, 4}));
  const auto px = img.to_double();
  for (int i = 0; i < 24; ++i) ASSERT_EQ(px[i], 10.0 * i);

  const std::vector<double> d = {1.5, -2, 3.25, 1e300};
  const io::Array a = parse(idx_file(0x0E, {2, 2}, big_endian_bytes(d)));
  EXPECT_EQ(a.dtype, io::DType::F64);
  EXPECT_EQ(a.to_double(), d);
  const std::vector<float> f = {0.25f, -7.5f, 3e38f};
  EXPECT_EQ(parse(idx_file(0x0D, {3}, big_endian_bytes(f))).to_float(), f);
  const std::vector<std::int16_t> s16 = {-2, 300, -32768};
  EXPECT_EQ(parse(idx_file(0x0B, {3}, big_endian_bytes(s16))).to_int64(),
            (std::vector<std::int64_t>{-2, 300, -32768}));
  const std::vector<std::int32_t> s32 = {-70000, 5};
  EXPECT_EQ(parse(idx_file(0x0C, {2}, big_endian_bytes(s32))).to_int64(),
            (std::vector<std::int64_t>{-70000, 5}));
  EXPECT_EQ(parse(idx_file(0x09, {2}, {0xFF, 0x7F})).to_int64(),
            (std::vector<std::int64_t>{-1, 127}));
}

::testing::AssertionResult has(const std::string& msg, const std::string& want) {
  return msg.find(want) != std::string::npos ? ::testing::AssertionSuccess()
                                             : ::testing::AssertionFailure() << msg;
}

TEST(Linalg, MalformedIdxFilesAreRejectedSayingWhy) {
  EXPECT_TRUE(has(idx_error({}), "f.idx: truncated header: 0 bytes"));
  EXPECT_TRUE(has(idx_error({1, 0, 8, 1, 0, 0, 0, 0}), "not an IDX file"));
  EXPECT_TRUE(has(idx_error(idx_file(0x0A, {1}, {0})), "unsupported data type 0xa"));
  EXPECT_TRUE(has(idx_error({0, 0, 8, 0}), "has 0 dimensions"));
  EXPECT_TRUE(has(idx_error({0, 0, 8, 2, 0, 0, 0, 1}), "truncated header: 8 bytes for 2 dimensions"));
  EXPECT_TRUE(has(idx_error(idx_file(0x08, {2, 3}, {1, 2, 3})), "truncated data: 3 bytes"));
  EXPECT_TRUE(has(idx_error(idx_file(0x0E, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, {})),
                  "truncated data: 0 bytes after the header, the shape needs 9223372036854775808 "
                  "or more"));
  EXPECT_TRUE(has(idx_error(idx_file(0x08, {2}, {1, 2, 3})), "1 bytes after the data"));
  EXPECT_THROW(io::read_idx("/nonexistent/genai.idx"), Error);
}

// MNIST's train-images-idx3-ubyte.gz: gzip is recognised by its magic bytes (here in a file
// without .gz, written by zlib's gzwrite), also as concatenated members, and gives the same
// array as the plain file.
TEST(Linalg, GzipIdxFilesAreRead) {
  std::vector<unsigned char> pixels(3 * 4 * 5);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<unsigned char>(7 * i + 1);
  const auto plain = idx_file(0x08, {3, 4, 5}, pixels);
  const auto path = std::filesystem::temp_directory_path() /
                    ("genai_linalg_test_" + std::to_string(::getpid()) + "_images.idx");
  gzFile gz = gzopen(path.c_str(), "wb");
  ASSERT_NE(gz, nullptr);
  ASSERT_EQ(gzwrite(gz, plain.data(), static_cast<unsigned>(plain.size())), int(plain.size()));
  ASSERT_EQ(gzclose(gz), Z_OK);
  const io::Array img = io::read_idx(path.string());
  EXPECT_EQ(img.dtype, io::DType::U8);
  EXPECT_EQ(img.shape, (std::vector<std::int64_t>{3, 4, 5}));
  EXPECT_EQ(img.bytes, parse(plain).bytes);
  const auto px = img.to_double();
  for (std::size_t i = 0; i < pixels.size(); ++i) ASSERT_EQ(px[i], pixels[i]);
  // The file is small: a limit of its content's size passes, one byte less does not.
  EXPECT_EQ(io::read_idx(path.string(), plain.size()).shape, img.shape);
  EXPECT_THROW(io::read_idx(path.string(), plain.size() - 1), Error);
  std::filesystem::remove(path);

  const std::vector<double> d = {1.5, -2, 3.25, 1e300, -0.0, 7};
  const auto f64 = idx_file(0x0E, {3, 2}, big_endian_bytes(d));
  EXPECT_EQ(parse(gzip(f64)).to_double(), d);
  // Header and data in two gzip members, as `cat a.gz b.gz` makes.
  auto two = gzip({f64.begin(), f64.begin() + 12});
  const auto rest = gzip({f64.begin() + 12, f64.end()});
  two.insert(two.end(), rest.begin(), rest.end());
  const io::Array joined = parse(two);
  EXPECT_EQ(joined.shape, (std::vector<std::int64_t>{3, 2}));
  EXPECT_EQ(joined.to_double(), d);
}

// Corrupt or truncated gzip data, malformed IDX content inside valid gzip, and content over the
// size limit: each a genai::Error naming the file and the fault.
TEST(Linalg, MalformedGzipIdxFilesAreRejectedSayingWhy) {
  std::vector<unsigned char> pixels(2 * 8 * 8);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<unsigned char>(i * i);
  const auto good = gzip(idx_file(0x08, {2, 8, 8}, pixels));
  ASSERT_EQ(parse(good).size(), 128);

  // Truncated: mid-stream, and with only the 8-byte trailer (CRC-32, length) missing.
  EXPECT_TRUE(has(idx_error({good.begin(), good.begin() + good.size() / 2}, "f.gz"),
                  "f.gz: truncated gzip data"));
  EXPECT_TRUE(has(idx_error({good.begin(), good.end() - 8}, "f.gz"), "f.gz: truncated gzip data"));
  EXPECT_TRUE(has(idx_error({0x1f, 0x8b}, "f.gz"), "f.gz: truncated gzip data"));
  // Corrupt: a wrong CRC-32, an unknown compression method.
  auto crc = good;
  crc[crc.size() - 8] ^= 0x01;
  EXPECT_TRUE(has(idx_error(crc, "f.gz"), "f.gz: corrupt gzip data (zlib: incorrect data check)"));
  auto method = good;
  method[2] = 7;
  EXPECT_TRUE(has(idx_error(method, "f.gz"), "f.gz: corrupt gzip data (zlib: unknown compression"));
  auto trailing = good;
  trailing.insert(trailing.end(), {0, 0, 0});
  EXPECT_TRUE(has(idx_error(trailing, "f.gz"), "f.gz: 3 bytes after the gzip data"));

  // Valid gzip whose content is not a valid IDX file.
  EXPECT_TRUE(has(idx_error(gzip({}), "f.gz"), "f.gz (gzip content): truncated header: 0 bytes"));
  EXPECT_TRUE(has(idx_error(gzip({'h', 'e', 'l', 'l', 'o'}), "f.gz"),
                  "f.gz (gzip content): not an IDX file"));
  EXPECT_TRUE(has(idx_error(gzip(idx_file(0x08, {2, 8, 8}, {1, 2, 3})), "f.gz"),
                  "f.gz (gzip content): truncated data: 3 bytes after the header, the shape "
                  "needs 128"));
  EXPECT_TRUE(has(idx_error(gzip(idx_file(0x0F, {1}, {0})), "f.gz"),
                  "f.gz (gzip content): unsupported data type 0xf"));

  // A gzip bomb: 64 MiB of zeros in ~64 KiB, refused at a 1 MiB limit after decompressing
  // at most 1 MiB + one 64 KiB chunk, not 64 MiB.
  const std::uint32_t side = 8192;
  const auto bomb = gzip(idx_file(0x08, {side, side}, std::vector<unsigned char>(side * side)));
  EXPECT_LT(bomb.size(), 100u * 1024);
  EXPECT_TRUE(has(idx_error(bomb, "bomb.gz", 1 << 20),
                  "bomb.gz: gzip content is larger than 1048576 bytes, the limit (max_bytes)"));

  const std::string path = write_temp("cut.idx.gz", {good.begin(), good.end() - 20});
  try {
    io::read_idx(path);
    ADD_FAILURE() << "a truncated gzip file was read";
  } catch (const Error& e) {
    EXPECT_TRUE(has(e.what(), "genai::io: " + path + ": truncated gzip data"));
  }
  std::filesystem::remove(path);
}

// ---- auto's choice -------------------------------------------------------------------------

// linalg.hpp's rule on the shapes of issue 6 and at its edges; the CPU always runs qr (or gram).
TEST(Linalg, AutoPicksTheMethodByShapeBatchAndRank) {
  const SvdOptions top32{.k = 32};
  struct Case {
    std::int64_t batch, m, n;
    SvdOptions o;
    SvdMethod gpu;
  };
  const Case cases[] = {
      {1, 100000, 256, {}, SvdMethod::qr},              // tall-skinny
      {1, 4096, 4096, {}, SvdMethod::qr},               // square
      {10000, 16, 16, {}, SvdMethod::batched_jacobi},   // many small
      {1, 50000, 2000, top32, SvdMethod::randomized},   // top-k
      {1, 2000, 50000, top32, SvdMethod::randomized},   // its transpose
      {1, 16, 16, {}, SvdMethod::qr},                   // one small matrix
      {10000, 32, 32, {}, SvdMethod::batched_jacobi},   // gesvdjBatched's largest
      {10000, 33, 16, {}, SvdMethod::qr},               // too large for it
      {1, 50000, 2000, {.k = 490}, SvdMethod::randomized},  // (490 + 10) * 4 = 2000
      {1, 50000, 2000, {.k = 491}, SvdMethod::qr},
      {1, 50000, 2000, {.k = 480, .oversampling = 30}, SvdMethod::qr},
      {1, 50000, 2000, {.method = SvdMethod::gram}, SvdMethod::gram},
      {1, 50000, 2000, {.method = SvdMethod::jacobi}, SvdMethod::jacobi},
      {10000, 16, 16, {.method = SvdMethod::qr}, SvdMethod::qr},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::to_string(c.batch) + " x " + std::to_string(c.m) + " x " +
                 std::to_string(c.n) + " k=" + std::to_string(c.o.k) + " " + to_string(c.o.method));
    EXPECT_EQ(svd_method(Device::CUDA, c.batch, c.m, c.n, c.o), c.gpu);
    EXPECT_EQ(svd_method(Device::CPU, c.batch, c.m, c.n, c.o),
              c.o.method == SvdMethod::gram ? SvdMethod::gram : SvdMethod::qr);
  }
  // What svd reports is that choice.
  const auto X = random_matrix<float>(40, 30, 45);
  EXPECT_EQ(run_svd(kCpu, X, 40, 30, {.method = SvdMethod::randomized, .k = 2}).report.method,
            SvdMethod::qr);
  EXPECT_EQ(run_svd(kCpu, X, 40, 30, {.method = SvdMethod::gram}).report.method, SvdMethod::gram);
}

// ---- GPU parity ---------------------------------------------------------------------------

class LinalgGpu : public test::GpuTest {};

// One GPU method on fresh random matrices against LAPACK (fp64, on the same rounded input):
// singular values (relative to S[0]), the top half of both singular subspaces (principal
// angles, sign-free), orthogonality, reconstruction; outputs poisoned beforehand.
template <class T>
void check_method_on_gpu(const Context& ctx, SvdMethod method, std::int64_t m, std::int64_t n,
                         std::int64_t k, std::uint64_t seed) {
  SCOPED_TRACE(to_string(method) + " " + std::to_string(m) + "x" + std::to_string(n) + " k=" +
               std::to_string(k) + (sizeof(T) == 4 ? " fp32" : " fp64"));
  const bool fp32 = sizeof(T) == 4;
  const double tol = fp32 ? (method == SvdMethod::gram ? 3e-4 : 2e-5) : 1e-10;
  const auto X = random_matrix<T>(m, n, seed);
  const Mat Xd(X.begin(), X.end());
  const auto ref = run_svd(kCpu, Xd, m, n);
  const auto got = run_svd(ctx, X, m, n, {.method = method, .k = k});
  const std::int64_t r = k > 0 ? k : std::min(m, n);
  EXPECT_EQ(got.report.method, method);
  EXPECT_TRUE(got.report.converged);
  for (std::int64_t i = 0; i < r; ++i) EXPECT_NEAR(got.S[i], ref.S[i], tol * ref.S[0]) << i;
  EXPECT_TRUE(signs_normalised(got.Vt, r, n));
  EXPECT_LT(orthogonality_error(got.u(), m, r), 10 * tol);
  EXPECT_LT(orthogonality_error(transpose(got.vt(), r, n), n, r), 10 * tol);
  const std::int64_t h = std::max<std::int64_t>(1, r / 2);
  EXPECT_LT(subspace_distance(columns(got.u(), m, r, h), columns(ref.u(), m, ref.ucols, h), m, h),
            100 * tol);
  EXPECT_LT(subspace_distance(columns(transpose(got.vt(), r, n), n, r, h),
                              columns(transpose(ref.vt(), ref.vrows, n), n, ref.vrows, h), n, h),
            100 * tol);
  if (k == 0) {
    EXPECT_LT(reconstruction_error(got, X, m, n, r), 10 * tol);
  }
}

TEST_F(LinalgGpu, QrJacobiGramMatchReference) {
  std::uint64_t seed = 50;
  for (SvdMethod method : {SvdMethod::qr, SvdMethod::jacobi, SvdMethod::gram})
    for (auto [m, n] : {std::pair<std::int64_t, std::int64_t>{1, 1}, {64, 32}, {32, 64}, {100, 50},
                        {257, 129}, {77, 300}}) {
      check_method_on_gpu<float>(ctx, method, m, n, 0, ++seed);
      check_method_on_gpu<double>(ctx, method, m, n, 0, ++seed);
      check_method_on_gpu<float>(ctx, method, m, n, std::max<std::int64_t>(1, std::min(m, n) / 3),
                                 ++seed);
    }
}

// Randomized top-k on matrices with a decaying spectrum (where a sketch captures the top k).
TEST_F(LinalgGpu, RandomizedTopKMatchesReference) {
  const std::int64_t m = 400, n = 200, k = 10;
  Mat s(n);
  for (std::int64_t i = 0; i < n; ++i) s[i] = std::pow(0.7, double(i));
  const Mat X = with_spectrum(s, m, n, 60);
  const auto ref = run_svd(kCpu, X, m, n, {.k = k});
  const auto got = run_svd(ctx, X, m, n, {.method = SvdMethod::randomized, .k = k});
  EXPECT_EQ(got.report.method, SvdMethod::randomized);
  for (std::int64_t i = 0; i < k; ++i) EXPECT_NEAR(got.S[i], ref.S[i], 1e-8) << i;
  EXPECT_LT(subspace_distance(got.u(), ref.u(), m, k), 1e-6);
  EXPECT_TRUE(signs_normalised(got.Vt, k, n));
  const std::vector<float> Xf(X.begin(), X.end());
  const auto gf = run_svd(ctx, Xf, m, n, {.method = SvdMethod::randomized, .k = k});
  for (std::int64_t i = 0; i < k; ++i) EXPECT_NEAR(gf.S[i], ref.S[i], 2e-5) << i;
  // m < n goes through the transpose.
  const Mat Xt = transpose(X, m, n);
  const auto gt = run_svd(ctx, Xt, n, m, {.method = SvdMethod::randomized, .k = k});
  for (std::int64_t i = 0; i < k; ++i) EXPECT_NEAR(gt.S[i], ref.S[i], 1e-8) << i;
}

TEST_F(LinalgGpu, BatchedJacobiMatchesReference) {
  for (auto [m, n] : {std::pair<std::int64_t, std::int64_t>{16, 16}, {32, 8}, {5, 27}}) {
    const std::int64_t batch = 300, k = std::min(m, n);
    const auto X = random_matrix<float>(batch * m * n, 1, 70 + m);
    auto dX = test::to_device(ctx, X);
    Buffer<float> dU(ctx, batch * m * k), dS(ctx, batch * k), dVt(ctx, batch * k * n);
    test::poison(dU);
    test::poison(dS);
    test::poison(dVt);
    const SvdReport rep =
        svd_batched(ctx, dX.data(), batch, m, n, {}, {dU.data(), dS.data(), dVt.data()});
    EXPECT_EQ(rep.method, SvdMethod::batched_jacobi);  // auto's choice for many small matrices
    EXPECT_TRUE(rep.converged);
    const auto U = dU.to_host(), S = dS.to_host(), Vt = dVt.to_host();
    std::vector<float> rU(U.size()), rS(S.size()), rVt(Vt.size());
    svd_batched(kCpu, X.data(), batch, m, n, {}, {rU.data(), rS.data(), rVt.data()});
    EXPECT_TRUE(test::close(S, rS, {2e-5, 2e-5}));
    for (std::int64_t b = 0; b < batch; ++b) {
      const std::vector<float> Ub(U.begin() + b * m * k, U.begin() + (b + 1) * m * k);
      const std::vector<float> Vb(Vt.begin() + b * k * n, Vt.begin() + (b + 1) * k * n);
      Result<float> f{Ub, std::vector<float>(S.begin() + b * k, S.begin() + (b + 1) * k), Vb, k, k, rep};
      const std::vector<float> Xb(X.begin() + b * m * n, X.begin() + (b + 1) * m * n);
      ASSERT_LT(reconstruction_error(f, Xb, m, n, k), 1e-5) << b;
      ASSERT_LT(orthogonality_error(f.u(), m, k), 1e-5) << b;
      ASSERT_TRUE(signs_normalised(Vb, k, n)) << b;
    }
  }
}

// gesvdj stopped after one sweep: reported, and qr takes over unless fallback is off.
TEST_F(LinalgGpu, JacobiNonConvergenceIsReportedAndFallsBack) {
  const std::int64_t m = 200, n = 100;
  const auto X = random_matrix<float>(m, n, 80);
  const auto ref = run_svd(kCpu, X, m, n);
  const auto fb = run_svd(ctx, X, m, n, {.method = SvdMethod::jacobi, .tolerance = 1e-7, .max_sweeps = 1});
  EXPECT_FALSE(fb.report.converged);
  EXPECT_TRUE(fb.report.fell_back);
  EXPECT_EQ(fb.report.method, SvdMethod::qr);
  for (std::int64_t i = 0; i < n; ++i) EXPECT_NEAR(fb.S[i], ref.S[i], 2e-5 * ref.S[0]);
  const auto no = run_svd(ctx, X, m, n,
                          {.method = SvdMethod::jacobi, .tolerance = 1e-7, .max_sweeps = 1, .fallback = false});
  EXPECT_FALSE(no.report.converged);
  EXPECT_FALSE(no.report.fell_back);
  EXPECT_EQ(no.report.method, SvdMethod::jacobi);
  EXPECT_EQ(no.report.sweeps, 1);
}

TEST_F(LinalgGpu, FullFormAndPcaMatchReference) {
  const std::int64_t m = 90, n = 40;
  const auto X = random_matrix<double>(m, n, 90);
  for (SvdMethod method : {SvdMethod::qr, SvdMethod::jacobi, SvdMethod::gram}) {
    const auto f = run_svd(ctx, X, m, n, {.method = method, .full = true});
    EXPECT_LT(orthogonality_error(f.u(), m, m), 1e-10);
    EXPECT_LT(orthogonality_error(transpose(f.vt(), n, n), n, n), 1e-10);
    const auto t = run_svd(ctx, transpose(X, m, n), n, m, {.method = method, .full = true});
    EXPECT_LT(orthogonality_error(t.u(), n, n), 1e-10);
  }
  const Pca cpu = pca_fit(kCpu, X.data(), m, n, {.n_components = 0.9, .whiten = true});
  const Pca gpu = pca_fit(ctx, X.data(), m, n, {.n_components = 0.9, .whiten = true});
  ASSERT_EQ(gpu.n_components, cpu.n_components);
  for (std::int64_t i = 0; i < cpu.n_components; ++i)
    EXPECT_NEAR(gpu.explained_variance[i], cpu.explained_variance[i], 1e-10);
}

// Rank-deficient input (rank 30 of 100 x 50, fp64): qr and jacobi find exactly 30 non-zero
// singular values, gram sets the other 20 to 0 and reports them; all reconstruct X.
TEST_F(LinalgGpu, RankDeficientMatchesReference) {
  const std::int64_t m = 100, n = 50;
  const Mat X = matmul(random_matrix<double>(m, 30, 96), random_matrix<double>(30, n, 97), m, 30, n);
  for (SvdMethod method : {SvdMethod::qr, SvdMethod::jacobi, SvdMethod::gram}) {
    SCOPED_TRACE(to_string(method));
    const auto f = run_svd(ctx, X, m, n, {.method = method});
    EXPECT_EQ(count_above(f.s(), 1e-10 * f.S[0]), 30);
    EXPECT_EQ(f.report.dropped, method == SvdMethod::gram ? 20 : 0);
    EXPECT_LT(reconstruction_error(f, X, m, n, n), 1e-10);
    EXPECT_LT(orthogonality_error(f.u(), m, n), 1e-10);
  }
}

// Errata 1.5 on the GPU (fp64, syrk + syevd): at kappa = 1e6 the Gram method's smallest
// singular values are off by ~ eps kappa^2 = 1e-4 relative, qr's by ~ eps kappa.
TEST_F(LinalgGpu, GramLosesSmallSingularValuesQrKeepsThem) {
  const auto e = small_value_errors(ctx, 1e6, 98);
  EXPECT_LT(e.qr_worst, 1e-9);
  EXPECT_GT(e.gram_worst, 1e-7);
  EXPECT_EQ(e.gram.report.dropped, 0);
}

TEST_F(LinalgGpu, BadInputOnTheDeviceMatchesReference) {
  auto X = random_matrix<float>(8, 8, 95);
  X[5 * 8 + 1] = NAN;
  auto dX = test::to_device(ctx, X);
  Buffer<float> dS(ctx, 8);
  std::vector<float> S(8);
  const std::string msg = error_of([&] { svd(ctx, dX.data(), 8, 8, {}, {nullptr, dS.data(), nullptr}); });
  const std::string want = error_of([&] { svd(kCpu, X.data(), 8, 8, {}, {nullptr, S.data(), nullptr}); });
  EXPECT_EQ(msg, want);
}

}  // namespace
}  // namespace genai
