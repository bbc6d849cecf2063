// Launch-shape helpers shared by the kernels.
#pragma once

#include <algorithm>
#include <cstdint>

namespace genai::cuda {

// Blocks for a grid-stride loop over `work` items: enough to fill the device (capped at
// 65535 * 16 blocks; the loop covers the rest), never 0.
inline unsigned grid_for(std::int64_t work, int threads_per_block) {
  const std::int64_t blocks = (work + threads_per_block - 1) / threads_per_block;
  return static_cast<unsigned>(std::clamp<std::int64_t>(blocks, 1, 65535 * 16));
}

}  // namespace genai::cuda
