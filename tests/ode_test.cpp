// The ODE module on the CPU: problem set 2.3 and 2.4 as written, each method's order of
// convergence, dopri5 against closed forms and against SciPy's RK45 step for step, per-row step
// control, t_eval records, integration backwards in time, failures and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "genai/detail/ode.hpp"
#include "genai/ode.hpp"
#include "ode_test_util.hpp"
#include "parallel_test_util.hpp"
#include "test_util.hpp"

namespace genai {
namespace {

using test::error_of;

// The message of the genai::Error (any kind) that f() throws, or "(no Error)".
template <class F>
std::string failure_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no Error)";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// dy/dt = -rate[row] y on the CPU, in double.
OdeFunction decay_rates(std::vector<double> rate) {
  return [rate = std::move(rate)](const OdeEval& e) {
    for (std::int64_t i = 0; i < e.n; ++i)
      for (std::int64_t j = 0; j < e.d; ++j)
        e.dydt[i * e.d + j] = -rate[e.rows[i]] * e.y[i * e.d + j];
  };
}

// 2.4 as written: dh/dt = -h, h(0) = 1, dt = 0.01 to t = 5, |h(5) - e^-5| < 0.01; and Euler's
// exact value: 500 steps of h <- (1 - dt) h give (1 - dt)^(5/dt) = 0.99^500.
TEST(Ode, EulerSolvesTheSeedProblem) {
  const OdeOptions o{.method = OdeMethod::Euler, .dt = 0.01};
  std::vector<float> h = {1.0f};
  const OdeStats st = ode_solve(Context::cpu(), OdeProblem::decay(), h.data(), 1, 0.0, 5.0, o);
  EXPECT_LT(std::abs(h[0] - std::exp(-5.0)), 0.01);
  EXPECT_NEAR(h[0], std::pow(0.99, 500), 1e-7 * std::pow(0.99, 500));  // float output
  EXPECT_EQ(st.accepted[0], 500);
  EXPECT_EQ(st.nfev[0], 500);
  EXPECT_EQ(st.rejected[0], 0);

  // In double, with the trajectory at the grid times (2.4's "times, solutions").
  std::vector<double> times;
  for (int k = 0; k <= 500; ++k) times.push_back(k * 0.01);
  OdeOptions od = o;
  od.t_eval = times;
  std::vector<double> hd = {1.0}, solutions(times.size());
  ode_solve(decay_rates({1.0}), hd.data(), 1, 1, 0.0, 5.0, od, solutions.data());
  EXPECT_NEAR(hd[0], std::pow(0.99, 500), 1e-13 * std::pow(0.99, 500));
  for (int k : {0, 1, 250, 500})
    EXPECT_NEAR(solutions[k], std::pow(0.99, k), 1e-13 * std::pow(0.99, k)) << "k = " << k;
  EXPECT_EQ(solutions[500], hd[0]);
}

// 2.3: a ResNet h_{t+1} = h_t + f(h_t) is Euler's method with dt = 1 on dh/dt = f(h): ten
// blocks of a nonlinear f are ten Euler steps over [0, 10], bit for bit. With f(h) = -h the ODE
// decays as h(0) e^-t (dopri5 against the closed form), and the ResNet reaches 0 in one block
// (1 - dt = 0: Euler at dt = 1 sits at the edge of its stability region |1 - dt| <= 1).
TEST(Ode, ResNetIsEulerWithUnitStep) {
  const std::int64_t batch = 3, d = 2;
  auto f = [](const double* h, double* out) {
    out[0] = std::tanh(0.5 * h[0] - 0.3 * h[1]);
    out[1] = std::tanh(0.2 * h[0] + 0.4 * h[1]) - 0.1 * h[1];
  };
  const std::vector<double> h0 = {1.0, -2.0, 0.5, 0.25, -1.5, 3.0};
  std::vector<double> resnet = h0;
  for (int block = 0; block < 10; ++block)
    for (std::int64_t r = 0; r < batch; ++r) {
      double out[2];
      f(&resnet[r * d], out);
      for (int j = 0; j < 2; ++j) resnet[r * d + j] += out[j];
    }
  std::vector<double> euler = h0;
  ode_solve([&](const OdeEval& e) {
    for (std::int64_t i = 0; i < e.n; ++i) f(e.y + i * e.d, e.dydt + i * e.d);
  }, euler.data(), batch, d, 0.0, 10.0, {.method = OdeMethod::Euler, .dt = 1.0});
  EXPECT_EQ(euler, resnet);

  // f(h) = -h.
  std::vector<double> decay = h0;
  ode_solve(decay_rates({1.0, 1.0, 1.0}), decay.data(), batch, d, 0.0, 10.0,
            {.method = OdeMethod::Euler, .dt = 1.0, .t_eval = {1.0}}, euler.data());
  for (double v : euler) EXPECT_EQ(v, 0.0);  // after one block
  for (double v : decay) EXPECT_EQ(v, 0.0);
  std::vector<double> ode = h0;
  ode_solve(decay_rates({1.0, 1.0, 1.0}), ode.data(), batch, d, 0.0, 10.0,
            {.rtol = 1e-10, .atol = 1e-14});
  for (std::size_t i = 0; i < h0.size(); ++i)
    EXPECT_NEAR(ode[i], h0[i] * std::exp(-10.0), 1e-9 * std::abs(h0[i]) * std::exp(-10.0));
}

// Slope of log(error) against log(dt) on dy/dt = -y, y(0) = 1, to t = 1, in double: 1, 2, 4,
// 4, 5 within 0.2 (dopri5 on the fixed grid: its 5th-order solution without error control).
TEST(Ode, EachMethodConvergesAtItsOrder) {
  const std::vector<double> dts = {0.2, 0.1, 0.05, 0.025};
  const std::pair<OdeMethod, double> cases[] = {{OdeMethod::Euler, 1}, {OdeMethod::Midpoint, 2},
                                                {OdeMethod::RK4, 4}, {OdeMethod::RK4_38, 4},
                                                {OdeMethod::Dopri5, 5}};
  for (const auto& [method, order] : cases) {
    std::vector<double> lx, ly;
    for (double dt : dts) {
      double y = 1;
      ode_solve(decay_rates({1.0}), &y, 1, 1, 0.0, 1.0, {.method = method, .dt = dt, .adaptive = false});
      lx.push_back(std::log(dt));
      ly.push_back(std::log(std::abs(y - std::exp(-1.0))));
    }
    const double mx = std::accumulate(lx.begin(), lx.end(), 0.0) / 4,
                 my = std::accumulate(ly.begin(), ly.end(), 0.0) / 4;
    double sxy = 0, sxx = 0;
    for (int i = 0; i < 4; ++i) {
      sxy += (lx[i] - mx) * (ly[i] - my);
      sxx += (lx[i] - mx) * (lx[i] - mx);
    }
    EXPECT_NEAR(sxy / sxx, order, 0.2) << to_string(method);
  }
}

// RK4 and the 3/8 rule are different methods: on a time-dependent f their steps differ.
TEST(Ode, ClassicRk4IsNotTheThreeEighthsRule) {
  auto f = [](const OdeEval& e) {
    for (std::int64_t i = 0; i < e.n; ++i) e.dydt[i] = std::cos(3 * e.t[i]) * e.y[i];
  };
  double a = 1, b = 1;
  ode_solve(f, &a, 1, 1, 0.0, 1.0, {.method = OdeMethod::RK4, .dt = 0.25});
  ode_solve(f, &b, 1, 1, 0.0, 1.0, {.method = OdeMethod::RK4_38, .dt = 0.25});
  const double exact = std::exp(std::sin(3.0) / 3);
  EXPECT_NE(a, b);
  EXPECT_NEAR(a, exact, 2e-3);
  EXPECT_NEAR(b, exact, 2e-3);
}

// dopri5 follows SciPy's solve_ivp(method="RK45") step for step: the same accepted and
// rejected steps and evaluations, the same final state up to the order of the additions
// (values from SciPy 1.10 in double; NumPy's dot sums the stages in another order, and 25 time
// units of the spiral carry that last-bit difference to a few 1e-12).
TEST(Ode, Dopri5MatchesScipyRk45StepForStep) {
  struct Case {
    const char* name;
    OdeProblem problem;
    double t1;
    std::vector<double> y0;
    double rtol, atol;
    std::int64_t nfev, accepted, rejected;
    std::vector<double> y;
  };
  const Case cases[] = {
      {"oscillator", OdeProblem::oscillator(), 10, {1, 0}, 1e-6, 1e-9, 368, 52, 9,
       {-0.8390702711327033, 0.5440208634405764}},
      {"lotka-volterra", OdeProblem::lotka_volterra(), 10, {10, 5}, 1e-6, 1e-9, 944, 139, 18,
       {0.2872098384020255, 0.44978184063232235}},
      {"lotka-volterra default tolerances", OdeProblem::lotka_volterra(), 10, {10, 5}, 1e-3, 1e-6,
       314, 38, 14, {0.2565693815340843, 0.5039054707316533}},
      {"spiral", OdeProblem::spiral(), 25, {2, 0}, 1e-3, 1e-6, 452, 57, 18,
       {-0.4399032435738055, 0.2975953085544859}},
  };
  for (const Case& c : cases) {
    const detail::BuiltinOde f{c.problem.kind, {c.problem.p[0], c.problem.p[1], c.problem.p[2], c.problem.p[3]}};
    std::vector<double> y = c.y0;
    const OdeStats st = ode_solve([&](const OdeEval& e) {
      for (std::int64_t i = 0; i < e.n; ++i) f(e.rows[i], e.t[i], e.y + i * 2, e.dydt + i * 2, 2);
    }, y.data(), 1, 2, 0.0, c.t1, {.rtol = c.rtol, .atol = c.atol});
    EXPECT_EQ(st.nfev[0], c.nfev) << c.name;
    EXPECT_EQ(st.accepted[0], c.accepted) << c.name;
    EXPECT_EQ(st.rejected[0], c.rejected) << c.name;
    for (int j = 0; j < 2; ++j) EXPECT_NEAR(y[j], c.y[j], 1e-11) << c.name;
  }
}

// dopri5 against the closed forms. rtol and atol bound each step's local error; the global
// error is what the flow makes of them. The stiff-ish y' = -50 (y - cos t), y(0) = 0 (Hairer &
// Wanner's example; y = 2500/2501 (cos t + sin t / 50 - e^{-50 t})) contracts every error, so
// the result is within atol + rtol |y|; there stability, not accuracy, limits the step (at most
// about 3.3 / 50, dopri5's stability interval on the real axis). The oscillator is an isometry:
// every step's error is carried unchanged, so the global error is at most the sum of the local
// ones: each step's error is within sqrt(d) (atol + rtol A) per component (an RMS norm <= 1;
// A the orbit's amplitude bounds |y|), and the sum over the accepted steps bounds the result.
// It also falls in proportion to the tolerance.
TEST(Ode, Dopri5MeetsItsTolerancesAgainstClosedForms) {
  const double rtol = 1e-6, atol = 1e-9;
  const OdeOptions o{.rtol = rtol, .atol = atol};
  auto stiff = [](const OdeEval& e) {
    for (std::int64_t i = 0; i < e.n; ++i) e.dydt[i] = -50 * (e.y[i] - std::cos(e.t[i]));
  };
  for (double t1 : {1.0, 3.0}) {
    double v = 0;
    const OdeStats st = ode_solve(stiff, &v, 1, 1, 0.0, t1, o);
    const double want = 2500.0 / 2501 * (std::cos(t1) + std::sin(t1) / 50 - std::exp(-50 * t1));
    EXPECT_NEAR(v, want, atol + rtol * std::abs(want)) << "t1 = " << t1;
    EXPECT_GE(st.accepted[0], t1 * 50 / 3.3);  // stability-limited
  }
  double v = 0;  // SciPy's RK45 takes 63 steps to t = 1 and 380 evaluations
  const OdeStats st = ode_solve(stiff, &v, 1, 1, 0.0, 1.0, o);
  EXPECT_EQ(st.accepted[0], 63);
  EXPECT_EQ(st.nfev[0], 380);
  EXPECT_NEAR(v, 0.5569087536584869, 1e-12);

  const OdeProblem osc = OdeProblem::oscillator();
  const detail::BuiltinOde f{osc.kind, {osc.p[0], 0, 0, 0}};
  const OdeFunction fo = [&](const OdeEval& e) {
    for (std::int64_t i = 0; i < e.n; ++i) f(e.rows[i], e.t[i], e.y + i * 2, e.dydt + i * 2, 2);
  };
  const std::vector<double> y0 = {1, 0, 0.5, -2};
  std::vector<double> exact(4);
  ode_exact(osc, 0.0, 10.0, y0.data(), 2, exact.data());
  double previous = 0;
  for (double tol : {1e-3, 1e-6}) {
    std::vector<double> y = y0;
    const OdeStats so = ode_solve(fo, y.data(), 2, 2, 0.0, 10.0, {.rtol = tol, .atol = tol * 1e-3});
    double worst = 0;
    for (int i = 0; i < 4; ++i) {
      const double amplitude = std::hypot(y0[i / 2 * 2], y0[i / 2 * 2 + 1]);
      const double bound =
          static_cast<double>(so.accepted[i / 2]) * std::sqrt(2.0) * tol * (1e-3 + amplitude);
      EXPECT_LE(std::abs(y[i] - exact[i]), bound) << "rtol " << tol << ", entry " << i;
      worst = std::max(worst, std::abs(y[i] - exact[i]));
    }
    if (previous > 0) {
      EXPECT_LT(worst, previous / 100) << "1000x tighter tolerances";
    }
    previous = worst;
  }
}

// Each row has its own step size and decisions: rows of y' = -rate y with rates 1 .. 1000 take
// more steps the stiffer they are, each meets its tolerance, and every row's steps, counts and
// result are those of the row integrated alone.
TEST(Ode, EachRowControlsItsOwnStep) {
  const std::vector<double> rates = {1, 10, 100, 1000};
  const OdeOptions o{.rtol = 1e-5, .atol = 1e-8};
  std::vector<double> y(4, 1.0);
  const OdeStats st = ode_solve(decay_rates(rates), y.data(), 4, 1, 0.0, 1.0, o);
  for (int r = 0; r < 4; ++r) {
    EXPECT_NEAR(y[r], std::exp(-rates[r]), o.atol + o.rtol * std::exp(-rates[r])) << r;
    if (r > 0) {
      EXPECT_GT(st.accepted[r], st.accepted[r - 1]) << r;
    }
    double alone = 1;
    const OdeStats sa = ode_solve(decay_rates({rates[r]}), &alone, 1, 1, 0.0, 1.0, o);
    EXPECT_EQ(alone, y[r]) << r;
    EXPECT_EQ(sa.accepted[0], st.accepted[r]) << r;
    EXPECT_EQ(sa.rejected[0], st.rejected[r]) << r;
    EXPECT_EQ(sa.nfev[0], st.nfev[r]) << r;
  }
  EXPECT_GT(st.accepted[3], 10 * st.accepted[0]);
}

// The batched driver (a callable: one f call per stage over the rows still integrating) and
// the per-row loop (a built-in problem, the kernels' loop) run the same operations per row: the
// spiral through both gives the same bits, counts and trajectory, for every method.
TEST(Ode, BatchedCallableMatchesTheRowLoopBitForBit) {
  const std::int64_t batch = 64;
  const auto y0 = test::normals(batch * 2, 7, 0.0f, 0.5f);
  const OdeProblem spiral = OdeProblem::spiral();
  const detail::BuiltinOde f{spiral.kind, {spiral.p[0], spiral.p[1], spiral.p[2], spiral.p[3]}};
  int calls = 0;
  const OdeProblem custom = OdeProblem::custom(2, [&](const OdeEval& e) {
    ++calls;
    for (std::int64_t i = 0; i < e.n; ++i) f(e.rows[i], e.t[i], e.y + i * 2, e.dydt + i * 2, 2);
  });
  for (auto method : {OdeMethod::Euler, OdeMethod::Midpoint, OdeMethod::RK4, OdeMethod::RK4_38,
                      OdeMethod::Dopri5}) {
    const OdeOptions o{.method = method, .dt = method == OdeMethod::Dopri5 ? 0.0 : 0.01,
                       .rtol = 1e-5, .atol = 1e-8, .t_eval = {0.0, 0.3, 1.7, 5.0}};
    std::vector<float> a = y0, b = y0, ta(4 * batch * 2), tb(4 * batch * 2);
    test::poison(ta);
    test::poison(tb);
    calls = 0;
    const OdeStats sa = ode_solve(Context::cpu(), spiral, a.data(), batch, 0.0, 5.0, o, ta.data());
    const OdeStats sb = ode_solve(Context::cpu(), custom, b.data(), batch, 0.0, 5.0, o, tb.data());
    EXPECT_EQ(a, b) << to_string(method);
    EXPECT_TRUE(std::memcmp(ta.data(), tb.data(), ta.size() * 4) == 0) << to_string(method);
    EXPECT_EQ(sa.nfev, sb.nfev) << to_string(method);
    EXPECT_EQ(sa.accepted, sb.accepted) << to_string(method);
    EXPECT_EQ(sa.rejected, sb.rejected) << to_string(method);
    for (float v : ta) ASSERT_TRUE(std::isfinite(v)) << to_string(method);
    // One call per stage for the whole batch: far fewer calls than row evaluations.
    const std::int64_t row_evals = std::accumulate(sb.nfev.begin(), sb.nfev.end(), std::int64_t{0});
    EXPECT_LE(calls * 8, row_evals) << to_string(method);
  }
}

// On a fixed grid the built-in problems run 64 rows at a time, lane by lane: against the
// batched callable (the scalar row code), the same bits, counts and trajectory, for a batch of
// a full group and a partial one, d = 2 (compiled for it) and d = 3 (any d), with and without
// t_eval, and dopri5 stepped on the grid.
TEST(Ode, FixedStepLanesAreTheRowLoopBitForBit) {
  const std::int64_t batch = 77;
  for (const OdeProblem& p : {OdeProblem::spiral(), OdeProblem::decay(3, 0.7)}) {
    const std::int64_t d = p.d;
    const detail::BuiltinOde f{p.kind, {p.p[0], p.p[1], p.p[2], p.p[3]}};
    const OdeProblem custom = OdeProblem::custom(d, [&](const OdeEval& e) {
      for (std::int64_t i = 0; i < e.n; ++i) f(e.rows[i], e.t[i], e.y + i * d, e.dydt + i * d, int(d));
    });
    const auto y0 = test::normals(batch * d, 80 + d, 0.0f, 0.5f);
    for (const OdeOptions& o :
         {OdeOptions{.method = OdeMethod::Euler, .dt = 0.03},
          OdeOptions{.method = OdeMethod::RK4, .dt = 0.07, .t_eval = {0.0, 0.5, 1.0}},
          OdeOptions{.method = OdeMethod::Midpoint, .dt = 0.1, .t_eval = {0.33}},
          OdeOptions{.method = OdeMethod::Dopri5, .dt = 0.05, .adaptive = false, .t_eval = {0.9}}}) {
      SCOPED_TRACE(to_string(o.method) + " d " + std::to_string(d));
      std::vector<float> a = y0, b = y0, ta(o.t_eval.size() * batch * d), tb(ta.size());
      test::poison(ta);
      test::poison(tb);
      const OdeStats sa = ode_solve(Context::cpu(), p, a.data(), batch, 0.0, 1.0, o, ta.data());
      const OdeStats sb = ode_solve(Context::cpu(), custom, b.data(), batch, 0.0, 1.0, o, tb.data());
      EXPECT_TRUE(test::same_bytes(a, b));
      EXPECT_TRUE(test::same_bytes(ta, tb));
      EXPECT_EQ(sa.nfev, sb.nfev);
      EXPECT_EQ(sa.accepted, sb.accepted);
    }
  }
}

// Counts: fixed-step methods evaluate f stages x steps times; dopri5 2 + 6 per attempt with
// Hairer's first step, 1 + 6 per attempt with a given one.
// A built-in problem's rows in chunks on the backend's threads: states, trajectory and counts
// are the same bytes on any thread count, fixed-step and adaptive.
TEST(Ode, RowsAreTheSameOnAnyThreadCount) {
  const std::int64_t rows = 600;
  const std::vector<float> y0 = test::normals(rows * 2, 70);
  for (const OdeOptions& o : {OdeOptions{.method = OdeMethod::RK4, .dt = 0.01, .t_eval = {0.5, 1.0}},
                              OdeOptions{.method = OdeMethod::Dopri5, .t_eval = {0.25, 1.0}}}) {
    test::expect_same_on_any_thread_count([&] {
      std::vector<float> y = y0, traj(2 * rows * 2);
      const OdeStats st =
          ode_solve(Context::cpu(), OdeProblem::spiral(), y.data(), rows, 0.0, 1.0, o, traj.data());
      std::vector<float> counts;
      for (const auto* v : {&st.nfev, &st.accepted, &st.rejected})
        for (std::int64_t c : *v) counts.push_back(static_cast<float>(c));
      return std::vector<std::vector<float>>{y, traj, counts};
    });
  }
}

TEST(Ode, CountsAreTheMethodsEvaluations) {
  const std::pair<OdeMethod, int> stages[] = {{OdeMethod::Euler, 1}, {OdeMethod::Midpoint, 2},
                                              {OdeMethod::RK4, 4}, {OdeMethod::RK4_38, 4}};
  for (const auto& [method, s] : stages) {
    double y = 1;
    const OdeStats st = ode_solve(decay_rates({1.0}), &y, 1, 1, 0.0, 1.0, {.method = method, .dt = 0.1});
    EXPECT_EQ(st.accepted[0], 10);
    EXPECT_EQ(st.nfev[0], 10 * s);
  }
  double y = 1;
  OdeStats st = ode_solve(decay_rates({1.0}), &y, 1, 1, 0.0, 1.0, {.dt = 0.1, .adaptive = false});
  EXPECT_EQ(st.nfev[0], 1 + 6 * 10);
  for (double first : {0.0, 0.01}) {
    y = 1;
    st = ode_solve(decay_rates({30.0}), &y, 1, 1, 0.0, 2.0, {.dt = first});
    EXPECT_GT(st.rejected[0], 0);
    EXPECT_EQ(st.nfev[0], (first > 0 ? 1 : 2) + 6 * (st.accepted[0] + st.rejected[0]));
  }
}

// t_eval: dopri5's dense output against the closed form, the record at t1 equal to the final
// state, at t0 equal to the initial one; fixed-step methods step onto off-grid points (Euler
// at 0.015 with dt = 0.01: one step of 0.01, one of 0.005).
TEST(Ode, TrajectoryAtTEval) {
  const std::vector<double> times = {0.0, 0.37, 1.0, 2.5, 4.0, 6.2, 10.0};
  std::vector<double> y = {1.0, 0.0}, traj(times.size() * 2);
  const OdeProblem osc = OdeProblem::oscillator(2.0);
  const detail::BuiltinOde f{osc.kind, {2.0, 0, 0, 0}};
  const double rtol = 1e-7, atol = 1e-10;
  ode_solve([&](const OdeEval& e) {
    for (std::int64_t i = 0; i < e.n; ++i) f(e.rows[i], e.t[i], e.y + i * 2, e.dydt + i * 2, 2);
  }, y.data(), 1, 2, 0.0, 10.0, {.rtol = rtol, .atol = atol, .t_eval = times}, traj.data());
  const double y0[2] = {1.0, 0.0};
  for (std::size_t e = 0; e < times.size(); ++e) {
    double want[2];
    ode_exact(osc, 0.0, times[e], y0, 1, want);
    for (int j = 0; j < 2; ++j)  // the dense output is 4th order: a few tolerances
      EXPECT_NEAR(traj[e * 2 + j], want[j], 20 * (atol + rtol * 2)) << "t = " << times[e];
  }
  EXPECT_EQ(traj[0], 1.0);
  EXPECT_EQ(traj[1], 0.0);
  EXPECT_EQ(traj[12], y[0]);
  EXPECT_EQ(traj[13], y[1]);

  double h = 1, rec[3];
  ode_solve(decay_rates({1.0}), &h, 1, 1, 0.0, 0.05,
            {.method = OdeMethod::Euler, .dt = 0.01, .t_eval = {0.01, 0.015, 0.05}}, rec);
  EXPECT_NEAR(rec[0], 0.99, 1e-15);
  EXPECT_NEAR(rec[1], 0.99 * 0.995, 1e-15);
  EXPECT_NEAR(rec[2], 0.99 * 0.995 * 0.995 * 0.99 * 0.99 * 0.99, 1e-15);  // to 0.02, then the grid
  EXPECT_EQ(rec[2], h);
}

// t1 < t0: decay from t = 1 back to 0 multiplies by e; the oscillator forward and back returns
// to its start; decreasing t_eval.
TEST(Ode, IntegratesBackwardsInTime) {
  for (auto method : {OdeMethod::RK4, OdeMethod::Dopri5}) {
    const OdeOptions o{.method = method, .dt = method == OdeMethod::RK4 ? 0.01 : 0.0, .rtol = 1e-8,
                       .atol = 1e-12, .t_eval = {0.5, 0.0}};
    double y = 1, rec[2];
    const OdeStats st = ode_solve(decay_rates({1.0}), &y, 1, 1, 1.0, 0.0, o, rec);
    EXPECT_NEAR(y, std::exp(1.0), 1e-7) << to_string(method);
    EXPECT_NEAR(rec[0], std::exp(0.5), 1e-7) << to_string(method);
    EXPECT_EQ(rec[1], y);
    EXPECT_GT(st.accepted[0], 0);
  }
  std::vector<float> y = {1.0f, 0.5f};
  ode_solve(Context::cpu(), OdeProblem::oscillator(), y.data(), 1, 0.0, 7.0, {.rtol = 1e-8, .atol = 1e-10});
  ode_solve(Context::cpu(), OdeProblem::oscillator(), y.data(), 1, 7.0, 0.0, {.rtol = 1e-8, .atol = 1e-10});
  EXPECT_NEAR(y[0], 1.0f, 1e-6);
  EXPECT_NEAR(y[1], 0.5f, 1e-6);
}

// Lotka-Volterra's invariant V = delta x - gamma ln x + beta y - alpha ln y is conserved.
TEST(Ode, LotkaVolterraKeepsItsInvariant) {
  const OdeProblem lv = OdeProblem::lotka_volterra();
  std::vector<float> y = {10.0f, 5.0f, 1.0f, 1.0f, 3.0f, 2.0f};
  auto V = [](double x, double z) { return x - 3 * std::log(x) + z - 1.5 * std::log(z); };
  std::vector<double> before;
  for (int r = 0; r < 3; ++r) before.push_back(V(y[2 * r], y[2 * r + 1]));
  ode_solve(Context::cpu(), lv, y.data(), 3, 0.0, 20.0, {.rtol = 1e-9, .atol = 1e-12});
  for (int r = 0; r < 3; ++r) EXPECT_NEAR(V(y[2 * r], y[2 * r + 1]), before[r], 1e-5) << r;
}

// A row that cannot finish ends the call with genai::Error naming it, its time and step size
// (not a hang): too many steps for a stiff row, a step that collapses on a singular f.
TEST(Ode, FailuresNameTheRowTimeAndStepSize) {
  std::vector<double> y(3, 1.0);
  std::string m = failure_of([&] {
    ode_solve(decay_rates({1, 1, 1e5}), y.data(), 3, 1, 0.0, 1.0, {.max_steps = 200});
  });
  EXPECT_TRUE(contains(m, "genai::ode_solve: row 2 did not reach t1 = 1 within opts.max_steps = 200 steps ("))
      << m;
  EXPECT_TRUE(contains(m, "stopped at t = ")) << m;
  EXPECT_TRUE(contains(m, " with step size ")) << m;
  EXPECT_TRUE(contains(m, "(1 of 3 rows failed)")) << m;
  // Without counts: the same failure; a good run returns empty counts.
  std::fill(y.begin(), y.end(), 1.0);
  EXPECT_EQ(failure_of([&] {
    ode_solve(decay_rates({1, 1, 1e5}), y.data(), 3, 1, 0.0, 1.0, {.max_steps = 200, .counts = false});
  }), m);
  const OdeStats none = ode_solve(decay_rates({1, 2, 3}), y.data(), 3, 1, 0.0, 1.0, {.counts = false});
  EXPECT_TRUE(none.nfev.empty() && none.accepted.empty() && none.rejected.empty());

  // y' = y^2, y(0) = 1 blows up at t = 1 (y = 1 / (1 - t)).
  double v = 1;
  m = failure_of([&] {
    ode_solve([](const OdeEval& e) {
      for (std::int64_t i = 0; i < e.n; ++i) e.dydt[i] = e.y[i] * e.y[i];
    }, &v, 1, 1, 0.0, 2.0);
  });
  EXPECT_TRUE(contains(m, "genai::ode_solve: row 0 failed at t = ")) << m;
  EXPECT_TRUE(contains(m, "fell below 10 ulp of t or is not finite")) << m;

  // Fixed step: refused up front when the grid alone passes max_steps.
  m = error_of([&] {
    ode_solve(decay_rates({1.0}), &v, 1, 1, 0.0, 5.0, {.method = OdeMethod::Euler, .dt = 1e-3, .max_steps = 100});
  });
  EXPECT_TRUE(contains(m, "argument 'opts.dt' = 0.001 needs 5000 steps from t0 = 0 to t1 = 5, more than "
                          "opts.max_steps = 100")) << m;
}

TEST(Ode, BadInputIsRefusedNamingTheArgument) {
  const Context cpu = Context::cpu();
  std::vector<float> y = {1.0f, 2.0f};
  const std::vector<float> y0 = y;
  float traj[4];
  const OdeProblem decay = OdeProblem::decay(2);
  auto refused = [&](const OdeOptions& o, double t0, double t1, float* tr, std::int64_t batch = 1) {
    return error_of([&] { ode_solve(cpu, decay, y.data(), batch, t0, t1, o, tr); });
  };
  EXPECT_TRUE(contains(refused({}, 0, 1, nullptr, 0), "genai::ode_solve: argument 'batch' must be >= 1 (got 0)"));
  EXPECT_TRUE(contains(refused({.method = OdeMethod::RK4}, 0, 1, nullptr),
                       "argument 'opts.dt' must be finite and > 0 for rk4 (got 0)"));
  EXPECT_TRUE(contains(refused({.adaptive = false}, 0, 1, nullptr),
                       "argument 'opts.dt' must be finite and > 0 for dopri5 with adaptive = false"));
  EXPECT_TRUE(contains(refused({.rtol = 0}, 0, 1, nullptr), "argument 'opts.rtol' must be finite and > 0 (got 0)"));
  EXPECT_TRUE(contains(refused({.atol = -1}, 0, 1, nullptr), "argument 'opts.atol' must be finite and >= 0 (got -1)"));
  EXPECT_TRUE(contains(refused({.max_steps = 0}, 0, 1, nullptr), "argument 'opts.max_steps' must be >= 1 (got 0)"));
  EXPECT_TRUE(contains(refused({}, 0, NAN, nullptr), "argument 't1' must be finite"));
  EXPECT_TRUE(contains(refused({.t_eval = {0.5, 0.2}}, 0, 1, traj),
                       "argument 'opts.t_eval' entry 1 is 0.2 after 0.5: the times must be strictly increasing"));
  EXPECT_TRUE(contains(refused({.t_eval = {0.5, 0.2}}, 1, 0, traj), "(no ArgumentError)"));
  EXPECT_TRUE(contains(refused({.t_eval = {1.5}}, 0, 1, traj),
                       "argument 'opts.t_eval' entry 0 is 1.5, outside [t0, t1] = [0, 1]"));
  EXPECT_TRUE(contains(refused({.t_eval = {0.5}}, 0, 1, nullptr),
                       "argument 'trajectory' must not be null when opts.t_eval is given"));
  EXPECT_TRUE(contains(refused({}, 0, 1, traj), "argument 'trajectory' is given but opts.t_eval is empty"));
  y = y0;
  y[1] = NAN;
  EXPECT_TRUE(contains(refused({}, 0, 1, nullptr), "argument 'y' row 0 dimension 1 is not finite"));
  y = y0;
  EXPECT_TRUE(contains(error_of([&] { ode_solve(cpu, decay, nullptr, 1, 0, 1); }), "argument 'y' must not be null"));
  EXPECT_TRUE(contains(error_of([&] { OdeProblem::oscillator(0); }),
                       "genai::OdeProblem::oscillator: argument 'omega' must be finite and > 0 (got 0)"));
  EXPECT_TRUE(contains(error_of([&] { OdeProblem::named("brusselator"); }),
                       "argument 'name' is 'brusselator' (valid: decay, oscillator, lotka-volterra, spiral)"));
  EXPECT_TRUE(contains(error_of([&] { parse_ode_method("rk45"); }),
                       "argument 'name' is 'rk45' (valid: euler, midpoint, rk4, rk4_38, dopri5)"));
  OdeProblem bad = OdeProblem::spiral();
  bad.d = 3;
  EXPECT_TRUE(contains(error_of([&] { ode_solve(cpu, bad, y.data(), 1, 0, 1); }),
                       "argument 'problem.d' must be 2 for this problem (got 3)"));
  EXPECT_TRUE(contains(error_of([&] { ode_solve(OdeFunction{}, nullptr, 1, 1, 0, 1); }), "argument 'f' is empty"));
  EXPECT_TRUE(contains(error_of([&] {
    std::vector<double> e(2);
    ode_exact(OdeProblem::spiral(), 0, 1, e.data(), 1, e.data());
  }), "genai::ode_exact: argument 'problem' has no closed form"));
  EXPECT_EQ(y, y0);  // untouched by every refusal
  for (std::string name : {"euler", "midpoint", "rk4", "rk4_38", "dopri5"})
    EXPECT_EQ(to_string(parse_ode_method(name)), name);
}

// The kernels' arithmetic, rehearsed on the host: detail::ode_row in float (what one GPU
// thread runs; tests/ode_test_util.hpp) against the double reference. Fixed step: the same
// steps, within 1e-4 after 80 of them (a few roundings of 2^-24 each). dopri5 (rtol 1e-4): float
// rounding perturbs the error norms and so some rows' decisions, but not the accuracy: against
// the exact flow (dopri5 at rtol 1e-11 in double), the float rows' worst error is within twice
// the double rows' worst, in units of atol + rtol |y|.
TEST(Ode, FloatRowsAreAsAccurateAsTheDoubleReference) {
  const std::int64_t batch = 1000;
  const OdeProblem problems[] = {OdeProblem::oscillator(2.0), OdeProblem::lotka_volterra(),
                                 OdeProblem::spiral()};
  int seed = 300;
  for (const OdeProblem& p : problems) {
    const bool lv = p.kind == OdeProblem::Kind::LotkaVolterra;
    auto y0 = test::normals(batch * 2, ++seed, 0.0f, p.kind == OdeProblem::Kind::Oscillator ? 1.0f : 0.3f);
    if (lv)  // around the equilibrium (gamma / delta, alpha / beta) = (3, 1.5)
      for (std::int64_t r = 0; r < batch; ++r) y0[2 * r] += 3.0f, y0[2 * r + 1] += 1.5f;
    const detail::BuiltinOde f{p.kind, {p.p[0], p.p[1], p.p[2], p.p[3]}};
    const OdeFunction fd = [&](const OdeEval& e) {
      for (std::int64_t i = 0; i < e.n; ++i) f(e.rows[i], e.t[i], e.y + i * 2, e.dydt + i * 2, 2);
    };
    const std::vector<double> times = {0.0, 0.33, 2.0, 4.0};
    std::vector<double> truth(y0.begin(), y0.end()), truth_traj(4 * y0.size());
    ode_solve(fd, truth.data(), batch, 2, 0.0, 4.0, {.rtol = 1e-11, .atol = 1e-13, .t_eval = times},
              truth_traj.data());
    for (auto method : {OdeMethod::Euler, OdeMethod::Midpoint, OdeMethod::RK4, OdeMethod::RK4_38,
                        OdeMethod::Dopri5}) {
      const bool adaptive = method == OdeMethod::Dopri5;
      const OdeOptions o{.method = method, .dt = adaptive ? 0.0 : 0.05, .rtol = 1e-4, .atol = 1e-6,
                         .t_eval = times};
      std::vector<float> ref = y0, ref_traj(4 * y0.size());
      ode_solve(Context::cpu(), p, ref.data(), batch, 0.0, 4.0, o, ref_traj.data());
      const test::OdeOutputs fl = test::float_rows(f, y0, batch, 2, 0.0, 4.0, o);
      const std::string what = "kind " + std::to_string(static_cast<int>(p.kind)) + ", " + to_string(method);
      if (!adaptive) {
        EXPECT_TRUE(test::close(fl.y, ref, {1e-4, 1e-4})) << what;
        EXPECT_TRUE(test::close(fl.trajectory, ref_traj, {1e-4, 1e-4})) << what;
        continue;
      }
      auto worst = [&](const std::vector<float>& y, const std::vector<float>& traj) {
        double w = 0;
        for (std::size_t i = 0; i < y.size(); ++i)
          w = std::max(w, std::abs(y[i] - truth[i]) / (o.atol + o.rtol * std::abs(truth[i])));
        for (std::size_t i = 0; i < traj.size(); ++i)
          w = std::max(w, std::abs(traj[i] - truth_traj[i]) / (o.atol + o.rtol * std::abs(truth_traj[i])));
        return w;
      };
      const double wf = worst(fl.y, fl.trajectory), wd = worst(ref, ref_traj);
      EXPECT_LE(wf, 2 * wd) << what;
    }
  }
}

// t1 == t0 leaves y alone and records it.
TEST(Ode, AnEmptyIntervalReturnsTheInitialState) {
  std::vector<float> y = {1.5f, -2.0f}, rec(2);
  const OdeStats st = ode_solve(Context::cpu(), OdeProblem::spiral(), y.data(), 1, 3.0, 3.0,
                                {.t_eval = {3.0}}, rec.data());
  EXPECT_EQ(y, (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(rec, y);
  EXPECT_EQ(st.nfev[0], 0);
}

}  // namespace
}  // namespace genai
