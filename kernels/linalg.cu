// SVD on the GPU: cuSOLVER gesvd (qr), gesvdj (jacobi), gesvdjBatched (batched_jacobi),
// Xgesvdr (randomized) and the Gram method (cuBLAS syrk + cuSOLVER syevd), plus small kernels
// for layout changes and the sign rule.
//
// Layout. cuSOLVER is column-major and gesvd needs rows >= cols. A row-major X [m x n] is, in
// memory, the column-major X^T [n x m]. Every method factors the tall column-major
//   A = X^T [n x m]  when n >= m (a plain copy):             X^T = U_A S V_A^T, U_X = V_A, V_X = U_A
//   A = X   [m x n]  when m >  n (a transposing copy):       U_X = U_A, V_X = V_A
// into column-major U_A [M x ua], V_A [N x va] (M = max(m, n), N = min(m, n)). Column i of the
// column-major U_X [m x .] and V_X [n x .] is then contiguous: u_i and v_i. The row-major output
// U [m x uc] is a transposing copy of U_X; the row-major Vt [vr x n] has exactly the memory
// layout of the column-major V_X [n x vr], so it is a plain copy of its first vr columns.
//
// Bound. The factorisations are cuSOLVER's and compute-bound: about 4 m n^2 + 8 n^3 flops for
// gesvd with vectors (m >= n), a few sweeps of 2 m n^2 flops for Jacobi, 2 m n (k + p) per pass
// for the randomized method, m n^2 + 9 n^3 for Gram (syrk + syevd + one GEMM). The kernels here
// are layout changes and the sign rule: one read and one write per element, aimed at the
// device's copy bandwidth; next to a factorisation they move O(m n) bytes for O(m n^2) flops.
// The measured balance is in profiling/NOTES.md.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "genai/buffer.hpp"
#include "kernels/common.cuh"
#include "kernels/cusolver_bindings.cuh"
#include "kernels/linalg.cuh"

