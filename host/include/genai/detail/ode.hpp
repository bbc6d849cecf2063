// The stepping code of the ODE module, written once for the CPU reference (T = double) and the
// kernels of genai/ode_device.cuh (T = float), the Butcher tableaux, the built-in problems'
// formulas, and the host-side pieces the device launcher shares with genai::ode_solve.
// Internal (namespace genai::detail); installed because genai/ode_device.cuh instantiates it
// with users' functors.
//
// One row (one sample) is a small state machine driven by f evaluations:
//
//   ode_begin                        time t0, counters 0, t_eval records at t0
//   [dopri5] f(t0, y) -> k0          then, unless the first step is given, Hairer's probe:
//            ode_probe_input -> f -> k1 -> ode_probe_finish
//   while ode_begin_attempt:         the next step's target time (grid, t_eval point, t + h)
//     for each stage k:              ode_stage_input -> f(t_k, y_k) -> k_k
//     ode_end_attempt                the new state, error control, t_eval records, status
//
// ode_row runs that loop for one row (the kernels: one thread per row; the reference for the
// built-in problems). The CPU driver for batched callables (cpu_reference/ode.cpp) runs the same
// calls in lockstep over the rows still integrating, one batched f per stage: each row sees the
// same sequence of operations either way, so the results are identical.
//
// A row's work array w holds ode_arrays(M) arrays of d values: y (the state), ys (a stage's
// input; after dopri5's last stage y_new) and the stages k_0 .. k_{s-1}; array a starts at
// w + a d. f is called as f(row, t, y, dydt, d) with pointers into w.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "genai/buffer.hpp"
#include "genai/detail/hd.hpp"
#include "genai/ode.hpp"
#include "genai/rng.hpp"

#if defined(__CUDA_ARCH__)
#define GENAI_ODE_UNROLL _Pragma("unroll")
#else
#define GENAI_ODE_UNROLL
#endif

