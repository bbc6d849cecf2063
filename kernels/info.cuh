// CUDA launcher of the info module (genai::cuda, internal).
#pragma once

#include <cstdint>

#include "cpu_reference/info.hpp"
#include "genai/context.hpp"

namespace genai::cuda {

// The op of ref::info_rows on device pointers. With `validate`, p (and q) are checked as
// distributions in the same pass; a bad row throws ArgumentError (as ref::check_distributions
// words it, for function `fn`) and leaves `out` untouched.
void info_rows(const Context& ctx, const char* fn, ref::InfoOp op, const float* p,
               const float* q, std::int64_t rows, std::int64_t K, LogBase base, bool validate,
               double sum_tolerance, float* out);

}  // namespace genai::cuda
