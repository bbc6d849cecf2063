// CUDA launcher of the info module (genai::cuda, internal).
#pragma once

#include <cstdint>

#include "genai/context.hpp"
#include "genai/detail/info.hpp"
#include "genai/info.hpp"

namespace genai::cuda {

// The op over each row of p (and q) on device pointers, one value per row into out. With
// `validate`, p (and q) are checked as distributions in the same pass: the first bad row is
// returned (-1 when all passed) and `out` is then left untouched.
std::int64_t info_rows(const Context& ctx, detail::InfoOp op, const float* p, const float* q,
                       std::int64_t rows, std::int64_t K, LogBase base, bool validate,
                       double sum_tolerance, float* out);

}  // namespace genai::cuda
