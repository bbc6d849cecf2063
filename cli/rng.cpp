// The rng module in the demo: 16M normals on the chosen device, equal to the CPU stream bit for bit.
#include "cli/common.hpp"
#include "genai/rng.hpp"

namespace genai::cli {
namespace {

void tour_rng(Tour& t) {
  const std::int64_t n = 1 << 24;
  const RngKey key{2026, 0, 0};
  t.add("rng", "fill_normal 16M (Philox, bit-exact)", n, 4.0 * n,
        [&](const Context& c, float* out) { fill_normal(c, out, n, key); },
        [&](float* out) { fill_normal(Context::cpu(), out, n, key); }, 0.0);
}

}  // namespace

GENAI_CLI_MODULE(0, "rng", nullptr, tour_rng);

}  // namespace genai::cli
