#include "cpu_reference/neural_ode.hpp"

namespace genai::ref {

void node_combine(std::int64_t n, float* out, const float* base, bool use_h,
                  const detail::NodeClock& clock, const detail::NodeTerms& terms, float* tape) {
  const float scale = use_h ? static_cast<float>(clock.h) : 1.0f;
  for (std::int64_t i = 0; i < n; ++i) {
    const float v = detail::node_combine(base, scale, terms, i);
    out[i] = v;
    if (tape) tape[i] = v;
  }
}

void node_pack_time(std::int64_t batch, std::int64_t d, const float* y,
                    const detail::NodeClock& clock, double ck, float* x) {
  const float t = detail::node_stage_time(clock, ck);
  for (std::int64_t r = 0; r < batch; ++r) {
    for (std::int64_t c = 0; c < d; ++c) x[r * (d + 1) + c] = y[r * d + c];
    x[r * (d + 1) + d] = t;
  }
}

void node_scale_columns(std::int64_t rows, std::int64_t cols, const float* src, std::int64_t ld,
                        float alpha, float* dst) {
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) dst[r * cols + c] = alpha * src[r * ld + c];
}

double node_sum_scaled_squares(std::int64_t n, const float* x, const float* ya, const float* yb,
                               double atol, double rtol) {
  double s = 0.0;
  for (std::int64_t i = 0; i < n; ++i)
    s += detail::node_scaled_square(x[i], ya[i], yb[i], atol, rtol);
  return s;
}

}  // namespace genai::ref
