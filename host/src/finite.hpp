// Finiteness checks of host or device data, shared by the modules' argument checks and
// divergence reports. Internal to host/src.
#pragma once

#include <cstdint>

#include "genai/context.hpp"

namespace genai::detail {

// Index of the first non-finite entry of x[n] (host or device memory, as ctx says), or -1.
// On a CUDA context: one kernel pass and a synchronisation.
template <class T>
std::int64_t first_non_finite(const Context& ctx, const T* x, std::int64_t n);

// The rows of x [rows x cols] (host or device) holding a non-finite entry: how many, and the
// first (-1 when none). One kernel pass and a synchronisation on a CUDA context; the rows are
// counted on the host only when there is one.
struct NonFiniteRows {
  std::int64_t count = 0, first = -1;
};
NonFiniteRows non_finite_rows(const Context& ctx, const float* x, std::int64_t rows,
                              std::int64_t cols);

// Throws ArgumentError "<fn>: argument '<arg>' entry i (row r, column c) is v (must be
// finite)" for the first non-finite entry of X [rows x cols].
template <class T>
void require_finite_matrix(const Context& ctx, const char* fn, const char* arg, const T* X,
                           std::int64_t rows, std::int64_t cols);

}  // namespace genai::detail