namespace genai::cuda {
namespace {

using namespace bindings;

constexpr int kThreads = 256;

// ---- kernels -------------------------------------------------------------------------------

// out[b][i][j] (row-major rows x cols, batch stride out_stride) = the column-major element
// (i, j) of in[b] (leading dimension ld, batch stride in_stride). Writes are coalesced.
template <class T>
__global__ void to_row_major_kernel(const T* __restrict__ in, std::int64_t ld,
                                    std::int64_t in_stride, T* __restrict__ out,
                                    std::int64_t rows, std::int64_t cols,
                                    std::int64_t out_stride, std::int64_t batch) {
  const std::int64_t per = rows * cols, total = per * batch;
  for (const std::int64_t t : grid_stride(total)) {
    const std::int64_t b = t / per, e = t % per, i = e / cols, j = e % cols;
    out[b * out_stride + e] = in[b * in_stride + i + j * ld];
  }
}

// Column j of out [rows x cols] (column-major, ld rows) = column (reverse ? cols-1-j : j) of in
// (ld rows) times scale[j] (1 when scale is null).
template <class T>
__global__ void copy_columns_kernel(const T* __restrict__ in, T* __restrict__ out,
                                    std::int64_t rows, std::int64_t cols, bool reverse,
                                    const T* __restrict__ scale) {
  for (const std::int64_t t : grid_stride(rows * cols)) {
    const std::int64_t i = t % rows, j = t / rows, src = reverse ? cols - 1 - j : j;
    out[t] = in[i + src * rows] * (scale ? scale[j] : T(1));
  }
}

// The sign rule of linalg.hpp: pair p = b * pairs + i, u_i = U[b * u_stride + i * m + (0..m)],
// v_i = V[b * v_stride + i * n + (0..n)]. A block per pair; the first entry of largest |v_i|
// decides.
template <class T>
__global__ void __launch_bounds__(kThreads)
    normalize_signs_kernel(T* U, std::int64_t m, std::int64_t u_stride, T* V, std::int64_t n,
                           std::int64_t v_stride, std::int64_t pairs, std::int64_t batch) {
  __shared__ T best_abs[kThreads];
  __shared__ std::int64_t best_idx[kThreads];
  __shared__ bool flip;
  const int tid = threadIdx.x;
  for (std::int64_t p = blockIdx.x; p < pairs * batch; p += gridDim.x) {
    const std::int64_t b = p / pairs, i = p % pairs;
    T* v = V + b * v_stride + i * n;
    T ba = T(-1);
    std::int64_t bi = n;
    for (std::int64_t j = tid; j < n; j += kThreads) {
      const T a = v[j] < T(0) ? -v[j] : v[j];
      if (a > ba) {
        ba = a;
        bi = j;
      }
    }
    best_abs[tid] = ba;
    best_idx[tid] = bi;
    __syncthreads();
    for (int s = kThreads / 2; s > 0; s /= 2) {
      if (tid < s) {
        const T oa = best_abs[tid + s];
        const std::int64_t oi = best_idx[tid + s];
        if (oa > best_abs[tid] || (oa == best_abs[tid] && oi < best_idx[tid])) {
          best_abs[tid] = oa;
          best_idx[tid] = oi;
        }
      }
      __syncthreads();
    }
    if (tid == 0) flip = best_idx[0] < n && v[best_idx[0]] < T(0);  // n: no entry compared (NaN)
    __syncthreads();
    if (flip) {
      for (std::int64_t j = tid; j < n; j += kThreads) v[j] = -v[j];
      if (U) {
        T* u = U + b * u_stride + i * m;
        for (std::int64_t r = tid; r < m; r += kThreads) u[r] = -u[r];
      }
    }
    __syncthreads();  // flip and the shared arrays are reused by the next pair
  }
}

// ---- launchers and typed wrappers ------------------------------------------------------------

template <class T>
void to_row_major(const Context& ctx, const T* in, std::int64_t ld, std::int64_t in_stride,
                  T* out, std::int64_t rows, std::int64_t cols, std::int64_t out_stride,
                  std::int64_t batch) {
  const std::int64_t total = rows * cols * batch;
  if (total == 0) return;
  launch(ctx, to_row_major_kernel<T>, grid_for(total, kThreads), kThreads, 0, in, ld, in_stride,
         out, rows, cols, out_stride, batch);
}

template <class T>
void copy_columns(const Context& ctx, const T* in, T* out, std::int64_t rows, std::int64_t cols,
                  bool reverse, const T* scale) {
  launch(ctx, copy_columns_kernel<T>, grid_for(rows * cols, kThreads), kThreads, 0, in, out, rows,
         cols, reverse, scale);
}

template <class T>
void copy_device(const Context& ctx, T* dst, const T* src, std::int64_t count) {
  detail::copy_bytes(ctx, dst, Device::CUDA, src, Device::CUDA, count * sizeof(T));
}

// `height` rows of `width` elements, from src (pitch src_pitch elements) to dst.
template <class T>
void copy_2d(const Context& ctx, T* dst, std::int64_t dst_pitch, const T* src,
             std::int64_t src_pitch, std::int64_t width, std::int64_t height) {
  if (height == 1) return copy_device(ctx, dst, src, width);
  GENAI_CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_pitch * sizeof(T), src, src_pitch * sizeof(T),
                                     width * sizeof(T), height, cudaMemcpyDeviceToDevice,
                                     ctx.stream()));
}

template <class T>
const char* driver_name(const char* f32, const char* f64) {
  return std::is_same_v<T, float> ? f32 : f64;
}

// ---- one matrix ------------------------------------------------------------------------------

// The tall column-major A of the header comment, and its factors.
template <class T>
struct Tall {
  std::int64_t M = 0, N = 0;
  bool transposed = false;  // A = X^T (n >= m)
  Buffer<T> A;
  Buffer<T> Ua, Va, S;      // column-major U_A [M x ua], V_A [N x va], S [N]
  std::int64_t pairs = 0;   // singular pairs computed (N, or k for randomized)
};

