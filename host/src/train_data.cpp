// genai train module, data: the built-in 2-D sets drawn from Philox, .npy files, checksums.
#include <cmath>
#include <cstdio>
#include <numbers>

#include "genai/io.hpp"
#include "genai/nvtx.hpp"
#include "genai/rng.hpp"
#include "genai/train.hpp"

namespace genai {
namespace {

constexpr std::uint32_t kStream = rng::streams::train_data;

bool is_mixture(const std::string& name) { return name == "gmm8" || name == "two_modes"; }

}  // namespace

const std::vector<std::string>& dataset_names() {
  static const std::vector<std::string> names = {"two_moons", "swiss_roll", "gmm8", "two_modes",
                                                 "checkerboard"};
  return names;
}

Dataset make_dataset(const std::string& name, std::int64_t n, std::uint64_t seed,
                     std::uint32_t set) {
  constexpr const char* fn = "genai::make_dataset";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "n", n, 1);
  bool known = false;
  std::string list;
  for (const std::string& k : dataset_names()) {
    known = known || k == name;
    list += (list.empty() ? "" : ", ") + k;
  }
  if (!known) detail::throw_argument(fn, "name", "is '", name, "' (built-in sets: ", list, ")");
  Dataset out{name, n, 2, seed, std::vector<float>(static_cast<std::size_t>(2 * n))};
  float* x = out.x.data();
  if (is_mixture(name)) {
    mixture_draw(GaussianMixture::preset(name), n, {seed, kStream, 2 * set}, x);
    return out;
  }
  constexpr double pi = std::numbers::pi;
  for (std::int64_t r = 0; r < n; ++r) {
    const auto b = static_cast<std::uint64_t>(r);
    const rng::Float4 z = rng::normal4(seed, kStream, b, 2 * set);
    const rng::Float4 u = rng::uniform4(seed, kStream, b, 2 * set + 1);
    double a = 0, c = 0;
    if (name == "two_moons") {
      const double angle = pi * u.v[1];
      const bool upper = u.v[0] <= 0.5f;
      a = (upper ? std::cos(angle) : 1 - std::cos(angle)) + 0.03 * z.v[0];
      c = (upper ? std::sin(angle) : 0.5 - std::sin(angle)) + 0.03 * z.v[1];
      a = 2 * (a + 0.3) - 1;
      c = 3 * (c + 0.3) - 1;
    } else if (name == "swiss_roll") {
      const double s = 1.5 * pi * (1 + 2 * static_cast<double>(u.v[0]));
      a = (s * std::cos(s) + z.v[0]) / 5;
      c = (s * std::sin(s) + z.v[1]) / 5;
    } else {  // checkerboard
      const double x1 = 4.0 * u.v[0] - 2;
      const double shift = u.v[2] > 0.5f ? 2.0 : 0.0;
      const auto column = static_cast<long long>(std::floor(x1));
      a = 2 * x1;
      c = 2 * (u.v[1] - shift + static_cast<double>(((column % 2) + 2) % 2));
    }
    x[2 * r] = static_cast<float>(a);
    x[2 * r + 1] = static_cast<float>(c);
  }
  return out;
}

Dataset read_dataset(const std::string& path) {
  constexpr const char* fn = "genai::read_dataset";
  GENAI_NVTX_RANGE(fn);
  io::Array a;
  try {
    a = io::read_npy(path);
  } catch (const ArgumentError&) {
    throw;
  } catch (const Error& e) {
    detail::throw_argument(fn, "path", "'", path, "' is not a readable .npy file: ", e.what());
  }
  if (a.shape.size() != 2 || a.shape[0] < 1 || a.shape[1] < 1) {
    std::string shape;
    for (std::size_t i = 0; i < a.shape.size(); ++i) shape += (i ? " x " : "") + std::to_string(a.shape[i]);
    detail::throw_argument(fn, "path", "'", path, "' holds an array of shape [", shape,
                           "]: data must be [n x d] with n, d >= 1");
  }
  if (a.dtype != io::DType::F32 && a.dtype != io::DType::F64)
    detail::throw_argument(fn, "path", "'", path, "' holds ", io::to_string(a.dtype),
                           " values: data must be float32 or float64");
  Dataset out{path, a.shape[0], a.shape[1], 0, a.to_float()};
  for (std::size_t i = 0; i < out.x.size(); ++i)
    if (!std::isfinite(out.x[i]))
      detail::throw_argument(fn, "path", "'", path, "' row ", static_cast<std::int64_t>(i) / out.d,
                             " column ", static_cast<std::int64_t>(i) % out.d, " is ", out.x[i],
                             " (data must be finite)");
  return out;
}

Dataset load_dataset(const std::string& spec, std::int64_t n, std::uint64_t seed,
                     std::uint32_t set) {
  if (spec.size() > 4 && spec.ends_with(".npy")) return read_dataset(spec);
  return make_dataset(spec, n, seed, set);
}

std::optional<GaussianMixture> dataset_mixture(const std::string& spec) {
  if (is_mixture(spec)) return GaussianMixture::preset(spec);
  return std::nullopt;
}

std::string dataset_checksum(const Dataset& data) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  const auto* bytes = reinterpret_cast<const unsigned char*>(data.x.data());
  for (std::size_t i = 0; i < data.x.size() * sizeof(float); ++i) {
    h ^= bytes[i];
    h *= 0x100000001b3ull;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

}  // namespace genai
