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

// The rows of rows[batch] (device memory) that did not finish: the first one's index (-1: none)
// and how many. Waits for the stream.
struct OdeFailures {
  std::int64_t first, count;
};
OdeFailures ode_failures(const Context& ctx, const detail::OdeRow<float>* rows, std::int64_t batch);

}  // namespace genai::cuda