template <class T>
Tall<T> make_tall(const Context& ctx, const T* X, std::int64_t m, std::int64_t n) {
  Tall<T> t;
  t.M = std::max(m, n);
  t.N = std::min(m, n);
  t.transposed = n >= m;
  t.A = Buffer<T>(ctx, m * n);
  if (t.transposed)
    copy_device(ctx, t.A.data(), X, m * n);
  else  // the column-major n x m X^T, read as rows, is the column-major m x n X
    to_row_major(ctx, X, n, 0, t.A.data(), n, m, 0, 1);
  return t;
}

// qr: gesvd on A (overwritten), then V_A = (V_A^T)^T.
template <class T>
SvdReport run_gesvd(const Context& ctx, Tall<T>& t, bool full) {
  cusolverDnHandle_t h = ctx.cusolver();
  const int M = static_cast<int>(t.M), N = static_cast<int>(t.N);
  const std::int64_t ua = full ? t.M : t.N;
  t.Ua = Buffer<T>(ctx, t.M * ua);
  t.S = Buffer<T>(ctx, t.N);
  Buffer<T> VT(ctx, t.N * t.N), rwork(ctx, std::max(1, N - 1));
  int lwork = 0;
  GENAI_CUSOLVER_CHECK(gesvd_lwork(h, M, N, &lwork, t.A.data()));
  Buffer<T> work(ctx, workspace_elems(lwork, "gesvd_bufferSize"));
  Buffer<int> info(ctx, 1);
  GENAI_CUSOLVER_CHECK(gesvd(h, full ? 'A' : 'S', 'A', M, N, t.A.data(), M, t.S.data(),
                             t.Ua.data(), M, VT.data(), N, work.data(), lwork, rwork.data(),
                             info.data()));
  const char* driver = driver_name<T>("cusolverDnSgesvd", "cusolverDnDgesvd");
  require_info_zero(info.to_host(), driver);
  t.Va = Buffer<T>(ctx, t.N * t.N);
  to_row_major(ctx, VT.data(), t.N, 0, t.Va.data(), t.N, t.N, 0, 1);  // (V^T)^T, column-major
  t.pairs = t.N;
  return {.method = SvdMethod::qr, .driver = driver};
}

// jacobi: gesvdj on A. Returns converged = false (outputs valid but not at tolerance) when
// devInfo is N + 1.
template <class T>
SvdReport run_gesvdj(const Context& ctx, Tall<T>& t, bool full, const SvdOptions& o) {
  cusolverDnHandle_t h = ctx.cusolver();
  const int M = static_cast<int>(t.M), N = static_cast<int>(t.N);
  const int econ = full ? 0 : 1;
  const std::int64_t ua = full ? t.M : t.N;
  t.Ua = Buffer<T>(ctx, t.M * ua);
  t.Va = Buffer<T>(ctx, t.N * t.N);
  t.S = Buffer<T>(ctx, t.N);
  GesvdjParams p;
  if (o.tolerance > 0) GENAI_CUSOLVER_CHECK(cusolverDnXgesvdjSetTolerance(p.p, o.tolerance));
  GENAI_CUSOLVER_CHECK(cusolverDnXgesvdjSetMaxSweeps(p.p, o.max_sweeps));
  int lwork = 0;
  GENAI_CUSOLVER_CHECK(gesvdj_lwork(h, CUSOLVER_EIG_MODE_VECTOR, econ, M, N, t.A.data(), M,
                                    t.S.data(), t.Ua.data(), M, t.Va.data(), N, &lwork, p.p));
  Buffer<T> work(ctx, workspace_elems(lwork, "gesvdj_bufferSize"));
  Buffer<int> info(ctx, 1);
  GENAI_CUSOLVER_CHECK(gesvdj(h, CUSOLVER_EIG_MODE_VECTOR, econ, M, N, t.A.data(), M,
                              t.S.data(), t.Ua.data(), M, t.Va.data(), N, work.data(), lwork,
                              info.data(), p.p));
  SvdReport rep{.method = SvdMethod::jacobi,
                .driver = driver_name<T>("cusolverDnSgesvdj", "cusolverDnDgesvdj")};
  const int i = info.to_host()[0];
  GENAI_CUSOLVER_CHECK(cusolverDnXgesvdjGetSweeps(h, p.p, &rep.sweeps));
  GENAI_CUSOLVER_CHECK(cusolverDnXgesvdjGetResidual(h, p.p, &rep.residual));
  rep.converged = i != N + 1;
  if (rep.converged) require_info_zero({i}, rep.driver.c_str());
  t.pairs = t.N;
  return rep;
}

