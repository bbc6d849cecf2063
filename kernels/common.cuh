// What every kernel file includes: under nvcc, the device toolbox (genai/detail/device.cuh:
// launch, grid shapes, grid-stride ranges, warp/block reductions, 16-byte access); everywhere,
// the shared out-of-line launchers below (defined in kernels/common.cu), declared with plain
// types so that host/src can call them from ordinary C++.
#pragma once

#include <cstdint>

#include "genai/context.hpp"
#if defined(__CUDACC__)
#include "genai/detail/device.cuh"
#endif

namespace genai::cuda {

// Index of the first non-finite element of x[n] (device memory), or -1; synchronises.
// Defined for float and double.
template <class T>
std::int64_t first_non_finite(const Context& ctx, const T* x, std::int64_t n);

}  // namespace genai::cuda
