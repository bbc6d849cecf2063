// The per-row arithmetic of a diffusion training batch, once for both backends (GENAI_HD):
// which data row and timestep row r of optimizer step k draws, its epsilon, the noised input and
// the regression target. rng::detail's correctly rounded operations, so the CPU reference and
// the kernel write the same bits. Namespace genai::detail.
#pragma once

#include <cstdint>

#include "genai/detail/diffusion.hpp"
#include "genai/detail/hd.hpp"
#include "genai/rng.hpp"

namespace genai::detail {

// What the network regresses onto: PredictionType's values in its order (static_cast between
// them).
enum class TrainTarget : int { Epsilon = 0, Sample = 1, VPrediction = 2 };
static_assert(static_cast<int>(PredictionType::Epsilon) == 0 &&
              static_cast<int>(PredictionType::Sample) == 1 &&
              static_cast<int>(PredictionType::VPrediction) == 2);

// A uniform integer in [0, n) from a 32-bit word: floor(word n / 2^32) (exact in 64 bits).
GENAI_HD std::int64_t scale_word(std::uint32_t word, std::int64_t n) {
  return static_cast<std::int64_t>((static_cast<std::uint64_t>(word) *
                                    static_cast<std::uint64_t>(n)) >> 32);
}

// Row r of step k: data row (word 0) and timestep (word 1) of Philox (seed, train_batch,
// block r, step k).
struct BatchDraw {
  std::int64_t row, t;
};
GENAI_HD BatchDraw batch_draw(std::uint64_t seed, std::int64_t r, std::uint32_t step,
                              std::int64_t n, std::int64_t T) {
  const rng::Words w = rng::philox(seed, rng::streams::train_batch, static_cast<std::uint64_t>(r),
                                   step);
  return {scale_word(w.w[0], n), scale_word(w.w[1], T)};
}

// One element: x_t = sa x0 + sb eps and the target of `kind` (eps, x0, or v = sa eps - sb x0).
GENAI_HD void batch_element(TrainTarget kind, float sa, float sb, float x0, float eps,
                            float& x_t, float& target) {
  x_t = noised(sa, sb, x0, eps);
  target = kind == TrainTarget::Epsilon ? eps
                                        : (kind == TrainTarget::Sample ? x0 : v_target(sa, sb, x0, eps));
}

// Everything the batch kernel and its reference need. data [n x d]; sa, sb [T]; outputs
// x_t, target [batch x d], t_in [batch] (the timestep as a float, the network's time input).
struct TrainBatch {
  const float* data;
  std::int64_t n, d;
  const float* sa;
  const float* sb;
  std::int64_t T;
  std::int64_t batch;
  std::uint64_t seed;
  std::uint32_t step;
  TrainTarget kind;
  float* x_t;
  float* target;
  float* t_in;
};

}  // namespace genai::detail
