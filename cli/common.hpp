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

// Subcommand registration, one function per module (cli/<module>.cpp).
void add_info_commands(CLI::App& app);  // entropy, kl
void add_demo_command(CLI::App& app);

}  // namespace genai::cli
