#include "cpu_reference/exp.hpp"

#include <algorithm>

#include "cpu_reference/parallel.hpp"

namespace genai::ref {

namespace {

// The sum of s[0, n) in double: W interleaved partial sums, then neighbours added pairwise
// ((p0 + p1) + (p2 + p3) for W = 4): a fixed order.
template <int W, class F>
[[gnu::always_inline]] inline double sum_of(const F* s, std::int64_t n) {
  double part[W] = {};
  std::int64_t c = 0;
  for (; c + W <= n; c += W)
    for (int lane = 0; lane < W; ++lane) part[lane] += s[c + lane];
  for (; c < n; ++c) part[0] += s[c];
  for (int w = W / 2; w >= 1; w /= 2)
    for (int lane = 0; lane < w; ++lane) part[lane] = part[2 * lane] + part[2 * lane + 1];
  return part[0];
}

// The largest of s[0, n) in W interleaved maxima (the value does not depend on the order).
template <int W, class F>
[[gnu::always_inline]] inline F max_of_lanes(const F* s, std::int64_t n) {
  constexpr F kNegInf = -std::numeric_limits<F>::infinity();
  F part[W];
  for (F& p : part) p = kNegInf;
  std::int64_t c = 0;
  for (; c + W <= n; c += W)
    for (int lane = 0; lane < W; ++lane) part[lane] = std::max(part[lane], s[c + lane]);
  for (; c < n; ++c) part[0] = std::max(part[0], s[c]);
  F m = kNegInf;
  for (const F p : part) m = std::max(m, p);
  return m;
}

}  // namespace

GENAI_CPU_CLONES double exp_shifted(double* s, std::int64_t n, double m) {
  for (std::int64_t c = 0; c < n; ++c) s[c] = exp_d(s[c] - m);
  return sum_of<4>(s, n);
}

GENAI_CPU_CLONES double exp_shifted(float* s, std::int64_t n, float m) {
  for (std::int64_t c = 0; c < n; ++c) s[c] = exp_f(s[c] - m);
  return sum_of<8>(s, n);
}

double max_of(const double* s, std::int64_t n) { return max_of_lanes<4>(s, n); }
GENAI_CPU_CLONES float max_of(const float* s, std::int64_t n) { return max_of_lanes<16>(s, n); }

}  // namespace genai::ref
