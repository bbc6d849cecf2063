// Sample-quality metrics: how far a set of generated samples lies from a reference set (challenges
// C2 and C3, and any sampler's test). Two-sample distances between x [n x d] and y [m x d]:
//
//   MMD^2 (Gretton et al. 2012) with the Gaussian (RBF) kernel k(a, b) = exp(-|a - b|^2 / (2 s^2)):
//     unbiased   1/(n(n-1)) sum_{i != i'} k(x_i, x_i') + 1/(m(m-1)) sum_{j != j'} k(y_j, y_j')
//                - 2/(nm) sum_{i, j} k(x_i, y_j)          (its mean is the population MMD^2; it
//                                                          may be slightly negative)
//     biased     the same with the diagonals kept and 1/n^2, 1/m^2 (never negative)
//     s: given, or the median heuristic -- the median of the pairwise distances |z - z'| of the
//     pooled sample (the first median_points / 2 rows of each set).
//   Sliced Wasserstein-2 (Rabin et al. 2011; Bonneel et al. 2015):
//     SW2^2 = E_theta W2^2(theta^T x, theta^T y), theta uniform on the unit sphere, estimated
//     over `projections` Philox directions (rng::streams::metrics, block p, step 0: the
//     normals of direction p, normalised); each 1-D W2^2 exactly, from the sorted projections
//     (the quantile functions integrated over their common breakpoints, so n != m is fine).
//     For y = x + delta, every projection is shifted by theta^T delta, and SW2^2 = |delta|^2 / d
//     in expectation over theta (exactly delta^2 in one dimension).
//   Mode weights against a Gaussian mixture: the share of the samples whose most likely
//     component (largest w_k N(x; mu_k, diag(var_k))) is k, and their total variation
//     distance 1/2 sum_k |share_k - w_k| to the mixture's weights.
//
// Host data (these run on the CPU whatever the device of the samples: copy them back first),
// row-major, every value finite. Kernel sums in float with exp from genai/detail/nn.hpp (within
// 1 ulp), accumulated in double. Cost: MMD^2 O((n + m)^2 d), SW2 O(P (n log n + m log m + (n + m) d)).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "genai/diffusion.hpp"

namespace genai {

struct MmdOptions {
  double bandwidth = 0;                // s > 0; 0: the median heuristic
  std::int64_t median_points = 2000;   // pooled rows for the median heuristic (>= 2)
  bool unbiased = true;
};

struct MmdResult {
  double mmd2 = 0;
  double bandwidth = 0;  // the s used
};

// n, m >= 2, d >= 1.
MmdResult mmd2_rbf(const float* x, std::int64_t n, const float* y, std::int64_t m, std::int64_t d,
                   const MmdOptions& opts = {});

struct SlicedWassersteinOptions {
  std::int64_t projections = 256;  // >= 1
  std::uint64_t seed = 0;          // of the directions
};

// SW2^2 (the squared distance); n, m >= 1, d >= 1.
double sliced_wasserstein2(const float* x, std::int64_t n, const float* y, std::int64_t m,
                           std::int64_t d, const SlicedWassersteinOptions& opts = {});

// The share of the n samples x [n x mixture.d] assigned to each component (K values, sum 1).
std::vector<double> mode_weights(const float* x, std::int64_t n, const GaussianMixture& mixture);

// 1/2 sum_k |p_k - q_k| (p and q of one size).
double total_variation(std::span<const double> p, std::span<const double> q);

}  // namespace genai
