#include "cpu_reference/langevin.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <numeric>
#include <type_traits>
#include <vector>

#include "cpu_reference/parallel.hpp"
#include "cpu_reference/rng.hpp"

namespace genai::ref {

namespace {

// Chains [c0, c1) of `target`, one after the other, with work arrays of 6 d doubles; cloned for
// AVX-512 / AVX2 with the step inlined (Philox's and the step's fma an instruction, not a libm
// call: the same correctly rounded result).
template <class Target>
GENAI_CPU_CLONES __attribute__((flatten)) void chain_loop(const Target& target,
                                                          const detail::ChainSetup& setup,
                                                          float* x, std::int64_t c0,
                                                          std::int64_t c1, double* work) {
  const int d = setup.d;
  double *xs = work, *y = xs + d, *gx = y + d, *gy = gx + d, *mu = gy + d, *m2 = mu + d;
  for (std::int64_t c = c0; c < c1; ++c)
    detail::run_chain<double, 0>(target, setup, c, x + c * d, xs, y, gx, gy, mu, m2);
}

template <class Target>
void run_chains(const Target& target, const detail::ChainSetup& setup, float* x, std::int64_t c0,
                std::int64_t c1) {
  std::vector<double> work(6 * static_cast<std::size_t>(setup.d));
  chain_loop(target, setup, x, c0, c1, work.data());
}

// A built-in target whose mixture takes its log v_kj from a table: the values of
// detail::LogOf (the same log of the same v), computed once per extra_var (a level of the
// annealing ladder) instead of at every evaluation. One per chunk of chains (the table is the
// chunk's own).
struct TabledTarget {
  const detail::TargetView& t;
  mutable std::vector<double> logs{};
  mutable double logs_for = std::numeric_limits<double>::quiet_NaN();
  static constexpr bool takes_pointers = false;

  struct Lookup {
    const double* logs;
    int d;
    double operator()(int k, int j, double) const { return logs[k * d + j]; }
  };

  // The table for extra_var (filled when it changes).
  void refresh(double extra_var) const {
    if (extra_var == logs_for) return;
    logs.resize(static_cast<std::size_t>(t.K) * t.d);
    for (int k = 0; k < t.K; ++k)
      for (int j = 0; j < t.d; ++j)
        logs[k * t.d + j] = detail::LogOf{}(k, j, double(t.vars[k * t.d + j]) + extra_var);
    logs_for = extra_var;
  }

  template <class T, int D, class A, class G>
  T log_density_grad(T extra_var, const A& x, G& g) const {
    static_assert(std::is_same_v<T, double>);
    if (t.kind != LangevinTarget::Kind::Mixture) return t.log_density_grad<T, D>(extra_var, x, g);
    refresh(extra_var);
    return t.mixture_log_density_grad<T, D>(extra_var, x, g, Lookup{logs.data(), t.d});
  }
};

// Chains (and Brownian paths) per chunk of the backend's threads: a chain writes only its own
// rows, so chunks run in any order.
constexpr std::int64_t kChainsPerChunk = 64;

// ---- ULA and annealed Langevin on a mixture, kChainLanes chains at a time -----------------------
//
// Without MALA's accept / reject every chain of a chunk takes the same steps at the same levels;
// only the states differ. So kChainLanes chains step together, each quantity an array over the
// lanes, each lane doing the double operations of run_chain<double> over TabledTarget in the
// same order (-ffp-contract=off, the same libm exp): lane l is chain c0 + l bit for bit
// (Langevin.MixtureLogVarianceTableIsTheFormulaBitForBit). The mixture's running max becomes a
// per-lane select: where l_k does not exceed the max the scale is 1, and s * 1, g * 1 are exact.
// The divisions, the Philox normals (normal_blocks) and the step vectorise; the exponentials stay
// libm calls.
constexpr int kChainLanes = 16;
using LaneArray = double[kChainLanes];

template <int D>
struct MixtureLanes {
  const detail::TargetView& t;
  const double* logs;  // log v_kj of the level (TabledTarget's table)
  int d;

