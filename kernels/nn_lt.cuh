// cuBLASLt bindings of the nn module (internal to kernels/nn.cu): one fp32 GEMM with an epilogue,
// planned once (descriptors + the heuristic's algorithm) and run many times.
//
// Column-major terms, as cuBLASLt: D [m x n] (ld ldd) = op(A) op(B) + beta C, C with D's layout,
// then the epilogue. A row-major [r x c] array is a column-major [c x r] one with the same
// leading dimension, so the nn layer's row-major products map to:
//   forward   y^T [out x N]  = W^T(op T of W's [in x out]) x^T [in x N]          (+ bias: rows)
//   dW        dW^T [in x out] = x^T [in x N] (dz^T [out x N])^T                  (BGRADB: cols)
//   dx        dx^T [in x N]  = W^T [in x out] dz^T [out x N]       (DRELU/DGELU_BGRAD: rows)
// A cublasHandle_t is also a valid cublasLtHandle_t (cuBLAS documents the cast).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "genai/context.hpp"
#include "genai/cuda_check.hpp"
#include "genai/detail/nn.hpp"

namespace genai::detail {

// What a GEMM is, for planning: shapes, epilogue, and the pointer facts its algorithm depends
// on (alignments of A, B, C, D; the bias and aux pointers themselves).
struct LtCall {
  cublasOperation_t ta = CUBLAS_OP_N, tb = CUBLAS_OP_N;
  std::int64_t m = 0, n = 0, k = 0, lda = 0, ldb = 0, ldd = 0;
  float beta = 0.0f;
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;  // bias, or the bias gradient written by a BGRAD epilogue
  const void* aux = nullptr;   // ReLU mask or GELU input
  std::int64_t aux_ld = 0;
  std::uint32_t align_a = 0, align_b = 0, align_c = 0, align_d = 0;
  bool operator==(const LtCall&) const = default;
};

// Largest power of two (<= 256, cuBLASLt's default assumption) dividing the address.
inline std::uint32_t lt_alignment(const void* p) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  std::uint32_t align = 256;
  while (align > 4 && a % align != 0) align /= 2;
  return align;
}

class LtPlan {
 public:
  LtPlan(const LtPlan&) = delete;
  LtPlan& operator=(const LtPlan&) = delete;
  ~LtPlan() {
    if (pref_) cublasLtMatmulPreferenceDestroy(pref_);
    for (auto* l : {a_, b_, d_})
      if (l) cublasLtMatrixLayoutDestroy(l);
    if (desc_) cublasLtMatmulDescDestroy(desc_);
  }

  explicit LtPlan(const LtCall& c) : call_(c) {}

  // Plans the call for a workspace of `workspace_bytes`; supported() is false when cuBLASLt
  // offers no algorithm for it (an epilogue it does not run for these types, shapes or
  // alignments: the heuristic answers NOT_SUPPORTED, INVALID_VALUE or nothing).
  void plan(cublasLtHandle_t h, std::size_t workspace_bytes) {
    const LtCall& c = call_;
    GENAI_CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc_, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    set(CUBLASLT_MATMUL_DESC_TRANSA, c.ta);
    set(CUBLASLT_MATMUL_DESC_TRANSB, c.tb);
    set(CUBLASLT_MATMUL_DESC_EPILOGUE, c.epilogue);
    if (c.bias) set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, c.bias);
    if (c.aux) {
      set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, c.aux);
      set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, c.aux_ld);
    }
    const bool an = c.ta == CUBLAS_OP_N, bn = c.tb == CUBLAS_OP_N;
    GENAI_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&a_, CUDA_R_32F, an ? c.m : c.k,
                                                  an ? c.k : c.m, c.lda));
    GENAI_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&b_, CUDA_R_32F, bn ? c.k : c.n,
                                                  bn ? c.n : c.k, c.ldb));
    GENAI_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d_, CUDA_R_32F, c.m, c.n, c.ldd));
    GENAI_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref_));
    pref(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, static_cast<std::uint64_t>(workspace_bytes));
    pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, c.align_a);
    pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, c.align_b);
    pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, c.align_c);
    pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, c.align_d);
    cublasLtMatmulHeuristicResult_t result = {};
    int found = 0;
    const cublasStatus_t s =
        cublasLtMatmulAlgoGetHeuristic(h, desc_, a_, b_, d_, d_, pref_, 1, &result, &found);
    if (s == CUBLAS_STATUS_NOT_SUPPORTED || s == CUBLAS_STATUS_INVALID_VALUE ||
        (s == CUBLAS_STATUS_SUCCESS && found == 0))
      return;
    GENAI_CUBLAS_CHECK(s);
    algo_ = result.algo;
    supported_ = true;
  }

  const LtCall& call() const { return call_; }
  bool supported() const { return supported_; }

  // D = op(A) op(B) + beta C, then the epilogue, on `stream`. C may be D.
  void run(cublasLtHandle_t h, const float* A, const float* B, const float* C, float* D,
           void* workspace, std::size_t workspace_bytes, cudaStream_t stream) const {
    const float alpha = 1.0f;
    GENAI_CUBLAS_CHECK(cublasLtMatmul(h, desc_, &alpha, A, a_, B, b_, &call_.beta, C, d_, D, d_,
                                      &algo_, workspace, workspace_bytes, stream));
  }

 private:
  template <class T>
  void set(cublasLtMatmulDescAttributes_t attr, const T& v) {
    GENAI_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, attr, &v, sizeof(v)));
  }
  template <class T>
  void pref(cublasLtMatmulPreferenceAttributes_t attr, const T& v) {
    GENAI_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref_, attr, &v, sizeof(v)));
  }

  LtCall call_;
  cublasLtMatmulDesc_t desc_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, d_ = nullptr;
  cublasLtMatmulPreference_t pref_ = nullptr;
  cublasLtMatmulAlgo_t algo_ = {};
  bool supported_ = false;
};

// Planned GEMMs by call (a training step's dozen GEMMs, with their fallbacks).
struct GemmCache {
  static constexpr std::size_t kMaxPlans = 64;
  std::vector<std::unique_ptr<LtPlan>> plans;
};

}  // namespace genai::detail
