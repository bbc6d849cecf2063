// genai train, genai c3, genai c2: training a diffusion model on 2-D data (9.2, 9.5), challenge C3
// (a tiny 2-D diffusion model, trained, sampled and measured in one command) and challenge C2
// (Langevin against diffusion on one mixture, exact score and trained model).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include "cli/common.hpp"
#include "cli/plot.hpp"
#include "genai/buffer.hpp"
#include "genai/diffusion.hpp"
#include "genai/io.hpp"
#include "genai/langevin.hpp"
#include "genai/metrics.hpp"
#include "genai/train.hpp"

namespace genai::cli {
namespace {

namespace fs = std::filesystem;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string fmt(double v, const char* f = "%.5f") {
  if (std::isnan(v)) return "-";
  char s[32];
  std::snprintf(s, sizeof s, f, v);
  return s;
}

// ---- the training options shared by train, c3 and c2 -----------------------------------------

struct TrainArgs {
  std::string data = "two_moons";
  std::int64_t n = 20000;  // rows of a built-in set
  std::uint64_t data_seed = 0;
  std::int64_t steps = 3000, batch = 256, warmup = 100;
  double lr = 3e-3, min_lr = 0;
  float weight_decay = 0.01f, ema_decay = 0.999f;
  bool no_ema = false, residual = false;
  std::string hidden = "128,128,128", activation = "gelu_tanh", schedule = "linear",
              prediction = "epsilon";
  std::int64_t T = 1000, time_dim = 128;
  std::uint64_t seed = 0;
};

// The options of the model and its optimisation (train gets all of them, c3 and c2 the few
// that size a run).
void add_training_options(CLI::App& cmd, TrainArgs& a, bool all) {
  cmd.add_option("--steps", a.steps, "optimizer steps (the cosine schedule's length)")
      ->capture_default_str();
  cmd.add_option("--batch", a.batch, "batch size")->capture_default_str();
  cmd.add_option("--lr", a.lr, "peak learning rate (linear warmup, then cosine to --min-lr)")
      ->capture_default_str();
  cmd.add_option("--seed", a.seed, "Philox seed of the initialisation and of every draw")
      ->capture_default_str();
  if (!all) return;
  cmd.add_option("--n", a.n, "rows of a built-in data set")->capture_default_str();
  cmd.add_option("--data-seed", a.data_seed, "Philox seed of a built-in data set")
      ->capture_default_str();
  cmd.add_option("--min-lr", a.min_lr, "learning rate at the end")->capture_default_str();
  cmd.add_option("--warmup", a.warmup, "linear warmup steps (at most --steps - 1)")
      ->capture_default_str();
  cmd.add_option("--weight-decay", a.weight_decay, "AdamW's decoupled weight decay")
      ->capture_default_str();
  cmd.add_option("--ema-decay", a.ema_decay, "decay of the weights' moving average")
      ->capture_default_str();
  cmd.add_flag("--no-ema", a.no_ema, "keep no moving average of the weights");
  cmd.add_option("--hidden", a.hidden, "hidden layer widths, e.g. 128,128,128")
      ->capture_default_str();
  cmd.add_option("--activation", a.activation, "relu, silu, gelu_tanh, gelu, sigmoid or tanh")
      ->capture_default_str();
  cmd.add_flag("--residual", a.residual, "equal-width hidden layers as residual blocks");
  cmd.add_option("--time-dim", a.time_dim, "width of the sinusoidal time embedding")
      ->capture_default_str();
  cmd.add_option("--schedule", a.schedule,
                 "beta schedule: linear, scaled_linear, squaredcos_cap_v2 (cosine), sigmoid")
      ->capture_default_str();
  cmd.add_option("--train-steps", a.T, "T, the schedule's length")->capture_default_str();
  cmd.add_option("--prediction", a.prediction, "what the network predicts: epsilon, "
                                               "v_prediction or sample (x0)")
      ->capture_default_str();
}

DiffusionTrainOptions training_options(const TrainArgs& a) {
  DiffusionTrainOptions o;
  o.hidden.clear();
  for (const float w : read_rows(a.hidden, "hidden").values) {
    if (!(w >= 1 && w <= 1e6 && w == std::floor(w)))
      throw ArgumentError("--hidden: " + fmt(w, "%g") + " is not a width");
    o.hidden.push_back(static_cast<std::int64_t>(w));
  }
  o.activation = activation_from_string(a.activation);
  o.time_embedding_dim = a.time_dim;
  o.residual = a.residual;
  o.schedule = {.num_train_timesteps = a.T, .beta_schedule = parse_beta_schedule(a.schedule)};
  o.prediction_type = parse_prediction_type(a.prediction);
  o.steps = a.steps;
  o.batch_size = a.batch;
  o.lr = a.lr;
  o.min_lr = a.min_lr;
  o.warmup_steps = std::min(a.warmup, std::max<std::int64_t>(a.steps - 1, 0));
  o.weight_decay = a.weight_decay;
  o.ema = !a.no_ema;
  o.ema_options.decay = a.ema_decay;
  o.seed = a.seed;
  return o;
}

std::string describe(const DiffusionTrainOptions& o, std::int64_t d) {
  std::string sizes = std::to_string(d);
  for (const std::int64_t h : o.hidden) sizes += " -> " + std::to_string(h);
  sizes += " -> " + std::to_string(d);
  static const char* predictions[] = {"epsilon", "sample (x0)", "v_prediction"};
  auto g = [](double v) {
    char s[32];
    std::snprintf(s, sizeof s, "%g", v);
    return std::string(s);
  };
  return "MLP " + sizes + ", " + to_string(o.activation) + (o.residual ? ", residual" : "") +
         ", time embedding " + std::to_string(o.time_embedding_dim) + "; " +
         predictions[static_cast<int>(o.prediction_type)] + " prediction, T = " +
         std::to_string(o.schedule.num_train_timesteps) + "; AdamW lr " + g(o.lr) + " (warmup " +
         std::to_string(o.warmup_steps) + ", cosine to " + g(o.min_lr) + "), weight decay " +
         g(o.weight_decay) + ", batch " + std::to_string(o.batch_size) + ", " +
         std::to_string(o.steps) + " steps" + (o.ema ? ", EMA " + g(o.ema_options.decay) : ", no EMA");
}

// Runs the trainer up to `until` steps, with "train: step S/T, loss L" progress lines (L: the
// mean loss since the last line); with checkpoint_every > 0 and a path, saves every so many
// steps. The loss is read from the device only when a line is due.
void train_until(DiffusionTrainer& tr, std::int64_t until, Progress& progress,
                 std::int64_t checkpoint_every, const std::string& checkpoint) {
  std::size_t reported = tr.losses().size();
  double next = progress.seconds() + progress.every();
  while (tr.steps_done() < until) {
    tr.step();
    if (checkpoint_every > 0 && !checkpoint.empty() && tr.steps_done() % checkpoint_every == 0)
      tr.save(checkpoint);
    if (progress.every() > 0 && progress.seconds() < next && tr.steps_done() < until) continue;
    const std::vector<float>& l = tr.losses();
    const double mean =
        std::accumulate(l.begin() + static_cast<std::ptrdiff_t>(reported), l.end(), 0.0) /
        static_cast<double>(std::max<std::size_t>(l.size() - reported, 1));
    reported = l.size();
    char line[128];
    std::snprintf(line, sizeof line, "train: step %lld/%lld, loss %.5f",
                  static_cast<long long>(tr.steps_done()), static_cast<long long>(tr.options().steps), mean);
    progress.report(line);
    next = progress.seconds() + progress.every();
  }
}

// The loss curve: every step's loss and its running mean over 1% of the steps.
void plot_loss(const std::string& who, const std::string& png, const std::vector<float>& losses) {
  Curve raw{"loss", {}, {}}, smooth{"running mean", {}, {}};
  const std::size_t w = std::max<std::size_t>(1, losses.size() / 100);
  double acc = 0;
  for (std::size_t i = 0; i < losses.size(); ++i) {
    raw.x.push_back(static_cast<double>(i + 1));
    raw.y.push_back(losses[i]);
    acc += losses[i];
    if (i >= w) acc -= losses[i - w];
    smooth.x.push_back(static_cast<double>(i + 1));
    smooth.y.push_back(acc / static_cast<double>(std::min(i + 1, w)));
  }
  plot_curves(who, png, {raw, smooth}, "training loss (MSE)", "step", "loss", true);
}

// ---- genai train -----------------------------------------------------------------------------

struct TrainCmd {
  TrainArgs args;
  std::string out, resume, device = "auto", loss_plot;
  std::int64_t checkpoint_every = 0, stop_after = 0;
  double epochs = 0;  // > 0: steps = ceil(epochs n / batch)
  double progress_every = 1;
  bool quiet = false;
};

void run_train(const TrainCmd& c, const CLI::App& cmd) {
  constexpr const char* who = "genai train";
  const TrainArgs& a = c.args;
  if (!c.loss_plot.empty()) require_plot_path(who, c.loss_plot);
  detail::require_at_least(who, "--checkpoint-every", c.checkpoint_every, 0);
  detail::require_at_least(who, "--stop-after", c.stop_after, 0);
  const fs::path folder = fs::path(c.out).parent_path();
  if (!folder.empty() && !fs::is_directory(folder))
    throw ArgumentError(std::string(who) + ": --out " + c.out + ": no folder " + folder.string());
  const Context ctx = Context::from_name(c.device);
  std::optional<DiffusionTrainer> tr;
  Dataset data;
  if (!c.resume.empty()) {
    for (const char* opt : {"--data", "--n", "--data-seed", "--steps", "--epochs", "--batch", "--lr", "--seed",
                            "--min-lr", "--warmup", "--weight-decay", "--ema-decay", "--no-ema",
                            "--hidden", "--activation", "--residual", "--time-dim", "--schedule",
                            "--train-steps", "--prediction"})
      if (cmd.count(opt) > 0)
        throw ArgumentError(std::string(who) + ": " + opt + " comes from the checkpoint with "
                            "--resume (give only --out, --stop-after, --checkpoint-every, --device)");
    const TrainedModel info = load_trained_model(Context::cpu(), c.resume, false);
    data = load_dataset(info.data_spec, info.data_n, info.data_seed);
    tr.emplace(DiffusionTrainer::resume(ctx, data, c.resume));
  } else {
    data = load_dataset(a.data, a.n, a.data_seed);
    TrainArgs sized = a;
    if (c.epochs > 0) {
      if (cmd.count("--steps") > 0)
        throw ArgumentError(std::string(who) + ": give --steps or --epochs, not both");
      sized.steps = static_cast<std::int64_t>(
          std::ceil(c.epochs * static_cast<double>(data.n) / static_cast<double>(std::max<std::int64_t>(a.batch, 1))));
    }
    tr.emplace(ctx, data, training_options(sized));
  }
  const std::int64_t until =
      c.stop_after > 0 ? std::min(c.stop_after, tr->options().steps) : tr->options().steps;
  if (until < tr->steps_done())
    throw ArgumentError(std::string(who) + ": --stop-after " + std::to_string(c.stop_after) +
                        " is before the checkpoint's step " + std::to_string(tr->steps_done()));
  std::printf("training on %s (%lld x %lld) on %s: %s\n", data.spec.c_str(),
              static_cast<long long>(data.n), static_cast<long long>(data.d),
              to_string(ctx.device()).c_str(), describe(tr->options(), data.d).c_str());
  Progress progress(c.progress_every, c.quiet);
  const std::int64_t from = tr->steps_done();
  const double t0 = now_s();
  train_until(*tr, until, progress, c.checkpoint_every, c.out);
  const double secs = now_s() - t0;
  tr->save(c.out);
  const std::vector<float>& l = tr->losses();
  const std::size_t tail = std::min<std::size_t>(l.size(), 100);
  const double last = tail ? std::accumulate(l.end() - static_cast<std::ptrdiff_t>(tail), l.end(), 0.0) / tail : NAN;
  std::printf("steps %lld..%lld in %.2f s (%.1f steps/s), loss %.5f (mean of the last %zu)\nwrote %s\n",
              static_cast<long long>(from + 1), static_cast<long long>(until), secs,
              static_cast<double>(until - from) / std::max(secs, 1e-9), last, tail, c.out.c_str());
  const std::string png = c.loss_plot.empty() ? c.out + ".loss.png" : c.loss_plot;
  plot_loss(who, png, l);
  std::printf("wrote %s (data beside it: .dat)\n", png.c_str());
}

// ---- sampling helpers of c3 and c2 -----------------------------------------------------------

// n samples of a model or sampler into host memory.
std::vector<float> draw(const Context& ctx, std::int64_t n, std::int64_t d,
                        const std::function<void(float*)>& run) {
  Buffer<float> x(ctx, static_cast<std::size_t>(n * d));
  run(x.data());
  return x.to_host();
}

// The model's epsilon with its sign flipped: the reverse drift pushes away from the data. The
// flip runs on the host (a copy there and back on a GPU: the broken sampler is not a benchmark).
Model flipped(Model m) {
  return [m = std::move(m)](const Context& ctx, std::int64_t t, const float* x, std::int64_t n,
                            std::int64_t d, float* out) {
    m(ctx, t, x, n, d, out);
    std::vector<float> h(static_cast<std::size_t>(n * d));
    detail::copy_bytes(ctx, h.data(), Device::CPU, out, ctx.device(), h.size() * sizeof(float));
    for (float& v : h) v = -v;
    detail::copy_bytes(ctx, out, ctx.device(), h.data(), Device::CPU, h.size() * sizeof(float));
  };
}

// One row of a results table.
struct Row {
  std::string what;
  std::vector<float> samples;  // [n x d] host
  double seconds = 0;
  double evaluations = 0;      // score / network evaluations (c2)
  std::string note;
};

struct Quality {
  double mmd2 = NAN, sw2 = NAN, tv = NAN;
  std::vector<double> weights;
};

Quality measure(const std::vector<float>& x, std::int64_t n, const Dataset& fresh, double bandwidth,
                const std::optional<GaussianMixture>& mix) {
  Quality q;
  bool finite = true;
  for (float v : x) finite = finite && std::isfinite(v);
  if (!finite) return q;
  q.mmd2 = mmd2_rbf(x.data(), n, fresh.x.data(), fresh.n, fresh.d, {.bandwidth = bandwidth}).mmd2;
  q.sw2 = sliced_wasserstein2(x.data(), n, fresh.x.data(), fresh.n, fresh.d);
  if (mix) {
    q.weights = mode_weights(x.data(), n, *mix);
    q.tv = total_variation(q.weights, std::vector<double>(mix->weights.begin(), mix->weights.end()));
  }
  return q;
}

std::string device_line(const Context& ctx) {
  return ctx.is_cuda() ? "cuda:" + std::to_string(ctx.device_index()) : "cpu";
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  if (!f) throw Error("cannot write " + path);
}

// ---- genai c3 --------------------------------------------------------------------------------

struct C3Cmd {
  TrainArgs args;
  std::string out = "c3", device = "auto";
  std::int64_t samples = 10000, sample_steps = 100;
  double progress_every = 1;
  bool quiet = false;
};

void run_c3(const C3Cmd& c) {
  constexpr const char* who = "genai c3";
  detail::require_at_least(who, "--samples", c.samples, 2);
  detail::require_at_least(who, "--sample-steps", c.sample_steps, 1);
  require_plot_path(who, c.out);
  const double t_start = now_s();
  const Context ctx = Context::from_name(c.device);
  const TrainArgs& a = c.args;
  const Dataset data = load_dataset(a.data, a.n, a.data_seed);
  if (data.d != 2) throw ArgumentError(std::string(who) + ": the data must be 2-D (got d = " +
                                       std::to_string(data.d) + "); genai train takes any d");
  // Fresh points: a second draw of a built-in set (set 1); a file's own first rows.
  const Dataset fresh = data.spec.ends_with(".npy")
                            ? Dataset{data.spec, std::min(c.samples, data.n), 2, 0,
                                      std::vector<float>(data.x.begin(), data.x.begin() + 2 * std::min(c.samples, data.n))}
                            : make_dataset(data.spec, c.samples, a.data_seed, 1);
  const std::optional<GaussianMixture> mix = dataset_mixture(data.spec);
  fs::create_directories(c.out);
  const std::string dir = c.out + "/";
  std::printf("c3 on %s: %lld training points of %s\n", device_line(ctx).c_str(),
              static_cast<long long>(data.n), data.spec.c_str());

  // Training.
  const DiffusionTrainOptions opts = training_options(a);
  DiffusionTrainer tr(ctx, data, opts);
  Progress progress(c.progress_every, c.quiet);
  double t0 = now_s();
  train_until(tr, opts.steps, progress, 0, "");
  ctx.synchronize();
  const double t_train = now_s() - t0;
  tr.save(dir + "c3_model.safetensors");
  const std::vector<float> losses = tr.losses();
  const std::size_t tail = std::min<std::size_t>(losses.size(), 100);
  const double last_loss =
      std::accumulate(losses.end() - static_cast<std::ptrdiff_t>(tail), losses.end(), 0.0) / tail;

  // Sampling: the trained model, the exact score (mixtures), the broken sampler.
  const NoiseSchedule& s = tr.schedule();
  const SamplerOptions so{.sampler = SamplerKind::DDPM, .num_inference_steps = c.sample_steps,
                          .step = {.prediction_type = opts.prediction_type, .seed = a.seed + 1}};
  const Model model = network_model(tr.copy_network(true));
  std::vector<Row> rows;
  const bool file = data.spec.ends_with(".npy");
  if (!file)
    rows.push_back({"fresh data (a third draw): the noise floor of the metrics",
                    make_dataset(data.spec, c.samples, a.data_seed, 2).x, 0, 0, ""});
  const std::size_t trained_row = rows.size();
  auto sample_row = [&](const std::string& what, const std::function<void(float*)>& run) {
    const double t = now_s();
    std::vector<float> x;
    std::string note;
    try {
      x = draw(ctx, c.samples, 2, run);
    } catch (const DivergenceError& e) {
      note = e.what();
    }
    rows.push_back({what, std::move(x), now_s() - t, 0, note});
    if (!c.quiet) std::fprintf(stderr, "c3: %s: %.2f s\n", what.c_str(), rows.back().seconds);
  };
  const std::string sampler = "DDPM, " + std::to_string(c.sample_steps) + " steps";
  sample_row("trained model (EMA weights), " + sampler,
             [&](float* x) { sample(ctx, s, model, c.samples, 2, x, so); });
  if (mix && opts.prediction_type == PredictionType::Epsilon)
    sample_row("exact score of the mixture, " + sampler,
               [&](float* x) { sample_mixture(ctx, s, *mix, c.samples, x, so); });
  SamplerOptions broken_opts = so;
  broken_opts.check_divergence = false;
  sample_row("broken: the trained epsilon with its sign flipped, " + sampler,
             [&](float* x) { sample(ctx, s, flipped(model), c.samples, 2, x, broken_opts); });
  if (!rows[trained_row].samples.empty())
    io::write_npy(dir + "c3_samples.npy", std::span<const float>(rows[trained_row].samples),
                  {c.samples, 2});

  // Metrics: one kernel for every row (the median heuristic on the data against fresh points).
  t0 = now_s();
  const double bandwidth =
      mmd2_rbf(data.x.data(), std::min<std::int64_t>(data.n, 2000), fresh.x.data(),
               std::min<std::int64_t>(fresh.n, 2000), 2, {.median_points = 2000})
          .bandwidth;
  std::vector<Quality> q;
  for (const Row& r : rows)
    q.push_back(r.samples.empty() ? Quality{} : measure(r.samples, c.samples, fresh, bandwidth, mix));
  const double t_metrics = now_s() - t0;

  // Pictures.
  t0 = now_s();
  std::vector<std::string> pictures;
  std::vector<Panel> noising;
  {
    const std::int64_t T = s.num_train_timesteps(), shown = std::min<std::int64_t>(data.n, 5000);
    const std::vector<std::int64_t> ts = {0, T / 4, T / 2, T - 1};
    for (const std::int64_t t : ts) {
      std::vector<float> xt(static_cast<std::size_t>(2 * shown));
      const std::vector<std::int64_t> steps(static_cast<std::size_t>(shown), t);
      add_noise(Context::cpu(), s, data.x.data(), steps.data(), shown, 2, xt.data(), {.seed = a.seed});
      noising.push_back({detail::concat("x_t at t = ", t, " (sqrt(ab) = ",
                                        fmt(s.sqrt_alphas_cumprod()[t], "%.3f"), ")"),
                         {{"x_t", xt}}, {}});
    }
  }
  const std::vector<float> shown_data(data.x.begin(), data.x.begin() + 2 * std::min<std::int64_t>(data.n, 10000));
  plot_panels(who, dir + "c3_data.png", {{data.spec, {{"data", shown_data}}, {}}}, 1, "training data");
  plot_panels(who, dir + "c3_noising.png", noising, 4, "forward noising of the data");
  std::vector<Panel> sample_panels;
  for (const Row& r : rows)
    if (!r.samples.empty()) sample_panels.push_back({r.what, {{"data", fresh.x}, {"samples", r.samples}}, {}});
  plot_panels(who, dir + "c3_samples.png", sample_panels, 2, "samples over fresh data (grey)");
  plot_loss(who, dir + "c3_loss.png", losses);
  pictures = {"c3_data.png", "c3_noising.png", "c3_samples.png", "c3_loss.png"};
  const double t_pictures = now_s() - t0;
  const double total = now_s() - t_start;

  std::ostringstream md;
  md << "# Challenge C3: a tiny 2-D diffusion model on " << data.spec << "\n\n"
     << "`genai c3 --data " << a.data << "` on " << device_line(ctx) << ": **" << fmt(total, "%.1f")
     << " s** in all (training " << fmt(t_train, "%.1f") << " s, sampling "
     << fmt(std::accumulate(rows.begin(), rows.end(), 0.0, [](double acc, const Row& r) { return acc + r.seconds; }), "%.1f")
     << " s, metrics " << fmt(t_metrics, "%.1f") << " s, pictures " << fmt(t_pictures, "%.1f") << " s).\n\n"
     << "- data: " << data.n << " points of " << data.spec << " (seed " << a.data_seed << ")\n"
     << "- model: " << describe(opts, 2) << "\n"
     << "- training: " << fmt(opts.steps / std::max(t_train, 1e-9), "%.1f") << " steps/s; loss (mean of the last "
     << tail << " steps) " << fmt(last_loss) << "; checkpoint `c3_model.safetensors`\n"
     << "- sampling: " << sampler << ", " << c.samples << " samples, seed " << a.seed + 1
     << "; the trained model's samples in `c3_samples.npy`\n"
     << "- metrics against " << fresh.n << " fresh data points: MMD² (unbiased, RBF kernel, s = "
     << fmt(bandwidth, "%.4f") << " by the median heuristic on the data), SW2² (sliced Wasserstein-2, "
     << "256 directions)" << (mix ? ", mode-weight total variation against the mixture" : "") << "\n\n"
     << "| samples | MMD² | SW2² |" << (mix ? " mode weights | TV |" : "") << " time (s) |\n"
     << "|---|---|---|" << (mix ? "---|---|" : "") << "---|\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    md << "| " << rows[i].what << " | " << fmt(q[i].mmd2) << " | " << fmt(q[i].sw2, "%.4g") << " |";
    if (mix) {
      std::string w;
      for (double v : q[i].weights) w += (w.empty() ? "" : " / ") + fmt(v, "%.3f");
      md << " " << (w.empty() ? "-" : w) << " | " << fmt(q[i].tv, "%.4f") << " |";
    }
    md << " " << fmt(rows[i].seconds, "%.2f") << (rows[i].note.empty() ? "" : " (" + rows[i].note + ")") << " |\n";
  }
  if (mix) {
    md << "\nThe mixture's weights:";
    for (float w : mix->weights) md << " " << fmt(w, "%.3f");
    md << "\n";
  }
  md << "\nPictures (data beside each, `.dat`):";
  for (const std::string& p : pictures) md << " `" << p << "`";
  md << "\n";
  write_text(dir + "c3.md", md.str());
  std::printf("%s", md.str().c_str());
  std::printf("wrote %sc3.md, the pictures and the checkpoint; c3 took %.1f s\n", dir.c_str(), total);
}

// ---- genai c2 --------------------------------------------------------------------------------

struct C2Cmd {
  TrainArgs args;
  std::string target = "gmm8", out = "c2", device = "auto", model;
  std::int64_t samples = 5000;
  double progress_every = 1;
  bool quiet = false;
};

void run_c2(const C2Cmd& c) {
  constexpr const char* who = "genai c2";
  detail::require_at_least(who, "--samples", c.samples, 2);
  require_plot_path(who, c.out);
  const double t_start = now_s();
  const Context ctx = Context::from_name(c.device);
  const TrainArgs& a = c.args;
  const GaussianMixture mix = GaussianMixture::preset(c.target);
  const LangevinTarget target = c.target == "gmm8" ? LangevinTarget::gmm8() : LangevinTarget::two_modes();
  const std::int64_t n = c.samples, d = 2;
  const Dataset fresh = make_dataset(c.target, n, a.data_seed, 1);
  fs::create_directories(c.out);
  const std::string dir = c.out + "/";

  // The trained model: given, or trained here with c3's settings.
  double t_train = 0;
  std::shared_ptr<const Mlp> net;
  DiffusionTrainOptions opts;
  std::string model_from;
  if (!c.model.empty()) {
    const TrainedModel tm = load_trained_model(ctx, c.model);
    if (tm.dim() != d)
      throw ArgumentError(std::string(who) + ": --model " + c.model + " takes d = " +
                          std::to_string(tm.dim()) + ", the target d = 2");
    net = tm.net;
    opts = tm.options;
    model_from = "`" + c.model + "` (" + tm.data_spec + ", " + std::to_string(tm.steps_done) + " steps)";
  } else {
    const Dataset data = make_dataset(c.target, a.n, a.data_seed);
    opts = training_options(a);
    DiffusionTrainer tr(ctx, data, opts);
    Progress progress(c.progress_every, c.quiet);
    const double t0 = now_s();
    train_until(tr, opts.steps, progress, 0, "");
    ctx.synchronize();
    t_train = now_s() - t0;
    tr.save(dir + "c2_model.safetensors");
    net = tr.copy_network(true);
    model_from = "trained here in " + fmt(t_train, "%.1f") + " s: " + describe(opts, d) +
                 " (`c2_model.safetensors`)";
  }
  const NoiseSchedule s(opts.schedule);
  const Model trained = network_model(net);
  const Model exact = mixture_model(mix, NoiseSchedule());
  const NoiseSchedule s_exact;

  // Broad start for the Langevin chains: U(-8, 8)^2, the same for every chain method.
  std::vector<float> start(static_cast<std::size_t>(n * d));
  fill_uniform(Context::cpu(), start.data(), n * d, {a.seed, rng::streams::user, 0}, -8.0f, 8.0f);
  std::vector<Row> rows;
  auto run_row = [&](const std::string& what, double evaluations,
                     const std::function<void(float*)>& run) {
    const double t = now_s();
    std::vector<float> x;
    std::string note;
    try {
      x = draw(ctx, n, d, run);
    } catch (const DivergenceError& e) {
      note = "diverged";
    }
    rows.push_back({what, std::move(x), now_s() - t, evaluations, note});
    if (!c.quiet) std::fprintf(stderr, "c2: %s: %.2f s\n", what.c_str(), rows.back().seconds);
  };
  const auto N = static_cast<double>(n);
  // Langevin from the broad start, exact score.
  const double h = 0.25 * langevin_step_limit(target, LangevinMethod::ULA);
  const std::int64_t chain_steps = 1000;
  for (const LangevinMethod m : {LangevinMethod::ULA, LangevinMethod::MALA}) {
    run_row(detail::concat(m == LangevinMethod::ULA ? "ULA" : "MALA", ", exact score, h = ",
                           fmt(h, "%.3g"), ", ", chain_steps, " steps from U(-8, 8)^2"),
            N * chain_steps, [&](float* x) {
              detail::copy_bytes(ctx, x, ctx.device(), start.data(), Device::CPU, start.size() * sizeof(float));
              langevin(ctx, target, x, n, d,
                       {.method = m, .step_size = static_cast<float>(h), .steps = chain_steps,
                        .seed = a.seed});
            });
  }
  // The NCSN ladder: sigma 15 -> 0.1 (sigma_1 about the largest distance between modes), 10
  // levels of 100 steps, eps a quarter of the stable limit.
  const AnnealSchedule ladder{.levels = 10, .sigma_first = 15.0f, .sigma_last = 0.1f};
  const double eps = 0.25 * langevin_step_limit(target, LangevinMethod::Annealed, ladder);
  run_row(detail::concat("annealed Langevin (NCSN ladder: 10 levels, sigma 15 -> 0.1, 100 steps each, eps = ",
                         fmt(eps, "%.3g"), "), exact score"),
          N * 1000, [&](float* x) {
            detail::copy_bytes(ctx, x, ctx.device(), start.data(), Device::CPU, start.size() * sizeof(float));
            langevin(ctx, target, x, n, d,
                     {.method = LangevinMethod::Annealed, .step_size = static_cast<float>(eps),
                      .steps = 100, .seed = a.seed, .anneal = ladder});
          });
  // The diffusion samplers and annealed Langevin on the schedule's levels, with each model.
  const std::int64_t steps = 100, levels = 100, per_level = 10;
  const double step_scale = 0.2;
  for (int which = 0; which < 2; ++which) {
    const Model& m = which == 0 ? exact : trained;
    const NoiseSchedule& sch = which == 0 ? s_exact : s;
    const PredictionType pt = which == 0 ? PredictionType::Epsilon : opts.prediction_type;
    const std::string by = which == 0 ? "exact score" : "trained model";
    const AnnealedLangevinOptions al{.num_levels = levels, .steps_per_level = per_level,
                                     .step_scale = step_scale, .prediction_type = pt,
                                     .seed = a.seed + 1};
    run_row(detail::concat("annealed Langevin on the schedule's levels (", levels, " levels x ",
                           per_level, " steps, h_t = ", step_scale, " (1 - ab_t)), ", by),
            N * levels * per_level,
            [&](float* x) { sample_annealed_langevin(ctx, sch, m, n, d, x, al); });
    for (const SamplerKind k : {SamplerKind::DDPM, SamplerKind::DDIM, SamplerKind::PFOdeHeun}) {
      const std::int64_t ks = k == SamplerKind::PFOdeHeun ? steps / 2 : steps;
      const char* name = k == SamplerKind::DDPM ? "DDPM" : k == SamplerKind::DDIM ? "DDIM (eta 0)" : "PF-ODE (Heun)";
      run_row(detail::concat(name, ", ", ks, " steps, ", by),
              N * static_cast<double>(k == SamplerKind::PFOdeHeun ? 2 * ks - 1 : ks), [&](float* x) {
                sample(ctx, sch, m, n, d, x,
                       {.sampler = k, .num_inference_steps = ks,
                        .step = {.prediction_type = pt, .seed = a.seed + 1}});
              });
    }
  }

  // Metrics with one kernel for every row.
  const Dataset data = make_dataset(c.target, std::min<std::int64_t>(n, 2000), a.data_seed);
  const double bandwidth = mmd2_rbf(data.x.data(), data.n, fresh.x.data(), std::min<std::int64_t>(n, 2000), d).bandwidth;
  std::vector<Quality> q;
  for (const Row& r : rows) q.push_back(r.samples.empty() ? Quality{} : measure(r.samples, n, fresh, bandwidth, mix));
  std::vector<Panel> panels;
  for (const Row& r : rows)
    if (!r.samples.empty()) panels.push_back({r.what, {{"data", fresh.x}, {"samples", r.samples}}, {}});
  plot_panels(who, dir + "c2_grid.png", panels, 4, "C2 on " + c.target + ": samples over fresh data (grey)");
  const double total = now_s() - t_start;

  // E TV of n exact draws: 1/2 sum_k E|share_k - w_k|, E|N(0, s^2)| = s sqrt(2 / pi).
  double noise = 0;
  for (const float w : mix.weights) noise += 0.5 * std::sqrt(2 / M_PI * w * (1 - w) / N);
  std::ostringstream md;
  md << "# Challenge C2: Langevin against diffusion on " << c.target << "\n\n"
     << "`genai c2 --target " << c.target << "` on " << device_line(ctx) << ", " << n
     << " samples per method, " << fmt(total, "%.1f") << " s in all. Trained model: " << model_from << ".\n\n"
     << "Mode weights: the share of the samples whose most likely component is k; TV = 1/2 sum |share - w|"
     << " (sampling noise alone: about " << fmt(noise, "%.4f")
     << " for " << n << " samples). MMD² unbiased, RBF kernel s = " << fmt(bandwidth, "%.4f")
     << " (median heuristic on the data), against " << n << " fresh points. Evaluations: of the "
     << "score (or the network), per method.\n\n"
     << "| method | mode-weight TV | MMD² | evaluations | time (s) |\n|---|---|---|---|---|\n";
  for (std::size_t i = 0; i < rows.size(); ++i)
    md << "| " << rows[i].what << " | " << fmt(q[i].tv, "%.4f") << " | " << fmt(q[i].mmd2) << " | "
       << fmt(rows[i].evaluations, "%.3g") << " | " << fmt(rows[i].seconds, "%.2f")
       << (rows[i].note.empty() ? "" : " (" + rows[i].note + ")") << " |\n";
  // The conclusion, from the numbers: rows 0 (ULA), 3 (annealed on the schedule's levels) and
  // 4 (DDPM), exact score.
  auto verdict = [&](double tv) {
    return std::isnan(tv) ? std::string("no samples")
                          : fmt(tv, "%.4f") + (tv > 3 * noise ? " (over 3x the sampling noise)"
                                                              : " (within 3x the sampling noise)");
  };
  md << "\nWith the exact score: reverse diffusion (DDPM) TV " << verdict(q[4].tv)
     << ", annealed Langevin on the same noise levels TV " << verdict(q[3].tv)
     << ", plain Langevin (ULA) from the broad start TV " << verdict(q[0].tv)
     << ". Plain Langevin keeps the start's split between the basins, which misses the weights "
        "where the basins' shares of the start differ from the weights (two_modes: about 1/2 "
        "against 0.8 / 0.2, the NCSN toy result); annealing from high noise, by the diffusion "
        "or by Langevin on its levels, reaches them. Picture: `c2_grid.png` (data beside it, "
        "`.dat`).\n";
  write_text(dir + "c2.md", md.str());
  std::printf("%s", md.str().c_str());
  std::printf("wrote %sc2.md and c2_grid.png; c2 took %.1f s\n", dir.c_str(), total);
}

// ---- registration ----------------------------------------------------------------------------

void add_train_commands(CLI::App& app) {
  auto t = std::make_shared<TrainCmd>();
  auto* train = app.add_subcommand("train", "train a diffusion model (MLP with a time embedding) "
                                            "on 2-D toy data or a .npy file; a safetensors "
                                            "checkpoint that genai sample --model reads");
  train->add_option("--data", t->args.data, "two_moons, swiss_roll, gmm8, two_modes, "
                                            "checkerboard, or FILE.npy [n x d]")
      ->capture_default_str();
  train->add_option("--out", t->out, "the checkpoint (.safetensors)")->required();
  add_training_options(*train, t->args, true);
  train->add_option("--epochs", t->epochs, "passes over the data instead of --steps: steps = "
                                           "ceil(epochs n / batch) (batches are drawn with "
                                           "replacement)")
      ->check(CLI::PositiveNumber);
  train->add_option("--resume", t->resume, "continue the run a checkpoint holds (its options, "
                                           "data and state; bit for bit the uninterrupted run)");
  train->add_option("--stop-after", t->stop_after, "stop after this many steps in all (and save): "
                                                   "a run to --resume later");
  train->add_option("--checkpoint-every", t->checkpoint_every, "also save --out every so many steps");
  train->add_option("--loss-plot", t->loss_plot, "the loss curve's PNG (default: <out>.loss.png)");
  add_progress_options(*train, t->progress_every, t->quiet);
  add_device_option(*train, t->device);
  train->callback([t, train] { run_train(*t, *train); });

  auto c3 = std::make_shared<C3Cmd>();
  auto* c3cmd = app.add_subcommand("c3", "challenge C3: train a tiny 2-D diffusion model, sample "
                                         "it, and measure the samples (DIR/c3.md, pictures)");
  c3cmd->add_option("--data", c3->args.data, "two_moons, swiss_roll, gmm8, two_modes, "
                                             "checkerboard, or FILE.npy [n x 2]")
      ->capture_default_str();
  c3cmd->add_option("--out", c3->out, "output folder")->capture_default_str();
  c3cmd->add_option("--samples", c3->samples, "samples per sampler (and fresh data points)")
      ->capture_default_str();
  c3cmd->add_option("--sample-steps", c3->sample_steps, "DDPM inference steps")->capture_default_str();
  c3cmd->add_option("--n", c3->args.n, "training points of a built-in set")->capture_default_str();
  add_training_options(*c3cmd, c3->args, false);
  add_progress_options(*c3cmd, c3->progress_every, c3->quiet);
  add_device_option(*c3cmd, c3->device);
  c3cmd->callback([c3] { run_c3(*c3); });

  auto c2 = std::make_shared<C2Cmd>();
  auto* c2cmd = app.add_subcommand("c2", "challenge C2: ULA, MALA, annealed Langevin and diffusion "
                                         "sampling on one mixture, exact score and trained model "
                                         "(DIR/c2.md, a picture grid)");
  c2cmd->add_option("--target", c2->target, "gmm8 or two_modes")
      ->check(CLI::IsMember({"gmm8", "two_modes"}))
      ->capture_default_str();
  c2cmd->add_option("--out", c2->out, "output folder")->capture_default_str();
  c2cmd->add_option("--samples", c2->samples, "samples (chains) per method")->capture_default_str();
  c2cmd->add_option("--model", c2->model, "a checkpoint of genai train on the target (default: "
                                          "train one here)");
  add_training_options(*c2cmd, c2->args, false);
  add_progress_options(*c2cmd, c2->progress_every, c2->quiet);
  add_device_option(*c2cmd, c2->device);
  c2cmd->callback([c2] { run_c2(*c2); });
}

}  // namespace

GENAI_CLI_MODULE(35, "train", add_train_commands, nullptr);

}  // namespace genai::cli