  // g [d][lanes] = grad log p of x [d][lanes], extra_var added to every variance.
  [[gnu::always_inline]] void grad(double extra_var, const LaneArray* x, LaneArray* g) const {
    const int dd = D > 0 ? D : d;
    LaneArray m, s, e, l;
    for (int c = 0; c < kChainLanes; ++c) {
      m[c] = -INFINITY;
      s[c] = 0.0;
    }
    for (int j = 0; j < dd; ++j)
      for (int c = 0; c < kChainLanes; ++c) g[j][c] = 0.0;
    for (int k = 0; k < t.K; ++k) {
      const float* mu = t.means + static_cast<std::int64_t>(k) * dd;
      const float* var = t.vars + static_cast<std::int64_t>(k) * dd;
      for (int c = 0; c < kChainLanes; ++c) l[c] = 0.0;
      for (int j = 0; j < dd; ++j) {
        const double v = double(var[j]) + extra_var, mj = mu[j], lv = logs[k * dd + j];
        for (int c = 0; c < kChainLanes; ++c) {
          const double r = x[j][c] - mj;
          l[c] += r * r / v + lv;
        }
      }
      const double lw = t.log_weights[k];
      for (int c = 0; c < kChainLanes; ++c) {
        l[c] = lw - 0.5 * l[c];
        const bool up = l[c] > m[c];  // rescale what has been summed to the new maximum
        const double scale = up ? std::exp(m[c] - l[c]) : 1.0;
        s[c] *= scale;
        for (int j = 0; j < dd; ++j) g[j][c] *= scale;
        if (up) m[c] = l[c];
        e[c] = std::exp(l[c] - m[c]);
        s[c] += e[c];
      }
      for (int j = 0; j < dd; ++j) {
        const double mj = mu[j], v = double(var[j]) + extra_var;
        for (int c = 0; c < kChainLanes; ++c) g[j][c] += e[c] * (mj - x[j][c]) / v;
      }
    }
    for (int j = 0; j < dd; ++j)
      for (int c = 0; c < kChainLanes; ++c) g[j][c] /= s[c];
  }
};

// Chains [c0, c0 + lanes) (lanes <= kChainLanes; the others padded with zeros, their results
// dropped) of a ULA or annealed run on a mixture: run_chain's ULA branch lane by lane.
// Work: 4 d lane arrays (x, grad, mu, m2) and the normals of the lanes, 4 ceil(d / 4) floats
// each.
template <int D>
GENAI_CPU_CLONES __attribute__((flatten)) void mixture_lanes(const TabledTarget& target,
                                                             const detail::ChainSetup& s,
                                                             float* x_rows, std::int64_t c0,
                                                             int lanes, LaneArray* x, float* z) {
  const int d = D > 0 ? D : s.d;
  const std::uint64_t blocks = (static_cast<std::uint64_t>(d) + 3) / 4;
  const bool annealed = s.method == LangevinMethod::Annealed;
  const double beta = s.beta;
  LaneArray *gx = x + d, *mu = gx + d, *m2 = mu + d;
  for (int j = 0; j < d; ++j)
    for (int c = 0; c < kChainLanes; ++c) {
      x[j][c] = c < lanes ? double(x_rows[(c0 + c) * d + j]) : 0.0;
      mu[j][c] = m2[j][c] = 0.0;
    }
  std::int64_t step = 0, n = 0;
  const int level_end = !annealed ? 1 : s.level_end > 0 ? s.level_end : s.levels;
  for (int level = annealed ? s.first_level : 0; level < level_end; ++level) {
    double h = s.step_size, extra_var = 0.0;
    if (annealed) {
      double sigma;
      detail::anneal_level(s, level, sigma, h);
      extra_var = sigma * sigma;
    }
    const double noise = std::sqrt(2.0 * h / beta);
    target.refresh(extra_var);
    const MixtureLanes<D> mix{target.t, target.logs.data(), d};
    mix.grad(extra_var, x, gx);
    for (std::int64_t t = 0; t < s.steps; ++t, ++step) {
      const std::uint32_t counter = s.first_step + static_cast<std::uint32_t>(step);
      normal_blocks({s.seed, rng::streams::langevin, counter}, static_cast<std::uint64_t>(c0) * blocks,
                    static_cast<std::int64_t>(blocks) * kChainLanes, z);
      // x + h grad + noise z, as fma(noise, z, fma(h, grad, x)), rounded to float
      for (int j = 0; j < d; ++j)
        for (int c = 0; c < kChainLanes; ++c)
          x[j][c] = static_cast<float>(noise * double(z[c * 4 * blocks + j]) + (h * gx[j][c] + x[j][c]));
      if (t + 1 < s.steps) mix.grad(extra_var, x, gx);
      const std::int64_t done = step + 1;
      if (s.mean && done > s.burn_in) {  // Welford
        ++n;
        for (int j = 0; j < d; ++j)
          for (int c = 0; c < kChainLanes; ++c) {
            const double delta = x[j][c] - mu[j][c];
            mu[j][c] += delta / double(n);
            m2[j][c] = delta * (x[j][c] - mu[j][c]) + m2[j][c];
          }
      }
      if (s.trajectory && done % s.thin == 0) {
        float* rec = s.trajectory + ((done / s.thin - 1) * s.chains + c0) * d;
        for (int c = 0; c < lanes; ++c)
          for (int j = 0; j < d; ++j) rec[c * d + j] = static_cast<float>(x[j][c]);
      }
    }
  }
  for (int c = 0; c < lanes; ++c)
    for (int j = 0; j < d; ++j) {
      const std::int64_t at = (c0 + c) * d + j;
      x_rows[at] = static_cast<float>(x[j][c]);
      if (s.mean) {
        s.mean[at] = static_cast<float>(mu[j][c]);
        s.var[at] = static_cast<float>(m2[j][c] / double(n));
      }
    }
  if (s.accepted)
    for (int c = 0; c < lanes; ++c) s.accepted[c0 + c] = 0;
}

// Chains [c0, c1) of a built-in target: ULA and annealed runs on a mixture in lanes, the rest
// chain after chain.
void builtin_chains(const detail::TargetView& view, const detail::ChainSetup& s, float* x,
                    std::int64_t c0, std::int64_t c1) {
  if (view.kind != LangevinTarget::Kind::Mixture || s.method == LangevinMethod::MALA)
    return run_chains(TabledTarget{view}, s, x, c0, c1);
  const TabledTarget target{view};
  const auto d = static_cast<std::size_t>(s.d);
  std::vector<LaneArray> work(4 * d);
  std::vector<float> z(4 * ((d + 3) / 4) * kChainLanes);
  for (std::int64_t c = c0; c < c1; c += kChainLanes) {
    const int lanes = static_cast<int>(std::min<std::int64_t>(kChainLanes, c1 - c));
    if (s.d == 2)
      mixture_lanes<2>(target, s, x, c, lanes, work.data(), z.data());
    else
      mixture_lanes<0>(target, s, x, c, lanes, work.data(), z.data());
  }
}

}  // namespace

void langevin(const detail::TargetView& target, const detail::ChainSetup& setup, float* x) {
  parallel_rows(setup.chains, kChainsPerChunk, [&](std::int64_t c0, std::int64_t c1) {
    builtin_chains(target, setup, x, c0, c1);
  });
}

void langevin(const detail::PointerTarget<HostCallable>& target, const detail::ChainSetup& setup,
              float* x) {
  run_chains(target, setup, x, 0, setup.chains);  // the caller's function: on the calling thread
}

void brownian_motion(float* out, std::int64_t paths, int d, std::int64_t steps, float dt,
                     std::uint64_t seed) {
  parallel_rows(paths, kChainsPerChunk, [&](std::int64_t p0, std::int64_t p1) {
    for (std::int64_t p = p0; p < p1; ++p)
      detail::brownian_path<double>(out + p * (steps + 1) * d, p, d, steps, dt, seed);
  });
}

namespace {

// Phi^{-1}(p), 0 < p < 1: Acklam's rational approximation (relative error 1.15e-9) and one
// Halley step on erfc, which brings it to double precision.
double normal_quantile(double p) {
  static constexpr double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
                                 -2.759285104469687e+02, 1.383577518672690e+02,
                                 -3.066479806614716e+01, 2.506628277459239e+00};
  static constexpr double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
                                 -1.556989798598866e+02, 6.680131188771972e+01,
                                 -1.328068155288572e+01};
  static constexpr double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                                 -2.400758277161838e+00, -2.549732539343734e+00,
                                 4.374664141464968e+00, 2.938163982698783e+00};
  static constexpr double e[] = {7.784695709041462e-03, 3.224671290700398e-01,
                                 2.445134137142996e+00, 3.754408661907416e+00};
  constexpr double p_low = 0.02425;
  double x;
  if (p < p_low || p > 1 - p_low) {
    const double q = std::sqrt(-2 * std::log(p < p_low ? p : 1 - p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((e[0] * q + e[1]) * q + e[2]) * q + e[3]) * q + 1);
    if (p > 1 - p_low) x = -x;
  } else {
    const double q = p - 0.5, r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  }
  const double err = 0.5 * std::erfc(-x / std::sqrt(2.0)) - p;
  const double u = err * std::sqrt(2 * std::numbers::pi) * std::exp(x * x / 2);
  return x - u / (1 + x * u / 2);
}

