// The Neural ODE layer on the CPU (problem set 2.5, 4.3): the forward against genai::ode_solve
// with the MLP in double, the backprop gradient against finite differences of those steps, the
// adjoint gradient against finite differences of the solution itself, the two against each
// other, closed forms for a linear field, and the adjoint's memory against the step count.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "genai/neural_ode.hpp"
#include "neural_ode_test_util.hpp"

namespace genai {
namespace {

using test::Vec;

const Context cpu = Context::cpu();
constexpr OdeMethod kFixed[] = {OdeMethod::Euler, OdeMethod::Midpoint, OdeMethod::RK4,
                                OdeMethod::RK4_38, OdeMethod::Dopri5};
constexpr NeuralOdeTime kTimes[] = {NeuralOdeTime::Concat, NeuralOdeTime::None};

// The fixed-step layer's options (dopri5 on the grid).
NeuralOdeOptions fixed(OdeMethod m, double dt, NeuralOdeTime time, NeuralOdeGradient g) {
  return {.method = m, .dt = dt, .adaptive = false, .time = time, .gradient = g};
}

// The same steps in genai::ode_solve (times on the grid t0 + k dt: the layer's steps).
OdeOptions ode_fixed(OdeMethod m, double dt) { return {.method = m, .dt = dt, .adaptive = false}; }

// The solution itself: dopri5 far below float rounding.
const OdeOptions kExact{.rtol = 1e-12, .atol = 1e-12};

std::string name(OdeMethod m, NeuralOdeTime t) { return to_string(m) + ", time " + to_string(t); }

// The flat gradients' rows for close(): every element (padding is 0 in both).
std::span<const double> span(const Vec& v) { return {v.data(), v.size()}; }

// Sets f = {d -> d} (one linear layer) to W, b.
void set_linear(Mlp& f, const std::vector<float>& W, const std::vector<float>& b) {
  const auto list = f.parameter_list();
  std::copy(W.begin(), W.end(), list[0].param);
  std::copy(b.begin(), b.end(), list[1].param);
}

// Problem 2.5's layer h(T) = ODESolve(f, h(0), 0, T) with the linear field f(h) = A h + b at
// A = -I, b = 0 (2.4's decay), T = 1, RK4 with dt = 0.01 (error ~ T dt^4 / 120, far below float
// rounding). With L = sum_r w_r . h_r(T) and the adjoint a(t) = e^{-(T - t)} w:
//   h(T) = e^{-T} h0,  dL/dh0 = e^{-T} w,  dL/dA = int_0^T a h^T dt = T e^{-T} sum_r w_r h0_r^T,
//   dL/db = int_0^T a dt = (1 - e^{-T}) sum_r w_r.
TEST(NeuralOde, LinearFieldGivesTheMatrixExponentialAndItsGradients) {
  const std::int64_t d = 2, batch = 5;
  const double T = 1.0, e = std::exp(-T);
  const auto h0 = test::normals(batch * d, 11);
  const auto wT = test::normals(batch * d, 12);
  std::vector<float> w(2 * batch * d, 0.0f);  // dL/dh(0) = 0, dL/dh(T) = wT
  std::copy(wT.begin(), wT.end(), w.begin() + batch * d);
  Vec traj(2 * batch * d), dh0(batch * d), dW(d * d, 0.0), db(d, 0.0);
  for (std::int64_t i = 0; i < batch * d; ++i) {
    traj[i] = h0[i];
    traj[batch * d + i] = e * h0[i];
    dh0[i] = e * wT[i];
  }
  for (std::int64_t r = 0; r < batch; ++r)
    for (std::int64_t i = 0; i < d; ++i) {
      db[i] += (1 - e) * wT[r * d + i];
      for (std::int64_t j = 0; j < d; ++j) dW[i * d + j] += T * e * wT[r * d + i] * h0[r * d + j];
    }
  for (NeuralOdeGradient g : {NeuralOdeGradient::Backprop, NeuralOdeGradient::Adjoint}) {
    SCOPED_TRACE(to_string(g));
    Mlp f(cpu, {.sizes = {d, d}});
    set_linear(f, {-1, 0, 0, -1}, {0, 0});
    NeuralOde layer(f, fixed(OdeMethod::RK4, 0.01, NeuralOdeTime::None, g));
    const test::NodeRun r = test::run_layer(layer, h0, batch, {0.0, T}, w);
    EXPECT_TRUE(test::close(r.traj, span(traj), test::tolerance(test::DType::FP32)));
    EXPECT_TRUE(test::close(r.dh0, span(dh0), test::tolerance(test::DType::FP32)));
    const auto list = f.parameter_list();
    const std::vector<float> gW(r.grads.begin() + list[0].offset,
                                r.grads.begin() + list[0].offset + d * d);
    const std::vector<float> gb(r.grads.begin() + list[1].offset,
                                r.grads.begin() + list[1].offset + d);
    EXPECT_TRUE(test::close(gW, span(dW), test::tolerance(test::DType::FP32)));
    EXPECT_TRUE(test::close(gb, span(db), test::tolerance(test::DType::FP32)));
    EXPECT_EQ(r.forward.steps, 100);
    EXPECT_EQ(r.forward.nfev, 400);
  }
}

// A rotating, decaying linear field, A = [[-0.1, 2], [-2, -0.1]] (the spiral's matrix,
// torchdiffeq's ode_demo, without the cube): h(t) = e^{-0.1 t} R(2t) h0 at every recorded time,
// R(s) =
// [[cos s, sin s], [-sin s, cos s]] acting on the row h0 (dh/dt = A h).
TEST(NeuralOde, RotatingLinearFieldFollowsItsClosedForm) {
  const std::int64_t d = 2, batch = 3;
  const std::vector<double> ts{0.0, 0.25, 1.0, 2.5};
  const auto h0 = test::normals(batch * d, 13);
  Mlp f(cpu, {.sizes = {d, d}});
  set_linear(f, {-0.1f, 2.0f, -2.0f, -0.1f}, {0, 0});
  NeuralOde layer(f, fixed(OdeMethod::RK4, 0.005, NeuralOdeTime::None, NeuralOdeGradient::None));
  const test::NodeRun r = test::run_layer(layer, h0, batch, ts, {});
  Vec want(ts.size() * batch * d);
  for (std::size_t k = 0; k < ts.size(); ++k)
    for (std::int64_t row = 0; row < batch; ++row) {
      const double x = h0[row * d], y = h0[row * d + 1], g = std::exp(-0.1 * ts[k]);
      const double c = std::cos(2 * ts[k]), s = std::sin(2 * ts[k]);
      want[(k * batch + row) * d] = g * (c * x + s * y);
      want[(k * batch + row) * d + 1] = g * (-s * x + c * y);
    }
  EXPECT_TRUE(test::close(r.traj, span(want), test::tolerance(test::DType::FP32)));
}

// Every fixed-step method, t as a column or not: the trajectory is genai::ode_solve's with the
// same MLP in double (the layer runs it in float: float rounding apart, the same numbers), and
// each step costs the method's stages in MLP calls.
TEST(NeuralOde, ForwardIsTheOdeSolversTrajectory) {
  const std::int64_t d = 2, batch = 6;
  const std::vector<double> ts{0.0, 0.3, 0.5, 1.0};
  const auto h0 = test::normals(batch * d, 21);
  for (OdeMethod m : kFixed)
    for (NeuralOdeTime time : kTimes) {
      SCOPED_TRACE(name(m, time));
      Mlp f = test::field(cpu, d, {16, 16}, time, 22);
      NeuralOde layer(f, fixed(m, 0.05, time, NeuralOdeGradient::None));
      const test::NodeRun r = test::run_layer(layer, h0, batch, ts, {});
      const Vec want = test::oracle_trajectory(test::mlp_d(f), time, d, Vec(h0.begin(), h0.end()),
                                               batch, ts, ode_fixed(m, 0.05));
      EXPECT_TRUE(test::close(r.traj, span(want), test::tolerance(test::DType::FP32)));
      const int stages = m == OdeMethod::Euler      ? 1
                         : m == OdeMethod::Midpoint ? 2
                         : m == OdeMethod::Dopri5   ? 6
                                                    : 4;
      EXPECT_EQ(r.forward.steps, 20);
      EXPECT_EQ(r.forward.nfev, 20 * stages);
    }
}

// Backpropagation through the steps is the exact gradient of the computed trajectory: central
// differences (in double) of the same steps' L = sum(w * traj), for every method, t as a column
// or not, the loss on every recorded time.
TEST(NeuralOde, BackpropIsTheGradientOfTheSteps) {
  const std::int64_t d = 2, batch = 3;
  const std::vector<double> ts{0.0, 0.4, 1.0};
  const auto h0 = test::normals(batch * d, 31);
  const auto w = test::normals(ts.size() * batch * d, 32);
  for (OdeMethod m : kFixed)
    for (NeuralOdeTime time : kTimes) {
      SCOPED_TRACE(name(m, time));
      Mlp f = test::field(cpu, d, {8}, time, 33);
      NeuralOde layer(f, fixed(m, 0.1, time, NeuralOdeGradient::Backprop));
      const test::NodeRun r = test::run_layer(layer, h0, batch, ts, w);
      const auto fd = test::oracle_gradients(f, time, h0, batch, ts, w, ode_fixed(m, 0.1));
      EXPECT_TRUE(test::close(r.grads, span(fd.dtheta), test::tolerance(test::DType::FP32)));
      EXPECT_TRUE(test::close(r.dh0, span(fd.dh0), test::tolerance(test::DType::FP32)));
      EXPECT_EQ(r.backward.steps, 10);
      EXPECT_EQ(r.backward.nfev, r.forward.nfev);  // each stage's MLP forward re-run once
      EXPECT_EQ(r.backward.vjp, r.forward.nfev);
    }
}

// The adjoint method gives the gradient of the solution (not of the steps): against central
// differences of the solution itself (dopri5 at 1e-12). With RK4, the 3/8 rule and dopri5 at
// dt = 0.05 the discretisation error (~dt^4) is below float rounding; adaptive dopri5's global
// error is within ~10 rtol, below the float bound at rtol = 1e-6.
TEST(NeuralOde, AdjointIsTheGradientOfTheSolution) {
  const std::int64_t d = 2, batch = 3;
  const std::vector<double> ts{0.0, 0.5, 1.0};
  const auto h0 = test::normals(batch * d, 41);
  const auto w = test::normals(ts.size() * batch * d, 42);
  for (NeuralOdeTime time : kTimes) {
    Mlp f = test::field(cpu, d, {8}, time, 43);
    const auto fd = test::oracle_gradients(f, time, h0, batch, ts, w, kExact);
    std::vector<NeuralOdeOptions> cases;
    for (OdeMethod m : {OdeMethod::RK4, OdeMethod::RK4_38, OdeMethod::Dopri5})
      cases.push_back(fixed(m, 0.05, time, NeuralOdeGradient::Adjoint));
    cases.push_back({.method = OdeMethod::Dopri5,
                     .rtol = 1e-6,
                     .atol = 1e-8,
                     .time = time,
                     .gradient = NeuralOdeGradient::Adjoint});
    for (const NeuralOdeOptions& o : cases) {
      SCOPED_TRACE(name(o.method, time) +
                   (o.adaptive && o.method == OdeMethod::Dopri5 ? " adaptive" : ""));
      NeuralOde layer(f, o);
      const test::NodeRun r = test::run_layer(layer, h0, batch, ts, w);
      EXPECT_TRUE(test::close(r.grads, span(fd.dtheta), test::tolerance(test::DType::FP32)));
      EXPECT_TRUE(test::close(r.dh0, span(fd.dh0), test::tolerance(test::DType::FP32)));
      EXPECT_EQ(r.backward.vjp, r.backward.nfev);  // every evaluation of z's field is both
    }
  }
}

// The two gradients against each other: both are the solution's gradient up to the method's
// error, so their difference falls as dt^order -- log2 of the ratio between dt and dt / 2 is
// 1 for Euler and 2 for midpoint (within 0.2, as the ode module's order tests); with RK4 they
// agree to float rounding.
TEST(NeuralOde, BackpropAndAdjointConvergeToEachOtherAtTheMethodsOrder) {
  const std::int64_t d = 2, batch = 3;
  const std::vector<double> ts{0.0, 1.0};
  const auto h0 = test::normals(batch * d, 51);
  const auto w = test::normals(ts.size() * batch * d, 52);
  Mlp f = test::field(cpu, d, {8}, NeuralOdeTime::Concat, 53);
  auto difference = [&](OdeMethod m, double dt) {
    NeuralOde bp(f, fixed(m, dt, NeuralOdeTime::Concat, NeuralOdeGradient::Backprop));
    NeuralOde adj(f, fixed(m, dt, NeuralOdeTime::Concat, NeuralOdeGradient::Adjoint));
    const test::NodeRun a = test::run_layer(bp, h0, batch, ts, w),
                        b = test::run_layer(adj, h0, batch, ts, w);
    double d2 = 0;
    for (std::size_t i = 0; i < a.grads.size(); ++i) d2 += std::pow(a.grads[i] - b.grads[i], 2.0);
    for (std::size_t i = 0; i < a.dh0.size(); ++i) d2 += std::pow(a.dh0[i] - b.dh0[i], 2.0);
    return std::sqrt(d2);
  };
  for (auto [m, order] : {std::pair{OdeMethod::Euler, 1.0}, std::pair{OdeMethod::Midpoint, 2.0}}) {
    SCOPED_TRACE(to_string(m));
    const double e1 = difference(m, 0.1), e2 = difference(m, 0.05), e3 = difference(m, 0.025);
    EXPECT_NEAR(std::log2(e1 / e2), order, 0.2) << e1 << " " << e2;
    EXPECT_NEAR(std::log2(e2 / e3), order, 0.2) << e2 << " " << e3;
  }
  NeuralOde bp(f, fixed(OdeMethod::RK4, 0.05, NeuralOdeTime::Concat, NeuralOdeGradient::Backprop));
  NeuralOde adj(f, fixed(OdeMethod::RK4, 0.05, NeuralOdeTime::Concat, NeuralOdeGradient::Adjoint));
  const test::NodeRun a = test::run_layer(bp, h0, batch, ts, w),
                      b = test::run_layer(adj, h0, batch, ts, w);
  EXPECT_TRUE(test::close(a.grads, b.grads, test::tolerance(test::DType::FP32)));
  EXPECT_TRUE(test::close(a.dh0, b.dh0, test::tolerance(test::DType::FP32)));
}

// Adaptive dopri5 on the batch: the trajectory within its tolerance of the solution, every
// recorded time stepped on (no step passes one), Hairer's probe and the FSAL count
// (nfev = 2 + 6 attempts), and backprop through its accepted steps within the same bound of
// the solution's gradient.
TEST(NeuralOde, AdaptiveDopri5FollowsTheSolution) {
  const std::int64_t d = 2, batch = 4;
  std::vector<double> ts;
  for (int k = 0; k <= 8; ++k) ts.push_back(0.25 * k);
  const auto h0 = test::normals(batch * d, 61, 0.0f, 2.0f);
  const auto w = test::normals(ts.size() * batch * d, 62);
  Mlp f = test::field(cpu, d, {16, 16}, NeuralOdeTime::Concat, 63);
  const double rtol = 1e-6;
  const Vec exact = test::oracle_trajectory(test::mlp_d(f), NeuralOdeTime::Concat, d,
                                            Vec(h0.begin(), h0.end()), batch, ts, kExact);
  const auto fd = test::oracle_gradients(f, NeuralOdeTime::Concat, h0, batch, ts, w, kExact);
  NeuralOde layer(f, {.method = OdeMethod::Dopri5,
                      .rtol = rtol,
                      .atol = 1e-8,
                      .gradient = NeuralOdeGradient::Backprop});
  const test::NodeRun r = test::run_layer(layer, h0, batch, ts, w);
  const test::Tolerance tol{10 * rtol, 10 * rtol};
  EXPECT_TRUE(test::close(r.traj, span(exact), tol));
  EXPECT_TRUE(test::close(r.grads, span(fd.dtheta), tol));
  EXPECT_TRUE(test::close(r.dh0, span(fd.dh0), tol));
  EXPECT_GE(r.forward.steps, 8);
  EXPECT_EQ(r.forward.nfev, 2 + 6 * (r.forward.steps + r.forward.rejected));
  EXPECT_EQ(r.backward.steps, r.forward.steps);
}

// 4.3: the adjoint's memory does not grow with the number of steps (10, 100, 1000 RK4 steps:
// the same bytes), backprop's tape grows by stages x batch x d floats a step.
TEST(NeuralOde, AdjointMemoryDoesNotGrowWithTheSteps) {
  const std::int64_t d = 2, batch = 8;
  const auto h0 = test::normals(batch * d, 71);
  const auto w = test::normals(2 * batch * d, 72);
  Mlp f = test::field(cpu, d, {16}, NeuralOdeTime::Concat, 73);
  std::size_t adjoint[3], backprop[3];
  const double dts[3] = {0.1, 0.01, 0.001};
  for (int i = 0; i < 3; ++i) {
    NeuralOde adj(f,
                  fixed(OdeMethod::RK4, dts[i], NeuralOdeTime::Concat, NeuralOdeGradient::Adjoint));
    NeuralOde bp(f,
                 fixed(OdeMethod::RK4, dts[i], NeuralOdeTime::Concat, NeuralOdeGradient::Backprop));
    const test::NodeRun a = test::run_layer(adj, h0, batch, {0.0, 1.0}, w);
    const test::NodeRun b = test::run_layer(bp, h0, batch, {0.0, 1.0}, w);
    EXPECT_EQ(a.backward.steps, std::lround(1 / dts[i]));
    adjoint[i] = a.ws_bytes;
    backprop[i] = b.ws_bytes;
  }
  EXPECT_EQ(adjoint[1], adjoint[0]);
  EXPECT_EQ(adjoint[2], adjoint[0]);
  const std::size_t per_step = 4 * batch * d * sizeof(float);
  EXPECT_EQ(backprop[1] - backprop[0], 90 * per_step);
  EXPECT_EQ(backprop[2] - backprop[1], 900 * per_step);
}

// 2.3: Euler with dt = 1 is a ResNet, h_{k+1} = h_k + f(h_k): three steps are three residual
// blocks sharing f, bit for bit.
TEST(NeuralOde, EulerWithUnitStepIsAResNet) {
  const std::int64_t d = 3, batch = 5;
  const auto h0 = test::normals(batch * d, 81);
  Mlp f = test::field(cpu, d, {16}, NeuralOdeTime::None, 82);
  NeuralOde layer(f, fixed(OdeMethod::Euler, 1.0, NeuralOdeTime::None, NeuralOdeGradient::None));
  const test::NodeRun r = test::run_layer(layer, h0, batch, {0.0, 3.0}, {});
  std::vector<float> h = h0, fh(h0.size());
  MlpWorkspace ws;
  for (int k = 0; k < 3; ++k) {
    f.forward(ws, h.data(), nullptr, batch, fh.data());
    for (std::size_t i = 0; i < h.size(); ++i) h[i] += fh[i];
  }
  EXPECT_EQ(test::slice(r.traj, 1, batch * d), h);
}

// Times may decrease: integrating back from h(1) to t = 0 returns h0 (RK4, dt = 0.01: within
// float rounding), and the gradients of a backwards trajectory match finite differences.
TEST(NeuralOde, IntegratesBackwardsInTime) {
  const std::int64_t d = 2, batch = 4;
  const auto h0 = test::normals(batch * d, 91);
  Mlp f = test::field(cpu, d, {16}, NeuralOdeTime::Concat, 92);
  NeuralOde layer(f, fixed(OdeMethod::RK4, 0.01, NeuralOdeTime::Concat, NeuralOdeGradient::None));
  const test::NodeRun there = test::run_layer(layer, h0, batch, {0.0, 1.0}, {});
  const test::NodeRun back =
      test::run_layer(layer, test::slice(there.traj, 1, batch * d), batch, {1.0, 0.0}, {});
  EXPECT_TRUE(
      test::close(test::slice(back.traj, 1, batch * d), h0, test::tolerance(test::DType::FP32)));
  const std::vector<double> ts{1.0, 0.6, 0.0};
  const auto w = test::normals(ts.size() * batch * d, 93);
  const auto fd = test::oracle_gradients(f, NeuralOdeTime::Concat, h0, batch, ts, w, kExact);
  for (NeuralOdeGradient g : {NeuralOdeGradient::Backprop, NeuralOdeGradient::Adjoint}) {
    SCOPED_TRACE(to_string(g));
    NeuralOde l(f, fixed(OdeMethod::RK4, 0.05, NeuralOdeTime::Concat, g));
    const test::NodeRun r = test::run_layer(l, h0, batch, ts, w);
    EXPECT_TRUE(test::close(r.grads, span(fd.dtheta), test::tolerance(test::DType::FP32)));
    EXPECT_TRUE(test::close(r.dh0, span(fd.dh0), test::tolerance(test::DType::FP32)));
  }
}

// accumulate = true adds to the gradients already there (twice the same backward: twice the
// gradient); a workspace reused for another forward gives the same numbers and does not grow.
TEST(NeuralOde, GradientsAccumulateAndWorkspacesAreReused) {
  const std::int64_t d = 2, batch = 4;
  const std::vector<double> ts{0.0, 0.5};
  const auto h0 = test::normals(batch * d, 101);
  const auto w = test::normals(2 * batch * d, 102);
  for (NeuralOdeGradient g : {NeuralOdeGradient::Backprop, NeuralOdeGradient::Adjoint}) {
    SCOPED_TRACE(to_string(g));
    Mlp f = test::field(cpu, d, {8}, NeuralOdeTime::Concat, 103);
    NeuralOde layer(f, fixed(OdeMethod::Midpoint, 0.1, NeuralOdeTime::Concat, g));
    NeuralOdeWorkspace ws;
    std::vector<float> traj(2 * batch * d), traj2(traj.size()), dh0(batch * d);
    layer.forward(ws, h0.data(), batch, ts, traj.data());
    layer.backward(ws, w.data(), dh0.data());
    const std::vector<float> once(f.gradients(), f.gradients() + f.flat_size());
    const std::size_t bytes = ws.bytes();
    layer.forward(ws, h0.data(), batch, ts, traj2.data());
    EXPECT_EQ(traj2, traj);
    EXPECT_EQ(ws.bytes(), bytes);
    layer.backward(ws, w.data(), nullptr, true);
    for (std::int64_t i = 0; i < f.flat_size(); ++i)
      EXPECT_NEAR(f.gradients()[i], 2 * once[i], 1e-6 * std::max(1.0f, std::abs(once[i]))) << i;
  }
}

TEST(NeuralOde, RefusesBadInputAndWritesNothing) {
  const std::int64_t d = 2, batch = 2;
  Mlp f = test::field(cpu, d, {8}, NeuralOdeTime::Concat, 111);
  Mlp embedded(cpu, {.sizes = {3, 8, 2}, .time_embedding_dim = 4});
  test::expect_argument_error([&] { NeuralOde(embedded, {}); },
                              "argument 'f' has a time embedding");
  test::expect_argument_error(
      [&] { NeuralOde(f, {.time = NeuralOdeTime::None}); },
      "argument 'f' has input_dim() = 3; with time = none it must be output_dim() = 2");
  test::expect_argument_error([&] { NeuralOde(f, {.method = OdeMethod::RK4}); },
                              "argument 'opts.dt' must be finite and > 0 for rk4 (got 0)");
  test::expect_argument_error([&] { NeuralOde(f, {.method = OdeMethod::Dopri5, .rtol = 0}); },
                              "argument 'opts.rtol'");
  test::expect_argument_error(
      [&] { NeuralOde(f, {.gradient = static_cast<NeuralOdeGradient>(7)}); },
      "argument 'opts.gradient' is not a NeuralOdeGradient");
  NeuralOde layer(f, {.method = OdeMethod::RK4, .dt = 0.05});
  NeuralOdeWorkspace ws;
  std::vector<float> h0 = test::normals(batch * d, 112), traj(3 * batch * d, 7.0f),
                     dh0(batch * d, 7.0f);
  const std::vector<double> ts{0.0, 0.5, 1.0};
  auto untouched = [&] {
    for (float v : traj) ASSERT_EQ(v, 7.0f);
  };
  test::expect_argument_error([&] { layer.forward(ws, h0.data(), 0, ts, traj.data()); },
                              "argument 'batch' must be >= 1 (got 0)");
  test::expect_argument_error([&] { layer.forward(ws, nullptr, batch, ts, traj.data()); },
                              "argument 'h0' must not be null");
  test::expect_argument_error(
      [&] { layer.forward(ws, h0.data(), batch, std::vector<double>{0.0}, traj.data()); },
      "argument 'ts' needs at least 2 times");
  test::expect_argument_error(
      [&] {
        layer.forward(ws, h0.data(), batch, std::vector<double>{0, 1, 0.5}, traj.data());
      },
      "argument 'ts' entry 2 is 0.5 after 1: the times must be strictly monotone");
  test::expect_argument_error(
      [&] {
        layer.forward(ws, h0.data(), batch, std::vector<double>{0, NAN}, traj.data());
      },
      "argument 'ts' entry 1 is nan (must be finite)");
  test::expect_argument_error(
      [&] {
        layer.forward(ws, h0.data(), batch, std::vector<double>{0, 1e9}, traj.data());
      },
      "argument 'opts.dt' = 0.05 needs 2e+10 steps over ts, more than opts.max_steps = 100000");
  h0[3] = INFINITY;
  test::expect_argument_error([&] { layer.forward(ws, h0.data(), batch, ts, traj.data()); },
                              "argument 'h0' entry 3 (row 1, column 1) is inf (must be finite)");
  untouched();
  h0[3] = 0.5f;
  test::expect_argument_error([&] { layer.backward(ws, traj.data(), dh0.data()); },
                              "argument 'ws' holds no forward of this layer (call forward first)");
  layer.forward(ws, h0.data(), batch, ts, traj.data());
  std::vector<float> dtraj(traj.size(), 1.0f);
  dtraj[5] = NAN;
  test::expect_argument_error([&] { layer.backward(ws, dtraj.data(), dh0.data()); },
                              "argument 'dtraj' entry 5 (row 2, column 1) is nan (must be finite)");
  test::expect_argument_error([&] { layer.backward(ws, nullptr, dh0.data()); },
                              "argument 'dtraj' must not be null");
  for (float v : dh0) EXPECT_EQ(v, 7.0f);
  NeuralOde inference(f, {.gradient = NeuralOdeGradient::None});
  inference.forward(ws, h0.data(), batch, ts, traj.data());
  test::expect_argument_error(
      [&] { inference.backward(ws, dtraj.data()); },
      "holds nothing to differentiate: its forward was made with opts.gradient = none");
  test::expect_argument_error([&] { parse_neural_ode_time("t"); }, "(valid: concat, none)");
  test::expect_argument_error([&] { parse_neural_ode_gradient("bptt"); },
                              "(valid: none, backprop, adjoint)");
  EXPECT_EQ(parse_neural_ode_gradient(to_string(NeuralOdeGradient::Adjoint)),
            NeuralOdeGradient::Adjoint);
  EXPECT_EQ(parse_neural_ode_time(to_string(NeuralOdeTime::None)), NeuralOdeTime::None);
}

// Adaptive dopri5 that cannot finish within max_steps ends with an Error naming the time reached.
TEST(NeuralOde, AdaptiveGivesUpAfterMaxSteps) {
  Mlp f = test::field(cpu, 2, {8}, NeuralOdeTime::Concat, 121);
  NeuralOde layer(f, {.method = OdeMethod::Dopri5, .rtol = 1e-9, .atol = 1e-12, .max_steps = 3});
  NeuralOdeWorkspace ws;
  const auto h0 = test::normals(4, 122);
  std::vector<float> traj(2 * 4);
  try {
    layer.forward(ws, h0.data(), 2, std::vector<double>{0.0, 10.0}, traj.data());
    ADD_FAILURE() << "no error";
  } catch (const ArgumentError& e) {
    ADD_FAILURE() << e.what();
  } catch (const Error& e) {
    EXPECT_NE(
        std::string(e.what()).find("dopri5 did not reach t = 10 within opts.max_steps = 3 steps"),
        std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace genai