// randomized: Xgesvdr for the top k on A (overwritten). Xgesvdr returns V, not V^T: column j of
// the column-major V [N x .] (ld N) is v_j (NVIDIA's RAFT test, rapidsai/raft
// cpp/test/linalg/randomized_svd.cu, reads it so). Buffers as the cuSOLVER documentation gives
// them, not the k columns RAFT (rsvd.cuh) allocates: its parameter table has U as an "array of
// dimension ldu * m with ldu is not less than max(1,m)" holding the m x m U, of which "if
// jobu = S, only reports first min(m,n) columns", and V as an "array of dimension ldv * n"
// holding the n x n V, likewise; NVIDIA's sample (CUDALibrarySamples cuSOLVER/Xgesvdr) allocates
// ldu * m and ldv * n. Here m = M >= n = N (A is the tall one), so V_A is exactly ldv * n =
// N x N, and U_A holds the min(m, n) = N columns the documentation says are written with
// jobu = 'S': M x N, the size of A. The literal ldu * m = M x M would be M / N times A (10 GB
// of fp32 for 50 000 x 2000, whose A is 400 MB) for columns jobu = 'S' leaves unwritten. S gets
// the documented min(m, n) entries; only the first k of each are read back.
template <class T>
SvdReport run_gesvdr(const Context& ctx, Tall<T>& t, const SvdOptions& o) {
  cusolverDnHandle_t h = ctx.cusolver();
  const cudaDataType type = std::is_same_v<T, float> ? CUDA_R_32F : CUDA_R_64F;
  t.Ua = Buffer<T>(ctx, t.M * t.N);
  t.Va = Buffer<T>(ctx, t.N * t.N);
  t.S = Buffer<T>(ctx, t.N);
  DnParams p;
  std::size_t dev_bytes = 0, host_bytes = 0;
  GENAI_CUSOLVER_CHECK(cusolverDnXgesvdr_bufferSize(
      h, p.p, 'S', 'S', t.M, t.N, o.k, o.oversampling, o.power_iterations, type, t.A.data(),
      t.M, type, t.S.data(), type, t.Ua.data(), t.M, type, t.Va.data(), t.N, type, &dev_bytes,
      &host_bytes));
  Buffer<unsigned char> dev_work(ctx, std::max<std::size_t>(1, dev_bytes));
  std::vector<unsigned char> host_work(std::max<std::size_t>(1, host_bytes));
  Buffer<int> info(ctx, 1);
  GENAI_CUSOLVER_CHECK(cusolverDnXgesvdr(
      h, p.p, 'S', 'S', t.M, t.N, o.k, o.oversampling, o.power_iterations, type, t.A.data(),
      t.M, type, t.S.data(), type, t.Ua.data(), t.M, type, t.Va.data(), t.N, type,
      dev_work.data(), dev_bytes, host_work.data(), host_bytes, info.data()));
  require_info_zero(info.to_host(), "cusolverDnXgesvdr");
  t.pairs = o.k;
  return {.method = SvdMethod::randomized, .driver = "cusolverDnXgesvdr"};
}

