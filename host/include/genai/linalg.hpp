// Linear algebra of generative models (problem set 1.1, 1.2, 1.3, 1.5; challenge C1's PCA).
//
// SVD  X = U diag(S) Vt  of a row-major X [m x n], k = min(m, n):
//   economy (default)     U [m x k], S [k], Vt [k x n]
//   full (options.full)   U [m x m], S [k], Vt [n x n]
//   top-k (options.k = r) U [m x r], S [r], Vt [r x n]
// All row-major. S is descending and >= 0. The rows of Vt are the right singular vectors v_i,
// the columns of U the left ones u_i. Pointers are host pointers with a CPU context, device
// pointers with a CUDA context. U and Vt may be null (not computed / not written); S may not.
//
// Sign rule: each pair (u_i, v_i) is flipped so that the entry of largest |.| in v_i (row i of
// Vt; the first such entry on a tie) is positive. The pair's product u_i v_i^T is unchanged, so
// results of every method and backend compare directly (up to rotations within a repeated
// singular value). Columns of a full U beyond k pair with no v_i and keep an arbitrary sign.
//
// Methods (SvdReport::method says which produced the outputs):
//   qr             bidiagonalisation SVD. CPU: LAPACKE dgesdd (divide and conquer; dgesvd if it
//                  fails to converge), computed in double for fp32 input too; GPU: cuSOLVER
//                  gesvd.
//   jacobi         GPU: cuSOLVER gesvdj (options.tolerance, max_sweeps; sweeps and residual
//                  reported; on non-convergence converged = false, and qr reruns when
//                  options.fallback).
//   batched_jacobi GPU: cuSOLVER gesvdjBatched, m, n <= 32 (svd_batched); cuSOLVER reports
//                  no sweeps or residual for it.
//   randomized     GPU: cuSOLVER Xgesvdr, top-k only (options.k > 0), with options.oversampling
//                  and options.power_iterations; Xgesvdr needs k + oversampling < min(m, n).
//   gram           problem 1.5: G = X^T X, eigen-decomposition G = V diag(lambda) V^T sorted
//                  descending, S = sqrt(max(lambda, 0)), U = X V / S. CPU: cyclic Jacobi
//                  eigen-solver (double); GPU: cuBLAS syrk + cuSOLVER syevd (precision of T).
//                  Squares the condition number: lambda carries an absolute error
//                  ~ eps * lambda_0 (eps of the computing precision: double on the CPU, T on
//                  the GPU), so a singular value below sqrt(eps * min(m, n)) * S[0] is noise;
//                  it is set to 0, counted in SvdReport::dropped, and its U column completed
//                  to an orthonormal basis instead of divided by 0 (options.rank_tolerance
//                  overrides the threshold). Kept values carry relative errors
//                  ~ eps (S[0] / S[i])^2, and their U columns are orthogonal only to that
//                  level. Use it on well-conditioned input only (DESIGN.md errata 1.5).
//   auto_          svd_method() below: qr on the CPU; on the GPU batched_jacobi for many small
//                  matrices, randomized for a small top-k, qr otherwise.
// On the CPU, jacobi, batched_jacobi and randomized (GPU drivers) run qr and report it.
// On the GPU every method factors the tall one of X and X^T (cuSOLVER is column-major: the
// row-major X is the column-major X^T; gesvd needs rows >= cols), so m < n and the Gram matrix
// of the smaller side (X X^T when m < n) come for free; kernels/linalg.cu has the details.
//
// X with NaN or Inf, empty shapes, k > min(m, n) and bad options throw genai::ArgumentError
// naming the argument; outputs are then untouched.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "genai/context.hpp"

