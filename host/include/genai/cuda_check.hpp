// Status checks for CUDA, cuBLAS and cuSOLVER calls, reported as genai::Error with file:line.
// For CUDA builds only (host/src and kernels/ include it; so can users' CUDA code).
#pragma once

#include <cublas_api.h>
#include <cuda_runtime_api.h>
#include <cusolver_common.h>

#include "genai/error.hpp"

namespace genai::detail {
[[noreturn]] void throw_cuda(cudaError_t e, const char* expr, const char* file, int line);
[[noreturn]] void throw_cublas(cublasStatus_t s, const char* expr, const char* file, int line);
[[noreturn]] void throw_cusolver(cusolverStatus_t s, const char* expr, const char* file, int line);
}  // namespace genai::detail

#define GENAI_CUDA_CHECK(expr)                                                          \
  do {                                                                                  \
    const cudaError_t genai_status_ = (expr);                                           \
    if (genai_status_ != cudaSuccess)                                                   \
      ::genai::detail::throw_cuda(genai_status_, #expr, __FILE__, __LINE__);            \
  } while (0)

#define GENAI_CUBLAS_CHECK(expr)                                                        \
  do {                                                                                  \
    const cublasStatus_t genai_status_ = (expr);                                        \
    if (genai_status_ != CUBLAS_STATUS_SUCCESS)                                         \
      ::genai::detail::throw_cublas(genai_status_, #expr, __FILE__, __LINE__);          \
  } while (0)

#define GENAI_CUSOLVER_CHECK(expr)                                                      \
  do {                                                                                  \
    const cusolverStatus_t genai_status_ = (expr);                                      \
    if (genai_status_ != CUSOLVER_STATUS_SUCCESS)                                       \
      ::genai::detail::throw_cusolver(genai_status_, #expr, __FILE__, __LINE__);        \
  } while (0)

// After every kernel launch: a bad configuration surfaces here, not at the next sync.
#define GENAI_LAUNCH_CHECK() GENAI_CUDA_CHECK(cudaGetLastError())
