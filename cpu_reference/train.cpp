#include "cpu_reference/train.hpp"

#include <algorithm>

namespace genai::ref {

void train_batch(const detail::TrainBatch& b) {
  const std::int64_t nb = (b.d + 3) / 4;
  for (std::int64_t r = 0; r < b.batch; ++r) {
    const detail::BatchDraw draw = detail::batch_draw(b.seed, r, b.step, b.n, b.T);
    const float sa = b.sa[draw.t], sb = b.sb[draw.t];
    b.t_in[r] = static_cast<float>(draw.t);
    for (std::int64_t jb = 0; jb < nb; ++jb) {
      const rng::Float4 z = rng::normal4(b.seed, rng::streams::train_noise,
                                         static_cast<std::uint64_t>(r * nb + jb), b.step);
      for (std::int64_t j = jb * 4; j < std::min(b.d, jb * 4 + 4); ++j)
        detail::batch_element(b.kind, sa, sb, b.data[draw.row * b.d + j], z.v[j % 4],
                              b.x_t[r * b.d + j], b.target[r * b.d + j]);
    }
  }
}

void fill(float* x, std::int64_t n, float value) { std::fill(x, x + n, value); }

}  // namespace genai::ref
