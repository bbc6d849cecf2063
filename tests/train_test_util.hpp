// Helpers the train module's CPU and GPU tests share: a small network's options.
#pragma once

#include "genai/train.hpp"

namespace genai::test {

// A small model for tests: two hidden layers of `width`, a 16-wide time embedding, the default
// schedule; `steps` planned.
inline DiffusionTrainOptions small_training(std::int64_t steps, std::int64_t batch,
                                            std::int64_t width = 32) {
  DiffusionTrainOptions o;
  o.hidden = {width, width};
  o.time_embedding_dim = 16;
  o.steps = steps;
  o.batch_size = batch;
  o.warmup_steps = steps / 10;
  o.seed = 5;
  return o;
}

}  // namespace genai::test