namespace genai {

enum class SvdMethod { auto_, qr, jacobi, batched_jacobi, randomized, gram };

std::string to_string(SvdMethod m);               // "auto", "qr", ...
SvdMethod svd_method_from_name(const std::string& name);  // throws ArgumentError

struct SvdOptions {
  SvdMethod method = SvdMethod::auto_;
  bool full = false;          // U [m x m], Vt [n x n] (k must be 0)
  std::int64_t k = 0;         // top-k; 0: all min(m, n)
  double tolerance = 0;       // jacobi convergence tolerance; 0: machine precision of T
  int max_sweeps = 100;       // jacobi sweeps (gesvdj; the CPU gram eigen-solver)
  bool fallback = true;       // jacobi: rerun with qr when gesvdj does not converge
  int oversampling = 10;      // randomized: extra columns of the sketch
  int power_iterations = 2;   // randomized: subspace iterations
  double rank_tolerance = 0;  // gram: S[i] <= rank_tolerance * S[0] is set to 0; 0: default
};

template <class T>
struct SvdOutputs {
  T* U = nullptr;   // may be null
  T* S = nullptr;   // required
  T* Vt = nullptr;  // may be null
};

struct SvdReport {
  SvdMethod method = SvdMethod::qr;  // the method that produced the outputs
  std::string driver;                // "LAPACKE_dgesdd", "cusolverDnSgesvdj", "jacobi-eigen", ...
  int sweeps = 0;                    // jacobi / gram eigen-solver sweeps (max over a batch)
  double residual = 0;               // gesvdj's reported residual (max over a batch)
  bool converged = true;             // false: the iterative method stopped at max_sweeps
  bool fell_back = false;            // jacobi did not converge and qr produced the outputs
  std::int64_t dropped = 0;          // gram: singular values set to 0 (summed over a batch)
};

// The method svd / svd_batched run on `device` for `batch` matrices [m x n] and `options`:
// options.method when it is not auto_ (on the CPU, qr in place of the GPU drivers jacobi,
// batched_jacobi and randomized); for auto_:
//   CPU                                              qr (LAPACKE gesdd)
//   GPU, batch > 1 and m, n <= 32                    batched_jacobi (one cuSOLVER call)
//   GPU, k > 0 and (k + oversampling) * 4 <= min(m, n)  randomized (sketch <= min(m, n) / 4)
//   GPU, otherwise                                   qr (gesvd)
// Issue 6's shapes: tall-skinny 100000 x 256 -> qr, square 4096 x 4096 -> qr, 10000 x 16 x 16
// batched -> batched_jacobi, top-32 of 50000 x 2000 -> randomized. Never gram: it squares the
// condition number. A first rule from the drivers' documented strengths, not yet measured. The
// Gpu_Svd rows of profiling/bench_linalg.cpp (auto and the candidate methods on each shape,
// beside torch.linalg.svd from profiling/peers) confirm or revise it: jacobi ahead of qr on the
// tall-skinny or square row moves that shape to jacobi; randomized at k = 32, 128 and 480 (the
// factor-4 limit) against qr's k-independent time places the randomized threshold; the batched
// rows at 16 x 16 and 32 x 32, and one 16 x 16 matrix, place the batched_jacobi one.
SvdMethod svd_method(Device device, std::int64_t batch, std::int64_t m, std::int64_t n,
                     const SvdOptions& options);

SvdReport svd(const Context& ctx, const float* X, std::int64_t m, std::int64_t n,
              const SvdOptions& options, const SvdOutputs<float>& out);
SvdReport svd(const Context& ctx, const double* X, std::int64_t m, std::int64_t n,
              const SvdOptions& options, const SvdOutputs<double>& out);

// `batch` matrices of one shape, each stored as above, one after another:
// X [batch x m x n], U [batch x m x ku], S [batch x k], Vt [batch x kv x n].
SvdReport svd_batched(const Context& ctx, const float* X, std::int64_t batch, std::int64_t m,
                      std::int64_t n, const SvdOptions& options, const SvdOutputs<float>& out);
SvdReport svd_batched(const Context& ctx, const double* X, std::int64_t batch, std::int64_t m,
                      std::int64_t n, const SvdOptions& options, const SvdOutputs<double>& out);

// ---- spectra (host arrays, descending singular values) -----------------------------------------

// Energy sum_i S[i]^2 (1.2: 139.39 for [10, 5, 3, 2, 1, 0.5, 0.3, 0.2, 0.1, 0.05]).
double spectrum_energy(std::span<const double> S);
// The smallest r with sum_{i<r} S[i]^2 >= fraction * energy, fraction in (0, 1]
// (1.2: 3 for 0.9, 4 for 0.99).
std::int64_t components_for_energy(std::span<const double> S, double fraction);
// Eckart-Young: || X - X_r ||_F = sqrt(sum_{i>=r} S[i]^2) for the best rank-r X_r.
double truncation_error(std::span<const double> S, std::int64_t r);
// X_r = U[:, :r] diag(S[:r]) Vt[:r, :] into out [m x n], from an SVD of rank `rank` (U [m x
// rank], S [rank], Vt [rank x n]), r <= rank. Host arrays; double accumulation.
void reconstruct(const float* U, const float* S, const float* Vt, std::int64_t m,
                 std::int64_t n, std::int64_t rank, std::int64_t r, float* out);
void reconstruct(const double* U, const double* S, const double* Vt, std::int64_t m,
                 std::int64_t n, std::int64_t rank, std::int64_t r, double* out);

// ---- PCA and whitening (host arrays; the SVD runs on ctx) ----------------------------------------
//
// Data X [n_samples x n_features], row-major, one sample a row. With mean mu and the economy SVD
// X - mu = U diag(S) Vt: components = the first r rows of Vt, explained_variance[i] =
// S[i]^2 / (n_samples - 1), ratio = explained_variance / total variance (all components).
// transform: Z = (X - mu) Vt[:r]^T, and with whiten Z[:, i] /= S[i] / sqrt(n_samples - 1), so
// that Cov(Z) = Z^T Z / (n_samples - 1) = I (DESIGN.md errata 1.3(a): centring and the
// sqrt(n - 1) factor). inverse_transform maps Z back to mu + Z Vt[:r] (undoing the scaling).
// With whiten, components whose S[i] <= rank_tolerance * S[0] would be divided by ~0: they are
// dropped and counted in `dropped` (errata 1.3(c)).
struct PcaOptions {
  // 0: all min(n_samples, n_features); in (0, 1): the fewest components whose explained
  // variance ratio sums to at least that fraction; an integer >= 1: that many.
  double n_components = 0;
  bool whiten = false;
  SvdMethod method = SvdMethod::auto_;
  double rank_tolerance = 1e-10;  // whitening drops S[i] <= rank_tolerance * S[0]
};

struct Pca {
  std::int64_t n_samples = 0, n_features = 0, n_components = 0;
  bool whiten = false;
  std::vector<double> mean;                      // [n_features]
  std::vector<double> components;                // [n_components x n_features], row-major
  std::vector<double> singular_values;           // [n_components]
  std::vector<double> explained_variance;        // [n_components]
  std::vector<double> explained_variance_ratio;  // [n_components]
  std::vector<double> spectrum;  // all min(n_samples, n_features) singular values of X - mu
  double total_variance = 0;                     // sum over all components
  std::int64_t dropped = 0;                      // components dropped by whitening
  SvdReport report;
};

Pca pca_fit(const Context& ctx, const float* X, std::int64_t n_samples, std::int64_t n_features,
            const PcaOptions& options = {});
Pca pca_fit(const Context& ctx, const double* X, std::int64_t n_samples,
            std::int64_t n_features, const PcaOptions& options = {});
// Z [rows x n_components] from X [rows x n_features], and back.
void pca_transform(const Pca& p, const float* X, std::int64_t rows, float* Z);
void pca_transform(const Pca& p, const double* X, std::int64_t rows, double* Z);
void pca_inverse_transform(const Pca& p, const float* Z, std::int64_t rows, float* X);
void pca_inverse_transform(const Pca& p, const double* Z, std::int64_t rows, double* X);

}  // namespace genai
