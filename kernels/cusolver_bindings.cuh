// The cuSOLVER and cuBLAS calls of the linalg module bound once by element type (float / double
// overloads of one name, as Ginkgo's cuda/base/cusolver_bindings.hpp), the RAII holders of their
// parameter objects, and the checks of their answers. Internal to kernels/.
#pragma once

#include <cublas_v2.h>
#include <cusolverDn.h>

#include <algorithm>
#include <cstddef>
#include <vector>

#include "genai/cuda_check.hpp"
#include "genai/error.hpp"

namespace genai::cuda::bindings {

inline cusolverStatus_t gesvd_lwork(cusolverDnHandle_t h, int m, int n, int* lw, const float*) {
  return cusolverDnSgesvd_bufferSize(h, m, n, lw);
}
inline cusolverStatus_t gesvd_lwork(cusolverDnHandle_t h, int m, int n, int* lw, const double*) {
  return cusolverDnDgesvd_bufferSize(h, m, n, lw);
}
inline cusolverStatus_t gesvd(cusolverDnHandle_t h, signed char ju, signed char jv, int m, int n,
                              float* A, int lda, float* S, float* U, int ldu, float* VT, int ldvt,
                              float* w, int lw, float* rw, int* info) {
  return cusolverDnSgesvd(h, ju, jv, m, n, A, lda, S, U, ldu, VT, ldvt, w, lw, rw, info);
}
inline cusolverStatus_t gesvd(cusolverDnHandle_t h, signed char ju, signed char jv, int m, int n,
                              double* A, int lda, double* S, double* U, int ldu, double* VT,
                              int ldvt, double* w, int lw, double* rw, int* info) {
  return cusolverDnDgesvd(h, ju, jv, m, n, A, lda, S, U, ldu, VT, ldvt, w, lw, rw, info);
}
inline cusolverStatus_t gesvdj_lwork(cusolverDnHandle_t h, cusolverEigMode_t jz, int econ, int m,
                                     int n, const float* A, int lda, const float* S, const float* U,
                                     int ldu, const float* V, int ldv, int* lw, gesvdjInfo_t p) {
  return cusolverDnSgesvdj_bufferSize(h, jz, econ, m, n, A, lda, S, U, ldu, V, ldv, lw, p);
}
inline cusolverStatus_t gesvdj_lwork(cusolverDnHandle_t h, cusolverEigMode_t jz, int econ, int m,
                                     int n, const double* A, int lda, const double* S,
                                     const double* U, int ldu, const double* V, int ldv, int* lw,
                                     gesvdjInfo_t p) {
  return cusolverDnDgesvdj_bufferSize(h, jz, econ, m, n, A, lda, S, U, ldu, V, ldv, lw, p);
}
inline cusolverStatus_t gesvdj(cusolverDnHandle_t h, cusolverEigMode_t jz, int econ, int m, int n,
                               float* A, int lda, float* S, float* U, int ldu, float* V, int ldv,
                               float* w, int lw, int* info, gesvdjInfo_t p) {
  return cusolverDnSgesvdj(h, jz, econ, m, n, A, lda, S, U, ldu, V, ldv, w, lw, info, p);
}
inline cusolverStatus_t gesvdj(cusolverDnHandle_t h, cusolverEigMode_t jz, int econ, int m, int n,
                               double* A, int lda, double* S, double* U, int ldu, double* V,
                               int ldv, double* w, int lw, int* info, gesvdjInfo_t p) {
  return cusolverDnDgesvdj(h, jz, econ, m, n, A, lda, S, U, ldu, V, ldv, w, lw, info, p);
}
inline cusolverStatus_t gesvdj_batched_lwork(cusolverDnHandle_t h, cusolverEigMode_t jz, int m,
                                             int n, const float* A, int lda, const float* S,
                                             const float* U, int ldu, const float* V, int ldv,
                                             int* lw, gesvdjInfo_t p, int batch) {
  return cusolverDnSgesvdjBatched_bufferSize(h, jz, m, n, A, lda, S, U, ldu, V, ldv, lw, p,
                                             batch);
}
inline cusolverStatus_t gesvdj_batched_lwork(cusolverDnHandle_t h, cusolverEigMode_t jz, int m,
                                             int n, const double* A, int lda, const double* S,
                                             const double* U, int ldu, const double* V, int ldv,
                                             int* lw, gesvdjInfo_t p, int batch) {
  return cusolverDnDgesvdjBatched_bufferSize(h, jz, m, n, A, lda, S, U, ldu, V, ldv, lw, p,
                                             batch);
}
inline cusolverStatus_t gesvdj_batched(cusolverDnHandle_t h, cusolverEigMode_t jz, int m, int n,
                                       float* A, int lda, float* S, float* U, int ldu, float* V,
                                       int ldv, float* w, int lw, int* info, gesvdjInfo_t p,
                                       int batch) {
  return cusolverDnSgesvdjBatched(h, jz, m, n, A, lda, S, U, ldu, V, ldv, w, lw, info, p,
                                  batch);
}
inline cusolverStatus_t gesvdj_batched(cusolverDnHandle_t h, cusolverEigMode_t jz, int m, int n,
                                       double* A, int lda, double* S, double* U, int ldu, double* V,
                                       int ldv, double* w, int lw, int* info, gesvdjInfo_t p,
                                       int batch) {
  return cusolverDnDgesvdjBatched(h, jz, m, n, A, lda, S, U, ldu, V, ldv, w, lw, info, p,
                                  batch);
}
inline cusolverStatus_t syevd_lwork(cusolverDnHandle_t h, int n, const float* A, const float* W,
                                    int* lw) {
  return cusolverDnSsyevd_bufferSize(h, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, n, A,
                                     n, W, lw);
}
inline cusolverStatus_t syevd_lwork(cusolverDnHandle_t h, int n, const double* A, const double* W,
                                    int* lw) {
  return cusolverDnDsyevd_bufferSize(h, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, n, A,
                                     n, W, lw);
}
inline cusolverStatus_t syevd(cusolverDnHandle_t h, int n, float* A, float* W, float* w, int lw,
                              int* info) {
  return cusolverDnSsyevd(h, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, n, A, n, W, w,
                          lw, info);
}
inline cusolverStatus_t syevd(cusolverDnHandle_t h, int n, double* A, double* W, double* w, int lw,
                              int* info) {
  return cusolverDnDsyevd(h, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, n, A, n, W, w,
                          lw, info);
}
inline cusolverStatus_t geqrf_lwork(cusolverDnHandle_t h, int m, int n, float* A, int lda,
                                    int* lw) {
  return cusolverDnSgeqrf_bufferSize(h, m, n, A, lda, lw);
}
inline cusolverStatus_t geqrf_lwork(cusolverDnHandle_t h, int m, int n, double* A, int lda,
                                    int* lw) {
  return cusolverDnDgeqrf_bufferSize(h, m, n, A, lda, lw);
}
inline cusolverStatus_t geqrf(cusolverDnHandle_t h, int m, int n, float* A, int lda, float* tau,
                              float* w, int lw, int* info) {
  return cusolverDnSgeqrf(h, m, n, A, lda, tau, w, lw, info);
}
inline cusolverStatus_t geqrf(cusolverDnHandle_t h, int m, int n, double* A, int lda, double* tau,
                              double* w, int lw, int* info) {
  return cusolverDnDgeqrf(h, m, n, A, lda, tau, w, lw, info);
}
inline cusolverStatus_t orgqr_lwork(cusolverDnHandle_t h, int m, int n, int k, const float* A,
                                    int lda, const float* tau, int* lw) {
  return cusolverDnSorgqr_bufferSize(h, m, n, k, A, lda, tau, lw);
}
inline cusolverStatus_t orgqr_lwork(cusolverDnHandle_t h, int m, int n, int k, const double* A,
                                    int lda, const double* tau, int* lw) {
  return cusolverDnDorgqr_bufferSize(h, m, n, k, A, lda, tau, lw);
}
inline cusolverStatus_t orgqr(cusolverDnHandle_t h, int m, int n, int k, float* A, int lda,
                              const float* tau, float* w, int lw, int* info) {
  return cusolverDnSorgqr(h, m, n, k, A, lda, tau, w, lw, info);
}
inline cusolverStatus_t orgqr(cusolverDnHandle_t h, int m, int n, int k, double* A, int lda,
                              const double* tau, double* w, int lw, int* info) {
  return cusolverDnDorgqr(h, m, n, k, A, lda, tau, w, lw, info);
}
inline cublasStatus_t syrk_t(cublasHandle_t h, int n, int k, const float* A, int lda, float* C,
                             int ldc) {
  const float one = 1, zero = 0;
  return cublasSsyrk(h, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T, n, k, &one, A, lda, &zero, C, ldc);
}
inline cublasStatus_t syrk_t(cublasHandle_t h, int n, int k, const double* A, int lda, double* C,
                             int ldc) {
  const double one = 1, zero = 0;
  return cublasDsyrk(h, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T, n, k, &one, A, lda, &zero, C, ldc);
}
inline cublasStatus_t gemm_nn(cublasHandle_t h, int m, int n, int k, const float* A, int lda,
                              const float* B, int ldb, float* C, int ldc) {
  const float one = 1, zero = 0;
  return cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, A, lda, B, ldb, &zero, C, ldc);
}
inline cublasStatus_t gemm_nn(cublasHandle_t h, int m, int n, int k, const double* A, int lda,
                              const double* B, int ldb, double* C, int ldc) {
  const double one = 1, zero = 0;
  return cublasDgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, A, lda, B, ldb, &zero, C, ldc);
}

