// Shared test helpers: tolerances per dtype, the comparison rule, NaN poisoning, random inputs,
// and the fixture that skips GPU tests (with the reason) when no CUDA device is usable.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "genai/buffer.hpp"
#include "genai/context.hpp"
#include "genai/error.hpp"
#include "genai/rng.hpp"

#include <unistd.h>

namespace genai::test {

enum class DType { FP32, TF32, BF16, FP16 };

struct Tolerance {
  double rel_norm;  // bound on ||out - ref|| / ||ref||
  double max_abs;   // bound on max |out - ref|, relative to max(1, max |ref|)
};

inline Tolerance tolerance(DType t) {
  switch (t) {
    case DType::FP32: return {1e-5, 1e-5};
    case DType::TF32: return {3e-4, 3e-4};
    case DType::BF16: return {1e-2, 1e-2};
    case DType::FP16: return {1e-2, 1e-2};
  }
  return {0, 0};
}

// ||out - ref|| / ||ref|| and max-abs error; any NaN in `out` where `ref` is finite fails
// (so an element left poisoned fails), infinities must match exactly.
inline ::testing::AssertionResult close(std::span<const float> out, std::span<const double> ref,
                                        Tolerance tol) {
  if (out.size() != ref.size())
    return ::testing::AssertionFailure() << "size " << out.size() << " vs reference " << ref.size();
  double diff2 = 0, ref2 = 0, max_abs = 0, ref_max = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (std::isinf(ref[i]) || std::isinf(out[i])) {
      if (static_cast<double>(out[i]) != ref[i])
        return ::testing::AssertionFailure() << "element " << i << ": " << out[i] << " vs " << ref[i];
      continue;
    }
    if (std::isnan(out[i]) != std::isnan(ref[i]))
      return ::testing::AssertionFailure() << "element " << i << ": " << out[i] << " vs " << ref[i];
    if (std::isnan(ref[i])) continue;
    const double d = out[i] - ref[i];
    diff2 += d * d;
    ref2 += ref[i] * ref[i];
    max_abs = std::max(max_abs, std::abs(d));
    ref_max = std::max(ref_max, std::abs(ref[i]));
  }
  const double rel = ref2 > 0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2);
  const double abs_bound = tol.max_abs * std::max(1.0, ref_max);
  if (rel > tol.rel_norm || max_abs > abs_bound)
    return ::testing::AssertionFailure() << "relative norm error " << rel << " (bound "
                                         << tol.rel_norm << "), max abs error " << max_abs
                                         << " (bound " << abs_bound << ")";
  return ::testing::AssertionSuccess();
}

inline ::testing::AssertionResult close(std::span<const float> out, std::span<const float> ref,
                                        Tolerance tol) {
  std::vector<double> r(ref.begin(), ref.end());
  return close(out, std::span<const double>(r), tol);
}

// Sampler paths (rows of d) in float on the device against the CPU reference's double scores.
// The rounding differences (~1e-7 per step) are contracted along most paths and amplified along
// the few that pass near a boundary between modes late in the reverse process, where the score's
// Jacobian is large (measured on an H100: one gmm8 DDPM point of 3000 off by 2e-3, relative norm
// error 1e-5). So, as the langevin module's parity cases: relative norm error <= 1e-4, at most 1%
// of the rows with an element beyond 1e-3 * max(1, |ref|), and no element beyond
// 1e-2 * max(1, max |ref|), far below a change of mode (>= 3 for the presets). An error in the
// step, the noise layout or the launch puts nearly every row off.
inline ::testing::AssertionResult same_paths(std::span<const float> out,
                                             std::span<const float> ref, std::int64_t d) {
  if (auto r = close(out, ref, {1e-4, 1e-2}); !r) return r;
  const auto rows = static_cast<std::int64_t>(ref.size()) / d;
  std::int64_t off = 0;
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t j = 0; j < d; ++j) {
      const float e = ref[r * d + j];
      if (std::abs(out[r * d + j] - e) > 1e-3 * std::max(1.0f, std::abs(e))) {
        ++off;
        break;
      }
    }
  if (off > rows / 100)
    return ::testing::AssertionFailure() << off << " of " << rows
                                         << " rows off by more than 1e-3 (at most 1%)";
  return ::testing::AssertionSuccess();
}

