// The nn module on the GPU: cuBLASLt GEMMs with their epilogues where cuBLASLt has one, own
// kernels for the rest.
//
// GEMMs (compute-bound for wide layers, 2 N in out flop): fp32 cuBLASLt (no TF32) with
//   forward   BIAS, RELU_BIAS / RELU_AUX_BIAS (sign bits for the backward), GELU_BIAS /
//             GELU_AUX_BIAS (GELU input kept): one kernel per layer for None, ReLU, GELU(tanh)
//   dW        BGRADB: the bias gradient (column sums of dz) in the same GEMM
//   dx        DRELU_BGRAD / DGELU_BGRAD: the previous layer's activation derivative and its bias
//             gradient in the same GEMM (needs the forward's ReLU mask / GELU input)
// Each epilogue is used only where cuBLASLt's heuristic offers an algorithm for it; otherwise
// (and for SiLU, sigmoid, tanh, exact GELU, residual sums) the plain GEMM and the elementwise
// kernels below do the same work.
//
// Elementwise kernels (memory-bound; the goal is the copy bandwidth): forward finish
// z (+ b) -> act(z) (+ skip): 8-12 bytes per element; activation derivative g * act'(z): 12
// bytes; the time-embedding input: 4 bytes written per element (its sin / cos are cheap next
// to the store). Bias gradient: column sums of a [rows x cols] matrix in two deterministic passes
// (partial sums over 64-row chunks into the GEMM workspace, then one pass over the chunks):
// 4 bytes read per element.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "genai/cuda_check.hpp"
#include "kernels/common.cuh"
#include "kernels/nn.cuh"
#include "kernels/nn_lt.cuh"

