// CPU backend of the Neural ODE layer's stepping primitives (host memory): the loops over the
// formulas of genai/detail/neural_ode.hpp. The MLP evaluations go through genai::Mlp; the
// stepping itself is host/src/neural_ode.cpp's, the same code for both backends. Arguments
// are checked there.
#pragma once

#include <cstdint>

#include "genai/detail/neural_ode.hpp"

namespace genai::ref {

// out[i] = node_combine(base, scale, terms, i), i < n, scale = the clock's h (use_h) or 1; also
// copied to tape[i] when tape is not null. out may be base or one of the terms' arrays (each
// element is read before it is written).
void node_combine(std::int64_t n, float* out, const float* base, bool use_h,
                  const detail::NodeClock& clock, const detail::NodeTerms& terms, float* tape);

// x [batch x (d + 1)]: row r is y's row r, then the stage time node_stage_time(clock, ck).
void node_pack_time(std::int64_t batch, std::int64_t d, const float* y,
                    const detail::NodeClock& clock, double ck, float* x);

// dst[r * cols + c] = alpha * src[r * ld + c], r < rows, c < cols.
void node_scale_columns(std::int64_t rows, std::int64_t cols, const float* src, std::int64_t ld,
                        float alpha, float* dst);

// sum_i node_scaled_square(x[i], ya[i], yb[i], atol, rtol), i < n, in double.
double node_sum_scaled_squares(std::int64_t n, const float* x, const float* ya, const float* yb,
                               double atol, double rtol);

}  // namespace genai::ref