// Every float NaN: an output element the code under test forgets to write fails close().
template <class T>
void poison(Buffer<T>& b) {
  b.fill_bytes(0xFF);
}
inline void poison(std::vector<float>& v) {
  std::fill(v.begin(), v.end(), std::numeric_limits<float>::quiet_NaN());
}

// Fresh random inputs from the library's own generator (CPU reference path).
inline std::vector<float> normals(std::int64_t n, std::uint64_t seed, float mean = 0,
                                  float stddev = 1) {
  std::vector<float> v(n);
  fill_normal(Context::cpu(), v.data(), n, RngKey{seed, 0x7e57, 0}, mean, stddev);
  return v;
}
inline std::vector<float> uniforms(std::int64_t n, std::uint64_t seed, float low = 0,
                                   float high = 1) {
  std::vector<float> v(n);
  fill_uniform(Context::cpu(), v.data(), n, RngKey{seed, 0x7e58, 0}, low, high);
  return v;
}

// Rows of random distributions: p = softmax(temperature * z), rows x K.
inline std::vector<float> random_distributions(std::int64_t rows, std::int64_t K,
                                               std::uint64_t seed, float temperature = 1) {
  auto z = normals(rows * K, seed);
  for (std::int64_t r = 0; r < rows; ++r) {
    double m = -1e30, s = 0;
    for (std::int64_t k = 0; k < K; ++k) m = std::max<double>(m, temperature * z[r * K + k]);
    std::vector<double> e(K);
    for (std::int64_t k = 0; k < K; ++k) s += e[k] = std::exp(temperature * z[r * K + k] - m);
    for (std::int64_t k = 0; k < K; ++k) z[r * K + k] = static_cast<float>(e[k] / s);
  }
  return z;
}

// Central differences of f at x, step h per coordinate (the gradient tests' reference).
inline std::vector<double> numeric_gradient(
    const std::function<double(const std::vector<double>&)>& f, std::vector<double> x,
    double h = 1e-5) {
  std::vector<double> g(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    x[i] = keep + h;
    const double up = f(x);
    x[i] = keep - h;
    const double down = f(x);
    x[i] = keep;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

// The message of the genai::ArgumentError that f() throws, or "(no ArgumentError)".
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const ArgumentError& e) {
    return e.what();
  }
  return "(no ArgumentError)";
}

// Expects f() to throw an ArgumentError whose message contains `fragment`.
template <class F>
void expect_argument_error(F&& f, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning " << fragment;
  } catch (const ArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

// Small problem sizes for runs under a slow checker: profiling/gpu_check.sh sets
// GENAI_TEST_SMALL=1 for its compute-sanitizer runs, so that a racecheck run takes seconds.
// GPU tests pick their sizes with sized(full, small) (the type is the full size's).
inline bool small_run() {
  static const bool small = [] {
    const char* v = std::getenv("GENAI_TEST_SMALL");
    return v != nullptr && *v != '\0' && std::string_view(v) != "0";
  }();
  return small;
}
template <class T>
T sized(T full, std::type_identity_t<T> small) {
  return small_run() ? small : full;
}

// A fresh directory for one test, removed with it: <tmp>/genai_<suite>_<test>_<pid>, so that
// runs side by side (several build trees, ctest -j) never share a file.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::temp_directory_path() /
            (std::string("genai_") + info->test_suite_name() + "_" + info->name() + "_" +
             std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string operator/(const std::string& leaf) const { return (path_ / leaf).string(); }

 private:
  std::filesystem::path path_;
};

// Base of every GPU test: skips, saying why, when no CUDA device is usable.
class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Context::cuda_device_count() == 0)
      GTEST_SKIP() << "no CUDA device: " << Context::cuda_unavailable_reason();
    ctx = Context::cuda(0);
  }
  Context ctx = Context::cpu();
};

// Device copy of host data, and host copy of device data.
template <class T>
Buffer<T> to_device(const Context& ctx, const std::vector<T>& h) {
  return Buffer<T>(ctx, std::span<const T>(h));
}

}  // namespace genai::test