namespace genai::cuda {
namespace {

using detail::LtCall;
using detail::LtPlan;

constexpr int kThreads = 256;
constexpr std::int64_t kChunkRows = 64;    // rows per partial sum of the bias gradient, at least
constexpr std::int64_t kMaxChunks = 1024;  // and at most this many partial sums (grid's y)

// ---- elementwise kernels ------------------------------------------------------------------

// y = act(z (+ b[i % cols])) (+ residual); z_save (when not null) gets z (+ b). z_save and y
// may be z (each element is read before it is written, by the same thread).
__global__ void finish_forward_kernel(Activation act, const float* z,
                                      const float* __restrict__ b, std::int64_t cols,
                                      const float* __restrict__ residual, float* z_save,
                                      float* y, std::int64_t n) {
  for (const std::int64_t i : grid_stride(n)) {
    const float zi = b ? z[i] + b[i % cols] : z[i];
    if (z_save) z_save[i] = zi;
    const float a = detail::activate(act, zi);
    y[i] = residual ? residual[i] + a : a;
  }
}

__global__ void activation_backward_kernel(Activation act, const float* __restrict__ z,
                                           const float* dy, float* dz, std::int64_t n) {
  for (const std::int64_t i : grid_stride(n)) dz[i] = dy[i] * detail::activate_grad(act, z[i]);
}

__global__ void embed_input_kernel(detail::EmbedInput op) {
  const std::int64_t width = op.x_dim + op.t_dim, half = op.t_dim / 2;
  for (const std::int64_t i : grid_stride(op.batch * width)) {
    const std::int64_t r = i / width, c = i % width;
    if (c < op.x_dim) {
      op.out[i] = op.x[r * op.x_dim + c];
      continue;
    }
    const detail::TimeColumn col = detail::time_column(c - op.x_dim, op.t_dim,
                                                       op.opts.flip_sin_to_cos);
    if (col.i < 0) {
      op.out[i] = 0.0f;
      continue;
    }
    const float f =
        detail::time_frequency(col.i, half, op.opts.max_period, op.opts.downscale_freq_shift);
    const float a = detail::time_argument(op.t[r], op.opts.scale, f);
    op.out[i] = col.cosine ? cosf(a) : sinf(a);
  }
}

__global__ void add_into_kernel(float* dst, const float* __restrict__ src, std::int64_t n) {
  for (const std::int64_t i : grid_stride(n)) dst[i] += src[i];
}

// Block (32 columns) x (8 row lanes); blockIdx.y is a chunk of `chunk_rows` rows. Writes the
// chunk's column sums to out[chunk * cols + c] (adding to it with `accumulate`).
__global__ void column_sums_kernel(const float* __restrict__ a, std::int64_t rows,
                                   std::int64_t cols, std::int64_t chunk_rows, float* out,
                                   bool accumulate) {
  __shared__ float part[8][33];
  const std::int64_t c = blockIdx.x * 32ll + threadIdx.x;
  const std::int64_t r0 = blockIdx.y * chunk_rows, r1 = std::min(rows, r0 + chunk_rows);
  float s = 0.0f;
  if (c < cols)
    for (std::int64_t r = r0 + threadIdx.y; r < r1; r += 8) s += a[r * cols + c];
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    for (int k = 1; k < 8; ++k) s += part[k][threadIdx.x];
    float* o = out + blockIdx.y * cols + c;
    *o = accumulate ? *o + s : s;
  }
}

__global__ void sum_chunks_kernel(const float* __restrict__ partial, std::int64_t chunks,
                                  std::int64_t cols, float* db, bool accumulate) {
  for (const std::int64_t c : grid_stride(cols)) {
    float s = 0.0f;
    for (std::int64_t k = 0; k < chunks; ++k) s += partial[k * cols + c];
    db[c] = accumulate ? db[c] + s : s;
  }
}

// ---- helpers ------------------------------------------------------------------------------

void finish_forward(const Context& ctx, Activation act, const float* z, const float* b,
                    std::int64_t cols, const float* residual, float* z_save, float* y,
                    std::int64_t n) {
  launch(ctx, finish_forward_kernel, grid_for(n, kThreads), kThreads, 0, act, z, b, cols,
         residual, z_save, y, n);
}

// db (= or +=) the column sums of a [rows x cols], the partial sums in env's workspace.
void column_sums(const Context& ctx, const float* a, std::int64_t rows, std::int64_t cols,
                 float* db, bool accumulate, const detail::GemmEnv& env) {
  const std::int64_t fit = static_cast<std::int64_t>(env.workspace_bytes / sizeof(float)) / cols;
  const std::int64_t chunks = std::min({ceil_div(rows, kChunkRows), fit, kMaxChunks});
  const dim3 block(32, 8);
  const auto col_blocks = static_cast<unsigned>(ceil_div(cols, 32));
  if (chunks <= 1) {  // one chunk: straight into db
    launch(ctx, column_sums_kernel, dim3(col_blocks, 1), block, 0, a, rows, cols, rows, db,
           accumulate);
    return;
  }
  const std::int64_t chunk_rows = ceil_div(rows, chunks);
  const std::int64_t used = ceil_div(rows, chunk_rows);
  auto* partial = static_cast<float*>(env.workspace);
  launch(ctx, column_sums_kernel, dim3(col_blocks, static_cast<unsigned>(used)), block, 0, a,
         rows, cols, chunk_rows, partial, false);
  launch(ctx, sum_chunks_kernel, grid_for(cols, kThreads), kThreads, 0,
         static_cast<const float*>(partial), used, cols, db, accumulate);
}

cublasLtHandle_t lt_handle(const Context& ctx) {
  return reinterpret_cast<cublasLtHandle_t>(ctx.cublas());
}

// Runs `c` (A, B, C, D as given) when cuBLASLt has an algorithm for it; false otherwise (nothing
// written). Plans are kept in env.cache when there is one.
bool lt_matmul(const Context& ctx, LtCall c, const float* A, const float* B, const float* C,
               float* D, const detail::GemmEnv& env) {
  c.align_a = detail::lt_alignment(A);
  c.align_b = detail::lt_alignment(B);
  c.align_c = detail::lt_alignment(C);
  c.align_d = detail::lt_alignment(D);
  ctx.make_current();
  const cublasLtHandle_t h = lt_handle(ctx);
  const LtPlan* plan = nullptr;
  std::unique_ptr<LtPlan> local;
  if (env.cache) {
    auto& plans = env.cache->plans;
    const auto it = std::find_if(plans.begin(), plans.end(),
                                 [&](const auto& p) { return p->call() == c; });
    if (it != plans.end()) {
      plan = it->get();
    } else {
      if (plans.size() >= detail::GemmCache::kMaxPlans) plans.clear();
      auto p = std::make_unique<LtPlan>(c);
      p->plan(h, env.workspace_bytes);
      plans.push_back(std::move(p));
      plan = plans.back().get();
    }
  } else {
    local = std::make_unique<LtPlan>(c);
    local->plan(h, env.workspace_bytes);
    plan = local.get();
  }
  if (!plan->supported()) return false;
  plan->run(h, A, B, C, D, env.workspace, env.workspace_bytes, ctx.stream());
  return true;
}

// The plain GEMM must run: no algorithm even without an epilogue is a failure of the machine.
void lt_matmul_plain(const Context& ctx, LtCall c, const float* A, const float* B, const float* C,
                     float* D, const detail::GemmEnv& env) {
  c.epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  c.bias = c.aux = nullptr;
  c.aux_ld = 0;
  if (!lt_matmul(ctx, c, A, B, C, D, env))
    throw Error(detail::concat("genai nn: cuBLASLt offers no fp32 GEMM algorithm for m ", c.m,
                               ", n ", c.n, ", k ", c.k));
}

// The epilogue `e` with the bias added first (DEFAULT with a bias is BIAS).
cublasLtEpilogue_t with_bias(cublasLtEpilogue_t e, bool bias) {
  if (!bias) return e;
  if (e == CUBLASLT_EPILOGUE_DEFAULT) return CUBLASLT_EPILOGUE_BIAS;
  return static_cast<cublasLtEpilogue_t>(e | CUBLASLT_EPILOGUE_BIAS);
}

}  // namespace

