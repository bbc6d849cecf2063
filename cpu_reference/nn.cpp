#include "cpu_reference/nn.hpp"

#include <cblas.h>

#include <cmath>
#include <cstring>
#include <vector>

namespace genai::ref {
namespace {

int blas_int(std::int64_t v) { return static_cast<int>(v); }  // host/src checks the range

}  // namespace

void sgemm(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K,
           const float* A, std::int64_t lda, const float* B, std::int64_t ldb, float beta,
           float* C, std::int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // BLAS leaves C * beta; say so explicitly for beta = 0 (C may hold NaN)
    for (std::int64_t i = 0; i < M; ++i)
      for (std::int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    return;
  }
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, blas_int(M), blas_int(N), blas_int(K), 1.0f, A,
              blas_int(lda), B, blas_int(ldb), beta, C, blas_int(ldc));
}

namespace {

// db (= or +=) the column sums of a [rows x cols] matrix, in double.
void column_sums(const float* a, std::int64_t rows, std::int64_t cols, float* db,
                 bool accumulate) {
  std::vector<double> s(cols, 0.0);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) s[c] += a[r * cols + c];
  for (std::int64_t c = 0; c < cols; ++c)
    db[c] = static_cast<float>(accumulate ? db[c] + s[c] : s[c]);
}

}  // namespace

// One loop per activation (the activation fixed at compile time, so the loop can vectorise).
void activation_forward(Activation act, const float* z, std::int64_t n, float* y) {
  detail::with_activation(act, [&](auto A) {
    for (std::int64_t i = 0; i < n; ++i) y[i] = detail::activate<A()>(z[i]);
  });
}

void activation_backward(Activation act, const float* z, const float* dy, std::int64_t n,
                         float* dz) {
  detail::with_activation(act, [&](auto A) {
    for (std::int64_t i = 0; i < n; ++i) dz[i] = dy[i] * detail::activate_grad<A()>(z[i]);
  });
}

void embed_input(const detail::EmbedInput& op) {
  const std::int64_t width = op.x_dim + op.t_dim, half = op.t_dim / 2;
  std::vector<float> freq(half);
  for (std::int64_t i = 0; i < half; ++i)
    freq[i] = detail::time_frequency(i, half, op.opts.max_period, op.opts.downscale_freq_shift);
  // Columns i and half + i share their argument: one sin and one cos of it (float, as on the
  // GPU), in the order of detail::time_column.
  const std::int64_t sin_at = op.opts.flip_sin_to_cos ? half : 0, cos_at = half - sin_at;
  for (std::int64_t r = 0; r < op.batch; ++r) {
    float* row = op.out + r * width;
    if (op.x_dim > 0) std::memcpy(row, op.x + r * op.x_dim, op.x_dim * sizeof(float));
    float* e = row + op.x_dim;
    for (std::int64_t i = 0; i < half; ++i) {
      const float a = detail::time_argument(op.t[r], op.opts.scale, freq[i]);
      e[sin_at + i] = std::sin(a);
      e[cos_at + i] = std::cos(a);
    }
    if (op.t_dim % 2 == 1) e[op.t_dim - 1] = 0.0f;
  }
}

void dense_forward(const detail::DenseForward& op) {
  float* z = op.z ? op.z : op.y;
  sgemm(false, true, op.batch, op.out, op.in, op.x, op.ldx, op.W, op.in, 0.0f, z, op.out);
  detail::with_activation(op.act, [&](auto A) {
    for (std::int64_t r = 0; r < op.batch; ++r) {
      const std::int64_t row = r * op.out;
      if (op.b)
        for (std::int64_t c = 0; c < op.out; ++c) z[row + c] += op.b[c];
      for (std::int64_t c = 0; c < op.out; ++c) op.y[row + c] = detail::activate<A()>(z[row + c]);
      if (op.residual)
        for (std::int64_t c = 0; c < op.out; ++c) op.y[row + c] += op.residual[row + c];
    }
  });
  if (op.mask_written) *op.mask_written = false;
}

void dense_backward_weight(const detail::DenseBackwardWeight& op) {
  if (op.dW)
    sgemm(true, false, op.out, op.in, op.batch, op.dz, op.out, op.x, op.ldx,
          op.accumulate ? 1.0f : 0.0f, op.dW, op.in);
  if (op.db) column_sums(op.dz, op.batch, op.out, op.db, op.accumulate);
}

void dense_backward_input(const detail::DenseBackwardInput& op) {
  const std::int64_t n = op.batch * op.cols;
  if (op.g_add && op.g_add != op.g) std::memcpy(op.g, op.g_add, n * sizeof(float));
  sgemm(false, false, op.batch, op.cols, op.out, op.dz, op.out, op.W, op.in,
        op.g_add ? 1.0f : 0.0f, op.g, op.cols);
  if (op.act == Activation::None) return;
  activation_backward(op.act, op.z, op.g, n, op.g);
  if (op.db) column_sums(op.g, op.batch, op.cols, op.db, false);
}

void add_into(float* dst, const float* src, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

}  // namespace genai::ref