namespace genai::detail {

// An explicit Runge-Kutta method: stage k is f(t + c_k h, y + h sum_{i<k} a_ki k_i), the step
// y + h sum_i b_i k_i. Dopri5 is first-same-as-last: its last stage's input is the 5th-order
// y_new (a_6 = b) at t + h, and that stage is the next step's k_0; e = b - b_hat (the error
// estimate h sum_i e_i k_i) and p the dense output, y(t + theta h) =
// y + h sum_i k_i sum_q p_iq theta^(q+1) (Shampine 1986, SciPy's RK45.P).
struct Tableau {
  int stages = 1;
  int order = 1;
  bool fsal = false;
  double c[7] = {};
  double a[7][6] = {};
  double b[7] = {};
  double e[7] = {};
  double p[7][4] = {};
};

GENAI_HD constexpr Tableau tableau(OdeMethod m) {
  Tableau t{};
  switch (m) {
    case OdeMethod::Euler:
      t.stages = 1, t.order = 1;
      t.b[0] = 1;
      break;
    case OdeMethod::Midpoint:
      t.stages = 2, t.order = 2;
      t.c[1] = 0.5, t.a[1][0] = 0.5;
      t.b[1] = 1;
      break;
    case OdeMethod::RK4:
      t.stages = 4, t.order = 4;
      t.c[1] = 0.5, t.c[2] = 0.5, t.c[3] = 1;
      t.a[1][0] = 0.5, t.a[2][1] = 0.5, t.a[3][2] = 1;
      t.b[0] = 1.0 / 6, t.b[1] = 1.0 / 3, t.b[2] = 1.0 / 3, t.b[3] = 1.0 / 6;
      break;
    case OdeMethod::RK4_38:
      t.stages = 4, t.order = 4;
      t.c[1] = 1.0 / 3, t.c[2] = 2.0 / 3, t.c[3] = 1;
      t.a[1][0] = 1.0 / 3;
      t.a[2][0] = -1.0 / 3, t.a[2][1] = 1;
      t.a[3][0] = 1, t.a[3][1] = -1, t.a[3][2] = 1;
      t.b[0] = 1.0 / 8, t.b[1] = 3.0 / 8, t.b[2] = 3.0 / 8, t.b[3] = 1.0 / 8;
      break;
    case OdeMethod::Dopri5:
      t.stages = 7, t.order = 5, t.fsal = true;
      t.c[1] = 1.0 / 5, t.c[2] = 3.0 / 10, t.c[3] = 4.0 / 5, t.c[4] = 8.0 / 9, t.c[5] = 1, t.c[6] = 1;
      t.a[1][0] = 1.0 / 5;
      t.a[2][0] = 3.0 / 40, t.a[2][1] = 9.0 / 40;
      t.a[3][0] = 44.0 / 45, t.a[3][1] = -56.0 / 15, t.a[3][2] = 32.0 / 9;
      t.a[4][0] = 19372.0 / 6561, t.a[4][1] = -25360.0 / 2187, t.a[4][2] = 64448.0 / 6561,
      t.a[4][3] = -212.0 / 729;
      t.a[5][0] = 9017.0 / 3168, t.a[5][1] = -355.0 / 33, t.a[5][2] = 46732.0 / 5247,
      t.a[5][3] = 49.0 / 176, t.a[5][4] = -5103.0 / 18656;
      t.a[6][0] = 35.0 / 384, t.a[6][2] = 500.0 / 1113, t.a[6][3] = 125.0 / 192,
      t.a[6][4] = -2187.0 / 6784, t.a[6][5] = 11.0 / 84;
      for (int i = 0; i < 6; ++i) t.b[i] = t.a[6][i];
      t.e[0] = -71.0 / 57600, t.e[2] = 71.0 / 16695, t.e[3] = -71.0 / 1920,
      t.e[4] = 17253.0 / 339200, t.e[5] = -22.0 / 525, t.e[6] = 1.0 / 40;
      t.p[0][0] = 1, t.p[0][1] = -8048581381.0 / 2820520608, t.p[0][2] = 8663915743.0 / 2820520608,
      t.p[0][3] = -12715105075.0 / 11282082432;
      t.p[2][1] = 131558114200.0 / 32700410799, t.p[2][2] = -68118460800.0 / 10900136933,
      t.p[2][3] = 87487479700.0 / 32700410799;
      t.p[3][1] = -1754552775.0 / 470086768, t.p[3][2] = 14199869525.0 / 1410260304,
      t.p[3][3] = -10690763975.0 / 1880347072;
      t.p[4][1] = 127303824393.0 / 49829197408, t.p[4][2] = -318862633887.0 / 49829197408,
      t.p[4][3] = 701980252875.0 / 199316789632;
      t.p[5][1] = -282668133.0 / 205662961, t.p[5][2] = 2019193451.0 / 616988883,
      t.p[5][3] = -1453857185.0 / 822651844;
      t.p[6][1] = 40617522.0 / 29380423, t.p[6][2] = -110615467.0 / 29380423,
      t.p[6][3] = 69997945.0 / 29380423;
      break;
  }
  return t;
}

// `tab`, method M's tableau as a constant: a local on the device, which folds it into the
// unrolled loops, a static on the host, where a local would be rebuilt (zeros and all) at every
// call.
#if defined(__CUDA_ARCH__)
#define GENAI_ODE_TABLEAU(M) constexpr Tableau tab = tableau(M)
#else
#define GENAI_ODE_TABLEAU(M) static constexpr Tableau tab = tableau(M)
#endif

// Arrays of a row's work array: y, ys, then the stages.
GENAI_HD constexpr int ode_arrays(OdeMethod m) { return 2 + tableau(m).stages; }
inline constexpr int kOdeY = 0, kOdeYs = 1, kOdeK = 2;

enum OdeStatus : int { kOdeRunning = 0, kOdeDone = 1, kOdeMaxSteps = 2, kOdeStepTooSmall = 3 };

// Where a row is (copied back from the device at the end).
template <class T>
struct OdeRow {
  T t;        // time reached
  T h;        // signed step of the current (or the next) attempt
  T target;   // the time the current attempt ends at
  std::int64_t nfev, accepted, rejected;
  std::int64_t next_eval;  // first t_eval record not yet written
  std::int64_t grid;       // fixed step: index of the next grid point (1 .. grid_steps)
  int status;              // OdeStatus
  int retry;               // dopri5: the current step has been rejected at least once
};

// A checked call (detail::make_ode_setup): everything the rows need, pointers on the backend.
template <class T>
struct OdeSetup {
  OdeMethod method;
  bool adaptive;             // dopri5 with error control
  std::int64_t batch;
  int d;
  double t0, t1, dir, span;  // dir = +-1, span = |t1 - t0|
  double dt;                 // the fixed step; adaptive: the first step (0: Hairer's)
  std::int64_t grid_steps;   // fixed step: grid points t0 + dir k dt (k < grid_steps), then t1
  double slack;              // fixed step: 1e-9 dt (a t_eval point that close to a grid point
                             // is recorded there); adaptive: 0
  double rtol, atol, max_step, safety, min_factor, max_factor;
  std::int64_t max_steps;
  std::int64_t n_eval;
  const double* t_eval;      // [n_eval]
  T* trajectory;             // [n_eval x batch x d]
};

template <class T>
GENAI_HD T ode_abs(T x) { return x < T(0) ? -x : x; }
template <class T>
GENAI_HD T ode_min(T a, T b) { return a < b ? a : b; }
template <class T>
GENAI_HD T ode_max(T a, T b) { return a > b ? a : b; }
GENAI_HD float ode_sqrt(float a) { return sqrtf(a); }
GENAI_HD double ode_sqrt(double a) { return sqrt(a); }

// x^(1/5) and x^(-1/5), the step-size controller's powers. In double, pow (SciPy's arithmetic).
// In float, from IEEE operations only -- no powf, whose last bits differ between the host's C
// library and CUDA's -- so that the kernels (compiled with -fmad=false, kernels/ode.cu) and the
// host running the same code in float take the same decisions bit for bit: x = m 2^e with
// m in [1, 2), e = 5q + r (0 <= r < 5), a = m 2^r in [1, 32), x^(1/5) = 2^q a^(1/5), and
// a^(1/5) by eight Newton steps y <- 0.8 y + 0.2 a / y^4 from 1.5 (quadratic convergence; at
// most 0.5 off at the start). 0, infinities and NaN map as pow maps them.
GENAI_HD double ode_root5(double x) { return pow(x, 0.2); }
GENAI_HD double ode_inv_root5(double x) { return pow(x, -0.2); }
GENAI_HD float ode_root5(float x) {
  if (!(x > 0.0f) || x == INFINITY) return x;  // 0, -0, +inf, NaN; x < 0 never occurs
  float scale = 1.0f;
  if (x < 1.17549435e-38f) {  // subnormal: x 2^25 is normal and exact, (x 2^25)^(1/5) = x^(1/5) 32
    x *= 33554432.0f;
    scale = 0.03125f;
  }
  const std::uint32_t b = rng::detail::bits(x);
  const int e = static_cast<int>((b >> 23) & 0xffu) - 127;
  const int q = e >= 0 ? e / 5 : -((4 - e) / 5);  // floor(e / 5)
  const int r = e - 5 * q;
  const float a = rng::detail::from_bits((b & 0x7fffffu) | static_cast<std::uint32_t>(127 + r) << 23);
  float y = 1.5f;
  for (int i = 0; i < 8; ++i) {
    const float y2 = y * y;
    y = 0.8f * y + 0.2f * a / (y2 * y2);
  }
  return y * rng::detail::from_bits(static_cast<std::uint32_t>(127 + q) << 23) * scale;
}
GENAI_HD float ode_inv_root5(float x) { return 1.0f / ode_root5(x); }
// The next representable time after t in direction dir.
GENAI_HD float ode_next(float t, float dir) { return nextafterf(t, dir > 0 ? INFINITY : -INFINITY); }
GENAI_HD double ode_next(double t, double dir) { return nextafter(t, dir > 0 ? HUGE_VAL : -HUGE_VAL); }

template <class T>
GENAI_HD void ode_record(const OdeSetup<T>& s, std::int64_t e, std::int64_t r, const T* v, int d) {
  T* out = s.trajectory + (e * s.batch + r) * s.d;
  GENAI_ODE_UNROLL
  for (int j = 0; j < d; ++j) out[j] = v[j];
}

// Row r starts at t0 with w's y; records the t_eval points at t0 (within the slack).
template <class T, int D>
GENAI_HD void ode_begin(const OdeSetup<T>& s, std::int64_t r, OdeRow<T>& st, const T* w) {
  const int d = D > 0 ? D : s.d;
  st.t = st.target = T(s.t0);
  st.h = T(0);
  st.nfev = st.accepted = st.rejected = 0;
  st.next_eval = 0;
  st.grid = 1;
  st.retry = 0;
  st.status = s.t0 == s.t1 ? kOdeDone : kOdeRunning;
  for (; st.next_eval < s.n_eval && (s.t_eval[st.next_eval] - s.t0) * s.dir <= s.slack; ++st.next_eval)
    ode_record(s, st.next_eval, r, w + kOdeY * d, d);
}

// After f(t0, y0) -> k0 (dopri5): sets the first step when it is given; true when Hairer's
// probe must choose it.
template <class T>
GENAI_HD bool ode_first_step(const OdeSetup<T>& s, OdeRow<T>& st) {
  if (!s.adaptive) return false;
  if (s.dt > 0) {
    st.h = T(s.dir) * ode_min(T(s.dt), ode_min(T(s.span), T(s.max_step)));
    return false;
  }
  return true;
}

// Hairer's first step (SciPy's select_initial_step): with scale_j = atol + rtol |y0_j| and RMS
// norms, d0 = |y0 / scale|, d1 = |f0 / scale|, h0 = 0.01 d0 / d1 (1e-6 when either < 1e-5),
// clipped to |t1 - t0|; the probe f1 = f(t0 + h0, y0 + h0 f0) (written to ys, returns its time;
// h0 kept in st.h) gives d2 = |(f1 - f0) / scale| / h0 and
// h = min(100 h0, (0.01 / max(d1, d2))^(1/5), |t1 - t0|, max_step)
// (max(1e-6, 1e-3 h0) in place of the root when d1, d2 <= 1e-15).
template <class T, int D>
GENAI_HD T ode_probe_input(const OdeSetup<T>& s, OdeRow<T>& st, T* w) {
  const int d = D > 0 ? D : s.d;
  const T* y = w + kOdeY * d;
  const T* f0 = w + kOdeK * d;
  T d0 = 0, d1 = 0;
  GENAI_ODE_UNROLL
  for (int j = 0; j < d; ++j) {
    const T scale = T(s.atol) + ode_abs(y[j]) * T(s.rtol), a = y[j] / scale, b = f0[j] / scale;
    d0 += a * a;
    d1 += b * b;
  }
  d0 = ode_sqrt(d0 / T(d));
  d1 = ode_sqrt(d1 / T(d));
  T h0 = d0 < T(1e-5) || d1 < T(1e-5) ? T(1e-6) : T(0.01) * d0 / d1;
  h0 = ode_min(h0, T(s.span));
  const T step = T(s.dir) * h0;
  GENAI_ODE_UNROLL
  for (int j = 0; j < d; ++j) w[kOdeYs * d + j] = y[j] + step * f0[j];
  st.h = h0;
  return st.t + step;
}

template <class T, int D>
GENAI_HD void ode_probe_finish(const OdeSetup<T>& s, OdeRow<T>& st, const T* w) {
  const int d = D > 0 ? D : s.d;
  const T* y = w + kOdeY * d;
  const T* f0 = w + kOdeK * d;
  const T* f1 = w + (kOdeK + 1) * d;
  T d1 = 0, d2 = 0;
  GENAI_ODE_UNROLL
  for (int j = 0; j < d; ++j) {
    const T scale = T(s.atol) + ode_abs(y[j]) * T(s.rtol), b = f0[j] / scale,
            c = (f1[j] - f0[j]) / scale;
    d1 += b * b;
    d2 += c * c;
  }
  const T h0 = st.h;
  d1 = ode_sqrt(d1 / T(d));
  d2 = ode_sqrt(d2 / T(d)) / h0;
  const T h1 = d1 <= T(1e-15) && d2 <= T(1e-15) ? ode_max(T(1e-6), h0 * T(1e-3))
                                                : ode_root5(T(0.01) / ode_max(d1, d2));
  st.h = T(s.dir) * ode_min(ode_min(T(100) * h0, h1), ode_min(T(s.span), T(s.max_step)));
}

// The next attempt's target and step; false when the row is done or has failed.
//   fixed step: the next grid point, or the next t_eval point when that comes first by more
//               than the slack
//   adaptive:   t + h with |h| <= max_step, raised to 10 ulp of t on a step's first attempt,
//               clipped to t1; a retry under 10 ulp (or a non-finite h) fails the row
template <class T>
GENAI_HD bool ode_begin_attempt(const OdeSetup<T>& s, OdeRow<T>& st) {
  if (st.status != kOdeRunning) return false;
  const T dir = T(s.dir);
  if (!s.adaptive) {
    T target = st.grid >= s.grid_steps
                   ? T(s.t1)
                   : T(s.t0 + s.dir * (static_cast<double>(st.grid) * s.dt));
    bool on_grid = true;
    if (st.next_eval < s.n_eval) {
      const T te = T(s.t_eval[st.next_eval]);
      if ((target - te) * dir > T(s.slack)) {
        target = te;
        on_grid = false;
      }
    }
    if (on_grid) ++st.grid;
    st.target = target;
    st.h = target - st.t;
    return true;
  }
  const T min_step = T(10) * ode_abs(ode_next(st.t, dir) - st.t);
  T habs = ode_min(ode_abs(st.h), T(s.max_step));
  if (!st.retry && habs < min_step) habs = min_step;
  if (!(habs >= min_step)) {  // also a NaN step
    st.status = kOdeStepTooSmall;
    st.h = dir * habs;
    return false;
  }
  const T to = st.t + dir * habs;
  st.target = (to - T(s.t1)) * dir >= T(0) ? T(s.t1) : to;
  st.h = st.target - st.t;
  return true;
}

// Stage k's input, written to ys (stage 0 reads y itself), and its time (the target exactly
// when c_k = 1).
template <class T, OdeMethod M, int D>
GENAI_HD T ode_stage_input(const OdeSetup<T>& s, const OdeRow<T>& st, T* w, int k) {
  GENAI_ODE_TABLEAU(M);
  const int d = D > 0 ? D : s.d;
  if (k == 0) return st.t;
  GENAI_ODE_UNROLL
  for (int j = 0; j < d; ++j) {
    T acc = T(0);
    GENAI_ODE_UNROLL
    for (int i = 0; i < tab.stages - 1; ++i)
      if (i < k && tab.a[k][i] != 0) acc += T(tab.a[k][i]) * w[(kOdeK + i) * d + j];
    w[kOdeYs * d + j] = w[kOdeY * d + j] + st.h * acc;
  }
  return tab.c[k] == 1 ? st.target : st.t + T(tab.c[k]) * st.h;
}

// The array that holds stage k's input.
GENAI_HD constexpr int ode_stage_array(int k) { return k == 0 ? kOdeY : kOdeYs; }

// Dopri5's dense output at theta in (0, 1) of the step from st.t (y, k_0 .. k_6 in w) to
// record e of row r.
template <class T, int D>
GENAI_HD void ode_dense_record(const OdeSetup<T>& s, std::int64_t e, std::int64_t r,
                               const OdeRow<T>& st, const T* w, T theta) {
  GENAI_ODE_TABLEAU(OdeMethod::Dopri5);
  const int d = D > 0 ? D : s.d;
  T weight[7];
  GENAI_ODE_UNROLL
  for (int i = 0; i < 7; ++i) {
    T acc = T(0), power = theta;
    GENAI_ODE_UNROLL
    for (int q = 0; q < 4; ++q, power *= theta) acc += T(tab.p[i][q]) * power;
    weight[i] = acc;
  }
  T* out = s.trajectory + (e * s.batch + r) * s.d;
  GENAI_ODE_UNROLL
  for (int j = 0; j < d; ++j) {
    T acc = T(0);
    GENAI_ODE_UNROLL
    for (int i = 0; i < 7; ++i)
      if (i != 1) acc += weight[i] * w[(kOdeK + i) * d + j];  // p_1 = 0
    out[j] = w[kOdeY * d + j] + st.h * acc;
  }
}

// Adaptive dopri5's end of an attempt (stages k_0 .. k_6 in w, y_new in ys): the error norm,
// the decision and the next step size; when accepted, the t_eval records the step passed (dense
// output) and the new state, with the last stage as the next k_0.
template <class T, int D>
GENAI_HD void ode_end_adaptive(const OdeSetup<T>& s, std::int64_t r, OdeRow<T>& st, T* w) {
  GENAI_ODE_TABLEAU(OdeMethod::Dopri5);
  const int d = D > 0 ? D : s.d;
  T* y = w + kOdeY * d;
  T* ys = w + kOdeYs * d;
  T* k = w + kOdeK * d;
  T err = T(0);
  GENAI_ODE_UNROLL
  for (int j = 0; j < d; ++j) {
    T e = T(0);
    GENAI_ODE_UNROLL
    for (int i = 0; i < tab.stages; ++i)
      if (tab.e[i] != 0) e += T(tab.e[i]) * k[i * d + j];
    const T q = st.h * e / (T(s.atol) + T(s.rtol) * ode_max(ode_abs(y[j]), ode_abs(ys[j])));
    err += q * q;
  }
  err = ode_sqrt(err / T(d));
  if (!(err < T(1))) {  // rejected (also a NaN error: shrink by min_factor)
    const T factor = T(s.safety) * ode_inv_root5(err);
    st.h *= factor > T(s.min_factor) ? factor : T(s.min_factor);
    ++st.rejected;
    st.retry = 1;
    return;
  }
  T factor = err == T(0) ? T(s.max_factor)
                         : ode_min(T(s.max_factor), T(s.safety) * ode_inv_root5(err));
  if (st.retry) factor = ode_min(T(1), factor);
  for (; st.next_eval < s.n_eval; ++st.next_eval) {
    const T te = T(s.t_eval[st.next_eval]);
    if ((te - st.target) * T(s.dir) > T(0)) break;
    if (te == st.target)
      ode_record(s, st.next_eval, r, ys, d);
    else
      ode_dense_record<T, D>(s, st.next_eval, r, st, w, (te - st.t) / st.h);
  }
  GENAI_ODE_UNROLL
  for (int j = 0; j < d; ++j) {
    y[j] = ys[j];
    k[j] = k[(tab.stages - 1) * d + j];
  }
  st.t = st.target;
  st.h *= factor;
  ++st.accepted;
  st.retry = 0;
  if (st.t == T(s.t1)) st.status = kOdeDone;
}

// The attempt's stages are in w: the new state (fixed step: y + h sum b_i k_i; dopri5: ys, its
// last stage the next k_0) and the t_eval records reached, or adaptive dopri5's decision; then
// the row's status.
template <class T, OdeMethod M, int D>
GENAI_HD void ode_end_attempt(const OdeSetup<T>& s, std::int64_t r, OdeRow<T>& st, T* w) {
  GENAI_ODE_TABLEAU(M);
  const int d = D > 0 ? D : s.d;
  T* y = w + kOdeY * d;
  T* k = w + kOdeK * d;
  if (M == OdeMethod::Dopri5 && s.adaptive) {
    ode_end_adaptive<T, D>(s, r, st, w);
  } else {
    GENAI_ODE_UNROLL
    for (int j = 0; j < d; ++j) {
      if constexpr (tableau(M).fsal) {  // dopri5 on the grid
        y[j] = w[kOdeYs * d + j];
        k[j] = k[(tab.stages - 1) * d + j];
      } else {
        T acc = T(0);
        GENAI_ODE_UNROLL
        for (int i = 0; i < tab.stages; ++i)
          if (tab.b[i] != 0) acc += T(tab.b[i]) * k[i * d + j];
        y[j] += st.h * acc;
      }
    }
    st.t = st.target;
    ++st.accepted;
    for (; st.next_eval < s.n_eval &&
           (T(s.t_eval[st.next_eval]) - st.t) * T(s.dir) <= T(s.slack);
         ++st.next_eval)
      ode_record(s, st.next_eval, r, y, d);
    if (st.grid > s.grid_steps) st.status = kOdeDone;
  }
  if (st.status == kOdeRunning && st.accepted + st.rejected >= s.max_steps) st.status = kOdeMaxSteps;
}

// Row r from its state in w's y (written back there) to t1 or its failure: the whole
// integration of one sample. f(row, t, y, dydt, d) writes dydt.
template <class T, OdeMethod M, int D, class F>
GENAI_HD void ode_row(const F& f, const OdeSetup<T>& s, std::int64_t r, OdeRow<T>& st, T* w) {
  GENAI_ODE_TABLEAU(M);
  const int d = D > 0 ? D : s.d;
  ode_begin<T, D>(s, r, st, w);
  if (st.status != kOdeRunning) return;
  if constexpr (tableau(M).fsal) {
    f(r, st.t, w + kOdeY * d, w + kOdeK * d, d);
    ++st.nfev;
    if (ode_first_step(s, st)) {
      const T tp = ode_probe_input<T, D>(s, st, w);
      f(r, tp, w + kOdeYs * d, w + (kOdeK + 1) * d, d);
      ++st.nfev;
      ode_probe_finish<T, D>(s, st, w);
    }
  }
  while (ode_begin_attempt(s, st)) {
    GENAI_ODE_UNROLL
    for (int k = tab.fsal ? 1 : 0; k < tab.stages; ++k) {
      const T tk = ode_stage_input<T, M, D>(s, st, w, k);
      f(r, tk, w + ode_stage_array(k) * d, w + (kOdeK + k) * d, d);
      ++st.nfev;
    }
    ode_end_attempt<T, M, D>(s, r, st, w);
  }
}

// Calls fn(std::integral_constant<OdeMethod, M>{}) for the runtime method m.
template <class Fn>
decltype(auto) with_ode_method(OdeMethod m, Fn&& fn) {
  switch (m) {
    case OdeMethod::Euler: return fn(std::integral_constant<OdeMethod, OdeMethod::Euler>{});
    case OdeMethod::Midpoint: return fn(std::integral_constant<OdeMethod, OdeMethod::Midpoint>{});
    case OdeMethod::RK4: return fn(std::integral_constant<OdeMethod, OdeMethod::RK4>{});
    case OdeMethod::RK4_38: return fn(std::integral_constant<OdeMethod, OdeMethod::RK4_38>{});
    case OdeMethod::Dopri5: break;
  }
  return fn(std::integral_constant<OdeMethod, OdeMethod::Dopri5>{});
}

// ---- the built-in problems (OdeProblem's kinds but Custom) -----------------------------------

struct BuiltinOde {
  OdeProblem::Kind kind;
  double p[4];

