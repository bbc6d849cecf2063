// genai neural-ode: trains a Neural ODE (genai/neural_ode.hpp) as torchdiffeq's ode_demo does --
// the spiral dy/dt = (y^3) A learned from windows of its trajectory -- or on concentric circles
// (the flow then a linear read-out, Dupont et al. 2019's example), with the adjoint method or
// backpropagation through the steps, Adam; draws the trajectories and the learned vector field,
// the data beside the pictures. And the module's demo rows.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <numeric>

#include "cli/common.hpp"
#include "cli/plot.hpp"
#include "genai/buffer.hpp"
#include "genai/losses.hpp"
#include "genai/neural_ode.hpp"
#include "genai/optim.hpp"
#include "genai/rng.hpp"

namespace genai::cli {
namespace {

constexpr const char* kWho = "genai neural-ode";

struct NeuralOdeArgs {
  std::string task = "spiral", method = "rk4", gradient = "adjoint", time;  // time: the task's
  std::string device = "auto", out, plot, loss_plot;
  double dt = 0.05, rtol = 1e-3, atol = 1e-6, lr = 3e-3;
  std::int64_t iters = 0, batch_size = 0, batch_time = 10, data_size = 1000, hidden = 50;
  std::int64_t points = 512, augment = 0, test_every = 20;
  std::uint64_t seed = 0;
  double progress_every = 1.0;
  bool quiet = false, tolerances_given = false, dt_given = false;
};

// The spiral of torchdiffeq's ode_demo: y(0) = (2, 0), t in [0, 25], data_size times.
constexpr double kSpiralEnd = 25.0;

// What a task gives the training loop.
struct Task {
  std::int64_t d = 2;            // the ODE's state (circles: 2 + augment)
  std::vector<double> ts;        // the times of one training trajectory
  std::vector<double> times;     // spiral: the data's times
  std::vector<float> data;       // spiral: the true trajectory [data_size x 2]
  std::vector<float> x, labels;  // circles: points [n x 2], labels 0 / 1 [n]
};

Task make_spiral(const NeuralOdeArgs& a) {
  Task t;
  for (std::int64_t k = 0; k < a.data_size; ++k)
    t.times.push_back(kSpiralEnd * static_cast<double>(k) / static_cast<double>(a.data_size - 1));
  t.times.back() = kSpiralEnd;
  t.ts.assign(t.times.begin(), t.times.begin() + a.batch_time);
  std::vector<float> y0{2.0f, 0.0f};
  t.data.resize(2 * a.data_size);
  ode_solve(Context::cpu(), OdeProblem::spiral(), y0.data(), 1, 0.0, kSpiralEnd,
            {.rtol = 1e-7, .atol = 1e-9, .t_eval = t.times}, t.data.data());
  return t;
}

// Half the points in the disc |x| < 0.5 (label 0), half in the ring 1 < |x| < 1.5 (label 1),
// uniform in angle and radius (Philox, seed, stream user).
Task make_circles(const NeuralOdeArgs& a) {
  Task t;
  t.d = 2 + a.augment;
  t.ts = {0.0, 1.0};
  std::vector<float> u(2 * a.points);
  fill_uniform(Context::cpu(), u.data(), 2 * a.points, {a.seed, rng::streams::user, 1});
  for (std::int64_t i = 0; i < a.points; ++i) {
    const bool outer = 2 * i >= a.points;
    const double r = outer ? 1.0 + 0.5 * u[2 * i] : 0.5 * u[2 * i], phi = 2 * M_PI * u[2 * i + 1];
    t.x.push_back(static_cast<float>(r * std::cos(phi)));
    t.x.push_back(static_cast<float>(r * std::sin(phi)));
    t.labels.push_back(outer ? 1.0f : 0.0f);
  }
  return t;
}

// The model: f, the layer, the circles' read-out, Adam's state; on ctx.
struct Model {
  Mlp f, readout;
  std::unique_ptr<NeuralOde> layer;
  Buffer<float> m, v, rm, rv;
  std::int64_t step = 0;

