// CPU implementation of the metrics module (genai/metrics.hpp); arguments are checked by
// host/src/metrics.cpp.
#pragma once

#include <cstdint>
#include <vector>

#include "genai/metrics.hpp"

namespace genai::ref {

// The median of the pairwise distances of the pooled rows (the first `per_set` of each set).
double median_distance(const float* x, std::int64_t n, const float* y, std::int64_t m,
                       std::int64_t d, std::int64_t per_set);
double mmd2_rbf(const float* x, std::int64_t n, const float* y, std::int64_t m, std::int64_t d,
                double bandwidth, bool unbiased);
double sliced_wasserstein2(const float* x, std::int64_t n, const float* y, std::int64_t m,
                           std::int64_t d, std::int64_t projections, std::uint64_t seed);
std::vector<double> mode_weights(const float* x, std::int64_t n, const GaussianMixture& mixture);

}  // namespace genai::ref
