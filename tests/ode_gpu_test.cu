// The ODE kernels against the kernels' own arithmetic run on the host: every method on every
// built-in problem (one thread per row, the whole integration in one launch; d = 5 and d = 6
// take the workspace path), a user's __device__ functor through genai/ode_device.cuh,
// integration backwards in time, failures and bad input.
//
// The reference is detail::ode_row in float on the host (tests/ode_test_util.hpp): with the
// kernels and this file compiled with -fmad=false and the controller's powers from IEEE
// operations (genai/detail/ode.hpp), a GPU row computes the same bits, so every row takes the
// same step decisions and ends on the same state. The rule allows 1% of the rows to differ and
// 1e-5 on the others, so that one decision flipped by an unforeseen last-bit difference does not
// fail the check (a real difference flips many). tests/ode_test.cpp checks that float path
// against the double reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "genai/ode.hpp"
#include "genai/ode_device.cuh"
#include "ode_test_util.hpp"
#include "test_util.hpp"

namespace genai {
namespace {

using test::error_of;

// dy/dt = -rate[row] y (the header's example), on either side.
struct Rates {
  const float* rate;
  __host__ __device__ void operator()(std::int64_t row, float, const float* y, float* dydt,
                                      int d) const {
    for (int j = 0; j < d; ++j) dydt[j] = -rate[row] * y[j];
  }
};

// Rows of d = 6: three oscillators x_k'' = -w_k^2 x_k + 0.1 t, pushed along in time.
struct Forced {
  __host__ __device__ void operator()(std::int64_t, float t, const float* y, float* dydt, int) const {
    for (int k = 0; k < 3; ++k) {
      const float w = 1.0f + 0.5f * k;
      dydt[2 * k] = y[2 * k + 1];
      dydt[2 * k + 1] = -w * w * y[2 * k] + 0.1f * t;
    }
  }
};

TEST(OdeDevice, RefusesACpuContext) {
  std::vector<float> y = {1.0f};
  const std::string m = error_of([&] {
    ode_solve_device(Context::cpu(), Rates{nullptr}, y.data(), 1, 1, 0.0, 1.0);
  });
  EXPECT_NE(m.find("genai::ode_solve_device: argument 'ctx' must be a CUDA context"), std::string::npos) << m;
  EXPECT_EQ(y, std::vector<float>{1.0f});
}

class OdeGpu : public test::GpuTest {
 protected:
  // run(y, trajectory) on the device (trajectory poisoned first) and host_f in float on the
  // host, same inputs; the device's outputs checked against the host's with the parity rule.
  template <class Run, class F>
  test::OdeOutputs expect_parity(const Run& run, const F& host_f, const std::vector<float>& y0,
                                 std::int64_t batch, std::int64_t d, double t0, double t1,
                                 const OdeOptions& o, const std::string& what) {
    SCOPED_TRACE(what);
    const std::size_t records = o.t_eval.size() * y0.size();
    auto dy = test::to_device(ctx, y0);
    Buffer<float> dtraj(ctx, records);
    test::poison(dtraj);
    test::OdeOutputs dev;
    dev.stats = run(dy.data(), records ? dtraj.data() : nullptr);
    dev.y = dy.to_host();
    dev.trajectory = dtraj.to_host();
    const test::OdeOutputs host = test::float_rows(host_f, y0, batch, d, t0, t1, o);
    const bool adaptive = o.method == OdeMethod::Dopri5 && o.adaptive;
    test::expect_same_rows(dev, host, batch, d, adaptive ? batch / 100 : 0, 1e-5);
    return dev;
  }
  // The same through genai::ode_solve_device with a functor.
  template <class F>
  test::OdeOutputs expect_functor_parity(const F& device_f, const F& host_f,
                                         const std::vector<float>& y0, std::int64_t batch,
                                         std::int64_t d, double t0, double t1, const OdeOptions& o,
                                         const std::string& what) {
    return expect_parity([&](float* y, float* trajectory) {
      return ode_solve_device(ctx, device_f, y, batch, d, t0, t1, o, trajectory);
    }, host_f, y0, batch, d, t0, t1, o, what);
  }
};

const OdeMethod kMethods[] = {OdeMethod::Euler, OdeMethod::Midpoint, OdeMethod::RK4,
                              OdeMethod::RK4_38, OdeMethod::Dopri5};

// Every method on every built-in problem through genai::ode_solve (the built-in kernels), with
// t_eval records; the record at t0 is y0.
TEST_F(OdeGpu, BuiltinProblemsMatchReference) {
  const std::int64_t batch = 2000;
  const std::pair<const char*, OdeProblem> problems[] = {
      {"decay d=1", OdeProblem::decay(1, 0.7)},     {"decay d=5", OdeProblem::decay(5, 1.3)},
      {"oscillator", OdeProblem::oscillator(2.0)},  {"lotka-volterra", OdeProblem::lotka_volterra()},
      {"spiral", OdeProblem::spiral()}};
  int seed = 100;
  for (const auto& problem : problems) {
    const char* name = problem.first;
    const OdeProblem& p = problem.second;
    const bool lv = p.kind == OdeProblem::Kind::LotkaVolterra, spiral = p.kind == OdeProblem::Kind::Spiral;
    auto y0 = test::normals(batch * p.d, ++seed, 0.0f, lv || spiral ? 0.3f : 1.0f);
    if (lv)  // around the equilibrium (3, 1.5)
      for (std::int64_t r = 0; r < batch; ++r) y0[2 * r] += 3.0f, y0[2 * r + 1] += 1.5f;
    const detail::BuiltinOde f{p.kind, {p.p[0], p.p[1], p.p[2], p.p[3]}};
    for (auto method : kMethods) {
      const bool adaptive = method == OdeMethod::Dopri5;
      const OdeOptions o{.method = method, .dt = adaptive ? 0.0 : 0.05, .rtol = 1e-4, .atol = 1e-6,
                         .t_eval = {0.0, 0.33, 2.0, 4.0}};
      const test::OdeOutputs dev = expect_parity([&](float* y, float* trajectory) {
        return ode_solve(ctx, p, y, batch, 0.0, 4.0, o, trajectory);
      }, f, y0, batch, p.d, 0.0, 4.0, o, std::string(name) + ", " + to_string(method));
      EXPECT_EQ(std::vector<float>(dev.trajectory.begin(), dev.trajectory.begin() + y0.size()), y0)
          << name << ", " << to_string(method) << ": the record at t0";
    }
  }
}

// Backwards (t1 < t0) with decreasing t_eval, fixed step and adaptive.
TEST_F(OdeGpu, BackwardsMatchesReference) {
  const std::int64_t batch = 1000;
  const auto y0 = test::normals(batch * 2, 31);
  const OdeProblem p = OdeProblem::oscillator(1.5);
  const detail::BuiltinOde f{p.kind, {1.5, 0, 0, 0}};
  for (auto method : {OdeMethod::RK4, OdeMethod::Dopri5}) {
    const OdeOptions o{.method = method, .dt = method == OdeMethod::RK4 ? 0.04 : 0.0, .rtol = 1e-4,
                       .atol = 1e-6, .t_eval = {2.5, 1.0, -1.0}};
    expect_functor_parity(f, f, y0, batch, 2, 3.0, -1.0, o, "backwards, " + to_string(method));
  }
}

// A user's functor with per-row rates 0.1 .. 300 (dopri5): stiffer rows take more steps, each
// row its own; and a d = 6 functor (workspace path) with every method.
TEST_F(OdeGpu, UserFunctorMatchesReference) {
  const std::int64_t batch = 4096;
  std::vector<float> rate(batch);
  for (std::int64_t r = 0; r < batch; ++r)
    rate[r] = static_cast<float>(0.1 * std::pow(3000.0, double(r) / (batch - 1)));
  const auto drate = test::to_device(ctx, rate);
  const auto y0 = test::normals(batch, 41, 0.0f, 2.0f);
  const OdeOptions o{.rtol = 1e-4, .atol = 1e-7, .t_eval = {0.5, 1.0}};
  const test::OdeOutputs dev =
      expect_functor_parity(Rates{drate.data()}, Rates{rate.data()}, y0, batch, 1, 0.0, 1.0, o, "rates");
  EXPECT_GT(dev.stats.accepted[batch - 1], 10 * dev.stats.accepted[0]);

  const std::int64_t rows6 = 500;
  const auto x0 = test::normals(rows6 * 6, 42);
  for (auto method : kMethods) {
    const bool adaptive = method == OdeMethod::Dopri5;
    const OdeOptions o6{.method = method, .dt = adaptive ? 0.0 : 0.02, .rtol = 1e-4, .atol = 1e-6,
                        .t_eval = {1.0}};
    expect_functor_parity(Forced{}, Forced{}, x0, rows6, 6, 0.0, 2.0, o6, "d = 6, " + to_string(method));
  }
}

TEST_F(OdeGpu, FailuresAndBadInputAreReportedAsOnTheCpu) {
  const std::vector<float> rate = {1.0f, 1.0f, 1e5f};
  const auto drate = test::to_device(ctx, rate);
  auto dy = test::to_device(ctx, std::vector<float>{1.0f, 1.0f, 1.0f});
  std::string m;
  try {
    ode_solve_device(ctx, Rates{drate.data()}, dy.data(), 3, 1, 0.0, 1.0, {.max_steps = 200});
  } catch (const Error& e) {
    m = e.what();
  }
  EXPECT_NE(m.find("genai::ode_solve_device: row 2 did not reach t1 = 1 within opts.max_steps = 200 steps"),
            std::string::npos) << m;
  EXPECT_NE(m.find("(1 of 3 rows failed)"), std::string::npos) << m;
  // Without counts the rows stay on the device; a scan finds the failed one, with the same words.
  dy.copy_from_host(std::vector<float>{1.0f, 1.0f, 1.0f});
  std::string m2;
  try {
    ode_solve_device(ctx, Rates{drate.data()}, dy.data(), 3, 1, 0.0, 1.0, {.max_steps = 200, .counts = false});
  } catch (const Error& e) {
    m2 = e.what();
  }
  EXPECT_EQ(m2, m);
  const OdeStats none = ode_solve(ctx, OdeProblem::decay(1), dy.data(), 3, 0.0, 1.0, {.counts = false});
  EXPECT_TRUE(none.nfev.empty() && none.accepted.empty() && none.rejected.empty());

  std::vector<float> y = {1.0f, NAN};
  auto bad = test::to_device(ctx, y);
  m = error_of([&] { ode_solve(ctx, OdeProblem::decay(1), bad.data(), 2, 0.0, 1.0); });
  EXPECT_NE(m.find("genai::ode_solve: argument 'y' row 1 dimension 0 is not finite"), std::string::npos) << m;
  m = error_of([&] {
    ode_solve(ctx, OdeProblem::custom(1, [](const OdeEval&) {}), bad.data(), 2, 0.0, 1.0);
  });
  EXPECT_NE(m.find("argument 'problem' is a custom (host) problem"), std::string::npos) << m;
  y[1] = 2.0f;
  bad.copy_from_host(y);
  Buffer<float> traj(ctx, 4);
  m = error_of([&] {
    ode_solve_device(ctx, Rates{drate.data()}, bad.data(), 2, 1, 0.0, 1.0, {.t_eval = {0.7, 0.2}}, traj.data());
  });
  EXPECT_NE(m.find("genai::ode_solve_device: argument 'opts.t_eval' entry 1 is 0.2 after 0.7"),
            std::string::npos) << m;
  m = error_of([&] { ode_solve_device(ctx, Rates{drate.data()}, bad.data(), 2, 1, 0.0, 1.0, {.method = OdeMethod::Euler}); });
  EXPECT_NE(m.find("argument 'opts.dt' must be finite and > 0 for euler"), std::string::npos) << m;
  EXPECT_EQ(bad.to_host(), y);
}

}  // namespace
}  // namespace genai
