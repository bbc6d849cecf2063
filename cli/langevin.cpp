// genai langevin: batched ULA / MALA / annealed Langevin chains on a built-in target, with
// acceptance, ESS and R-hat; and the module's demo rows and problem-set checks (7.4).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "cli/common.hpp"
#include "cli/plot.hpp"
#include "genai/buffer.hpp"
#include "genai/io.hpp"
#include "genai/langevin.hpp"
#include "genai/rng.hpp"

namespace genai::cli {
namespace {

struct LangevinArgs {
  std::string target = "gmm8", method = "ula", device = "auto", out, trace, plot;
  std::int64_t chains = 4096, steps = 1000, dim = 2;
  float step_size = 0.01f, beta = 1.0f;
  double progress_every = 1.0;  // seconds between progress lines; 0: after every chunk
  std::uint64_t seed = 0;
  bool quiet = false;
};

LangevinTarget make_target(const std::string& name, std::int64_t dim) {
  if (name == "gaussian")
    return LangevinTarget::gaussian(std::vector<float>(dim, 0.0f), std::vector<float>(dim, 1.0f));
  if (name == "gmm8") return LangevinTarget::gmm8();
  if (name == "two_modes") return LangevinTarget::two_modes();
  return LangevinTarget::double_well(dim, 1.0f, 0.3f);
}

LangevinMethod parse_method(const std::string& m) {
  if (m == "mala") return LangevinMethod::MALA;
  if (m == "annealed") return LangevinMethod::Annealed;
  return LangevinMethod::ULA;
}

// The first two coordinates of the states x [chains x d] (d >= 2) over the target's density in
// those coordinates: every target here factorises (N(0, I), the double well) or has d = 2, so
// that density is the 2-D target's. The window: the components' means +- 3 sd (the double
// well: +- 3).
void plot_langevin(const std::string& who, const std::string& png, const std::string& target_name,
                   const std::vector<float>& x, std::int64_t chains, std::int64_t d,
                   const std::string& title) {
  const LangevinTarget t = make_target(target_name, 2);
  double extent = 3;
  for (std::size_t i = 0; i < t.means.size(); ++i)
    extent = std::max(extent, std::abs(double(t.means[i])) + 3 * std::sqrt(double(t.vars[i])));
  std::vector<float> xy(2 * chains);
  for (std::int64_t c = 0; c < chains; ++c) {
    xy[2 * c] = x[c * d];
    xy[2 * c + 1] = x[c * d + 1];
  }
  plot_samples(who, png, xy, extent, [&](double u, double v) {
    const double at[2] = {u, v};
    return std::exp(log_density(t, at));
  }, title);
}

// At most this many trajectory records are kept for the diagnostics (and --trace).
constexpr std::int64_t kRecords = 200;
constexpr double kTraceBytes = 256.0 * (1 << 20);
// ESS and R-hat use the second half of the records of at most this many chains.
constexpr std::int64_t kDiagnosticChains = 64;

// What a run leaves beside the states, on the host.
struct RunOutputs {
  std::vector<float> trajectory;
  std::vector<std::int64_t> accepted;
};

// o's run of the chains x (on ctx's device), in chunks -- of steps for ULA and MALA, of whole
// levels for annealed runs -- of whole thin periods, each continuing the last (first_step, and
// anneal.first_level): the same paths as one call (langevin.hpp). Prints
// "langevin: step S/T (P%) E s" through `progress` (cli/common.hpp), chunks sized to take
// about half its interval; an interval of 0 prints after each chunk of one thin period, so
// the lines do not depend on the machine's speed.
RunOutputs run_chunked(const Context& ctx, const LangevinTarget& target, float* x,
                       std::int64_t chains, std::int64_t d, LangevinOptions o,
                       Progress& progress) {
  const bool annealed = o.method == LangevinMethod::Annealed;
  const std::int64_t unit_steps = annealed ? o.steps : 1;  // steps per unit (a step, a level)
  const std::int64_t units = annealed ? o.anneal.levels : o.steps, total = units * unit_steps;
  const std::int64_t period = std::max<std::int64_t>(o.thin, 1);
  const std::int64_t grain = std::lcm(unit_steps, period) / unit_steps;  // units per period
  RunOutputs out;
  std::int64_t done = 0, chunk = grain;  // in units
  while (done < units) {
    const std::int64_t count = std::min(chunk, units - done);
    if (annealed) {
      o.anneal.first_level = done;
      o.anneal.level_count = count;
    } else {
      o.steps = count;
    }
    o.first_step = static_cast<std::uint32_t>(done * unit_steps);
    const double t0 = progress.seconds();
    const LangevinResult r = langevin(ctx, target, x, chains, d, o);
    ctx.synchronize();
    const auto traj = r.trajectory.to_host();
    out.trajectory.insert(out.trajectory.end(), traj.begin(), traj.end());
    const auto acc = r.accepted.to_host();
    if (out.accepted.empty()) out.accepted.assign(acc.size(), 0);
    for (std::size_t c = 0; c < acc.size(); ++c) out.accepted[c] += acc[c];
    done += count;
    const double took = std::max(progress.seconds() - t0, 1e-6);
    // Next chunk: about half the progress interval at this chunk's rate, whole periods.
    const double rate = static_cast<double>(count) / took;
    chunk = std::max<std::int64_t>(
        grain, static_cast<std::int64_t>(rate * progress.every() / 2) / grain * grain);
    if (done < units) {
      char line[96];
      std::snprintf(line, sizeof line, "langevin: step %lld/%lld (%.0f%%)",
                    static_cast<long long>(done * unit_steps), static_cast<long long>(total),
                    100.0 * static_cast<double>(done) / static_cast<double>(units));
      progress.report(line);
    }
  }
  return out;
}

void run_langevin(const LangevinArgs& a) {
  constexpr const char* fn = "genai langevin";
  detail::require_at_least(fn, "--chains", a.chains, 1);
  detail::require_at_least(fn, "--steps", a.steps, 1);
  detail::require_at_least(fn, "--dim", a.dim, 1);
  const Context ctx = Context::from_name(a.device);
  const LangevinTarget target = make_target(a.target, a.dim);
  const std::int64_t d = target.d, n = a.chains * d;
  if (!a.plot.empty() && d < 2)
    detail::throw_argument(fn, "--plot", "draws the first two dimensions: needs d >= 2 (got --dim ",
                           d, ")");
  LangevinOptions o{.method = parse_method(a.method), .step_size = a.step_size, .beta = a.beta,
                    .steps = a.steps, .seed = a.seed};
  const std::int64_t total = o.method == LangevinMethod::Annealed ? a.steps * o.anneal.levels : a.steps;
  // A trajectory of <= kRecords records when it fits in kTraceBytes (or --trace asks for it).
  const double trace_bytes = static_cast<double>(std::min(total, kRecords)) * static_cast<double>(n) * 4;
  if (!a.trace.empty() || trace_bytes <= kTraceBytes) o.thin = std::max<std::int64_t>(1, total / kRecords);
  const std::int64_t records = o.thin > 0 ? total / o.thin : 0;
  // Starts uniform on [-8, 8]^d (the double well: [-2, 2]^d), from the same seed.
  const float half = a.target == "double_well" ? 2.0f : 8.0f;
  std::vector<float> x0(n);
  fill_uniform(Context::cpu(), x0.data(), n, {a.seed, rng::streams::user, 0}, -half, half);
  Buffer<float> x(ctx, std::span<const float>(x0));
  const auto t0 = std::chrono::steady_clock::now();
  Progress progress(a.progress_every, a.quiet);
  const RunOutputs r = run_chunked(ctx, target, x.data(), a.chains, d, o, progress);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto samples = x.to_host();
  std::printf("%s on %s: %lld chains x %lld steps in d = %lld, %.3f s, %.3g chain-steps/s\n",
              a.method.c_str(), a.target.c_str(), static_cast<long long>(a.chains),
              static_cast<long long>(total), static_cast<long long>(d), s,
              static_cast<double>(a.chains) * static_cast<double>(total) / s);
  if (o.method == LangevinMethod::MALA) {
    double acc = 0;
    for (auto v : r.accepted) acc += static_cast<double>(v);
    std::printf("acceptance rate %.4f\n", acc / (static_cast<double>(a.chains) * static_cast<double>(total)));
  }
  const auto& traj = r.trajectory;
  const std::int64_t m = std::min(a.chains, kDiagnosticChains), draws = records - records / 2;
  if (o.method == LangevinMethod::Annealed) {
    std::printf("ESS and R-hat: not reported for annealed runs (their law changes every level)\n");
  } else if (draws < 4) {
    std::printf("ESS and R-hat: skipped (%s)\n", records == 0 ? "the trajectory would pass 256 MiB; "
                "--trace records it anyway" : "fewer than 8 records");
  } else {
    std::vector<float> part(draws * m * d);
    for (std::int64_t t = 0; t < draws; ++t)
      for (std::int64_t c = 0; c < m; ++c)
        for (std::int64_t j = 0; j < d; ++j)
          part[(t * m + c) * d + j] = traj[((records / 2 + t) * a.chains + c) * d + j];
    std::vector<double> ess(d), rhat(d);
    effective_sample_size(part.data(), draws, m, d, ess.data());
    split_rhat(part.data(), draws, m, d, rhat.data());
    std::printf("diagnostics over the last %lld of %lld records (thin %lld) of %lld chains:\n",
                static_cast<long long>(draws), static_cast<long long>(records),
                static_cast<long long>(o.thin), static_cast<long long>(m));
    for (std::int64_t j = 0; j < d; ++j)
      std::printf("  dim %lld: ESS %.1f, R-hat %.4f\n", static_cast<long long>(j), ess[j], rhat[j]);
  }
  if (!a.out.empty()) {
    io::write_npy(a.out, std::span<const float>(samples), {a.chains, d});
    std::printf("wrote %s [%lld x %lld]\n", a.out.c_str(), static_cast<long long>(a.chains),
                static_cast<long long>(d));
  }
  if (!a.trace.empty()) {
    io::write_npy(a.trace, std::span<const float>(traj), {records, a.chains, d});
    std::printf("wrote %s [%lld x %lld x %lld]\n", a.trace.c_str(), static_cast<long long>(records),
                static_cast<long long>(a.chains), static_cast<long long>(d));
  }
  if (!a.plot.empty()) {
    char title[160];
    std::snprintf(title, sizeof title, "%s on %s, %lld chains x %lld steps, h = %g, beta = %g",
                  a.method.c_str(), a.target.c_str(), static_cast<long long>(a.chains),
                  static_cast<long long>(total), a.step_size, a.beta);
    plot_langevin(fn, a.plot, a.target, samples, a.chains, d, title);
    std::printf("wrote %s (data beside it: .samples.dat, .density.dat)\n", a.plot.c_str());
  }
}

void add_langevin_commands(CLI::App& app) {
  auto a = std::make_shared<LangevinArgs>();
  auto* cmd = app.add_subcommand("langevin", "batched Langevin chains (ULA, MALA, annealed) "
                                             "with acceptance, ESS and R-hat");
  cmd->add_option("--target", a->target, "gaussian (N(0, I)), gmm8, two_modes or double_well")
      ->check(CLI::IsMember({"gaussian", "gmm8", "two_modes", "double_well"}))
      ->capture_default_str();
  cmd->add_option("--method", a->method, "ula, mala or annealed")
      ->check(CLI::IsMember({"ula", "mala", "annealed"}))
      ->capture_default_str();
  cmd->add_option("--chains", a->chains, "number of chains")->capture_default_str();
  cmd->add_option("--steps", a->steps, "steps (annealed: steps per level, 10 levels)")
      ->capture_default_str();
  cmd->add_option("--step-size", a->step_size, "h (annealed: eps)")->capture_default_str();
  cmd->add_option("--beta", a->beta, "inverse temperature")->capture_default_str();
  cmd->add_option("--seed", a->seed, "Philox seed")->capture_default_str();
  cmd->add_option("--dim", a->dim, "dimension of gaussian and double_well")->capture_default_str();
  cmd->add_option("--out", a->out, "final states, .npy [chains x d]");
  cmd->add_option("--trace", a->trace, "thinned trajectory (<= 200 records), .npy [records x chains x d]");
  cmd->add_option("--plot", a->plot, "draw the final states (first two dimensions) over the "
                                     "target's density, PNG by gnuplot; data beside it");
  add_progress_options(*cmd, a->progress_every, a->quiet);
  add_device_option(*cmd, a->device);
  cmd->callback([a] { run_langevin(*a); });
}

// ---- demo ------------------------------------------------------------------------------------

// Pooled variance over chains and the moment window, from the per-chain Welford outputs.
double pooled_variance(const LangevinResult& r, std::int64_t chains) {
  const auto mean = r.mean.to_host(), var = r.var.to_host();
  double m = 0, v = 0;
  for (float x : mean) m += x;
  m /= static_cast<double>(chains);
  for (std::int64_t c = 0; c < chains; ++c) v += var[c] + (mean[c] - m) * (mean[c] - m);
  return v / static_cast<double>(chains);
}

void tour_langevin(Tour& t) {
  const Context cpu = Context::cpu();
  // Rows: gmm8 from N(0, 4 I) starts, the tour's device against the CPU reference path by path
  // (on the CPU, fewer chains: the row is the reference against itself). With --out, a picture
  // of the MALA chains' states over gmm8's density.
  const std::int64_t chains = t.ctx.is_cuda() ? 16384 : 2048, steps = 200;
  std::vector<float> x0(2 * chains);
  fill_normal(cpu, x0.data(), 2 * chains, {20, rng::streams::user, 0}, 0.0f, 2.0f);
  for (auto method : {LangevinMethod::ULA, LangevinMethod::MALA}) {
    const LangevinOptions o{.method = method, .step_size = 0.02f, .steps = steps, .seed = 20};
    Buffer<float> x(t.ctx, std::span<const float>(x0));
    const double ms = t.time([&] {
      x.copy_from_host(x0);
      langevin(t.ctx, LangevinTarget::gmm8(), x.data(), chains, 2, o);
    });
    const auto got = x.to_host();
    auto expect = x0;
    langevin(cpu, LangevinTarget::gmm8(), expect.data(), chains, 2, o);
    double err = 0, scale = 1e-30;
    for (std::size_t i = 0; i < got.size(); ++i) {
      err = std::isnan(got[i]) ? INFINITY : std::max(err, std::abs(double(got[i]) - expect[i]));
      scale = std::max(scale, std::abs(double(expect[i])));
    }
    char tp[64];
    std::snprintf(tp, sizeof tp, "%.3g chain-steps/s", double(chains * steps) / (ms * 1e-3));
    // float on the device vs double in the reference; a MALA decision can flip at rounding.
    const double tolerance = method == LangevinMethod::ULA ? 1e-3 : 1e-2;
    t.rows.push_back({"langevin",
                      std::string(method == LangevinMethod::ULA ? "ULA" : "MALA") + " gmm8, " +
                          std::to_string(chains) + " chains x 200 steps",
                      to_string(t.ctx.device()), err / scale, ms, tp, err / scale <= tolerance});
    if (method == LangevinMethod::MALA && !t.out_dir.empty()) {
      const std::string png = t.out_dir + "/langevin_gmm8.png";
      try {
        plot_langevin("genai demo", png, "gmm8", got, chains, 2,
                      "MALA on gmm8, " + std::to_string(chains) + " chains x 200 steps, h = 0.02, from N(0, 4 I)");
        t.files.insert(t.files.end(), {png, png + ".samples.dat", png + ".density.dat"});
      } catch (const Error& e) {
        std::fprintf(stderr, "langevin: no picture: %s\n", e.what());
      }
    }
  }
  // 7.4 done right: 2048 chains from x0 = 5 on N(0, 1), h = 0.1, moments over steps 201..2200.
  // SE of the pooled variance sqrt(2 tau / (N T)) = 2.3e-3 (tau = 9.5); tolerance 5 SE.
  for (auto method : {LangevinMethod::ULA, LangevinMethod::MALA}) {
    const std::int64_t n = 2048;
    Buffer<float> x(t.ctx, std::span<const float>(std::vector<float>(n, 5.0f)));
    const auto r = langevin(t.ctx, LangevinTarget::gaussian({0}, {1}), x.data(), n, 1,
                            {.method = method, .step_size = 0.1f, .steps = 2200, .seed = 74,
                             .moments = true, .burn_in = 200});
    const bool ula = method == LangevinMethod::ULA;
    t.check("7.4", ula ? "ULA h=0.1 stationary variance, 1/(1-h/2)" : "MALA h=0.1 variance",
            pooled_variance(r, n), ula ? 1 / (1 - 0.05) : 1.0, 0.012);
  }
}

}  // namespace

GENAI_CLI_MODULE(20, "langevin", add_langevin_commands, tour_langevin);

}  // namespace genai::cli
