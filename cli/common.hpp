// Pieces shared by the subcommands of `genai`.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "genai/context.hpp"

namespace genai::cli {

// What main() returns once the chosen subcommand's callback has run.
inline int exit_code = 0;

// --device cpu|cuda|auto on every subcommand; auto = the GPU if one is usable.
void add_device_option(CLI::App& app, std::string& device);

// Progress lines on stderr for long runs: at most one every `every` seconds, never when quiet.
// every = 0 prints at every report, so that a test sees the same lines on any machine.
class Progress {
 public:
  Progress(double every, bool quiet);
  double seconds() const;  // since construction
  // Prints "<line> <seconds> s" when due; returns whether it printed.
  bool report(const std::string& line);
  double every() const { return every_; }

 private:
  double every_;
  bool quiet_;
  double start_, last_ = 0;
};
// --progress-every SECONDS (default 1) and --quiet on a long-running command.
void add_progress_options(CLI::App& cmd, double& every, bool& quiet);

// Rows of numbers from "0.9,0.1" (one row) or from a .npy file (1-D: one row; 2-D: rows).
struct Rows {
  std::vector<float> values;
  std::int64_t rows = 0, cols = 0;
};
Rows read_rows(const std::string& spec, const char* what);

// Runs a computation on host data through ctx: copies in, calls f(device pointers), copies out.
// f receives pointers valid on ctx's device.
std::vector<float> on_device(const Context& ctx, const std::vector<const std::vector<float>*>& in,
                             std::size_t out_size,
                             const std::function<void(const std::vector<const float*>&, float*)>& f);

// ---- the demo tour ---------------------------------------------------------------------------
// Each module adds rows (a kernel case checked against the CPU reference and timed) and checks
// (a problem-set answer) from its own cli/<module>.cpp.
struct TourRow {
  std::string module, what, device;
  double max_error = 0;  // max |out - ref| / max |ref|
  double ms = 0;
  std::string throughput;
  bool ok = true;
};

struct TourCheck {
  std::string problem, what;
  double got, expected, tolerance;
  bool ok() const;
};

struct Tour {
  Context ctx;
  std::string out_dir;  // "" when the demo writes no files
  std::vector<TourRow> rows;
  std::vector<TourCheck> checks;
  std::vector<std::string> files;  // pictures and data written under out_dir

  // Milliseconds of one run of f on ctx, after one warm-up run.
  double time(const std::function<void()>& f) const;
  // A kernel case: run(ctx, out) on the tour's device, reference(out) on the host; `bytes`
  // moved by one run gives the throughput column.
  void add(const std::string& module, const std::string& what, std::size_t n_out, double bytes,
           const std::function<void(const Context&, float*)>& run,
           const std::function<void(float*)>& reference, double tolerance);
  void check(std::string problem, std::string what, double got, double expected,
             double tolerance);
};

// ---- registration --------------------------------------------------------------------------
// A module's cli/<module>.cpp registers its subcommands and its demo step with
//   GENAI_CLI_MODULE(order, add_commands, tour_step)
// (order: position in `genai --help` and in the demo; either function may be nullptr).
using AddCommands = void (*)(CLI::App&);
using TourStep = void (*)(Tour&);
struct Module {
  int order;
  const char* name;
  AddCommands add_commands;
  TourStep tour;
};
std::vector<Module>& modules();  // sorted by order on use
bool register_module(Module m);

#define GENAI_CLI_CONCAT_(a, b) a##b
#define GENAI_CLI_CONCAT(a, b) GENAI_CLI_CONCAT_(a, b)
#define GENAI_CLI_MODULE(order, name, add_commands, tour_step)                         \
  [[maybe_unused]] static const bool GENAI_CLI_CONCAT(genai_cli_registered_, __LINE__) = \
      ::genai::cli::register_module({order, name, add_commands, tour_step})

}  // namespace genai::cli
