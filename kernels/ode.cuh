// CUDA launchers of the ODE module (genai::cuda, internal).
#pragma once

#include <cstdint>

#include "genai/context.hpp"
#include "genai/detail/ode.hpp"

namespace genai::cuda {

// The built-in problem f over the rows y [batch x d] of setup (device pointers), one thread
// per row: genai/ode_device.cuh's kernels instantiated with detail::BuiltinOde.
void ode_solve(const Context& ctx, const detail::BuiltinOde& f, const detail::OdeSetup<float>& setup,
               float* y, detail::OdeRow<float>* rows);

// The initial-state scan of kernels/common.cu (declared here for host/src, which cannot
// include common.cuh).
template <class T>
std::int64_t first_non_finite(const Context& ctx, const T* x, std::int64_t n);

}  // namespace genai::cuda
