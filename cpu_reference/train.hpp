// CPU reference of the train module's kernels: the diffusion training batch (the formulas of
// genai/detail/train.hpp, the kernel's bits) and a constant fill. Arguments are checked by
// host/src/train.cpp.
#pragma once

#include <cstdint>

#include "genai/detail/train.hpp"

namespace genai::ref {

void train_batch(const detail::TrainBatch& b);
void fill(float* x, std::int64_t n, float value);

}  // namespace genai::ref