// Throws unless every devInfo is 0 (non-convergence included: callers that handle it check
// first).
inline void require_info_zero(const std::vector<int>& info, const char* driver) {
  for (std::size_t b = 0; b < info.size(); ++b)
    if (info[b] != 0)
      throw Error(detail::concat("genai::svd: ", driver, " failed (devInfo ", info[b],
                                 info.size() > 1 ? detail::concat(" for matrix ", b) : "", ")"));
}

// Elements to allocate for a legacy (32-bit) cuSOLVER *_bufferSize answer. A negative lwork is an
// int overflow inside the query (cupy/cupy#2351): refuse rather than under-allocate the workspace.
inline std::size_t workspace_elems(int lwork, const char* query) {
  if (lwork < 0)
    throw Error(detail::concat("genai::svd: ", query, " returned a negative workspace size (",
                               lwork, "): the matrix is too large for the 32-bit cuSOLVER API"));
  return static_cast<std::size_t>(std::max(1, lwork));
}

struct GesvdjParams {
  gesvdjInfo_t p = nullptr;
  GesvdjParams() { GENAI_CUSOLVER_CHECK(cusolverDnCreateGesvdjInfo(&p)); }
  ~GesvdjParams() { cusolverDnDestroyGesvdjInfo(p); }
  GesvdjParams(const GesvdjParams&) = delete;
  GesvdjParams& operator=(const GesvdjParams&) = delete;
};

struct DnParams {
  cusolverDnParams_t p = nullptr;
  DnParams() { GENAI_CUSOLVER_CHECK(cusolverDnCreateParams(&p)); }
  ~DnParams() { cusolverDnDestroyParams(p); }
  DnParams(const DnParams&) = delete;
  DnParams& operator=(const DnParams&) = delete;
};

}  // namespace genai::cuda::bindings