void activation_forward(const Context& ctx, Activation act, const float* z, std::int64_t n,
                        float* y) {
  finish_forward(ctx, act, z, nullptr, 1, nullptr, nullptr, y, n);
}

void activation_backward(const Context& ctx, Activation act, const float* z, const float* dy,
                         std::int64_t n, float* dz) {
  launch(ctx, activation_backward_kernel, grid_for(n, kThreads), kThreads, 0, act, z, dy, dz, n);
}

void embed_input(const Context& ctx, const detail::EmbedInput& op) {
  launch(ctx, embed_input_kernel, grid_for(op.batch * (op.x_dim + op.t_dim), kThreads), kThreads,
         0, op);
}

void add_into(const Context& ctx, float* dst, const float* src, std::int64_t n) {
  launch(ctx, add_into_kernel, grid_for(n, kThreads), kThreads, 0, dst, src, n);
}

std::shared_ptr<detail::GemmCache> make_gemm_cache() {
  return std::make_shared<detail::GemmCache>();
}

void dense_forward(const Context& ctx, const detail::DenseForward& op, const detail::GemmEnv& env) {
  if (op.mask_written) *op.mask_written = false;
  const LtCall base{CUBLAS_OP_T, CUBLAS_OP_N, op.out, op.batch, op.in, op.in, op.ldx, op.out};
  const bool bias = op.b != nullptr;
  const std::int64_t n = op.batch * op.out;
  if (!op.residual) {  // the activations cuBLASLt's epilogue computes
    LtCall c = base;
    c.bias = op.b;
    switch (op.act) {
      case Activation::None:
        if (op.z) break;  // z wanted too: the general path writes it, then copies it to y
        c.epilogue = with_bias(CUBLASLT_EPILOGUE_DEFAULT, bias);
        if (lt_matmul(ctx, c, op.W, op.x, op.y, op.y, env)) return;
        break;
      case Activation::ReLU:
        if (op.z) break;  // z wanted: the general path
        if (op.relu_mask) {
          LtCall m = c;
          m.epilogue = with_bias(CUBLASLT_EPILOGUE_RELU_AUX, bias);
          m.aux = op.relu_mask;
          m.aux_ld = detail::relu_mask_ld(op.out);
          if (lt_matmul(ctx, m, op.W, op.x, op.y, op.y, env)) {
            if (op.mask_written) *op.mask_written = true;
            return;
          }
        }
        c.epilogue = with_bias(CUBLASLT_EPILOGUE_RELU, bias);
        if (lt_matmul(ctx, c, op.W, op.x, op.y, op.y, env)) return;
        break;
      case Activation::GELUTanh:
        if (op.z) {
          if (op.out % 8 != 0) break;  // the GELU input's leading dimension
          c.epilogue = with_bias(CUBLASLT_EPILOGUE_GELU_AUX, bias);
          c.aux = op.z;
          c.aux_ld = op.out;
        } else {
          c.epilogue = with_bias(CUBLASLT_EPILOGUE_GELU, bias);
        }
        if (lt_matmul(ctx, c, op.W, op.x, op.y, op.y, env)) return;
        break;
      default:
        break;
    }
  }
  // The general path: z = x W^T + b (BIAS epilogue, or the plain GEMM and the bias below),
  // then act and the skip.
  float* z = op.z ? op.z : op.y;
  LtCall c = base;
  c.epilogue = with_bias(CUBLASLT_EPILOGUE_DEFAULT, bias);
  c.bias = op.b;
  const bool bias_done = bias && lt_matmul(ctx, c, op.W, op.x, z, z, env);
  if (!bias_done) lt_matmul_plain(ctx, base, op.W, op.x, z, z, env);
  finish_forward(ctx, op.act, z, bias_done ? nullptr : op.b, op.out, op.residual,
                 bias_done ? nullptr : op.z, op.y, n);
}

