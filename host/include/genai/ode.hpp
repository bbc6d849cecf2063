// Batched ODE integration dy/dt = f(y, t) (problem set 2.3, 2.4; the ODE half of 2.5 and 4.3):
// Euler, explicit midpoint, classic RK4, RK4's 3/8 rule, and adaptive Dormand-Prince 5(4) with
// per-row step control.
//
// State: y is row-major [batch x d], one independent problem per row, integrated from t0 to t1
// (t1 < t0 integrates backwards in time; t1 == t0 returns y unchanged). Every row has its own
// time, step size and accept/reject decisions (dopri5), so a stiff row takes small steps
// without slowing the others -- unlike torchdiffeq, whose batch is one system with one step.
//
// Methods (tableaux in genai/detail/ode.hpp):
//   euler      y += h f(t, y)                                                    order 1 (2.4)
//   midpoint   y += h f(t + h/2, y + h/2 f(t, y))                                order 2
//   rk4        the classic Runge-Kutta method, b = (1, 2, 2, 1)/6              order 4
//   rk4_38     Kutta's 3/8 rule, b = (1, 3, 3, 1)/8 (torchdiffeq's "rk4")     order 4
//   dopri5     Dormand-Prince 5(4), FSAL, local extrapolation (SciPy's RK45)  order 5
// Fixed-step methods (and dopri5 with adaptive = false) step on the grid t0 + k dt, the last
// step shortened to land on t1 (a last step under 1e-9 dt is merged into the one before), and
// they also step exactly onto every t_eval point between grid points (then resume the grid):
// values at t_eval are the method's own, of its full order, never interpolated.
// Adaptive dopri5 follows SciPy's solve_ivp(method="RK45") step by step, per row:
//   error norm    sqrt(mean_j (err_j / (atol + rtol max(|y_j|, |y_new_j|)))^2), accepted < 1
//   new step      h * min(max_factor, safety err^(-1/5)) after an acceptance (at most h after a
//                 rejection within the same step; max_factor when err = 0),
//                 h * max(min_factor, safety err^(-1/5)) after a rejection
//   first step    Hairer's selection (Hairer, Norsett & Wanner I, II.4; SciPy's
//                 select_initial_step, clipped to |t1 - t0| as SciPy >= 1.11 does) unless
//                 opts.dt > 0 gives it; one extra f evaluation
//   t_eval        Shampine's 4th-order continuous extension of the step that covers it
//   failure       a step under 10 ulp of t (or not finite), or opts.max_steps attempts, ends the
//                 call with genai::Error naming the row, t and the step size
//
// Counts per row: nfev (f evaluations: stages of every attempt, dopri5's first f(t0, y0) and
// Hairer's probe), accepted and rejected steps (fixed-step methods: accepted = steps taken).
//
// Precision: the CPU path integrates in double (f in double, below); the GPU path in float
// (choose rtol >= ~1e-5 there). Backends draw no random numbers.
//
// A neural f plugs in as an OdeFunction on the CPU (batched: one call per stage for all rows
// still integrating, each at its own time) and as a __device__ functor on the GPU
// (genai/ode_device.cuh). The adjoint method integrates an augmented state backwards: any d,
// t1 < t0.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "genai/context.hpp"

