// CPU implementation of the sample-quality metrics. The kernel sums evaluate exp in float
// (genai/detail/nn.hpp's exp_f: branch-free, so the loops over a row vectorise) into a row
// buffer that is then added in double.
#include "cpu_reference/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "genai/detail/nn.hpp"
#include "genai/rng.hpp"

namespace genai::ref {
namespace {

// Columns of a [rows x d] set, each contiguous (so that a loop over rows vectorises).
std::vector<float> columns(const float* a, std::int64_t rows, std::int64_t d) {
  std::vector<float> c(static_cast<std::size_t>(rows * d));
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t j = 0; j < d; ++j) c[j * rows + r] = a[r * d + j];
  return c;
}

// sum over j in [begin, end) of exp(-g |a - b_j|^2), b as columns of `rows` rows.
double kernel_row_sum(const float* a, const std::vector<float>& b, std::int64_t rows,
                      std::int64_t d, std::int64_t begin, std::int64_t end, float g,
                      std::vector<float>& buf) {
  const std::int64_t len = end - begin;
  float* s = buf.data();
  std::fill(s, s + len, 0.0f);
  for (std::int64_t j = 0; j < d; ++j) {
    const float aj = a[j];
    const float* col = b.data() + j * rows + begin;
    for (std::int64_t i = 0; i < len; ++i) {
      const float diff = col[i] - aj;
      s[i] += diff * diff;
    }
  }
  for (std::int64_t i = 0; i < len; ++i) s[i] = detail::exp_f(-g * s[i]);
  double acc[4] = {0, 0, 0, 0};
  std::int64_t i = 0;
  for (; i + 4 <= len; i += 4)
    for (int l = 0; l < 4; ++l) acc[l] += s[i + l];
  for (; i < len; ++i) acc[0] += s[i];
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

// sum_{i < i'} k(a_i, a_i') of one set (the off-diagonal half).
double within_sum(const float* a, std::int64_t n, std::int64_t d, float g) {
  const std::vector<float> cols = columns(a, n, d);
  std::vector<float> buf(n);
  double total = 0;
  for (std::int64_t i = 0; i + 1 < n; ++i)
    total += kernel_row_sum(a + i * d, cols, n, d, i + 1, n, g, buf);
  return total;
}

// W2^2 between the empirical laws of sorted a [n] and sorted b [m]: the integral over u in
// (0, 1) of (F_a^-1(u) - F_b^-1(u))^2, piecewise constant between the breakpoints i/n, j/m.
double w2_sorted(const std::vector<double>& a, const std::vector<double>& b) {
  const auto n = static_cast<double>(a.size()), m = static_cast<double>(b.size());
  std::size_t i = 0, j = 0;
  double u = 0, total = 0;
  while (i < a.size() && j < b.size()) {
    const double next_a = static_cast<double>(i + 1) / n, next_b = static_cast<double>(j + 1) / m;
    const double next = std::min(next_a, next_b);
    const double diff = a[i] - b[j];
    total += (next - u) * diff * diff;
    u = next;
    // Integer comparison decides which breakpoint comes first (ties advance both).
    const auto lhs = (i + 1) * b.size(), rhs = (j + 1) * a.size();
    if (lhs <= rhs) ++i;
    if (rhs <= lhs) ++j;
  }
  return total;
}

}  // namespace

double median_distance(const float* x, std::int64_t n, const float* y, std::int64_t m,
                       std::int64_t d, std::int64_t per_set) {
  std::vector<const float*> rows;
  for (std::int64_t i = 0; i < std::min(n, per_set); ++i) rows.push_back(x + i * d);
  for (std::int64_t j = 0; j < std::min(m, per_set); ++j) rows.push_back(y + j * d);
  std::vector<double> dist;
  dist.reserve(rows.size() * (rows.size() - 1) / 2);
  for (std::size_t a = 0; a < rows.size(); ++a)
    for (std::size_t b = a + 1; b < rows.size(); ++b) {
      double s = 0;
      for (std::int64_t j = 0; j < d; ++j) {
        const double diff = static_cast<double>(rows[a][j]) - rows[b][j];
        s += diff * diff;
      }
      dist.push_back(std::sqrt(s));
    }
  const std::size_t mid = dist.size() / 2;
  std::nth_element(dist.begin(), dist.begin() + static_cast<std::ptrdiff_t>(mid), dist.end());
  double median = dist[mid];
  if (dist.size() % 2 == 0) {  // the mean of the two middle values, as numpy.median
    const double below = *std::max_element(dist.begin(), dist.begin() + static_cast<std::ptrdiff_t>(mid));
    median = 0.5 * (median + below);
  }
  return median;
}

double mmd2_rbf(const float* x, std::int64_t n, const float* y, std::int64_t m, std::int64_t d,
                double bandwidth, bool unbiased) {
  const auto g = static_cast<float>(1.0 / (2.0 * bandwidth * bandwidth));
  const double kxx = within_sum(x, n, d, g), kyy = within_sum(y, m, d, g);
  const std::vector<float> ycols = columns(y, m, d);
  std::vector<float> buf(m);
  double kxy = 0;
  for (std::int64_t i = 0; i < n; ++i) kxy += kernel_row_sum(x + i * d, ycols, m, d, 0, m, g, buf);
  const auto dn = static_cast<double>(n), dm = static_cast<double>(m);
  const double xx = unbiased ? 2 * kxx / (dn * (dn - 1)) : (2 * kxx + dn) / (dn * dn);
  const double yy = unbiased ? 2 * kyy / (dm * (dm - 1)) : (2 * kyy + dm) / (dm * dm);
  return xx + yy - 2 * kxy / (dn * dm);
}

double sliced_wasserstein2(const float* x, std::int64_t n, const float* y, std::int64_t m,
                           std::int64_t d, std::int64_t projections, std::uint64_t seed) {
  const std::int64_t nb = (d + 3) / 4;
  std::vector<double> theta(d), px(n), py(m);
  double total = 0;
  for (std::int64_t p = 0; p < projections; ++p) {
    double norm2 = 0;
    for (std::int64_t b = 0; b < nb; ++b) {
      const rng::Float4 z = rng::normal4(seed, rng::streams::metrics,
                                         static_cast<std::uint64_t>(p * nb + b), 0);
      for (std::int64_t j = 4 * b; j < std::min(d, 4 * b + 4); ++j) {
        theta[j] = z.v[j % 4];
        norm2 += theta[j] * theta[j];
      }
    }
    const double inv = 1.0 / std::sqrt(norm2);
    for (double& t : theta) t *= inv;
    auto project = [&](const float* a, std::int64_t rows, std::vector<double>& out) {
      for (std::int64_t r = 0; r < rows; ++r) {
        double s = 0;
        for (std::int64_t j = 0; j < d; ++j) s += theta[j] * a[r * d + j];
        out[r] = s;
      }
      std::sort(out.begin(), out.end());
    };
    project(x, n, px);
    project(y, m, py);
    total += w2_sorted(px, py);
  }
  return total / static_cast<double>(projections);
}

std::vector<double> mode_weights(const float* x, std::int64_t n, const GaussianMixture& mix) {
  const std::int64_t K = mix.K, d = mix.d;
  std::vector<double> log_c(K);
  for (std::int64_t k = 0; k < K; ++k) {
    double s = std::log(static_cast<double>(mix.weights[k]));
    for (std::int64_t j = 0; j < d; ++j) s -= 0.5 * std::log(static_cast<double>(mix.variances[k * d + j]));
    log_c[k] = s;
  }
  std::vector<double> share(K, 0.0);
  for (std::int64_t r = 0; r < n; ++r) {
    std::int64_t best = 0;
    double best_l = -std::numeric_limits<double>::infinity();
    for (std::int64_t k = 0; k < K; ++k) {
      double l = log_c[k];
      for (std::int64_t j = 0; j < d; ++j) {
        const double diff = static_cast<double>(x[r * d + j]) - mix.means[k * d + j];
        l -= 0.5 * diff * diff / mix.variances[k * d + j];
      }
      if (l > best_l) best_l = l, best = k;
    }
    share[best] += 1.0;
  }
  for (double& s : share) s /= static_cast<double>(n);
  return share;
}

}  // namespace genai::ref
