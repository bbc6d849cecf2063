// genai: the command-line face of genai-kernels.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "cli/common.hpp"
#include "genai/buffer.hpp"
#include "genai/config.hpp"
#include "genai/io.hpp"
#if GENAI_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace genai::cli {

void add_device_option(CLI::App& app, std::string& device) {
  app.add_option("--device", device, "where to run: cpu, cuda or auto (the GPU if present)")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}))
      ->capture_default_str();
}

namespace {
double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

Progress::Progress(double every, bool quiet) : every_(every), quiet_(quiet), start_(now_seconds()) {}

double Progress::seconds() const { return now_seconds() - start_; }

bool Progress::report(const std::string& line) {
  const double now = seconds();
  if (quiet_ || (every_ > 0 && now - last_ < every_)) return false;
  std::fprintf(stderr, "%s %.1f s\n", line.c_str(), now);
  last_ = now;
  return true;
}

void add_progress_options(CLI::App& cmd, double& every, bool& quiet) {
  cmd.add_option("--progress-every", every,
                 "seconds between progress lines on stderr (0: a line at every report, whatever "
                 "the machine's speed)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_flag("--quiet", quiet, "no progress lines on stderr");
}

Rows read_rows(const std::string& spec, const char* what) {
  Rows r;
  if (spec.size() > 4 && spec.ends_with(".npy")) {
    const io::Array a = io::read_npy(spec);
    if (a.shape.empty() || a.shape.size() > 2)
      throw ArgumentError(std::string("--") + what + ": " + spec +
                          " must be 1-D (one row) or 2-D (rows x K)");
    r.values = a.to_float();
    r.rows = a.shape.size() == 2 ? a.shape[0] : 1;
    r.cols = a.shape.back();
    return r;
  }
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      std::size_t used = 0;
      r.values.push_back(std::stof(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw ArgumentError(std::string("--") + what + ": '" + item + "' is not a number");
    }
  }
  r.rows = 1;
  r.cols = static_cast<std::int64_t>(r.values.size());
  return r;
}

std::vector<float> on_device(const Context& ctx, const std::vector<const std::vector<float>*>& in,
                             std::size_t out_size,
                             const std::function<void(const std::vector<const float*>&, float*)>& f) {
  std::vector<Buffer<float>> bufs;
  std::vector<const float*> ptrs;
  for (const auto* v : in) {
    bufs.emplace_back(ctx, std::span<const float>(*v));
    ptrs.push_back(bufs.back().data());
  }
  Buffer<float> out(ctx, out_size);
  f(ptrs, out.data());
  return out.to_host();
}

namespace {

int run_info() {
  std::printf("genai-kernels %s\n", GENAI_VERSION);
  std::printf("build: CUDA %s", GENAI_WITH_CUDA ? "on" : "off");
#if GENAI_WITH_CUDA
  std::printf(" (toolkit %s, architectures %s)\n", GENAI_CUDA_TOOLKIT_VERSION,
              GENAI_CUDA_ARCHITECTURES);
  int driver = 0, runtime = 0;
  cudaRuntimeGetVersion(&runtime);
  const bool have_driver = cudaDriverGetVersion(&driver) == cudaSuccess && driver > 0;
  std::printf("CUDA runtime %d.%d, driver %s\n", runtime / 1000, runtime % 1000 / 10,
              have_driver ? (std::to_string(driver / 1000) + "." +
                             std::to_string(driver % 1000 / 10)).c_str()
                          : "none");
  const int n = Context::cuda_device_count();
  for (int d = 0; d < n; ++d) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, d) != cudaSuccess) continue;
    std::printf("device %d: %s, sm_%d%d, %d SMs, %.1f GiB\n", d, prop.name, prop.major,
                prop.minor, prop.multiProcessorCount,
                static_cast<double>(prop.totalGlobalMem) / (1ull << 30));
  }
#else
  std::printf("\n");
#endif
  if (Context::cuda_device_count() == 0)
    std::printf("No CUDA device was found (%s); the CPU reference will run.\n",
                Context::cuda_unavailable_reason().c_str());
  return 0;
}

}  // namespace
}  // namespace genai::cli

int main(int argc, char** argv) {
  CLI::App app{"genai: kernels for the mathematics of generative models"};
  app.require_subcommand(1);
  app.add_subcommand("info", "version, build configuration, CUDA driver/runtime and devices")
      ->callback([] { genai::cli::exit_code = genai::cli::run_info(); });
  for (const auto& m : genai::cli::modules())
    if (m.add_commands) m.add_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);  // prints the help or the message
    return rc == 0 ? 0 : 2;      // a rejected command line is bad input too
  } catch (const genai::DivergenceError& e) {  // valid input, the numerics ran away
    std::fprintf(stderr, "genai: diverged: %s\n", e.what());
    return 3;
  } catch (const genai::Error& e) {
    std::fprintf(stderr, "genai: error: %s\n", e.what());
    return 2;
  }
  return genai::cli::exit_code;
}
