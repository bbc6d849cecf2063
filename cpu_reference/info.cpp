#include "cpu_reference/info.hpp"

#include <cmath>

#include "genai/error.hpp"

namespace genai::ref {

void info_rows(InfoOp op, const float* p, const float* q, std::int64_t rows, std::int64_t K,
               LogBase base, float* out) {
  const bool bits = detail::info_is_logarithmic(op) && base == LogBase::Bits;
  const double scale = bits ? 1.0 / std::log(2.0) : 1.0;
  for (std::int64_t r = 0; r < rows; ++r) {
    double acc = 0.0;
    for (std::int64_t k = 0; k < K; ++k)
      acc += detail::info_term<double>(op, p[r * K + k], q ? q[r * K + k] : 0.0);
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
