#include "cpu_reference/info.hpp"

#include <cmath>
#include <limits>

#include "genai/error.hpp"

namespace genai::ref {

static double term(InfoOp op, double p, double q) {
  switch (op) {
    case InfoOp::L1: return std::abs(p);
    case InfoOp::L2Squared: return p * p;
    case InfoOp::Entropy: return p > 0 ? -p * std::log(p) : 0.0;
    case InfoOp::KL: return p > 0 ? p * (std::log(p) - std::log(q)) : 0.0;  // q = 0: +inf
    case InfoOp::CrossEntropy: return p > 0 ? -p * std::log(q) : 0.0;
  }
  return std::numeric_limits<double>::quiet_NaN();
}

void info_rows(InfoOp op, const float* p, const float* q, std::int64_t rows, std::int64_t K,
               LogBase base, float* out) {
  const bool logarithmic = op == InfoOp::Entropy || op == InfoOp::KL || op == InfoOp::CrossEntropy;
  const double scale = logarithmic && base == LogBase::Bits ? 1.0 / std::log(2.0) : 1.0;
  for (std::int64_t r = 0; r < rows; ++r) {
    double acc = 0.0;
    for (std::int64_t k = 0; k < K; ++k)
      acc += term(op, p[r * K + k], q ? q[r * K + k] : 0.0);
    out[r] = static_cast<float>(acc * scale);
  }
}

void check_distributions(const char* fn, const char* arg, const float* p, std::int64_t rows,
                         std::int64_t K, double tolerance, std::int64_t row_offset) {
  for (std::int64_t r = 0; r < rows; ++r) {
    double sum = 0.0;
    for (std::int64_t k = 0; k < K; ++k) {
      const float v = p[r * K + k];
      if (!std::isfinite(v) || v < 0.0f)
        detail::throw_argument(fn, arg, "row ", row_offset + r, " entry ", k, " is ", v,
                               " (probabilities must be finite and >= 0)");
      sum += v;
    }
    if (std::abs(sum - 1.0) > tolerance)
      detail::throw_argument(fn, arg, "row ", row_offset + r, " sums to ", sum,
                             " (must be 1 within sum_tolerance ", tolerance, ")");
  }
}

}  // namespace genai::ref