// One dimension as chains x n draws, chain-major.
struct Chains {
  std::int64_t m, n;
  std::vector<double> v;
  double at(std::int64_t c, std::int64_t t) const { return v[c * n + t]; }
};

// Dimension j of samples [draws x chains x d], each chain split into its first and last
// floor(draws/2) draws (2 * chains chains), as ArviZ's _split_chains.
Chains split(const float* samples, std::int64_t draws, std::int64_t chains, std::int64_t d,
             std::int64_t j) {
  const std::int64_t half = draws / 2;
  Chains s{2 * chains, half, std::vector<double>(2 * chains * half)};
  for (std::int64_t c = 0; c < chains; ++c)
    for (std::int64_t t = 0; t < half; ++t) {
      s.v[(2 * c) * half + t] = samples[(t * chains + c) * d + j];
      s.v[(2 * c + 1) * half + t] = samples[((draws - half + t) * chains + c) * d + j];
    }
  return s;
}

// Rank normalisation: average ranks r over all draws, z = Phi^{-1}((r - 3/8) / (S + 1/4)).
Chains z_scale(Chains s) {
  const std::size_t S = s.v.size();
  std::vector<std::size_t> order(S);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return s.v[a] < s.v[b]; });
  std::vector<double> z(S);
  for (std::size_t i = 0; i < S;) {
    std::size_t k = i;
    while (k + 1 < S && s.v[order[k + 1]] == s.v[order[i]]) ++k;
    const double rank = 0.5 * static_cast<double>(i + k) + 1.0;  // 1-based, ties averaged
    const double q = normal_quantile((rank - 0.375) / (static_cast<double>(S) + 0.25));
    for (std::size_t t = i; t <= k; ++t) z[order[t]] = q;
    i = k + 1;
  }
  s.v = std::move(z);
  return s;
}