namespace genai {

enum class OdeMethod { Euler, Midpoint, RK4, RK4_38, Dopri5 };

// "euler", "midpoint", "rk4", "rk4_38" (also "rk4-38"), "dopri5"; unknown names throw
// ArgumentError listing the valid ones.
OdeMethod parse_ode_method(const std::string& name);
std::string to_string(OdeMethod m);

struct OdeOptions {
  OdeMethod method = OdeMethod::Dopri5;
  // Fixed-step methods (and dopri5 with adaptive = false): the step, > 0. Adaptive dopri5: the
  // first step (0: Hairer's selection).
  double dt = 0;
  bool adaptive = true;  // dopri5 only; false steps dopri5's 5th-order solution on the dt grid
  double rtol = 1e-3, atol = 1e-6;  // SciPy's defaults
  double max_step = std::numeric_limits<double>::infinity();
  double safety = 0.9, min_factor = 0.2, max_factor = 10;  // SciPy's step-size controller
  std::int64_t max_steps = 100000;  // per row: attempted steps (accepted + rejected)
  // false: OdeStats' vectors stay empty; on the GPU the per-row states then stay on the device
  // (a scan finds failed rows) instead of coming back, 64 bytes a row.
  bool counts = true;
  // Times at which to record the state (the trajectory's records), strictly monotone in the
  // direction of integration, within [t0, t1]; empty: no trajectory.
  std::vector<double> t_eval = {};
};

// Per row, on the host (the device's counts are copied back).
struct OdeStats {
  std::vector<std::int64_t> nfev, accepted, rejected;
};

// One batched evaluation of f on the CPU: for i < n, batch row rows[i] at time t[i] with state
// y[i*d .. i*d + d) writes dydt[i*d .. i*d + d). The rows are those still integrating, in
// increasing order; the arrays are contiguous copies (f may not keep the pointers).
struct OdeEval {
  std::int64_t n, d;
  const std::int64_t* rows;
  const double* t;
  const double* y;
  double* dydt;
};
using OdeFunction = std::function<void(const OdeEval&)>;

// A right-hand side: a built-in problem (usable on both backends; formulas in
// genai/detail/ode.hpp) or a CPU callable.
//   decay           dy/dt = -rate y, any d (2.4 with rate 1, y(0) = 1)
//   oscillator      x' = v, v' = -omega^2 x (d = 2: [x, v])
//   lotka_volterra  x' = x (alpha - beta y), y' = y (delta x - gamma) (d = 2)
//   spiral          dy/dt = (y^3) A, A = [[-0.1, 2.0], [-2.0, -0.1]] (d = 2; torchdiffeq's
//                   ode_demo: row vector y^3 times A)
//   custom          an OdeFunction: CPU contexts only (on the GPU: genai/ode_device.cuh)
struct OdeProblem {
  enum class Kind { Decay, Oscillator, LotkaVolterra, Spiral, Custom };
  Kind kind = Kind::Decay;
  std::int64_t d = 1;
  double p[4] = {1, 0, 0, 0};  // rate | omega | alpha, beta, gamma, delta | A00, A01, A10, A11
  OdeFunction f;               // Custom

  static OdeProblem decay(std::int64_t d = 1, double rate = 1);
  static OdeProblem oscillator(double omega = 1);
  static OdeProblem lotka_volterra(double alpha = 1.5, double beta = 1, double gamma = 3,
                                   double delta = 1);
  static OdeProblem spiral();
  static OdeProblem custom(std::int64_t d, OdeFunction f);
  // "decay", "oscillator", "lotka-volterra" (also "lotka_volterra"), "spiral"; default
  // parameters, decay with d = 1.
  static OdeProblem named(const std::string& name);
};

// Integrates the rows of y [batch x problem.d] (host pointer with a CPU context, device pointer
// with a CUDA context) from t0 to t1 in place. trajectory: [t_eval.size() x batch x d] on ctx's
// device, required exactly when opts.t_eval is not empty. Throws ArgumentError, before touching
// y or trajectory, for bad arguments (batch < 1, non-finite y, t_eval out of order or range,
// dt <= 0 for a fixed-step method, tolerances <= 0, ...) or a Custom problem on a CUDA context;
// genai::Error when a row fails (max_steps, step too small): y and the trajectory then hold
// what the rows reached. On a CUDA context it waits for the kernel (the counts come back).
OdeStats ode_solve(const Context& ctx, const OdeProblem& problem, float* y, std::int64_t batch,
                   double t0, double t1, const OdeOptions& opts = {}, float* trajectory = nullptr);

// The CPU path in double with a callable: y [batch x d] host memory, in place; trajectory
// [t_eval.size() x batch x d]. Checks and errors as above.
OdeStats ode_solve(const OdeFunction& f, double* y, std::int64_t batch, std::int64_t d, double t0,
                   double t1, const OdeOptions& opts = {}, double* trajectory = nullptr);

// The closed form y(t) of rows y0 [batch x d] for the problems that have one (decay,
// oscillator; ArgumentError for the others): out [batch x d], host memory.
void ode_exact(const OdeProblem& problem, double t0, double t, const double* y0,
               std::int64_t batch, double* out);

}  // namespace genai
