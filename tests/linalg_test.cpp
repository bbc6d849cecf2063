// SVD, spectra, PCA and whitening: seed answers (problem set 1.1, 1.2, 1.3, 1.5 and errata
// 1.3, 1.5), properties (orthogonality, Eckart-Young, subspaces, the sign rule), bad input, and
// auto's choice of method. GPU parity: tests/linalg_gpu_test.cpp; IDX files: tests/idx_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "cpu_reference/linalg.hpp"
#include "genai/linalg.hpp"
#include "linalg_test_util.hpp"
#include "parallel_test_util.hpp"
#include "test_util.hpp"

namespace genai {
namespace {

const Context kCpu = Context::cpu();

using namespace test::linalg;
using test::error_of;


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

// Float input runs the qr method in float (LAPACK's sgesdd on the column-major view of X^T)
// where double input runs dgesdd: against the double path on the same matrix, within the
// tolerances of the GPU's float parity tests -- singular values within 2e-5 S[0], the top half of
// both singular subspaces within 2e-3 (sine of the largest principal angle), orthogonality within
// 2e-4 -- with the sign rule, for tall, wide, square and tiny shapes, economy, full and top-k.
TEST(Linalg, FloatInputRunsInFloatCloseToTheDoublePath) {
  std::uint64_t seed = 700;
  for (auto [m, n] : {std::pair<std::int64_t, std::int64_t>{1, 1}, {64, 32}, {32, 64},
                      {257, 129}, {77, 300}, {40, 40}})
    for (const SvdOptions o : {SvdOptions{}, SvdOptions{.full = true},
                               SvdOptions{.k = std::max<std::int64_t>(1, std::min(m, n) / 3)}}) {
      SCOPED_TRACE(std::to_string(m) + "x" + std::to_string(n) + (o.full ? " full" : "") +
                   " k=" + std::to_string(o.k));
      const auto X = random_matrix<float>(m, n, ++seed);
      const auto want = run_svd(kCpu, Mat(X.begin(), X.end()), m, n, o);
      const auto got = run_svd(kCpu, X, m, n, o);
      EXPECT_EQ(got.report.driver, "LAPACKE_sgesdd");
      const std::int64_t r = static_cast<std::int64_t>(got.S.size());
      for (std::int64_t i = 0; i < r; ++i) EXPECT_NEAR(got.S[i], want.S[i], 2e-5 * want.S[0]) << i;
      EXPECT_TRUE(signs_normalised(got.Vt, r, n));
      EXPECT_LT(orthogonality_error(got.u(), m, got.ucols), 2e-4);
      EXPECT_LT(orthogonality_error(transpose(got.vt(), got.vrows, n), n, got.vrows), 2e-4);
      const std::int64_t h = std::max<std::int64_t>(1, r / 2);
      EXPECT_LT(subspace_distance(columns(got.u(), m, got.ucols, h),
                                  columns(want.u(), m, want.ucols, h), m, h), 2e-3);
      EXPECT_LT(subspace_distance(columns(transpose(got.vt(), got.vrows, n), n, got.vrows, h),
                                  columns(transpose(want.vt(), want.vrows, n), n, want.vrows, h),
                                  n, h), 2e-3);
    }
}

// Batch members on the backend's threads: the same bytes on any thread count.
TEST(Linalg, BatchedIsTheSameOnAnyThreadCount) {
  const std::int64_t batch = 37, m = 9, n = 5;
  const auto X = random_matrix<float>(batch * m * n, 1, 41);
  test::expect_same_on_any_thread_count([&] {
    std::vector<float> U(batch * m * n), S(batch * n), Vt(batch * n * n);
    svd_batched(kCpu, X.data(), batch, m, n, {}, {U.data(), S.data(), Vt.data()});
    return std::vector<std::vector<float>>{U, S, Vt};
  });
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

}  // namespace
}  // namespace genai
