// The element formulas of the Neural ODE layer (genai/neural_ode.hpp), once for the CPU
// reference (cpu_reference/neural_ode.cpp) and the kernels (kernels/neural_ode.cu): the step's
// clock, a stage time, the stage sums and the error norm's terms. Internal.
//
// Every step-dependent number a step's kernels need -- t, h and the step's end -- is read from
// a NodeClock in the backend's memory, written once per step (detail::run_set_clock), so that
// a step's launches do not change from step to step and can be replayed as one CUDA graph.
#pragma once

#include <cstdint>

#include "genai/detail/hd.hpp"

namespace genai::detail {

struct NodeClock {
  double t;       // the step's start
  double h;       // its signed size
  double t_next;  // its end (exactly the recorded time when the step lands on one)
};

// Stage k's time t + c_k h, the step's end exactly when c_k = 1 (as genai::ode_solve), in
// float: the MLP's time column.
GENAI_HD float node_stage_time(const NodeClock& c, double ck) {
  return static_cast<float>(ck == 1.0 ? c.t_next : c.t + ck * c.h);
}

// Up to 7 arrays with their coefficients (a tableau's row).
inline constexpr int kNodeMaxTerms = 7;
struct NodeTerms {
  const float* x[kNodeMaxTerms];
  float coef[kNodeMaxTerms];
  int count;
};

// out_i = base_i + scale (sum_j coef_j x_j[i]), the sum in float in j order, base 0 when null:
// a stage input y + h sum_j a_kj k_j (scale = h), a step y + h sum b_j k_j, an error estimate
// h sum e_j k_j (no base), the backprop's sums. scale = the clock's h rounded to float, or 1.
GENAI_HD float node_combine(const float* base, float scale, const NodeTerms& t, std::int64_t i) {
  float acc = 0.0f;
  for (int j = 0; j < kNodeMaxTerms; ++j)
    if (j < t.count) acc += t.coef[j] * t.x[j][i];
  const float s = scale * acc;
  return base ? base[i] + s : s;
}

// (x / (atol + rtol max(|ya|, |yb|)))^2 in double: one term of the RMS error norm (SciPy's
// RK45: ya, yb the step's start and end) or of Hairer's first-step norms (yb = ya). x = 0 gives
// 0 also where the scale is 0 (atol = 0 at y = 0, and the flat parameter buffer's padding,
// which is 0 in every array).
GENAI_HD double node_scaled_square(float x, float ya, float yb, double atol, double rtol) {
  if (x == 0.0f) return 0.0;
  const double a = ya < 0 ? -double(ya) : double(ya), b = yb < 0 ? -double(yb) : double(yb);
  const double q = double(x) / (atol + rtol * (a > b ? a : b));
  return q * q;
}

}  // namespace genai::detail