  Model(const Context& ctx, const NeuralOdeArgs& a, const Task& task)
      : f(ctx, {.sizes = {task.d + (a.time == "concat" ? 1 : 0), a.hidden, a.hidden, task.d},
                .activation = Activation::Tanh}),
        readout(ctx, {.sizes = {task.d, 1}}),
        m(ctx, f.flat_size()),
        v(ctx, f.flat_size()),
        rm(ctx, readout.flat_size()),
        rv(ctx, readout.flat_size()) {
    f.init(a.seed);
    readout.init(a.seed, Init::XavierUniform);
    for (Buffer<float>* b : {&m, &v, &rm, &rv}) b->fill_bytes(0);
    const OdeMethod method = parse_ode_method(a.method);
    layer = std::make_unique<NeuralOde>(
        f, NeuralOdeOptions{.method = method,
                            .dt = method == OdeMethod::Dopri5 && !a.dt_given ? 0.0 : a.dt,
                            .adaptive = method == OdeMethod::Dopri5 && !a.dt_given,
                            .rtol = a.rtol,
                            .atol = a.atol,
                            .time = parse_neural_ode_time(a.time),
                            .gradient = parse_neural_ode_gradient(a.gradient)});
  }
  // h0 [rows x d] (host) through the trained flow at `times`, without a gradient: the
  // trajectory [times x rows x d] on the host.
  std::vector<float> flow(const Context& ctx, const std::vector<float>& h0, std::int64_t rows,
                          const std::vector<double>& times) {
    NeuralOdeOptions o = layer->options();
    o.gradient = NeuralOdeGradient::None;
    NeuralOdeWorkspace ws;
    Buffer<float> h(ctx, std::span<const float>(h0)), traj(ctx, times.size() * h0.size());
    NeuralOde(f, o).forward(ws, h.data(), rows, times, traj.data());
    return traj.to_host();
  }
  void adam(const Context& ctx, float lr, bool with_readout) {
    ++step;
    std::vector<AdamTensor> t{
        {f.parameters(), f.gradients(), m.data(), v.data(), nullptr, f.flat_size()}};
    if (with_readout)
      t.push_back({readout.parameters(), readout.gradients(), rm.data(), rv.data(), nullptr,
                   readout.flat_size()});
    adam_step(ctx, t, step, {.lr = lr});
  }
};

// The spiral from y(0) over all the data's times (one row, the layer's steps, no gradient):
// its mean squared error against the data, and the trajectory.
double spiral_test(const Context& ctx, const Task& task, Model& model, std::vector<float>* out) {
  const auto pred = model.flow(ctx, {task.data[0], task.data[1]}, 1, task.times);
  double s = 0;
  for (std::size_t i = 0; i < pred.size(); ++i) s += std::pow(double(pred[i]) - task.data[i], 2);
  if (out) *out = pred;
  return s / static_cast<double>(pred.size());
}

// The circles' points as states [points x d] (the augmented dimensions 0).
std::vector<float> circle_states(const Task& task) {
  const auto n = static_cast<std::int64_t>(task.labels.size());
  std::vector<float> h(n * task.d, 0.0f);
  for (std::int64_t r = 0; r < n; ++r)
    for (std::int64_t j = 0; j < 2; ++j) h[r * task.d + j] = task.x[r * 2 + j];
  return h;
}

// The learned field f(h, t) of the first two coordinates (the rest 0) on a 21 x 21 grid of
// [-extent, extent]^2: rows x y fx fy.
std::vector<float> field_on_grid(const Context& ctx, Model& model, std::int64_t d, double t,
                                 bool concat, double extent) {
  constexpr int cells = 21;
  const std::int64_t in = d + (concat ? 1 : 0), n = cells * cells;
  std::vector<float> x(n * in, 0.0f), xy(2 * n);
  for (int i = 0; i < cells; ++i)
    for (int j = 0; j < cells; ++j) {
      const std::int64_t r = i * cells + j;
      xy[2 * r] = x[r * in] = static_cast<float>(-extent + 2 * extent * i / (cells - 1));
      xy[2 * r + 1] = x[r * in + 1] = static_cast<float>(-extent + 2 * extent * j / (cells - 1));
      if (concat) x[r * in + d] = static_cast<float>(t);
    }
  Buffer<float> dx(ctx, std::span<const float>(x)), dy(ctx, n * d);
  MlpWorkspace ws;
  model.f.forward(ws, dx.data(), nullptr, n, dy.data());
  const auto f = dy.to_host();
  std::vector<float> rows;
  for (std::int64_t r = 0; r < n; ++r)
    for (float v : {xy[2 * r], xy[2 * r + 1], f[r * d], f[r * d + 1]}) rows.push_back(v);
  return rows;
}

void write_field(const std::string& path, const std::vector<float>& rows) {
  std::ofstream f(path);
  f << "# x y f_x f_y (the learned field at the grid point)\n";
  for (std::size_t i = 0; i + 3 < rows.size(); i += 4)
    f << rows[i] << ' ' << rows[i + 1] << ' ' << rows[i + 2] << ' ' << rows[i + 3] << '\n';
  if (!f) throw Error(std::string(kWho) + ": cannot write " + path);
}

// Arrows of a field file, each scaled to `length` (ode_demo normalises its stream plot too).
std::string arrows(const std::string& field, double length) {
  return detail::concat("'", field, "' using 1:2:(", length, "*$3/sqrt($3**2+$4**2+1e-12)):(",
                        length,
                        "*$4/sqrt($3**2+$4**2+1e-12)) with vectors head size 0.08,20 lc "
                        "rgb '#555555' notitle");
}

void plot_spiral(const std::string& png, const Task& task, const std::vector<float>& pred,
                 const std::vector<float>& field, const std::string& title) {
  require_plot_path(kWho, png);
  const std::string traj = png + ".trajectory.dat", fld = png + ".field.dat";
  {
    std::ofstream f(traj);
    f << "# t y0_true y1_true y0_learned y1_learned\n";
    for (std::size_t k = 0; k < task.times.size(); ++k)
      f << task.times[k] << ' ' << task.data[2 * k] << ' ' << task.data[2 * k + 1] << ' '
        << pred[2 * k] << ' ' << pred[2 * k + 1] << '\n';
    if (!f) throw Error(std::string(kWho) + ": cannot write " + traj);
  }
  write_field(fld, field);
  gnuplot(kWho, png,
          detail::concat(
              "set terminal pngcairo size 1800,600\nset output '", png,
              "'\nset multiplot layout 1,3 title '", title, "' noenhanced\n",
              "set title 'trajectories'\nset xlabel 't'\nset ylabel 'y'\nplot '", traj,
              "' using 1:2 with lines lc rgb '#2ca02c' title 'y_0 true', '", traj,
              "' using 1:3 with lines lc rgb '#1f77b4' title 'y_1 true', '", traj,
              "' using 1:4 with lines dt 2 lc rgb '#2ca02c' title 'y_0 learned', '", traj,
              "' using 1:5 with lines dt 2 lc rgb '#1f77b4' title 'y_1 learned'\n",
              "set title 'phase portrait'\nset xlabel 'y_0'\nset ylabel 'y_1'\nset size ratio -1\n"
              "set xrange [-2:2]\nset yrange [-2:2]\nplot '",
              traj, "' using 2:3 with lines lc rgb '#2ca02c' title 'true', '", traj,
              "' using 4:5 with lines dt 2 lc rgb '#d62728' title 'learned'\n",
              "set title 'learned vector field f(y, 0)'\nplot ", arrows(fld, 0.15), "\n",
              "unset multiplot\n"));
}

void plot_circles(const std::string& png, const Task& task, const std::vector<double>& times,
                  const std::vector<float>& traj, const std::vector<float>& field,
                  const std::string& title) {
  require_plot_path(kWho, png);
  const std::string paths = png + ".trajectories.dat", fld = png + ".field.dat";
  const auto n = static_cast<std::int64_t>(task.labels.size());
  const std::int64_t d = task.d, shown = std::min<std::int64_t>(n, 200);
  double extent = 1.6;
  {
    std::ofstream f(paths);
    f << "# per point (blocks): t h_0 h_1 label; the first " << shown << " of " << n
      << " points, from both classes\n";
    for (std::int64_t k = 0; k < shown; ++k) {
      const std::int64_t r = k % 2 ? n - 1 - k / 2 : k / 2;  // alternate the classes
      for (std::size_t e = 0; e < times.size(); ++e) {
        const float h0 = traj[(e * n + r) * d], h1 = traj[(e * n + r) * d + 1];
        extent = std::max({extent, std::abs(double(h0)) * 1.05, std::abs(double(h1)) * 1.05});
        f << times[e] << ' ' << h0 << ' ' << h1 << ' ' << task.labels[r] << '\n';
      }
      f << "\n\n";
    }
    if (!f) throw Error(std::string(kWho) + ": cannot write " + paths);
  }
  write_field(fld, field);
  gnuplot(kWho, png,
          detail::concat(
              "set terminal pngcairo size 1200,600\nset output '", png,
              "'\nset multiplot layout 1,2 title '", title, "' noenhanced\nset size ratio -1\n",
              "set xrange [", -extent, ":", extent, "]\nset yrange [", -extent, ":", extent, "]\n",
              "set palette defined (0 '#1f77b4', 1 '#d62728')\nunset colorbox\n",
              "set title 'the flow from t = 0 (dots) to t = 1 (h_0, h_1)'\nplot '", paths,
              "' using 2:3:4 with lines lc palette notitle, '", paths,
              "' using 2:3:4 every ::0::0 with points pt 7 ps 0.5 lc palette notitle\n",
              "set title 'learned vector field f(h, 0)'\nset xrange [-1.6:1.6]\nset yrange "
              "[-1.6:1.6]\nplot ",
              arrows(fld, 0.1), "\n", "unset multiplot\n"));
}

void run_neural_ode(NeuralOdeArgs a) {
  detail::require_at_least(kWho, "--hidden", a.hidden, 1);
  detail::require_at_least(kWho, "--test-every", a.test_every, 1);
  detail::require_at_least(kWho, "--augment", a.augment, 0);
  const bool spiral = a.task == "spiral";
  if (a.batch_size == 0) a.batch_size = spiral ? 20 : 256;
  if (a.time.empty()) a.time = spiral ? "none" : "concat";
  if (a.iters == 0) a.iters = spiral ? 2000 : 300;
  detail::require_at_least(kWho, "--iters", a.iters, 1);
  detail::require_at_least(kWho, "--batch-size", a.batch_size, 1);
  if (spiral) {
    detail::require_at_least(kWho, "--batch-time", a.batch_time, 2);
    if (a.data_size < a.batch_time + 1)
      detail::throw_argument(kWho, "--data-size", "must exceed --batch-time = ", a.batch_time,
                             " (got ", a.data_size, ")");
  } else {
    detail::require_at_least(kWho, "--points", a.points, 2);
  }
  if (!(a.lr > 0 && std::isfinite(a.lr)))
    detail::throw_argument(kWho, "--lr", "must be finite and > 0 (got ", a.lr, ")");
  const OdeMethod method = parse_ode_method(a.method);
  if (a.tolerances_given && (method != OdeMethod::Dopri5 || a.dt_given))
    detail::throw_argument(kWho, "--rtol",
                           "and --atol set adaptive dopri5's error control: they go "
                           "with --method dopri5 and without --dt");
  if (!a.plot.empty()) require_plot_path(kWho, a.plot);
  if (!a.loss_plot.empty()) require_plot_path(kWho, a.loss_plot);
  const Context ctx = Context::from_name(a.device);
  const Task task = spiral ? make_spiral(a) : make_circles(a);
  Model model(ctx, a, task);
  const std::int64_t d = task.d, T = static_cast<std::int64_t>(task.ts.size());
  const std::int64_t B = spiral ? a.batch_size : std::min(a.batch_size, a.points);
  const NeuralOdeOptions& o = model.layer->options();
  const std::string solver = o.method == OdeMethod::Dopri5 && o.adaptive
                                 ? detail::concat("dopri5 rtol ", o.rtol, ", atol ", o.atol)
                                 : detail::concat(to_string(o.method), " dt ", o.dt);
  std::printf(
      "neural-ode %s: f = MLP %lld-%lld-%lld-%lld tanh (%lld parameters, t %s), %s, %s "
      "gradient, Adam lr %g, %lld iterations of %lld %s, on %s\n",
      a.task.c_str(), static_cast<long long>(model.f.input_dim()), static_cast<long long>(a.hidden),
      static_cast<long long>(a.hidden), static_cast<long long>(d),
      static_cast<long long>(model.f.parameter_count()), a.time.c_str(), solver.c_str(),
      a.gradient.c_str(), a.lr, static_cast<long long>(a.iters), static_cast<long long>(B),
      spiral ? detail::concat("windows of ", a.batch_time, " times").c_str() : "points",
      to_string(ctx.device()).c_str());

  // Buffers of one iteration.
  Buffer<float> h0(ctx, B * d), traj(ctx, T * B * d), target(ctx, T * B * d), dtraj(ctx, T * B * d);
  Buffer<float> logits(ctx, B), labels(ctx, B), dlogits(ctx, B), loss(ctx, 1);
  NeuralOdeWorkspace ws;
  MlpWorkspace rws;
  std::vector<float> u(B), hb(B * d), tb(T * B * d), lb(B);
  std::vector<double> losses, iters, tests, test_iters;
  Progress progress(a.progress_every, a.quiet);
  const auto t_start = std::chrono::steady_clock::now();
  for (std::int64_t it = 1; it <= a.iters; ++it) {
    // The minibatch: windows starting at uniform indices (spiral; with replacement), or points
    // (circles; all of them when the batch covers them), from Philox (seed, user stream, it).
    fill_uniform(Context::cpu(), u.data(), B,
                 {a.seed, rng::streams::user, static_cast<std::uint32_t>(2 + it)});
    const std::int64_t n_total = spiral ? a.data_size - a.batch_time : a.points;
    for (std::int64_t b = 0; b < B; ++b) {
      const std::int64_t s = B == a.points && !spiral
                                 ? b
                                 : std::min(n_total - 1, static_cast<std::int64_t>(u[b] * n_total));
      if (spiral) {
        for (std::int64_t k = 0; k < T; ++k)
          for (std::int64_t j = 0; j < 2; ++j) tb[(k * B + b) * 2 + j] = task.data[(s + k) * 2 + j];
        hb[b * 2] = task.data[s * 2], hb[b * 2 + 1] = task.data[s * 2 + 1];
      } else {
        for (std::int64_t j = 0; j < d; ++j) hb[b * d + j] = j < 2 ? task.x[s * 2 + j] : 0.0f;
        lb[b] = task.labels[s];
      }
    }
    h0.copy_from_host(hb);
    model.layer->forward(ws, h0.data(), B, task.ts, traj.data());
    if (spiral) {
      target.copy_from_host(tb);
      mse_loss(ctx, traj.data(), target.data(), T * B, d,
               {.loss = loss.data(), .grad = dtraj.data()});
    } else {
      labels.copy_from_host(lb);
      model.readout.forward(rws, traj.data() + B * d, nullptr, B, logits.data());
      bce_with_logits_loss(ctx, logits.data(), labels.data(), B, 1,
                           {.loss = loss.data(), .grad = dlogits.data()});
      dtraj.fill_bytes(0);
      model.readout.backward(rws, dlogits.data(), dtraj.data() + B * d);
    }
    model.layer->backward(ws, dtraj.data());
    model.adam(ctx, static_cast<float>(a.lr), !spiral);
    const float l = loss.to_host()[0];
    if (!std::isfinite(l))
      throw DivergenceError(detail::concat(kWho, ": the loss is ", l, " at iteration ", it,
                                           " (try a smaller --lr or --dt)"));
    losses.push_back(l);
    iters.push_back(static_cast<double>(it));
    if (spiral && (it % a.test_every == 0 || it == a.iters)) {
      tests.push_back(spiral_test(ctx, task, model, nullptr));
      test_iters.push_back(static_cast<double>(it));
    }
    if (it < a.iters)
      progress.report(detail::concat("neural-ode: iteration ", it, "/", a.iters, " loss ", l));
  }
  const double s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  auto mean_of = [&](std::size_t from, std::size_t to) {
    return std::accumulate(losses.begin() + from, losses.begin() + to, 0.0) / double(to - from);
  };
  const std::size_t w = std::min<std::size_t>(10, losses.size());
  std::printf("loss: first %.6g, last %.6g; mean of the first %zu %.6g, of the last %zu %.6g\n",
              losses.front(), losses.back(), w, mean_of(0, w), w,
              mean_of(losses.size() - w, losses.size()));
  std::printf("%.3f s, %.3g iterations/s\n", s, static_cast<double>(a.iters) / s);
  std::vector<float> pred;
  if (spiral) {
    const double test = spiral_test(ctx, task, model, &pred);
    std::printf("trajectory MSE from y(0) = (2, 0) over the %lld data times in [0, 25]: %.6g\n",
                static_cast<long long>(a.data_size), test);
  } else {
    // Accuracy on every point: sign of the read-out of h(1).
    const auto h1 = model.flow(ctx, circle_states(task), a.points, {0.0, 1.0});
    Buffer<float> x1(ctx, std::span<const float>(h1.data() + a.points * d, a.points * d));
    Buffer<float> lg(ctx, a.points);
    model.readout.forward(rws, x1.data(), nullptr, a.points, lg.data());
    const auto lh = lg.to_host();
    std::int64_t right = 0;
    for (std::int64_t r = 0; r < a.points; ++r) right += (lh[r] > 0) == (task.labels[r] > 0.5f);
    std::printf("accuracy over the %lld points: %.4f\n", static_cast<long long>(a.points),
                static_cast<double>(right) / static_cast<double>(a.points));
  }
  if (!a.out.empty()) {
    model.f.save(a.out, {{"written_by", "genai neural-ode"},
                         {"task", a.task},
                         {"method", a.method},
                         {"time", a.time}});
    std::printf("wrote %s (f's parameters, safetensors)\n", a.out.c_str());
  }
  const std::string title = detail::concat("neural-ode ", a.task, ", ", solver, ", ", a.gradient,
                                           ", ", a.iters, " iterations");
  if (!a.plot.empty()) {
    if (spiral) {
      plot_spiral(a.plot, task, pred, field_on_grid(ctx, model, d, 0.0, a.time == "concat", 2.0),
                  title);
      std::printf("wrote %s (data beside it: %s.trajectory.dat, %s.field.dat)\n", a.plot.c_str(),
                  a.plot.c_str(), a.plot.c_str());
    } else {
      std::vector<double> times;
      for (int k = 0; k <= 20; ++k) times.push_back(k / 20.0);
      plot_circles(a.plot, task, times, model.flow(ctx, circle_states(task), a.points, times),
                   field_on_grid(ctx, model, d, 0.0, a.time == "concat", 1.6), title);
      std::printf("wrote %s (data beside it: %s.trajectories.dat, %s.field.dat)\n", a.plot.c_str(),
                  a.plot.c_str(), a.plot.c_str());
    }
  }
  if (!a.loss_plot.empty()) {
    std::vector<Curve> curves{{"training loss", iters, losses}};
    if (spiral) curves.push_back({"trajectory MSE from y(0)", test_iters, tests});
    plot_curves(kWho, a.loss_plot, curves, title, "iteration", spiral ? "MSE" : "BCE", true);
    std::printf("wrote %s (data beside it: %s.dat)\n", a.loss_plot.c_str(), a.loss_plot.c_str());
  }
}

void add_neural_ode_command(CLI::App& app) {
  auto a = std::make_shared<NeuralOdeArgs>();
  auto* cmd = app.add_subcommand(
      "neural-ode",
      "train a Neural ODE (the adjoint method or backpropagation through the steps) "
      "on torchdiffeq's spiral or on concentric circles, and draw it");
  cmd->add_option("--task", a->task,
                  "spiral (learn dy/dt = (y^3) A from windows of its trajectory, as torchdiffeq's "
                  "ode_demo) or circles (classify a disc against a ring through the flow and a "
                  "linear read-out)")
      ->check(CLI::IsMember({"spiral", "circles"}))
      ->capture_default_str();
  cmd->add_option("--method", a->method, "euler, midpoint, rk4, rk4_38 or dopri5")
      ->check(CLI::IsMember({"euler", "midpoint", "rk4", "rk4_38", "dopri5"}))
      ->capture_default_str();
  auto* dt =
      cmd->add_option("--dt", a->dt, "the largest fixed step (dopri5 with --dt: on the grid)")
          ->capture_default_str();
  auto* rtol = cmd->add_option("--rtol", a->rtol, "adaptive dopri5: relative tolerance")
                   ->capture_default_str();
  auto* atol = cmd->add_option("--atol", a->atol, "adaptive dopri5: absolute tolerance")
                   ->capture_default_str();
  cmd->add_option("--gradient", a->gradient,
                  "adjoint (memory O(1) in the steps) or backprop "
                  "(through the steps, memory O(steps))")
      ->check(CLI::IsMember({"adjoint", "backprop"}))
      ->capture_default_str();
  cmd->add_option(
         "--time", a->time,
         "concat (f sees [h, t]) or none (f(h)); default: none for the spiral (autonomous, "
         "and its windows start at t = 0 wherever they lie on the trajectory), concat for "
         "the circles")
      ->check(CLI::IsMember({"concat", "none"}));
  cmd->add_option("--iters", a->iters,
                  "training iterations (Adam steps); default 2000 (spiral, as ode_demo) or 300 "
                  "(circles)");
  cmd->add_option("--batch-size", a->batch_size,
                  "windows (spiral, default 20) or points (circles, default 256) per iteration");
  cmd->add_option("--batch-time", a->batch_time, "spiral: times per window")->capture_default_str();
  cmd->add_option("--data-size", a->data_size, "spiral: times of the true trajectory in [0, 25]")
      ->capture_default_str();
  cmd->add_option("--points", a->points, "circles: points (half in each class)")
      ->capture_default_str();
  cmd->add_option("--augment", a->augment, "circles: zero dimensions appended to the state (ANODE)")
      ->capture_default_str();
  cmd->add_option("--hidden", a->hidden, "width of f's two hidden layers")->capture_default_str();
  cmd->add_option("--lr", a->lr, "Adam's learning rate")->capture_default_str();
  cmd->add_option("--seed", a->seed, "Philox seed: initialisation, data and minibatches")
      ->capture_default_str();
  cmd->add_option("--test-every", a->test_every, "spiral: iterations between full-trajectory tests")
      ->capture_default_str();
  cmd->add_option("--out", a->out, "f's parameters, .safetensors");
  cmd->add_option("--plot", a->plot,
                  "trajectories and the learned vector field, PNG by gnuplot; "
                  "data beside it");
  cmd->add_option("--loss-plot", a->loss_plot, "the loss curves, PNG; data beside it");
  add_progress_options(*cmd, a->progress_every, a->quiet);
  add_device_option(*cmd, a->device);
  cmd->callback([a, dt, rtol, atol] {
    a->dt_given = dt->count() > 0;
    a->tolerances_given = rtol->count() + atol->count() > 0;
    run_neural_ode(*a);
  });
}

// ---- demo ------------------------------------------------------------------------------------

// A row: f = MLP 3-64-64-2 (tanh), RK4 over [0, 1] in 100 steps, forward + adjoint backward of
// 256 rows (65 536 on a GPU); every parameter gradient against the CPU's (float on both, the
// GEMMs summed in other orders). Checks: 2.5's layer on the linear field dh/dt = -h gives
// h(1) = e^-1 h(0); 4.3(c): the adjoint's workspace holds the same bytes at 10 and 1000 steps.
void tour_neural_ode(Tour& t) {
  const Context cpu = Context::cpu();
  const std::int64_t batch = t.ctx.is_cuda() ? 65536 : 256, d = 2, n = batch * d;
  const MlpOptions mo{.sizes = {3, 64, 64, 2}, .activation = Activation::Tanh};
  const NeuralOdeOptions o{.method = OdeMethod::RK4, .dt = 0.01, .adaptive = false};
  Mlp f(t.ctx, mo), f_ref(cpu, mo);
  f.init(5);
  f_ref.init(5);
  NeuralOde layer(f, o), layer_ref(f_ref, o);
  std::vector<float> h0(n), w(2 * n);
  fill_normal(cpu, h0.data(), n, {21, rng::streams::user, 0});
  fill_normal(cpu, w.data(), 2 * n, {22, rng::streams::user, 0});
  const std::vector<double> ts{0.0, 1.0};
  Buffer<float> h(t.ctx, std::span<const float>(h0)), dw(t.ctx, std::span<const float>(w));
  Buffer<float> traj(t.ctx, 2 * n);
  NeuralOdeWorkspace ws, ws_ref;
  const double ms = t.time([&] {
    layer.forward(ws, h.data(), batch, ts, traj.data());
    layer.backward(ws, dw.data());
  });
  std::vector<float> traj_ref(2 * n), got(f.flat_size());
  layer_ref.forward(ws_ref, h0.data(), batch, ts, traj_ref.data());
  layer_ref.backward(ws_ref, w.data());
  detail::copy_bytes(t.ctx, got.data(), Device::CPU, f.gradients(), t.ctx.device(),
                     got.size() * sizeof(float));
  double err = 0, scale = 1e-30;
  for (std::size_t i = 0; i < got.size(); ++i) {
    err = std::isnan(got[i]) ? INFINITY
                             : std::max(err, std::abs(double(got[i]) - f_ref.gradients()[i]));
    scale = std::max(scale, std::abs(double(f_ref.gradients()[i])));
  }
  char tp[64];
  std::snprintf(tp, sizeof tp, "%.3g sample-steps/s", 100.0 * double(batch) / (ms * 1e-3));
  t.rows.push_back({"neural-ode",
                    "MLP 3-64-64-2 field, rk4 100 steps, fwd + adjoint bwd, " +
                        std::to_string(batch) + " rows: grads",
                    to_string(t.ctx.device()), err / scale, ms, tp, err / scale <= 1e-4});

  // 2.5: h(T) = ODESolve(f, h(0), 0, T) with f(h) = -h (one linear layer), T = 1.
  Mlp decay(cpu, {.sizes = {1, 1}});
  const auto list = decay.parameter_list();
  list[0].param[0] = -1.0f;
  list[1].param[0] = 0.0f;
  NeuralOde layer25(decay, {.method = OdeMethod::RK4,
                            .dt = 0.01,
                            .adaptive = false,
                            .time = NeuralOdeTime::None,
                            .gradient = NeuralOdeGradient::None});
  NeuralOdeWorkspace ws25;
  const float one = 1.0f;
  float out[2];
  layer25.forward(ws25, &one, 1, ts, out);
  t.check("2.5", "Neural ODE layer, f(h) = -h: h(1) against e^-1", out[1], std::exp(-1.0), 1e-6);

  // 4.3(c): the adjoint's memory against the step count.
  std::size_t bytes[2];
  for (int k = 0; k < 2; ++k) {
    NeuralOde l(f_ref, {.method = OdeMethod::RK4, .dt = k == 0 ? 0.1 : 0.001, .adaptive = false});
    NeuralOdeWorkspace wk;
    std::vector<float> tr(2 * 2 * d);
    l.forward(wk, h0.data(), 2, ts, tr.data());
    l.backward(wk, w.data());
    bytes[k] = wk.bytes();
  }
  t.check("4.3", "adjoint workspace bytes, 1000 steps over 10 steps",
          double(bytes[1]) / double(bytes[0]), 1.0, 0.0);
}

}  // namespace

GENAI_CLI_MODULE(62, "neural-ode", add_neural_ode_command, tour_neural_ode);

}  // namespace genai::cli