// gram (problem 1.5): G = A^T A (syrk), G = V diag(lambda) V^T (syevd, ascending, so columns
// reversed), S = sqrt(max(lambda, 0)), U_A = A V_A / S. Values S <= threshold are set to 0 and
// their U_A columns, with the columns beyond N of a full U_A, are completed from the QR
// factorisation of the kept columns: the trailing columns of Q are orthonormal and orthogonal
// to them.
template <class T>
SvdReport run_gram(const Context& ctx, Tall<T>& t, bool full, const SvdOptions& o) {
  cusolverDnHandle_t h = ctx.cusolver();
  const int M = static_cast<int>(t.M), N = static_cast<int>(t.N);
  const std::int64_t ua = full ? t.M : t.N;
  Buffer<T> G(ctx, t.N * t.N), W(ctx, t.N);
  GENAI_CUBLAS_CHECK(syrk_t(ctx.cublas(), N, M, t.A.data(), M, G.data(), N));
  int lwork = 0;
  GENAI_CUSOLVER_CHECK(syevd_lwork(h, N, G.data(), W.data(), &lwork));
  Buffer<T> work(ctx, workspace_elems(lwork, "syevd_bufferSize"));
  Buffer<int> info(ctx, 1);
  GENAI_CUSOLVER_CHECK(syevd(h, N, G.data(), W.data(), work.data(), lwork, info.data()));
  const char* driver = driver_name<T>("cublasSsyrk+cusolverDnSsyevd",
                                      "cublasDsyrk+cusolverDnDsyevd");
  require_info_zero(info.to_host(), driver);

  const std::vector<T> lambda = W.to_host();  // ascending
  std::vector<T> s(t.N), inv(t.N);
  for (std::int64_t j = 0; j < t.N; ++j) s[j] = std::sqrt(std::max(lambda[t.N - 1 - j], T(0)));
  // lambda carries an absolute error ~ eps * lambda_0: below sqrt(N eps) S[0], S is noise.
  const double eps = std::numeric_limits<T>::epsilon();
  const double rel = o.rank_tolerance > 0 ? o.rank_tolerance : std::sqrt(t.N * eps);
  std::int64_t valid = 0;
  while (valid < t.N && s[valid] > rel * s[0]) ++valid;
  for (std::int64_t j = 0; j < t.N; ++j) {
    if (j >= valid) s[j] = 0;
    inv[j] = j < valid ? T(1) / s[j] : T(0);
  }
  t.S = Buffer<T>(ctx, std::span<const T>(s));
  const Buffer<T> scale(ctx, std::span<const T>(inv));
  t.Va = Buffer<T>(ctx, t.N * t.N);
  copy_columns(ctx, G.data(), t.Va.data(), t.N, t.N, true, static_cast<const T*>(nullptr));
  Buffer<T> AV(ctx, t.M * t.N);
  GENAI_CUBLAS_CHECK(gemm_nn(ctx.cublas(), M, N, N, t.A.data(), M, t.Va.data(), N, AV.data(), M));
  t.Ua = Buffer<T>(ctx, t.M * ua);
  copy_columns(ctx, AV.data(), t.Ua.data(), t.M, t.N, false, scale.data());
  if (valid < ua) {
    const int kept = static_cast<int>(valid), cols = static_cast<int>(ua);
    Buffer<T> Q(ctx, t.M * ua), tau(ctx, std::max<std::int64_t>(1, valid));
    if (valid > 0) copy_device(ctx, Q.data(), t.Ua.data(), t.M * valid);
    int lw_qr = 0, lw_org = 0;
    if (valid > 0) GENAI_CUSOLVER_CHECK(geqrf_lwork(h, M, kept, Q.data(), M, &lw_qr));
    GENAI_CUSOLVER_CHECK(orgqr_lwork(h, M, cols, kept, Q.data(), M, tau.data(), &lw_org));
    Buffer<T> qr_work(ctx, std::max(workspace_elems(lw_qr, "geqrf_bufferSize"),
                                    workspace_elems(lw_org, "orgqr_bufferSize")));
    if (valid > 0) {
      GENAI_CUSOLVER_CHECK(geqrf(h, M, kept, Q.data(), M, tau.data(), qr_work.data(), lw_qr,
                                 info.data()));
      require_info_zero(info.to_host(), "cusolverDn geqrf");
    }
    GENAI_CUSOLVER_CHECK(orgqr(h, M, cols, kept, Q.data(), M, tau.data(), qr_work.data(),
                               lw_org, info.data()));
    require_info_zero(info.to_host(), "cusolverDn orgqr");
    copy_device(ctx, t.Ua.data() + t.M * valid, Q.data() + t.M * valid, t.M * (ua - valid));
  }
  t.pairs = t.N;
  return {.method = SvdMethod::gram, .driver = driver, .dropped = t.N - valid};
}

