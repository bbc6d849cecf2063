// genai ode: a built-in ODE integrated for a batch of initial states, the trajectory as .npy and
// a picture; and the module's demo rows and problem-set checks (2.4).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <numeric>
#include <sstream>

#include "cli/common.hpp"
#include "cli/plot.hpp"
#include "genai/buffer.hpp"
#include "genai/io.hpp"
#include "genai/ode.hpp"
#include "genai/rng.hpp"

namespace genai::cli {
namespace {

constexpr const char* kWho = "genai ode";
// Without --t-eval: the fixed-step grid, or this many evenly spaced times (dopri5).
constexpr int kDefaultTimes = 1001;
// A trajectory larger than this is refused (give fewer --t-eval times).
constexpr double kMaxTrajectoryBytes = 1 << 30;
// --plot draws at most this many rows.
constexpr std::int64_t kPlotRows = 32;

struct OdeArgs {
  std::string problem = "decay", method = "dopri5", device = "auto", out, plot, t_eval, y0;
  double t0 = 0, t_end = 5, dt = 0, rtol = 1e-3, atol = 1e-6, spread = 0.5;
  std::int64_t batch = 1, max_steps = 100000;
  std::uint64_t seed = 0;
  bool tolerances_given = false;  // --rtol or --atol on the command line
};

std::vector<double> parse_numbers(const std::string& spec, const char* what) {
  std::vector<double> v;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      std::size_t used = 0;
      v.push_back(std::stod(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw ArgumentError(std::string(kWho) + ": " + what + ": '" + item + "' is not a number");
    }
  }
  return v;
}

// The problem's usual start: 2.4's y(0) = 1, the oscillator at (1, 0), Lotka-Volterra at
// (10, 5) (SciPy's example), the spiral at (2, 0) (torchdiffeq's ode_demo).
std::vector<double> canonical_start(const std::string& problem) {
  if (problem == "oscillator") return {1, 0};
  if (problem == "lotka-volterra") return {10, 5};
  if (problem == "spiral") return {2, 0};
  return {1};
}

// Row 0 starts at the start; row r > 0 at start + spread z_r, z_r ~ N(0, I) from Philox
// (seed, user stream); Lotka-Volterra's populations are kept >= 0.1.
std::vector<float> initial_states(const OdeArgs& a, const std::vector<double>& start) {
  const auto d = static_cast<std::int64_t>(start.size());
  std::vector<float> z(a.batch * d), y(a.batch * d);
  fill_normal(Context::cpu(), z.data(), a.batch * d, {a.seed, rng::streams::user, 0});
  for (std::int64_t r = 0; r < a.batch; ++r)
    for (std::int64_t j = 0; j < d; ++j) {
      double v = start[j] + (r > 0 ? a.spread * z[r * d + j] : 0.0);
      if (a.problem == "lotka-volterra") v = std::max(v, 0.1);
      y[r * d + j] = static_cast<float>(v);
    }
  return y;
}

// The times of the records: --t-eval, else the fixed-step grid (t0, t0 + dt, ..., t_end; the
// last step shortened as ode_solve does), else kDefaultTimes evenly spaced.
std::vector<double> record_times(const OdeArgs& a, bool fixed) {
  if (!a.t_eval.empty()) return parse_numbers(a.t_eval, "--t-eval");
  std::vector<double> t;
  const double span = a.t_end - a.t0, dir = span >= 0 ? 1 : -1;
  if (fixed && a.dt > 0) {
    const double steps = std::max(1.0, std::ceil(std::abs(span) / a.dt - 1e-9));
    if (steps > kMaxTrajectoryBytes)
      detail::throw_argument(kWho, "--dt", "gives ", steps, " grid times: give --t-eval");
    for (double k = 0; k < steps; ++k) t.push_back(a.t0 + dir * k * a.dt);
  } else {
    for (int k = 0; k + 1 < kDefaultTimes; ++k) t.push_back(a.t0 + span * k / (kDefaultTimes - 1));
  }
  t.push_back(a.t_end);
  return t;
}

// Trajectories [times x batch x d] of at most kPlotRows rows: the phase plane (d = 2) or y
// against t (d = 1). Data beside the picture: <png>.dat, one block per row ("t y..." lines),
// blocks separated by two blank lines (gnuplot's index).
void plot_trajectories(const std::string& png, const std::vector<double>& times,
                       const std::vector<float>& traj, std::int64_t batch, std::int64_t d,
                       const std::string& title) {
  require_plot_path(kWho, png);
  const std::string data = png + ".dat";
  const std::int64_t rows = std::min(batch, kPlotRows);
  {
    std::ofstream f(data);
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::size_t e = 0; e < times.size(); ++e) {
        f << times[e];
        for (std::int64_t j = 0; j < d; ++j) f << ' ' << traj[(e * batch + r) * d + j];
        f << '\n';
      }
      f << "\n\n";
    }
    if (!f) throw Error(std::string(kWho) + ": cannot write " + data);
  }
  const bool phase = d == 2;
  gnuplot(kWho, png,
          detail::concat("set terminal pngcairo size 900,900\nset output '", png, "'\nset title '",
                         title, "' noenhanced\nset xlabel '", phase ? "y_0" : "t",
                         "'\nset ylabel '", phase ? "y_1" : "y", "'\n", phase ? "set size square\n" : "",
                         "plot for [i=0:", rows - 1, "] '", data, "' index i using ",
                         phase ? "2:3" : "1:2", " with lines lw 1.5 notitle, '", data,
                         "' index 0 every ::0::0 using ", phase ? "2:3" : "1:2",
                         " with points pt 7 lc rgb 'black' notitle\n"));
}

