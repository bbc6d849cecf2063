// cuSOLVER / cuBLAS glue of the linalg module (genai::cuda, internal).
#pragma once

#include <cstdint>

#include "genai/context.hpp"
#include "genai/linalg.hpp"

namespace genai::cuda {

// genai::svd_batched on device pointers; options.method already resolved (not auto_) and every
// argument checked. Layouts as in linalg.hpp.
template <class T>
SvdReport svd(const Context& ctx, const T* X, std::int64_t batch, std::int64_t m,
              std::int64_t n, const SvdOptions& options, const SvdOutputs<T>& out);

}  // namespace genai::cuda
