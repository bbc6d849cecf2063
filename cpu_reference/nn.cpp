#include "cpu_reference/nn.hpp"

#include <cblas.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "cpu_reference/parallel.hpp"

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

// Row blocks of the batch, blocks of output features and elements per chunk of the backend's
// threads. Fixed sizes: which rows one GEMM call covers never depends on the thread count.
constexpr std::int64_t kRows = 256;
constexpr std::int64_t kFeatures = 64;
constexpr std::int64_t kElements = 16384;

// s[c] (+)= the column sums of a [rows x cols] (row stride lda), in double, row after row.
void add_column_sums(const float* a, std::int64_t rows, std::int64_t cols, std::int64_t lda,
                     double* s) {
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) s[c] += a[r * lda + c];
}

// db (= or +=) the sums s.
void store_sums(const double* s, std::int64_t cols, float* db, bool accumulate) {
  for (std::int64_t c = 0; c < cols; ++c)
    db[c] = static_cast<float>(accumulate ? db[c] + s[c] : s[c]);
}

// The elementwise loops, one instantiation per activation (fixed at compile time, so that each
// loop vectorises), each cloned for the instruction sets (GENAI_CPU_CLONES). with_activation
// picks the instantiation outside the clones: GCC inlines nothing into a clone that is not
// small, so the loops must be the clones' own code.

// Rows [0, rows) of width cols: z += b (b may be null), y = act(z), y += residual (may be
// null); y may be z.
template <Activation A>
GENAI_CPU_CLONES void finish_rows(const float* b, const float* residual, std::int64_t rows,
                                  std::int64_t cols, float* z, float* y) {
  for (std::int64_t r = 0; r < rows; ++r) {
    float* zr = z + r * cols;
    float* yr = y + r * cols;
    if (b)
      for (std::int64_t c = 0; c < cols; ++c) zr[c] += b[c];
    for (std::int64_t c = 0; c < cols; ++c) yr[c] = detail::activate<A>(zr[c]);
    if (residual)
      for (std::int64_t c = 0; c < cols; ++c) yr[c] += residual[r * cols + c];
  }
}

template <Activation A>
GENAI_CPU_CLONES void forward_span(const float* z, std::int64_t n, float* y) {
  for (std::int64_t i = 0; i < n; ++i) y[i] = detail::activate<A>(z[i]);
}

template <Activation A>
GENAI_CPU_CLONES void backward_span(const float* z, const float* dy, std::int64_t n, float* dz) {
  for (std::int64_t i = 0; i < n; ++i) dz[i] = dy[i] * detail::activate_grad<A>(z[i]);
}

void activation_backward_span(Activation act, const float* z, const float* dy, std::int64_t n,
                              float* dz) {
  detail::with_activation(act, [&](auto A) { backward_span<A()>(z, dy, n, dz); });
}

GENAI_CPU_CLONES void add_span(float* dst, const float* src, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

}  // namespace

void activation_forward(Activation act, const float* z, std::int64_t n, float* y) {
  detail::with_activation(act, [&](auto A) {
    parallel_rows(n, kElements, [&](std::int64_t i0, std::int64_t i1) {
      forward_span<A()>(z + i0, i1 - i0, y + i0);
    });
  });
}

void activation_backward(Activation act, const float* z, const float* dy, std::int64_t n,
                         float* dz) {
  parallel_rows(n, kElements, [&](std::int64_t i0, std::int64_t i1) {
    activation_backward_span(act, z + i0, dy + i0, i1 - i0, dz + i0);
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
  parallel_rows(op.batch, kRows, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
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
  });
}

// Blocks of kRows batch rows: each block's GEMM on one BLAS thread, then its bias, activation
// and residual while the block is in cache.
void dense_forward(const detail::DenseForward& op) {
  float* z = op.z ? op.z : op.y;
  parallel_rows(op.batch, kRows, [&](std::int64_t r0, std::int64_t r1) {
    const std::int64_t at = r0 * op.out;
    sgemm(false, true, r1 - r0, op.out, op.in, op.x + r0 * op.ldx, op.ldx, op.W, op.in, 0.0f,
          z + at, op.out);
    detail::with_activation(op.act, [&](auto A) {
      finish_rows<A()>(op.b, op.residual ? op.residual + at : nullptr, r1 - r0, op.out, z + at,
                       op.y + at);
    });
  });
  if (op.mask_written) *op.mask_written = false;
}

// Blocks of kFeatures output features: their rows of dW and their entries of db (each column
// summed over the batch in row order).
void dense_backward_weight(const detail::DenseBackwardWeight& op) {
  parallel_rows(op.out, kFeatures, [&](std::int64_t o0, std::int64_t o1) {
    if (op.dW)
      sgemm(true, false, o1 - o0, op.in, op.batch, op.dz + o0, op.out, op.x, op.ldx,
            op.accumulate ? 1.0f : 0.0f, op.dW + o0 * op.in, op.in);
    if (op.db) {
      std::vector<double> s(o1 - o0, 0.0);
      add_column_sums(op.dz + o0, op.batch, o1 - o0, op.out, s.data());
      store_sums(s.data(), o1 - o0, op.db + o0, op.accumulate);
    }
  });
}

// Blocks of kRows batch rows: the block's GEMM, its activation derivative and its column sums;
// db adds the blocks' sums in block order.
void dense_backward_input(const detail::DenseBackwardInput& op) {
  const std::int64_t blocks = (op.batch + kRows - 1) / kRows;
  const bool sums = op.db && op.act != Activation::None;
  std::vector<double> partial(sums ? blocks * op.cols : 0, 0.0);
  parallel_rows(op.batch, kRows, [&](std::int64_t r0, std::int64_t r1) {
    const std::int64_t at = r0 * op.cols, n = (r1 - r0) * op.cols;
    float* g = op.g + at;
    if (op.g_add && op.g_add != op.g) std::memcpy(g, op.g_add + at, n * sizeof(float));
    sgemm(false, false, r1 - r0, op.cols, op.out, op.dz + r0 * op.out, op.out, op.W, op.in,
          op.g_add ? 1.0f : 0.0f, g, op.cols);
    if (op.act == Activation::None) return;
    activation_backward_span(op.act, op.z + at, g, n, g);
    if (sums) add_column_sums(g, r1 - r0, op.cols, op.cols, partial.data() + (r0 / kRows) * op.cols);
  });
  if (!sums) return;
  std::vector<double> s(op.cols, 0.0);
  for (std::int64_t k = 0; k < blocks; ++k)
    for (std::int64_t c = 0; c < op.cols; ++c) s[c] += partial[k * op.cols + c];
  store_sums(s.data(), op.cols, op.db, false);
}

void add_into(float* dst, const float* src, std::int64_t n) {
  parallel_rows(n, kElements, [&](std::int64_t i0, std::int64_t i1) {
    add_span(dst + i0, src + i0, i1 - i0);
  });
}

}  // namespace genai::ref