void run_ode(const OdeArgs& a) {
  detail::require_at_least(kWho, "--batch", a.batch, 1);
  const OdeMethod method = parse_ode_method(a.method);
  const bool fixed = method != OdeMethod::Dopri5 || a.dt > 0;
  if (method != OdeMethod::Dopri5 && !(a.dt > 0))
    detail::throw_argument(kWho, "--dt", "is required for ", a.method, " (a step > 0)");
  if (fixed && a.tolerances_given)
    detail::throw_argument(kWho, "--rtol", "and --atol set dopri5's error control: they go without --dt");
  const OdeProblem problem = OdeProblem::named(a.problem);
  const std::int64_t d = problem.d;
  const std::vector<double> start = a.y0.empty() ? canonical_start(a.problem) : parse_numbers(a.y0, "--y0");
  if (static_cast<std::int64_t>(start.size()) != d)
    detail::throw_argument(kWho, "--y0", "has ", start.size(), " values; ", a.problem, " has d = ", d);
  OdeOptions o{.method = method, .dt = a.dt, .adaptive = !fixed, .rtol = a.rtol, .atol = a.atol,
               .max_steps = a.max_steps, .t_eval = record_times(a, fixed)};
  const double bytes = static_cast<double>(o.t_eval.size()) * static_cast<double>(a.batch * d) * 4;
  if (bytes > kMaxTrajectoryBytes)
    detail::throw_argument(kWho, "--t-eval", o.t_eval.size(), " times x ", a.batch, " rows x ", d,
                           " floats is ", bytes, " bytes, more than 1 GiB: give fewer times");
  const Context ctx = Context::from_name(a.device);
  const std::vector<float> y0 = initial_states(a, start);
  Buffer<float> y(ctx, std::span<const float>(y0));
  Buffer<float> traj(ctx, o.t_eval.size() * y0.size());
  const auto t_start = std::chrono::steady_clock::now();
  const OdeStats st = ode_solve(ctx, problem, y.data(), a.batch, a.t0, a.t_end, o, traj.data());
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  const auto yt = y.to_host();
  const auto trajectory = traj.to_host();

  auto mean = [&](const std::vector<std::int64_t>& v) {
    return static_cast<double>(std::accumulate(v.begin(), v.end(), std::int64_t{0})) / a.batch;
  };
  const auto [lo, hi] = std::minmax_element(st.accepted.begin(), st.accepted.end());
  std::string how = fixed ? detail::concat("dt ", a.dt)
                          : detail::concat("rtol ", a.rtol, ", atol ", a.atol);
  std::printf("%s, %s (%s): %lld row%s of d = %lld from t = %g to %g on %s, %.3f s\n",
              a.problem.c_str(), a.method.c_str(), how.c_str(), static_cast<long long>(a.batch),
              a.batch == 1 ? "" : "s",
              static_cast<long long>(d), a.t0, a.t_end, to_string(ctx.device()).c_str(), s);
  std::printf("steps per row: accepted %.1f (min %lld, max %lld), rejected %.1f; f evaluations %.1f\n",
              mean(st.accepted), static_cast<long long>(*lo), static_cast<long long>(*hi),
              mean(st.rejected), mean(st.nfev));
  std::printf("%.3g sample-steps/s\n", mean(st.accepted) * static_cast<double>(a.batch) / s);
  std::printf("y(%g), row 0:", a.t_end);
  for (std::int64_t j = 0; j < d; ++j) std::printf(" %.9g", yt[j]);
  std::printf("\n");
  if (problem.kind == OdeProblem::Kind::Decay || problem.kind == OdeProblem::Kind::Oscillator) {
    const std::vector<double> y0d(y0.begin(), y0.end());
    std::vector<double> exact(y0d.size());
    ode_exact(problem, a.t0, a.t_end, y0d.data(), a.batch, exact.data());
    double err = 0;
    for (std::size_t i = 0; i < exact.size(); ++i) err = std::max(err, std::abs(yt[i] - exact[i]));
    std::printf("max |y - exact| at t = %g: %.3g\n", a.t_end, err);
  }
  if (!a.out.empty()) {
    io::write_npy(a.out, std::span<const float>(trajectory),
                  {static_cast<std::int64_t>(o.t_eval.size()), a.batch, d});
    std::printf("wrote %s [%zu times x %lld rows x %lld] (times %g .. %g)\n", a.out.c_str(),
                o.t_eval.size(), static_cast<long long>(a.batch), static_cast<long long>(d),
                o.t_eval.front(), o.t_eval.back());
  }
  if (!a.plot.empty()) {
    plot_trajectories(a.plot, o.t_eval, trajectory, a.batch, d,
                      a.problem + ", " + a.method + " (" + how + "), " +
                          std::to_string(std::min(a.batch, kPlotRows)) + " rows");
    std::printf("wrote %s (data beside it: %s.dat)\n", a.plot.c_str(), a.plot.c_str());
  }
}

