// CPU reference of the ODE module: the rows of genai/detail/ode.hpp's state machine in double.
//
// Built-in problems run row by row (ode_row, the kernels' loop), chunks of rows on the backend's
// threads; a batched callable (on the calling thread) runs the same
// per-row calls in lockstep over the rows still integrating, one f call per stage, so a neural
// f sees GEMM-sized batches. Both give a row the same sequence of operations, hence the same
// bits for the same f.
#pragma once

#include <cstdint>

#include "genai/detail/ode.hpp"
#include "genai/ode.hpp"

namespace genai::ref {

// y [batch x d] in place; rows[batch] receives each row's final state (status, counts). No
// validation: detail::check_ode's job.
void ode_solve(const detail::BuiltinOde& f, const detail::OdeSetup<double>& setup, double* y,
               detail::OdeRow<double>* rows);
void ode_solve(const OdeFunction& f, const detail::OdeSetup<double>& setup, double* y,
               detail::OdeRow<double>* rows);

}  // namespace genai::ref
