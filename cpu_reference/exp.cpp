#include "cpu_reference/exp.hpp"

#include <algorithm>

#include "cpu_reference/parallel.hpp"

namespace genai::ref {

GENAI_CPU_CLONES double exp_shifted(double* s, std::int64_t n, double m) {
  for (std::int64_t c = 0; c < n; ++c) s[c] = exp_d(s[c] - m);
  double part[4] = {0.0, 0.0, 0.0, 0.0};
  std::int64_t c = 0;
  for (; c + 4 <= n; c += 4)
    for (int lane = 0; lane < 4; ++lane) part[lane] += s[c + lane];
  for (; c < n; ++c) part[0] += s[c];
  return (part[0] + part[1]) + (part[2] + part[3]);
}

double max_of(const double* s, std::int64_t n) {
  constexpr double kNegInf = -std::numeric_limits<double>::infinity();
  double part[4] = {kNegInf, kNegInf, kNegInf, kNegInf};
  std::int64_t c = 0;
  for (; c + 4 <= n; c += 4)
    for (int lane = 0; lane < 4; ++lane) part[lane] = std::max(part[lane], s[c + lane]);
  for (; c < n; ++c) part[0] = std::max(part[0], s[c]);
  return std::max(std::max(part[0], part[1]), std::max(part[2], part[3]));
}

}  // namespace genai::ref
