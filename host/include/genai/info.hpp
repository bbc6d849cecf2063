// Information theory and norms, batched over rows (problem set 3.3, 6.1, 6.2).
//
// Inputs are row-major [rows x K]: `rows` vectors or discrete distributions of K entries each.
// Each function writes one value per row to out[rows]. Pointers are host pointers with a CPU
// context, device pointers with a CUDA context.
//
//   l1_norm          sum_k |x_k|
//   l2_norm_squared  sum_k x_k^2
//   entropy          H(p)    = -sum_k p_k log p_k          (0 log 0 = 0)
//   kl_divergence    KL(p||q) = sum_k p_k log(p_k / q_k)   (terms with p_k = 0 are 0;
//                                                           q_k = 0 < p_k gives +inf)
//   cross_entropy    H(p, q) = -sum_k p_k log q_k = H(p) + KL(p||q)   (+inf likewise)
//
// Distributions are validated (InfoOptions::validate, default on): every entry finite and
// >= 0, every row summing to 1 within sum_tolerance. Bad input throws genai::ArgumentError
// naming the argument, the row and the value, and leaves `out` untouched. On the GPU the check
// is fused into the same pass but costs one stream synchronisation; validate = false makes the
// call asynchronous.
#pragma once

#include <cstdint>

#include "genai/context.hpp"

namespace genai {

enum class LogBase { Bits, Nats };

struct InfoOptions {
  LogBase base = LogBase::Bits;   // log2 (bits) or ln (nats)
  bool validate = true;           // check that p (and q) are distributions
  double sum_tolerance = 1e-4;    // |sum_k p_k - 1| allowed per row
};

void l1_norm(const Context& ctx, const float* x, std::int64_t rows, std::int64_t K, float* out);
void l2_norm_squared(const Context& ctx, const float* x, std::int64_t rows, std::int64_t K,
                     float* out);
void entropy(const Context& ctx, const float* p, std::int64_t rows, std::int64_t K, float* out,
             const InfoOptions& opts = {});
void kl_divergence(const Context& ctx, const float* p, const float* q, std::int64_t rows,
                   std::int64_t K, float* out, const InfoOptions& opts = {});
void cross_entropy(const Context& ctx, const float* p, const float* q, std::int64_t rows,
                   std::int64_t K, float* out, const InfoOptions& opts = {});

}  // namespace genai
