// genai metrics module: argument checks, then the CPU implementation (the module runs on the
// host).
#include "genai/metrics.hpp"

#include <cmath>

#include "cpu_reference/metrics.hpp"
#include "genai/error.hpp"
#include "genai/nvtx.hpp"
#include "host/src/diffusion_internal.hpp"
#include "host/src/finite.hpp"

namespace genai {
namespace {

// A set `arg` of `rows` (named `rows_arg`) rows of d finite values.
void check_set(const char* fn, const char* arg, const char* rows_arg, const float* a,
               std::int64_t rows, std::int64_t min_rows, std::int64_t d) {
  detail::require_at_least(fn, rows_arg, rows, min_rows);
  detail::require_not_null(fn, arg, a);
  detail::require_finite_matrix(Context::cpu(), fn, arg, a, rows, d);
}

}  // namespace

MmdResult mmd2_rbf(const float* x, std::int64_t n, const float* y, std::int64_t m, std::int64_t d,
                   const MmdOptions& o) {
  constexpr const char* fn = "genai::mmd2_rbf";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "d", d, 1);
  check_set(fn, "x", "n", x, n, 2, d);
  check_set(fn, "y", "m", y, m, 2, d);
  if (!(std::isfinite(o.bandwidth) && o.bandwidth >= 0))
    detail::throw_argument(fn, "opts.bandwidth", "must be finite and >= 0 (0: the median "
                           "heuristic; got ", o.bandwidth, ")");
  detail::require_at_least(fn, "opts.median_points", o.median_points, 2);
  double s = o.bandwidth;
  if (s == 0) {
    s = ref::median_distance(x, n, y, m, d, o.median_points / 2);
    if (!(s > 0))
      detail::throw_argument(fn, "x", "and y: the median pairwise distance is 0 (most points "
                             "coincide); give opts.bandwidth");
  }
  return {ref::mmd2_rbf(x, n, y, m, d, s, o.unbiased), s};
}

double sliced_wasserstein2(const float* x, std::int64_t n, const float* y, std::int64_t m,
                           std::int64_t d, const SlicedWassersteinOptions& o) {
  constexpr const char* fn = "genai::sliced_wasserstein2";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "d", d, 1);
  check_set(fn, "x", "n", x, n, 1, d);
  check_set(fn, "y", "m", y, m, 1, d);
  detail::require_at_least(fn, "opts.projections", o.projections, 1);
  return ref::sliced_wasserstein2(x, n, y, m, d, o.projections, o.seed);
}

std::vector<double> mode_weights(const float* x, std::int64_t n, const GaussianMixture& mixture) {
  constexpr const char* fn = "genai::mode_weights";
  GENAI_NVTX_RANGE(fn);
  detail::check_mixture(fn, mixture);
  check_set(fn, "x", "n", x, n, 1, mixture.d);
  return ref::mode_weights(x, n, mixture);
}

double total_variation(std::span<const double> p, std::span<const double> q) {
  if (p.size() != q.size())
    detail::throw_argument("genai::total_variation", "q", "has ", q.size(), " entries, p ",
                           p.size());
  double s = 0;
  for (std::size_t k = 0; k < p.size(); ++k) s += std::abs(p[k] - q[k]);
  return 0.5 * s;
}

}  // namespace genai
