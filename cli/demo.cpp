// genai demo: a tour of every module on built-in data. Each case runs on the chosen device, is
// checked against the CPU reference (or, on the CPU, is the reference), and the problem-set
// answers are checked too. Prints a table; with --out, writes it (and the data) to a folder.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli/common.hpp"
#include "genai/buffer.hpp"

namespace genai::cli {

bool TourCheck::ok() const { return std::abs(got - expected) <= tolerance; }

double Tour::time(const std::function<void()>& f) const {
  f();
  ctx.synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  f();
  ctx.synchronize();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void Tour::add(const std::string& module, const std::string& what, std::size_t n_out,
               double bytes, const std::function<void(const Context&, float*)>& run,
               const std::function<void(float*)>& reference, double tolerance) {
  Buffer<float> out(ctx, n_out);
  const double ms = time([&] { run(ctx, out.data()); });
  const auto got = out.to_host();
  std::vector<float> expect(n_out);
  reference(expect.data());
  double err = 0, scale = 1e-30;
  for (std::size_t i = 0; i < n_out; ++i) {
    err = std::isnan(got[i]) ? INFINITY : std::max(err, std::abs(double(got[i]) - expect[i]));
    scale = std::max(scale, std::abs(double(expect[i])));
  }
  char tp[64];
  std::snprintf(tp, sizeof tp, "%.2f GB/s", bytes / (ms * 1e6));
  rows.push_back({module, what, to_string(ctx.device()), err / scale, ms, tp, err / scale <= tolerance});
}

void Tour::check(std::string problem, std::string what, double got, double expected,
                 double tolerance) {
  checks.push_back({std::move(problem), std::move(what), got, expected, tolerance});
}

std::vector<Module>& modules() {
  static std::vector<Module> all;
  return all;
}

bool register_module(Module m) {
  modules().push_back(m);
  std::sort(modules().begin(), modules().end(),
            [](const Module& a, const Module& b) { return a.order < b.order; });
  return true;
}

namespace {

std::string table_of(const Tour& t, bool& all_ok) {
  std::string table =
      "| module | case | device | max rel. error vs reference | time (ms) | throughput |\n"
      "|---|---|---|---|---|---|\n";
  char line[512];
  for (const TourRow& r : t.rows) {
    std::snprintf(line, sizeof line, "| %s | %s | %s | %.2e%s | %.3f | %s |\n", r.module.c_str(),
                  r.what.c_str(), r.device.c_str(), r.max_error, r.ok ? "" : " FAIL", r.ms,
                  r.throughput.c_str());
    table += line;
    all_ok &= r.ok;
  }
  table += "\n| problem | quantity | got | expected | |\n|---|---|---|---|---|\n";
  for (const TourCheck& c : t.checks) {
    std::snprintf(line, sizeof line, "| %s | %s | %.6f | %.6g | %s |\n", c.problem.c_str(),
                  c.what.c_str(), c.got, c.expected, c.ok() ? "ok" : "FAIL");
    table += line;
    all_ok &= c.ok();
  }
  return table;
}

int run_demo(const std::string& device, const std::string& out_dir) {
  Tour t{Context::from_name(device), out_dir, {}, {}, {}};
  if (!out_dir.empty()) std::filesystem::create_directories(out_dir);
  std::printf("genai demo on %s%s\n", to_string(t.ctx.device()).c_str(),
              t.ctx.is_cuda() ? "" : " (the CPU reference: its error vs itself is 0 by definition)");
  for (const Module& m : modules())
    if (m.tour) {
      std::printf("  %s ...\n", m.name);
      std::fflush(stdout);
      m.tour(t);
    }
  bool all_ok = true;
  const std::string table = table_of(t, all_ok);
  std::printf("\n%s", table.c_str());
  if (!out_dir.empty()) {
    const auto path = std::filesystem::path(out_dir) / "demo.md";
    std::ofstream(path) << table;
    t.files.insert(t.files.begin(), path.string());
    for (const auto& f : t.files) std::printf("wrote %s\n", f.c_str());
  }
  std::printf("\n%s\n", all_ok ? "all checks passed" : "SOME CHECKS FAILED");
  return all_ok ? 0 : 1;
}

void add_demo_command(CLI::App& app) {
  struct Args {
    std::string device = "auto", out;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("demo", "a tour of every module on built-in data, checked "
                                         "against the CPU reference and the problem set");
  add_device_option(*cmd, a->device);
  cmd->add_option("--out", a->out, "folder for the table, pictures and data");
  cmd->callback([a] { exit_code = run_demo(a->device, a->out); });
}

}  // namespace

GENAI_CLI_MODULE(1000, "demo", add_demo_command, nullptr);

}  // namespace genai::cli