double mean_of(const Chains& s, std::int64_t c) {
  double m = 0;
  for (std::int64_t t = 0; t < s.n; ++t) m += s.at(c, t);
  return m / static_cast<double>(s.n);
}

// Gelman-Rubin: sqrt(((n-1)/n W + B/n) / W), B/n the variance of chain means, W the mean
// within-chain variance (both with n-1 / m-1 denominators).
double rhat(const Chains& s) {
  std::vector<double> means(s.m);
  double grand = 0, within = 0;
  for (std::int64_t c = 0; c < s.m; ++c) {
    means[c] = mean_of(s, c);
    grand += means[c];
    double v = 0;
    for (std::int64_t t = 0; t < s.n; ++t) v += (s.at(c, t) - means[c]) * (s.at(c, t) - means[c]);
    within += v / static_cast<double>(s.n - 1);
  }
  grand /= static_cast<double>(s.m);
  within /= static_cast<double>(s.m);
  double between = 0;
  for (double m : means) between += (m - grand) * (m - grand);
  between = static_cast<double>(s.n) * between / static_cast<double>(s.m - 1);
  const double n = static_cast<double>(s.n);
  return std::sqrt((between / within + n - 1) / n);
}

// ArviZ's _ess: autocovariances averaged over chains, Geyer's initial positive then initial
// monotone sequence, tau = -1 + 2 sum rho_t, ESS = m n / tau.
double ess(const Chains& s) {
  const std::int64_t m = s.m, n = s.n;
  std::vector<double> means(m);
  for (std::int64_t c = 0; c < m; ++c) means[c] = mean_of(s, c);
  // Mean over chains of the biased (1/n) autocovariance at `lag`.
  auto acov = [&](std::int64_t lag) {
    double total = 0;
    for (std::int64_t c = 0; c < m; ++c) {
      double a = 0;
      for (std::int64_t t = 0; t + lag < n; ++t)
        a += (s.at(c, t) - means[c]) * (s.at(c, t + lag) - means[c]);
      total += a / static_cast<double>(n);
    }
    return total / static_cast<double>(m);
  };
  const double nd = static_cast<double>(n);
  const double mean_var = acov(0) * nd / (nd - 1);
  double var_plus = mean_var * (nd - 1) / nd;
  if (m > 1) {
    double g = 0, v = 0;
    for (double x : means) g += x;
    g /= static_cast<double>(m);
    for (double x : means) v += (x - g) * (x - g);
    var_plus += v / static_cast<double>(m - 1);
  }
  std::vector<double> rho(n, 0.0);
  double rho_even = 1.0, rho_odd = 1.0 - (mean_var - acov(1)) / var_plus;
  rho[0] = rho_even;
  rho[1] = rho_odd;
  std::int64_t t = 1;
  while (t < n - 3 && rho_even + rho_odd > 0.0) {
    rho_even = 1.0 - (mean_var - acov(t + 1)) / var_plus;
    rho_odd = 1.0 - (mean_var - acov(t + 2)) / var_plus;
    if (rho_even + rho_odd >= 0) {
      rho[t + 1] = rho_even;
      rho[t + 2] = rho_odd;
    }
    t += 2;
  }
  const std::int64_t max_t = t - 2;
  if (rho_even > 0) rho[max_t + 1] = rho_even;
  for (t = 1; t <= max_t - 2; t += 2)
    if (rho[t + 1] + rho[t + 2] > rho[t - 1] + rho[t]) rho[t + 1] = rho[t + 2] = (rho[t - 1] + rho[t]) / 2;
  double tau = -1.0 + rho[max_t + 1];
  for (std::int64_t k = 0; k <= max_t; ++k) tau += 2 * rho[k];
  const double total = static_cast<double>(m) * nd;
  tau = std::max(tau, 1.0 / std::log10(total));
  return total / tau;
}

}  // namespace

void effective_sample_size(const float* samples, std::int64_t draws, std::int64_t chains,
                           std::int64_t d, double* out) {
  for (std::int64_t j = 0; j < d; ++j) out[j] = ess(z_scale(split(samples, draws, chains, d, j)));
}

void split_rhat(const float* samples, std::int64_t draws, std::int64_t chains, std::int64_t d,
                double* out) {
  for (std::int64_t j = 0; j < d; ++j) {
    Chains s = split(samples, draws, chains, d, j);
    std::vector<double> sorted = s.v;
    const std::size_t mid = sorted.size() / 2;
    std::nth_element(sorted.begin(), sorted.begin() + mid, sorted.end());
    double median = sorted[mid];
    if (sorted.size() % 2 == 0)
      median = 0.5 * (median + *std::max_element(sorted.begin(), sorted.begin() + mid));
    Chains folded = s;
    for (double& v : folded.v) v = std::abs(v - median);
    out[j] = std::max(rhat(z_scale(std::move(s))), rhat(z_scale(std::move(folded))));
  }
}

}  // namespace genai::ref
