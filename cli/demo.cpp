// genai demo: a tour of every module on built-in data. Each case runs on the chosen device, is
// checked against the CPU reference (or, on the CPU, is the reference), and the problem-set
// answers are checked too. Prints a table; with --out, writes it (and the data) to a folder.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>

#include "cli/common.hpp"
#include "genai/buffer.hpp"
#include "genai/info.hpp"
#include "genai/io.hpp"
#include "genai/rng.hpp"

namespace genai::cli {
namespace {

struct Row {
  std::string module, what, device;
  double max_error = 0;  // vs the CPU reference, relative to max |ref|
  double ms = 0;
  std::string throughput;
  bool ok = true;
};

struct Check {
  std::string problem, what;
  double got, expected, tolerance;
  bool ok() const { return std::abs(got - expected) <= tolerance; }
};

struct Tour {
  Context ctx;
  std::vector<Row> rows;
  std::vector<Check> checks;

  // Times f (after one warm-up run) on ctx; returns milliseconds.
  double time(const std::function<void()>& f) const {
    f();
    ctx.synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    f();
    ctx.synchronize();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }

  // A kernel case: `run(ctx, out)` on the device, `reference(out)` on the host.
  void add(const std::string& module, const std::string& what, std::size_t n_out, double bytes,
           const std::function<void(const Context&, float*)>& run,
           const std::function<void(float*)>& reference, double tolerance) {
    Buffer<float> out(ctx, n_out);
    const double ms = time([&] { run(ctx, out.data()); });
    const auto got = out.to_host();
    std::vector<float> expect(n_out);
    reference(expect.data());
    double err = 0, scale = 1e-30;
    for (std::size_t i = 0; i < n_out; ++i) {
      err = std::max(err, std::abs(double(got[i]) - expect[i]));
      scale = std::max(scale, std::abs(double(expect[i])));
      if (std::isnan(got[i])) err = INFINITY;
    }
    char tp[64];
    std::snprintf(tp, sizeof tp, "%.1f GB/s", bytes / (ms * 1e6));
    rows.push_back({module, what, to_string(ctx.device()), err / scale, ms, tp,
                    err / scale <= tolerance});
  }
};

// ---- modules: each adds its rows and problem-set checks ------------------------------------

void tour_rng(Tour& t) {
  const std::int64_t n = 1 << 24;
  const RngKey key{2026, 0, 0};
  t.add("rng", "fill_normal 16M (Philox, bit-exact)", n, 4.0 * n,
        [&](const Context& c, float* out) { fill_normal(c, out, n, key); },
        [&](float* out) { fill_normal(Context::cpu(), out, n, key); }, 0.0);
}

void tour_info(Tour& t) {
  const Context cpu = Context::cpu();
  const std::int64_t rows = 4096, K = 1024;
  std::vector<float> p(rows * K), q(rows * K);
  fill_uniform(cpu, p.data(), rows * K, {7, 0, 0});
  fill_uniform(cpu, q.data(), rows * K, {7, 1, 0});
  for (auto* v : {&p, &q})
    for (std::int64_t r = 0; r < rows; ++r) {
      double s = 0;
      for (std::int64_t k = 0; k < K; ++k) s += (*v)[r * K + k];
      for (std::int64_t k = 0; k < K; ++k) (*v)[r * K + k] = float((*v)[r * K + k] / s);
    }
  Buffer<float> dp(t.ctx, std::span<const float>(p)), dq(t.ctx, std::span<const float>(q));
  const double bytes = 4.0 * rows * K;
  t.add("info", "entropy 4096x1024", rows, bytes,
        [&](const Context& c, float* out) { entropy(c, dp.data(), rows, K, out); },
        [&](float* out) { entropy(cpu, p.data(), rows, K, out); }, 1e-5);
  t.add("info", "KL divergence 4096x1024", rows, 2 * bytes,
        [&](const Context& c, float* out) { kl_divergence(c, dp.data(), dq.data(), rows, K, out); },
        [&](float* out) { kl_divergence(cpu, p.data(), q.data(), rows, K, out); }, 1e-4);

  // Problem set 3.3, 6.1, 6.2 on the chosen device.
  auto one = [&](const std::vector<float>& a, const std::vector<float>& b,
                 const std::function<void(const float*, const float*, float*)>& f) {
    const std::vector<float> dummy(a.size(), 0.0f);
    return on_device(t.ctx, {&a, b.empty() ? &dummy : &b}, 1,
                     [&](const auto& in, float* out) { f(in[0], in[1], out); })[0];
  };
  const std::vector<float> w = {3, 0.01f, -2, 0.001f}, none;
  const auto& c = t.ctx;
  t.checks.push_back({"3.3(a)", "L1 of [3, 0.01, -2, 0.001]",
                      one(w, none, [&](auto x, auto, auto o) { l1_norm(c, x, 1, 4, o); }), 5.011, 1e-5});
  t.checks.push_back({"3.3(b)", "L2^2 of the same", one(w, none, [&](auto x, auto, auto o) {
                        l2_norm_squared(c, x, 1, 4, o);
                      }), 13.000101, 1e-4});
  auto H = [&](std::vector<float> d) {
    return one(d, none, [&](auto x, auto, auto o) { entropy(c, x, 1, 2, o); });
  };
  t.checks.push_back({"6.1(a)", "H(fair coin), bits", H({0.5f, 0.5f}), 1.0, 1e-5});
  t.checks.push_back({"6.1(b)", "H(0.9, 0.1), bits", H({0.9f, 0.1f}), 0.469, 5e-4});
  t.checks.push_back({"6.1(c)", "H(always heads), bits", H({1.0f, 0.0f}), 0.0, 1e-7});
  auto KL = [&](std::vector<float> a, std::vector<float> b) {
    return one(a, b, [&](auto x, auto y, auto o) { kl_divergence(c, x, y, 1, 2, o); });
  };
  t.checks.push_back({"6.2(a)", "KL(P‖Q), bits", KL({0.5f, 0.5f}, {0.9f, 0.1f}), 0.737, 5e-4});
  t.checks.push_back({"6.2(b)", "KL(Q‖P), bits", KL({0.9f, 0.1f}, {0.5f, 0.5f}), 0.531, 5e-4});
}

int run_demo(const std::string& device, const std::string& out_dir) {
  Tour t{Context::from_name(device), {}, {}};
  std::printf("genai demo on %s%s\n\n", to_string(t.ctx.device()).c_str(),
              t.ctx.is_cuda() ? "" : " (the CPU reference; its error vs itself is 0 by definition)");
  tour_rng(t);
  tour_info(t);

  std::string table = "| module | case | device | max rel. error vs reference | time (ms) | throughput |\n"
                      "|---|---|---|---|---|---|\n";
  char line[512];
  bool all_ok = true;
  for (const Row& r : t.rows) {
    std::snprintf(line, sizeof line, "| %s | %s | %s | %.2e%s | %.3f | %s |\n", r.module.c_str(),
                  r.what.c_str(), r.device.c_str(), r.max_error, r.ok ? "" : " FAIL", r.ms,
                  r.throughput.c_str());
    table += line;
    all_ok &= r.ok;
  }
  table += "\n| problem | quantity | got | expected | |\n|---|---|---|---|---|\n";
  for (const Check& c : t.checks) {
    std::snprintf(line, sizeof line, "| %s | %s | %.6f | %.6g | %s |\n", c.problem.c_str(),
                  c.what.c_str(), c.got, c.expected, c.ok() ? "ok" : "FAIL");
    table += line;
    all_ok &= c.ok();
  }
  std::fputs(table.c_str(), stdout);
  if (!out_dir.empty()) {
    std::filesystem::create_directories(out_dir);
    std::ofstream(std::filesystem::path(out_dir) / "demo.md") << table;
    std::printf("\nwrote %s/demo.md\n", out_dir.c_str());
  }
  std::printf("\n%s\n", all_ok ? "all checks passed" : "SOME CHECKS FAILED");
  return all_ok ? 0 : 1;
}

}  // namespace

void add_demo_command(CLI::App& app) {
  struct Args {
    std::string device = "auto", out;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("demo", "a tour of every module on built-in data, checked "
                                         "against the CPU reference and the problem set");
  add_device_option(*cmd, a->device);
  cmd->add_option("--out", a->out, "folder for the table and the pictures");
  cmd->callback([a] { exit_code = run_demo(a->device, a->out); });
}

}  // namespace genai::cli
