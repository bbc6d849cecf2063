// CPU reference of the linalg module: LAPACKE and the Gram-eigen method of problem 1.5 with a
// from-scratch cyclic Jacobi eigen-solver. No argument checks (host/src/linalg.cpp). The qr
// method runs in the input's precision: double input through dgesdd, float input through sgesdd
// (tests/linalg_test.cpp holds it to the double path's factors); the Gram method in double.
#pragma once

#include <cstdint>
#include <vector>

#include "genai/linalg.hpp"

namespace genai::ref {

// The SVD of genai::svd for a CPU context, options.method already resolved to qr or gram.
template <class T>
SvdReport svd(const T* X, std::int64_t m, std::int64_t n, const SvdOptions& options,
              const SvdOutputs<T>& out);

// Cyclic Jacobi eigen-solver of a symmetric A [n x n] (row-major, overwritten): eigenvalues
// descending into w[n], eigenvectors as the columns of V [n x n] (row-major). Sweeps until the
// off-diagonal norm is <= tolerance * ||A||_F, at most max_sweeps.
struct EigenReport {
  int sweeps = 0;
  bool converged = false;
};
EigenReport symmetric_eigen(std::vector<double>& A, std::int64_t n, int max_sweeps,
                            double tolerance, std::vector<double>& w, std::vector<double>& V);

// The sign rule of linalg.hpp on the first k pairs: U [m x ldu] (columns u_i), Vt [k x n].
void normalize_signs(double* U, std::int64_t m, std::int64_t ldu, double* Vt, std::int64_t k,
                     std::int64_t n);

// Columns [first, cols) of U [m x cols] replaced by unit vectors orthogonal to all columns
// before them: Gram-Schmidt, twice, of the canonical basis vector farthest from their span.
void complete_orthonormal(double* U, std::int64_t m, std::int64_t cols, std::int64_t first);

}  // namespace genai::ref