void add_ode_command(CLI::App& app) {
  auto a = std::make_shared<OdeArgs>();
  auto* cmd = app.add_subcommand("ode", "integrate a built-in ODE for a batch of initial states "
                                        "(Euler, midpoint, RK4, dopri5)");
  cmd->add_option("--problem", a->problem,
                  "decay (dy/dt = -y from 1: problem 2.4), oscillator, lotka-volterra or spiral "
                  "(torchdiffeq's ode_demo)")
      ->check(CLI::IsMember({"decay", "oscillator", "lotka-volterra", "spiral"}))
      ->capture_default_str();
  cmd->add_option("--method", a->method, "euler, midpoint, rk4, rk4_38 (the 3/8 rule) or dopri5")
      ->check(CLI::IsMember({"euler", "midpoint", "rk4", "rk4_38", "dopri5"}))
      ->capture_default_str();
  cmd->add_option("--t0", a->t0, "start time")->capture_default_str();
  cmd->add_option("--t-end", a->t_end, "end time (below --t0: backwards in time)")->capture_default_str();
  cmd->add_option("--dt", a->dt, "fixed step (required for euler, midpoint, rk4, rk4_38; "
                                            "dopri5 with --dt steps its 5th-order solution on the grid)");
  auto* rtol = cmd->add_option("--rtol", a->rtol, "dopri5: relative tolerance")->capture_default_str();
  auto* atol = cmd->add_option("--atol", a->atol, "dopri5: absolute tolerance")->capture_default_str();
  cmd->add_option("--batch", a->batch, "rows (initial states)")->capture_default_str();
  cmd->add_option("--y0", a->y0, "row 0's start, comma-separated (default: the problem's usual one)");
  cmd->add_option("--spread", a->spread, "rows after the first start at y0 + spread N(0, I)")
      ->capture_default_str();
  cmd->add_option("--seed", a->seed, "Philox seed of the spread")->capture_default_str();
  cmd->add_option("--t-eval", a->t_eval, "record times t1,t2,... (default: the fixed-step grid, or "
                                         "1001 evenly spaced times for dopri5)");
  cmd->add_option("--max-steps", a->max_steps, "attempted steps per row before giving up")
      ->capture_default_str();
  cmd->add_option("--out", a->out, "trajectory, .npy [times x batch x d]");
  cmd->add_option("--plot", a->plot, "draw the trajectories (phase plane, or y against t for d = 1), "
                                     "PNG by gnuplot; data beside it");
  add_device_option(*cmd, a->device);
  cmd->callback([a, rtol, atol] {
    a->tolerances_given = rtol->count() + atol->count() > 0;
    run_ode(*a);
  });
}

