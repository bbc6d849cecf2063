// CPU reference of the info module: straightforward loops, double accumulation.
#pragma once

#include <cstdint>

#include "genai/detail/info.hpp"
#include "genai/info.hpp"

namespace genai::ref {

using detail::InfoOp;

// out[r] = the op over row r of p (and q for KL / cross-entropy), in `base` for the
// logarithmic ops. No validation: that is check_distributions' job.
void info_rows(InfoOp op, const float* p, const float* q, std::int64_t rows, std::int64_t K,
               LogBase base, float* out);

// Throws ArgumentError "<fn>: argument '<arg>' row <row_offset + r> ..." for the first row
// with a negative or non-finite entry or a sum off 1 by more than `tolerance`.
void check_distributions(const char* fn, const char* arg, const float* p, std::int64_t rows,
                         std::int64_t K, double tolerance, std::int64_t row_offset = 0);

}  // namespace genai::ref