void dense_backward_weight(const Context& ctx, const detail::DenseBackwardWeight& op,
                           const detail::GemmEnv& env) {
  if (!op.dW) {
    column_sums(ctx, op.dz, op.batch, op.out, op.db, op.accumulate, env);
    return;
  }
  LtCall c{CUBLAS_OP_N, CUBLAS_OP_T, op.in, op.out, op.batch, op.ldx, op.out, op.in,
           op.accumulate ? 1.0f : 0.0f};
  if (op.db && !op.accumulate) {  // BGRADB writes db; it cannot add to it
    LtCall g = c;
    g.epilogue = CUBLASLT_EPILOGUE_BGRADB;
    g.bias = op.db;
    if (lt_matmul(ctx, g, op.x, op.dz, op.dW, op.dW, env)) return;
  }
  lt_matmul_plain(ctx, c, op.x, op.dz, op.dW, op.dW, env);
  if (op.db) column_sums(ctx, op.dz, op.batch, op.out, op.db, op.accumulate, env);
}

void dense_backward_input(const Context& ctx, const detail::DenseBackwardInput& op,
                          const detail::GemmEnv& env) {
  const LtCall c{CUBLAS_OP_N, CUBLAS_OP_N, op.cols, op.batch, op.out, op.in, op.out, op.cols,
                 op.g_add ? 1.0f : 0.0f};
  const float* C = op.g_add ? op.g_add : op.g;
  if (op.act != Activation::None && !op.g_add) {  // the derivative (and db) in the epilogue
    LtCall d = c;
    if (op.act == Activation::ReLU && op.relu_mask) {
      d.epilogue = op.db ? CUBLASLT_EPILOGUE_DRELU_BGRAD : CUBLASLT_EPILOGUE_DRELU;
      d.aux = op.relu_mask;
      d.aux_ld = detail::relu_mask_ld(op.cols);
    } else if (op.act == Activation::GELUTanh && op.cols % 8 == 0) {
      d.epilogue = op.db ? CUBLASLT_EPILOGUE_DGELU_BGRAD : CUBLASLT_EPILOGUE_DGELU;
      d.aux = op.z;
      d.aux_ld = op.cols;
    }
    d.bias = op.db;
    if (d.aux && lt_matmul(ctx, d, op.W, op.dz, C, op.g, env)) return;
  }
  lt_matmul_plain(ctx, c, op.W, op.dz, C, op.g, env);
  if (op.act == Activation::None) return;
  const std::int64_t n = op.batch * op.cols;
  activation_backward(ctx, op.act, op.z, op.g, n, op.g);
  if (op.db) column_sums(ctx, op.g, op.batch, op.cols, op.db, false, env);
}

}  // namespace genai::cuda