// Sign rule, then S, U and Vt (truncated to r pairs, or full) into the outputs, for `batch`
// matrices whose U_X (column-major, ld m) and V_X (column-major, ld n) lie at the given strides.
template <class T>
void write_outputs(const Context& ctx, std::int64_t batch, std::int64_t m, std::int64_t n,
                   const SvdOptions& o, T* UX, std::int64_t ux_stride, T* VX,
                   std::int64_t vx_stride, const T* S, std::int64_t s_stride,
                   std::int64_t pairs, const SvdOutputs<T>& out) {
  const std::int64_t r = o.k > 0 ? o.k : std::min(m, n);
  const std::int64_t uc = o.full ? m : r, vr = o.full ? n : r;
  if (out.U || out.Vt) {
    const auto blocks = static_cast<unsigned>(std::min<std::int64_t>(pairs * batch, 65535));
    launch(ctx, normalize_signs_kernel<T>, blocks, kThreads, 0, UX, m, ux_stride, VX, n,
           vx_stride, pairs, batch);
  }
  copy_2d(ctx, out.S, r, S, s_stride, r, batch);
  if (out.U) to_row_major(ctx, UX, m, ux_stride, out.U, m, uc, m * uc, batch);
  if (out.Vt) copy_2d(ctx, out.Vt, vr * n, VX, vx_stride, vr * n, batch);
}

template <class T>
SvdReport svd_one(const Context& ctx, const T* X, std::int64_t m, std::int64_t n,
                  const SvdOptions& o, const SvdOutputs<T>& out) {
  Tall<T> t = make_tall(ctx, X, m, n);
  SvdReport rep;
  switch (o.method) {
    case SvdMethod::jacobi: {
      rep = run_gesvdj(ctx, t, o.full, o);
      if (!rep.converged && o.fallback) {
        t = make_tall(ctx, X, m, n);
        const SvdReport qr = run_gesvd(ctx, t, o.full);
        rep.method = qr.method;
        rep.driver = qr.driver;
        rep.fell_back = true;
      }
      break;
    }
    case SvdMethod::randomized: rep = run_gesvdr(ctx, t, o); break;
    case SvdMethod::gram: rep = run_gram(ctx, t, o.full, o); break;
    default: rep = run_gesvd(ctx, t, o.full); break;
  }
  T* UX = t.transposed ? t.Va.data() : t.Ua.data();
  T* VX = t.transposed ? t.Ua.data() : t.Va.data();
  write_outputs(ctx, 1, m, n, o, UX, 0, VX, 0, t.S.data(), 0, t.pairs, out);
  return rep;
}

