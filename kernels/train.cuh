// CUDA launchers of the train module (genai::cuda, internal). Arguments are checked by
// host/src/train.cpp; the per-row arithmetic is genai/detail/train.hpp's.
#pragma once

#include <cstdint>

#include "genai/context.hpp"
#include "genai/detail/train.hpp"

namespace genai::cuda {

void train_batch(const Context& ctx, const detail::TrainBatch& b);
void fill(const Context& ctx, float* x, std::int64_t n, float value);

}  // namespace genai::cuda