  template <class T>
  GENAI_HD void operator()(std::int64_t, T, const T* y, T* dydt, int d) const {
    switch (kind) {
      case OdeProblem::Kind::Oscillator:  // x' = v, v' = -omega^2 x
        dydt[0] = y[1];
        dydt[1] = -(T(p[0]) * T(p[0])) * y[0];
        break;
      case OdeProblem::Kind::LotkaVolterra:  // x' = x (alpha - beta y), y' = y (delta x - gamma)
        dydt[0] = y[0] * (T(p[0]) - T(p[1]) * y[1]);
        dydt[1] = y[1] * (T(p[3]) * y[0] - T(p[2]));
        break;
      case OdeProblem::Kind::Spiral: {  // (y^3) A, y a row vector, A = [[p0, p1], [p2, p3]]
        const T c0 = y[0] * y[0] * y[0], c1 = y[1] * y[1] * y[1];
        dydt[0] = c0 * T(p[0]) + c1 * T(p[2]);
        dydt[1] = c0 * T(p[1]) + c1 * T(p[3]);
        break;
      }
      default:  // Decay
        for (int j = 0; j < d; ++j) dydt[j] = -T(p[0]) * y[j];
        break;
    }
  }
};

// ---- host side (host/src/ode.cpp) -------------------------------------------------------------

// The checks of every ode_solve entry point, in the order they report: batch, d, y (not null),
// t0 and t1, the options, t_eval and trajectory. Throws ArgumentError naming fn and the argument.
void check_ode(const char* fn, std::int64_t batch, std::int64_t d, const void* y, double t0,
               double t1, const OdeOptions& opts, const void* trajectory);

// The setup of a checked call; t_eval and trajectory on the backend that runs it.
template <class T>
OdeSetup<T> make_ode_setup(std::int64_t batch, std::int64_t d, double t0, double t1,
                           const OdeOptions& opts, const double* t_eval, T* trajectory);

// genai::Error for row `row` (state f), the first of `failed` rows that did not finish: its time,
// step size and counts.
template <class T>
[[noreturn]] void throw_ode_failure(const char* fn, const OdeSetup<T>& s, std::int64_t row,
                                    const OdeRow<T>& f, std::int64_t failed);

// The counts of the rows (empty vectors unless `counts`), or throw_ode_failure for the first row
// that failed.
template <class T>
OdeStats ode_stats(const char* fn, const OdeSetup<T>& s, const OdeRow<T>* rows, bool counts = true);

// A call on a CUDA context, checked and set up: t_eval copied to the device, the rows' states
// allocated there. prepare_ode_device refuses a non-finite y (one pass over it) as ode_solve
// does; finish_ode_device waits for the stream and copies the rows back to make the stats (with
// counts off, scans them on the device and copies back only a failed row).
struct OdeDeviceRun {
  OdeSetup<float> setup;
  Buffer<double> t_eval;
  Buffer<OdeRow<float>> rows;
  bool counts;  // OdeOptions::counts
};
OdeDeviceRun prepare_ode_device(const char* fn, const Context& ctx, float* y, std::int64_t batch,
                                std::int64_t d, double t0, double t1, const OdeOptions& opts,
                                float* trajectory);
OdeStats finish_ode_device(const char* fn, const OdeDeviceRun& run);

}  // namespace genai::detail