// ---- demo ------------------------------------------------------------------------------------

void tour_ode(Tour& t) {
  const Context cpu = Context::cpu();
  // Rows: the spiral from N((2, 0), 0.0625 I) starts, RK4 (dt 0.02, 1250 steps: inside RK4's
  // stability region, |h lambda| < 2.8, for |y| < 3) and dopri5 (rtol 1e-5) to
  // t = 25, the tour's device against the CPU reference (float against double: the bound is
  // float rounding over the steps for RK4, the tolerance for dopri5).
  const std::int64_t batch = t.ctx.is_cuda() ? 100000 : 500;
  std::vector<float> y0(2 * batch);
  fill_normal(cpu, y0.data(), 2 * batch, {16, rng::streams::user, 0}, 0.0f, 0.25f);
  for (std::int64_t r = 0; r < batch; ++r) y0[2 * r] += 2.0f;
  struct Case {
    const char* what;
    OdeOptions o;
    double tolerance;
  };
  const Case cases[] = {{"rk4", {.method = OdeMethod::RK4, .dt = 0.02}, 1e-4},
                        {"dopri5", {.rtol = 1e-5, .atol = 1e-8}, 1e-3}};
  for (const Case& c : cases) {
    Buffer<float> y(t.ctx, std::span<const float>(y0));
    OdeStats st;
    const double ms = t.time([&] {
      y.copy_from_host(y0);
      st = ode_solve(t.ctx, OdeProblem::spiral(), y.data(), batch, 0.0, 25.0, c.o);
    });
    const auto got = y.to_host();
    auto expect = y0;
    ode_solve(cpu, OdeProblem::spiral(), expect.data(), batch, 0.0, 25.0, c.o);
    double err = 0, scale = 1e-30;
    for (std::size_t i = 0; i < got.size(); ++i) {
      err = std::isnan(got[i]) ? INFINITY : std::max(err, std::abs(double(got[i]) - expect[i]));
      scale = std::max(scale, std::abs(double(expect[i])));
    }
    const double steps = std::accumulate(st.accepted.begin(), st.accepted.end(), 0.0);
    char tp[64];
    std::snprintf(tp, sizeof tp, "%.3g sample-steps/s", steps / (ms * 1e-3));
    t.rows.push_back({"ode", std::string(c.what) + " spiral, " + std::to_string(batch) + " rows to t = 25",
                      to_string(t.ctx.device()), err / scale, ms, tp, err / scale <= c.tolerance});
  }
  // 2.4: Euler, dt = 0.01, dh/dt = -h from h(0) = 1 to t = 5.
  float h = 1.0f;
  ode_solve(cpu, OdeProblem::decay(), &h, 1, 0.0, 5.0, {.method = OdeMethod::Euler, .dt = 0.01});
  t.check("2.4", "Euler h(5) against e^-5 (within 0.01)", h, std::exp(-5.0), 0.01);
  t.check("2.4", "Euler h(5) = (1 - dt)^(5/dt)", h, std::pow(0.99, 500), 1e-8);
}

}  // namespace

GENAI_CLI_MODULE(60, "ode", add_ode_command, tour_ode);

}  // namespace genai::cli
