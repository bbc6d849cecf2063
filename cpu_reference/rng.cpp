#include "cpu_reference/rng.hpp"

namespace genai::ref {

// Element i takes lane i % 4 of block i / 4 (the layout documented in rng.hpp).
template <class Draw4, class Map>
static void fill(float* out, std::int64_t n, Draw4 draw4, Map map) {
  for (std::int64_t b = 0; b * 4 < n; ++b) {
    const rng::Float4 r = draw4(static_cast<std::uint64_t>(b));
    for (int lane = 0; lane < 4 && b * 4 + lane < n; ++lane) out[b * 4 + lane] = map(r.v[lane]);
  }
}

void fill_uniform(float* out, std::int64_t n, RngKey key, float low, float high) {
  const float width = rng::detail::add(high, -low);
  fill(out, n, [&](std::uint64_t b) { return rng::uniform4(key.seed, key.stream, b, key.step); },
       [&](float u) { return rng::detail::fma(width, u, low); });
}

void fill_normal(float* out, std::int64_t n, RngKey key, float mean, float stddev) {
  fill(out, n, [&](std::uint64_t b) { return rng::normal4(key.seed, key.stream, b, key.step); },
       [&](float z) { return rng::detail::fma(stddev, z, mean); });
}

}  // namespace genai::ref
