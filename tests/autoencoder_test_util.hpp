// Data sets the autoencoder tests (CPU and GPU) train on, from the library's Philox generator.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "genai/rng.hpp"

namespace genai::test {

// n samples of a Gaussian in `dim` dimensions with standard deviation spread[i] along the i-th
// of `dim` orthonormal directions (Gram-Schmidt of normals), plus 0.5 on every feature:
// PCA's top-k subspace is the span of the first k directions when spread falls after k.
inline std::vector<float> spectrum_data(std::int64_t n, std::int64_t dim,
                                        const std::vector<double>& spread, std::uint64_t seed) {
  std::vector<float> g(dim * dim), z(n * dim);
  fill_normal(Context::cpu(), g.data(), dim * dim, {seed, 0x7e60, 0});
  fill_normal(Context::cpu(), z.data(), n * dim, {seed, 0x7e60, 1});
  std::vector<double> Q(g.begin(), g.end());  // row i: direction i
  for (std::int64_t i = 0; i < dim; ++i) {
    for (std::int64_t j = 0; j < i; ++j) {
      double dot = 0;
      for (std::int64_t c = 0; c < dim; ++c) dot += Q[i * dim + c] * Q[j * dim + c];
      for (std::int64_t c = 0; c < dim; ++c) Q[i * dim + c] -= dot * Q[j * dim + c];
    }
    double norm = 0;
    for (std::int64_t c = 0; c < dim; ++c) norm += Q[i * dim + c] * Q[i * dim + c];
    for (std::int64_t c = 0; c < dim; ++c) Q[i * dim + c] /= std::sqrt(norm);
  }
  std::vector<float> x(n * dim);
  for (std::int64_t r = 0; r < n; ++r)
    for (std::int64_t c = 0; c < dim; ++c) {
      double v = 0.5;
      for (std::int64_t i = 0; i < dim; ++i) v += spread[i] * z[r * dim + i] * Q[i * dim + c];
      x[r * dim + c] = static_cast<float>(v);
    }
  return x;
}

// n images of side x side pixels, each a Gaussian bump exp(-|p - c|^2 / (2 1.5^2)) at a centre c
// uniform in [side/4, 3 side/4]^2: a 2-D manifold that curves through pixel space, so that a
// non-linear code of 2 numbers describes an image and no 2-D linear subspace does. Pixels in
// [0, 1]. The centres go to `centres` [n x 2] when not null.
inline std::vector<float> bump_images(std::int64_t n, std::int64_t side, std::uint64_t seed,
                                      std::vector<float>* centres = nullptr) {
  std::vector<float> u(2 * n), x(n * side * side);
  fill_uniform(Context::cpu(), u.data(), 2 * n, {seed, 0x7e61, 0}, 0.25f * side, 0.75f * side);
  for (std::int64_t r = 0; r < n; ++r)
    for (std::int64_t i = 0; i < side; ++i)
      for (std::int64_t j = 0; j < side; ++j) {
        const double di = i - u[2 * r], dj = j - u[2 * r + 1];
        x[(r * side + i) * side + j] =
            static_cast<float>(std::exp(-(di * di + dj * dj) / (2 * 1.5 * 1.5)));
      }
  if (centres) *centres = u;
  return x;
}

}  // namespace genai::test