// batched_jacobi: gesvdjBatched on the column-major X^T [n x m] of each matrix (A overwritten),
// full U_A [n x n], V_A [m x m]; so U_X = V_A, V_X = U_A.
template <class T>
SvdReport svd_batched_jacobi(const Context& ctx, const T* X, std::int64_t batch,
                             std::int64_t m, std::int64_t n, const SvdOptions& o,
                             const SvdOutputs<T>& out) {
  cusolverDnHandle_t h = ctx.cusolver();
  const int M = static_cast<int>(n), N = static_cast<int>(m), B = static_cast<int>(batch);
  const std::int64_t k = std::min(m, n);
  Buffer<T> A(ctx, batch * m * n), Ua(ctx, batch * n * n), Va(ctx, batch * m * m),
      S(ctx, batch * k);
  copy_device(ctx, A.data(), X, batch * m * n);
  GesvdjParams p;
  if (o.tolerance > 0) GENAI_CUSOLVER_CHECK(cusolverDnXgesvdjSetTolerance(p.p, o.tolerance));
  GENAI_CUSOLVER_CHECK(cusolverDnXgesvdjSetMaxSweeps(p.p, o.max_sweeps));
  GENAI_CUSOLVER_CHECK(cusolverDnXgesvdjSetSortEig(p.p, 1));
  int lwork = 0;
  GENAI_CUSOLVER_CHECK(gesvdj_batched_lwork(h, CUSOLVER_EIG_MODE_VECTOR, M, N, A.data(), M,
                                            S.data(), Ua.data(), M, Va.data(), N, &lwork, p.p,
                                            B));
  Buffer<T> work(ctx, workspace_elems(lwork, "gesvdjBatched_bufferSize"));
  Buffer<int> info(ctx, batch);
  GENAI_CUSOLVER_CHECK(gesvdj_batched(h, CUSOLVER_EIG_MODE_VECTOR, M, N, A.data(), M, S.data(),
                                      Ua.data(), M, Va.data(), N, work.data(), lwork,
                                      info.data(), p.p, B));
  const std::vector<int> infos = info.to_host();
  // cuSOLVER reports neither sweeps nor residual for the batched driver.
  SvdReport rep{.method = SvdMethod::batched_jacobi,
                .driver = driver_name<T>("cusolverDnSgesvdjBatched", "cusolverDnDgesvdjBatched")};
  for (int i : infos) {
    if (i == k + 1) rep.converged = false;
    else if (i != 0) require_info_zero({i}, rep.driver.c_str());
  }
  if (!rep.converged && o.fallback) {
    SvdOptions qr = o;
    qr.method = SvdMethod::qr;
    const std::int64_t r = o.k > 0 ? o.k : k, uc = o.full ? m : r, vr = o.full ? n : r;
    for (std::int64_t b = 0; b < batch; ++b)
      svd_one(ctx, X + b * m * n, m, n, qr,
              {out.U ? out.U + b * m * uc : nullptr, out.S + b * r,
               out.Vt ? out.Vt + b * vr * n : nullptr});
    rep.method = SvdMethod::qr;
    rep.driver = driver_name<T>("cusolverDnSgesvd", "cusolverDnDgesvd");
    rep.fell_back = true;
    return rep;
  }
  write_outputs(ctx, batch, m, n, o, Va.data(), m * m, Ua.data(), n * n, S.data(), k, k, out);
  return rep;
}

}  // namespace

template <class T>
SvdReport svd(const Context& ctx, const T* X, std::int64_t batch, std::int64_t m,
              std::int64_t n, const SvdOptions& o, const SvdOutputs<T>& out) {
  ctx.make_current();  // the handles and every allocation below belong to ctx's device
  const std::int64_t r = o.k > 0 ? o.k : std::min(m, n);
  const std::int64_t uc = o.full ? m : r, vr = o.full ? n : r;
  if (o.method == SvdMethod::batched_jacobi) {
    // gesvdjBatched takes an int batchSize: chunks of at most INT_MAX matrices.
    constexpr std::int64_t kChunk = std::numeric_limits<int>::max();
    SvdReport total;
    for (std::int64_t b = 0; b < batch; b += kChunk) {
      const SvdReport rep = svd_batched_jacobi(
          ctx, X + b * m * n, std::min(kChunk, batch - b), m, n, o,
          {out.U ? out.U + b * m * uc : nullptr, out.S + b * r,
           out.Vt ? out.Vt + b * vr * n : nullptr});
      if (b == 0) total = rep;
      total.converged = total.converged && rep.converged;
      total.fell_back = total.fell_back || rep.fell_back;
      if (rep.fell_back) {
        total.method = rep.method;
        total.driver = rep.driver;
      }
    }
    return total;
  }
  SvdReport total;
  for (std::int64_t b = 0; b < batch; ++b) {
    const SvdReport rep = svd_one(ctx, X + b * m * n, m, n, o,
                                  {out.U ? out.U + b * m * uc : nullptr, out.S + b * r,
                                   out.Vt ? out.Vt + b * vr * n : nullptr});
    if (b == 0) total = rep;
    total.sweeps = std::max(total.sweeps, rep.sweeps);
    total.residual = std::max(total.residual, rep.residual);
    total.converged = total.converged && rep.converged;
    total.fell_back = total.fell_back || rep.fell_back;
    if (b > 0) total.dropped += rep.dropped;
  }
  return total;
}

template SvdReport svd(const Context&, const float*, std::int64_t, std::int64_t, std::int64_t,
                       const SvdOptions&, const SvdOutputs<float>&);
template SvdReport svd(const Context&, const double*, std::int64_t, std::int64_t, std::int64_t,
                       const SvdOptions&, const SvdOutputs<double>&);

}  // namespace genai::cuda
