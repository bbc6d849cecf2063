// genai noise / genai sample: the diffusion module on the command line (sample: exact mixture
// scores, or a network genai train wrote), and its demo rows.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numbers>

#include "cli/common.hpp"
#include "cli/plot.hpp"
#include "genai/buffer.hpp"
#include "genai/diffusion.hpp"
#include "genai/io.hpp"
#include "genai/metrics.hpp"
#include "genai/train.hpp"

namespace genai::cli {
namespace {

// The samples xy over the mixture's density (cli/plot.hpp), on the means +- 3 sd.
void plot_mixture(const std::string& png, const std::vector<float>& xy, const GaussianMixture& m,
                  const std::string& title) {
  double extent = 0;
  for (std::int64_t i = 0; i < m.K * 2; ++i)
    extent = std::max(extent, std::abs(double(m.means[i])) + 3 * std::sqrt(double(m.variances[i])));
  plot_samples("genai sample", png, xy, extent, [&](double x, double y) {
    double p = 0;
    for (std::int64_t k = 0; k < m.K; ++k) {
      const double vx = m.variances[2 * k], vy = m.variances[2 * k + 1];
      const double dx = x - m.means[2 * k], dy = y - m.means[2 * k + 1];
      p += m.weights[k] * std::exp(-0.5 * (dx * dx / vx + dy * dy / vy)) /
           (2 * std::numbers::pi * std::sqrt(vx * vy));
    }
    return p;
  }, title);
}

struct NoiseArgs {
  std::string x0, schedule = "linear", out, eps_out, device = "auto";
  std::int64_t t = 500, steps = 1000;
  std::uint64_t seed = 0;
};

struct SampleArgs {
  std::string target = "gmm8", sampler = "ddpm", out, plot, device = "auto", model, trajectory;
  std::int64_t steps = 100, n = 10000;
  double eta = 0;
  std::uint64_t seed = 0;
  bool raw_weights = false;
};

// genai sample --model: the checkpoint's network (EMA weights unless --raw-weights) as the
// samplers' model; --plot draws the samples over the training data (regenerated from the
// checkpoint's record of it, or read from its .npy when that is still there), --trajectory 16
// reverse paths over the data.
void sample_model(const SampleArgs& b) {
  constexpr const char* who = "genai sample";
  if (!b.plot.empty()) require_plot_path(who, b.plot);
  if (!b.trajectory.empty()) require_plot_path(who, b.trajectory);
  detail::require_at_least(who, "--n", b.n, 1);
  const Context ctx = Context::from_name(b.device);
  const TrainedModel tm = load_trained_model(ctx, b.model, !b.raw_weights);
  const std::int64_t d = tm.dim();
  if ((!b.plot.empty() || !b.trajectory.empty()) && d != 2)
    throw ArgumentError(std::string(who) + ": --plot and --trajectory draw 2-D samples; the model "
                        "takes d = " + std::to_string(d));
  const NoiseSchedule s = tm.schedule();
  const Model model = tm.model();
  SamplerOptions o{.sampler = parse_sampler(b.sampler), .num_inference_steps = b.steps,
                   .step = {.prediction_type = tm.options.prediction_type, .eta = b.eta,
                            .seed = b.seed}};
  Buffer<float> x(ctx, static_cast<std::size_t>(b.n * d));
  sample(ctx, s, model, b.n, d, x.data(), o);
  const auto h = x.to_host();
  io::write_npy(b.out, std::span<const float>(h), {b.n, d});
  std::printf("%lld samples of %s's model (%s weights, %lld training steps on %s; %s, %lld steps) -> %s\n",
              static_cast<long long>(b.n), b.model.c_str(), b.raw_weights ? "trained" : "EMA",
              static_cast<long long>(tm.steps_done), tm.data_spec.c_str(), b.sampler.c_str(),
              static_cast<long long>(b.steps), b.out.c_str());
  if (const auto mix = dataset_mixture(tm.data_spec); mix && mix->d == d) {
    const std::vector<double> w = mode_weights(h.data(), b.n, *mix);
    std::printf("component weights:");
    for (std::int64_t k = 0; k < mix->K; ++k) std::printf(" %.4f (true %.4f)", w[k], mix->weights[k]);
    std::printf("\n");
  }
  if (b.plot.empty() && b.trajectory.empty()) return;
  // The training data, when it can be had again.
  std::vector<float> data;
  if (!tm.data_spec.ends_with(".npy")) {
    data = make_dataset(tm.data_spec, std::min<std::int64_t>(tm.data_n, 10000), tm.data_seed).x;
  } else if (std::filesystem::exists(tm.data_spec)) {
    const Dataset all = read_dataset(tm.data_spec);
    data.assign(all.x.begin(), all.x.begin() + 2 * std::min<std::int64_t>(all.n, 10000));
  }
  const std::string title = b.model + ": " + b.sampler + ", " + std::to_string(b.steps) + " steps";
  if (!b.plot.empty()) {
    plot_panels(who, b.plot, {{title, {{"training data", data}, {"samples", h}}, {}}}, 1,
                "samples over the training data (grey)");
    std::printf("wrote %s (data beside it: .dat)\n", b.plot.c_str());
  }
  if (!b.trajectory.empty()) {
    // 16 paths: the same sampler on 16 rows, every state kept.
    const std::int64_t paths = std::min<std::int64_t>(16, b.n);
    const std::int64_t kept = intermediate_count(s, {.num_inference_steps = b.steps, .keep_every = 1});
    Buffer<float> px(ctx, static_cast<std::size_t>(paths * d)),
        inter(ctx, static_cast<std::size_t>(kept * paths * d));
    o.keep_every = 1;
    o.intermediates = inter.data();
    sample(ctx, s, model, paths, d, px.data(), o);
    const auto states = inter.to_host();
    std::vector<std::vector<float>> lines(static_cast<std::size_t>(paths));
    std::vector<float> ends;
    for (std::int64_t p = 0; p < paths; ++p)
      for (std::int64_t k = 0; k < kept; ++k)
        lines[p].insert(lines[p].end(), states.begin() + (k * paths + p) * d,
                        states.begin() + (k * paths + p) * d + 2);
    for (const auto& l : lines) ends.insert(ends.end(), l.end() - 2, l.end());
    plot_panels(who, b.trajectory, {{title, {{"training data", data}, {"x_0", ends}}, lines}}, 1,
                detail::concat(paths, " reverse paths over the training data (grey)"));
    std::printf("wrote %s (data beside it: .dat)\n", b.trajectory.c_str());
  }
}

void add_diffusion_commands(CLI::App& app) {
  auto a = std::make_shared<NoiseArgs>();
  auto* noise = app.add_subcommand("noise", "forward noising x_t = sqrt(ab) x0 + sqrt(1-ab) eps");
  noise->add_option("--x0", a->x0, "clean data: a .npy of rows x d (or one row)")->required();
  noise->add_option("--t", a->t, "timestep of every row, 0 <= t < T")->capture_default_str();
  noise->add_option("--schedule", a->schedule,
                    "beta schedule: linear, scaled_linear, squaredcos_cap_v2 (cosine), sigmoid")
      ->capture_default_str();
  noise->add_option("--train-steps", a->steps, "T, the schedule's length")->capture_default_str();
  noise->add_option("--seed", a->seed, "Philox seed of eps")->capture_default_str();
  noise->add_option("--out", a->out, "x_t as .npy")->required();
  noise->add_option("--eps-out", a->eps_out, "also write eps as .npy");
  add_device_option(*noise, a->device);
  noise->callback([a] {
    const Context ctx = Context::from_name(a->device);
    const NoiseSchedule s({.num_train_timesteps = a->steps,
                           .beta_schedule = parse_beta_schedule(a->schedule)});
    const Rows x0 = read_rows(a->x0, "x0");
    const std::vector<std::int64_t> ts(x0.rows, a->t);
    Buffer<float> dx0(ctx, std::span<const float>(x0.values)), xt(ctx, x0.values.size()),
        eps(ctx, x0.values.size());
    Buffer<std::int64_t> dts(ctx, std::span<const std::int64_t>(ts));
    add_noise(ctx, s, dx0.data(), dts.data(), x0.rows, x0.cols, xt.data(),
              {.seed = a->seed, .eps_out = eps.data()});
    const std::vector<std::int64_t> shape = {x0.rows, x0.cols};
    io::write_npy(a->out, std::span<const float>(xt.to_host()), shape);
    if (!a->eps_out.empty()) io::write_npy(a->eps_out, std::span<const float>(eps.to_host()), shape);
    std::printf("x_t of %lld x %lld at t = %lld (sqrt(ab) = %.6f, sqrt(1-ab) = %.6f) -> %s\n",
                static_cast<long long>(x0.rows), static_cast<long long>(x0.cols),
                static_cast<long long>(a->t), s.sqrt_alphas_cumprod()[a->t],
                s.sqrt_one_minus_alphas_cumprod()[a->t], a->out.c_str());
  });

  auto b = std::make_shared<SampleArgs>();
  auto* smp = app.add_subcommand("sample", "sample a 2D Gaussian mixture with its exact score, or "
                                            "a model genai train wrote (--model)");
  auto* target = smp->add_option("--target", b->target, "gmm8 or two_modes")
                     ->check(CLI::IsMember({"gmm8", "two_modes"}))
                     ->capture_default_str();
  smp->add_option("--model", b->model, "a checkpoint of genai train: its network as the model "
                                       "(its schedule and prediction type from the file)")
      ->excludes(target);
  smp->add_flag("--raw-weights", b->raw_weights, "with --model: the trained weights, not their EMA");
  smp->add_option("--trajectory", b->trajectory, "with --model: draw 16 reverse paths over the "
                                                 "training data (PNG, gnuplot; data beside it)");
  smp->add_option("--sampler", b->sampler, "ddpm, ddim, pf-ode (Heun) or pf-ode-euler")
      ->check(CLI::IsMember({"ddpm", "ddim", "pf-ode", "pf-ode-heun", "pf-ode-euler"}))
      ->capture_default_str();
  smp->add_option("--steps", b->steps, "inference steps (leading spacing, T = 1000)")
      ->capture_default_str();
  smp->add_option("--n", b->n, "number of samples")->capture_default_str();
  smp->add_option("--eta", b->eta, "DDIM eta")->capture_default_str();
  smp->add_option("--seed", b->seed, "Philox seed")->capture_default_str();
  smp->add_option("--out", b->out, "samples as .npy (n x 2)")->required();
  smp->add_option("--plot", b->plot, "also draw them over the target's density (PNG, gnuplot)");
  add_device_option(*smp, b->device);
  smp->callback([b] {
    if (!b->model.empty()) return sample_model(*b);
    if (b->raw_weights || !b->trajectory.empty())
      throw ArgumentError("genai sample: --raw-weights and --trajectory need --model");
    const Context ctx = Context::from_name(b->device);
    const GaussianMixture m = GaussianMixture::preset(b->target);
    const NoiseSchedule s;
    Buffer<float> x(ctx, static_cast<std::size_t>(b->n * m.d));
    sample_mixture(ctx, s, m, b->n, x.data(),
                   {.sampler = parse_sampler(b->sampler), .num_inference_steps = b->steps,
                    .step = {.eta = b->eta, .seed = b->seed}});
    const auto h = x.to_host();
    io::write_npy(b->out, std::span<const float>(h), {b->n, m.d});
    // Share of samples nearest to each component mean, against the mixture weights.
    std::vector<double> w(m.K);
    for (std::int64_t r = 0; r < b->n; ++r) {
      std::int64_t best = 0;
      double best_d = INFINITY;
      for (std::int64_t k = 0; k < m.K; ++k) {
        const double dx = h[2 * r] - m.means[2 * k], dy = h[2 * r + 1] - m.means[2 * k + 1];
        if (dx * dx + dy * dy < best_d) best_d = dx * dx + dy * dy, best = k;
      }
      w[best] += 1.0 / static_cast<double>(b->n);
    }
    std::printf("%lld samples of %s (%s, %lld steps) -> %s\ncomponent weights:",
                static_cast<long long>(b->n), b->target.c_str(), b->sampler.c_str(),
                static_cast<long long>(b->steps), b->out.c_str());
    for (std::int64_t k = 0; k < m.K; ++k) std::printf(" %.4f (true %.4f)", w[k], m.weights[k]);
    std::printf("\n");
    if (!b->plot.empty()) {
      plot_mixture(b->plot, h, m, b->target + ", " + b->sampler + ", " + std::to_string(b->steps) +
                                      " steps");
      std::printf("wrote %s (data beside it: .samples.dat, .density.dat)\n", b->plot.c_str());
    }
  });
}

// Demo rows: noising 1M x 4 with a timestep per row (bit-exact vs the CPU), the fused DDPM
// sampler on gmm8 (GPU vs the CPU's step-by-step loop, same Philox paths); checks: 9.1's
// moments of x_t and the recovered two_modes weight 0.8; with --out, a picture of those
// two_modes samples over the target's density.
void tour_diffusion(Tour& t) {
  const Context cpu = Context::cpu();
  const NoiseSchedule s;
  {
    const std::int64_t n = 1 << 20, d = 4;
    std::vector<float> x0(n * d);
    fill_normal(cpu, x0.data(), n * d, {3, 0, 0});
    std::vector<std::int64_t> ts(n);
    for (std::int64_t r = 0; r < n; ++r) ts[r] = (r * 7919) % 1000;
    Buffer<float> dx0(t.ctx, std::span<const float>(x0));
    Buffer<std::int64_t> dts(t.ctx, std::span<const std::int64_t>(ts));
    t.add("diffusion", "add_noise 1M x 4, t per row (bit-exact)", n * d, 8.0 * n * d + 8.0 * n,
          [&](const Context& c, float* out) {
            add_noise(c, s, dx0.data(), dts.data(), n, d, out, {.seed = 1});
          },
          [&](float* out) { add_noise(cpu, s, x0.data(), ts.data(), n, d, out, {.seed = 1}); },
          0.0);
  }
  {
    const GaussianMixture m = GaussianMixture::preset("gmm8");
    const std::int64_t n = 10000, steps = 100;
    const SamplerOptions o{.sampler = SamplerKind::DDPM, .num_inference_steps = steps,
                           .step = {.seed = 2}};
    Buffer<float> x(t.ctx, n * 2);
    const double ms = t.time([&] { sample_mixture(t.ctx, s, m, n, x.data(), o); });
    const auto got = x.to_host();
    std::vector<float> want(n * 2);
    sample_mixture(cpu, s, m, n, want.data(), o);
    double err = 0, scale = 1e-30;
    for (std::size_t i = 0; i < want.size(); ++i) {
      err = std::isnan(got[i]) ? INFINITY : std::max(err, std::abs(double(got[i]) - want[i]));
      scale = std::max(scale, std::abs(double(want[i])));
    }
    char tp[64];
    std::snprintf(tp, sizeof tp, "%.3g M point-steps/s", n * steps / (ms * 1e3));
    t.rows.push_back({"diffusion", std::string(t.ctx.is_cuda() ? "fused " : "") +
                                       "DDPM sampler gmm8, 10k points x 100 steps",
                      to_string(t.ctx.device()), err / scale, ms, tp, err / scale <= 1e-4});
  }
  {
    // 9.1: x_t | x0 = 3 at t = 500: mean 3 sqrt(ab), variance 1 - ab; tolerance 5 SE.
    const std::int64_t n = 100000, tt = 500;
    const std::vector<float> x0(n, 3.0f);
    const std::vector<std::int64_t> ts(n, tt);
    const auto xt = on_device(t.ctx, {&x0}, n, [&](const auto& in, float* out) {
      Buffer<std::int64_t> dts(t.ctx, std::span<const std::int64_t>(ts));
      add_noise(t.ctx, s, in[0], dts.data(), n, 1, out, {.seed = 4});
    });
    double s1 = 0, s2 = 0;
    for (float v : xt) s1 += v, s2 += double(v) * v;
    const double mean = s1 / n, var = s2 / n - mean * mean, ab = s.alphas_cumprod()[tt];
    t.check("9.1", "mean of x_500 given x0 = 3", mean, 3 * std::sqrt(ab), 5 * std::sqrt((1 - ab) / n));
    t.check("9.1", "variance of x_500 given x0 = 3", var, 1 - ab, 5 * (1 - ab) * std::sqrt(2.0 / n));
  }
  {
    // two_modes by DDPM (100 steps) with the exact score: weight of N((5,5), I), 20000 samples,
    // tolerance 5 binomial SE = 5 sqrt(0.16 / 20000) = 0.014.
    const GaussianMixture m = GaussianMixture::preset("two_modes");
    const std::int64_t n = 20000;
    Buffer<float> x(t.ctx, n * 2);
    sample_mixture(t.ctx, s, m, n, x.data(),
                   {.sampler = SamplerKind::DDPM, .num_inference_steps = 100, .step = {.seed = 5}});
    const auto h = x.to_host();
    double w = 0;
    for (std::int64_t r = 0; r < n; ++r) w += h[2 * r] + h[2 * r + 1] > 0 ? 1.0 / n : 0.0;
    t.check("9.4 / C3", "two_modes weight of (5,5), DDPM", w, 0.8, 5 * std::sqrt(0.16 / n));
    if (!t.out_dir.empty()) {
      const std::string png = t.out_dir + "/diffusion_two_modes.png";
      try {
        plot_mixture(png, h, m, "two_modes, DDPM 100 steps, exact score");
        t.files.insert(t.files.end(), {png, png + ".samples.dat", png + ".density.dat"});
      } catch (const Error& e) {
        std::fprintf(stderr, "diffusion: no picture: %s\n", e.what());
      }
    }
  }
}

}  // namespace

GENAI_CLI_MODULE(30, "diffusion", add_diffusion_commands, tour_diffusion);

}  // namespace genai::cli
