#include "host/src/finite.hpp"

#include <cmath>
#include <vector>

#include "genai/buffer.hpp"
#include "genai/error.hpp"
#if GENAI_WITH_CUDA
#include "kernels/common.cuh"
#endif

namespace genai::detail {

template <class T>
std::int64_t first_non_finite(const Context& ctx, const T* x, std::int64_t n) {
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::first_non_finite(ctx, x, n);
#endif
  (void)ctx;
  for (std::int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return i;
  return -1;
}

template <class T>
void require_finite_matrix(const Context& ctx, const char* fn, const char* arg, const T* X,
                           std::int64_t rows, std::int64_t cols) {
  const std::int64_t i = first_non_finite(ctx, X, rows * cols);
  if (i < 0) return;
  T v;
  copy_bytes(ctx, &v, Device::CPU, X + i, ctx.device(), sizeof(T));
  throw_argument(fn, arg, "entry ", i, " (row ", i / cols, ", column ", i % cols, ") is ", v,
                 " (must be finite)");
}

NonFiniteRows non_finite_rows(const Context& ctx, const float* x, std::int64_t rows,
                              std::int64_t cols) {
  const std::int64_t i = first_non_finite(ctx, x, rows * cols);
  if (i < 0) return {};
  std::vector<float> host;
  if (ctx.is_cuda()) {
    host.resize(static_cast<std::size_t>(rows * cols));
    copy_bytes(ctx, host.data(), Device::CPU, x, Device::CUDA, host.size() * sizeof(float));
    x = host.data();
  }
  NonFiniteRows r{.count = 0, .first = i / cols};
  for (std::int64_t row = r.first; row < rows; ++row)
    for (std::int64_t j = 0; j < cols; ++j)
      if (!std::isfinite(x[row * cols + j])) {
        ++r.count;
        break;
      }
  return r;
}

template std::int64_t first_non_finite(const Context&, const float*, std::int64_t);
template std::int64_t first_non_finite(const Context&, const double*, std::int64_t);
template void require_finite_matrix(const Context&, const char*, const char*, const float*,
                                    std::int64_t, std::int64_t);
template void require_finite_matrix(const Context&, const char*, const char*, const double*,
                                    std::int64_t, std::int64_t);

}  // namespace genai::detail
