// The Neural ODE layer's stepping kernels (host/src/neural_ode.cpp drives them between the
// MLP's cuBLASLt GEMMs, genai/neural_ode.hpp): the stage sums y + h sum_j a_kj k_j, the time
// column of the MLP's input, the adjoint's negated vector-Jacobian products, and the error
// norm. Each reads the step's (t, h) from a device-resident clock, so a step's launches are
// the same every step and replay as one CUDA graph (NodeGraph).
//
// All are memory-bound elementwise passes over a state of n floats: a stage sum reads
// (1 + terms) n and writes n (2n more with a tape), 4 bytes per float; the goal is the copy
// bandwidth. For the batches of a 2-D Neural ODE (n = 2 batch) they are launch-bound, and a
// step's cost is its launch count -- hence the graphs. The error norm: 12 bytes per element,
// two passes, then an 8-byte copy back (the host decides the step).
#include <cuda_runtime.h>

#include "kernels/common.cuh"
#include "kernels/neural_ode.cuh"

namespace genai::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void set_clock_kernel(detail::NodeClock* clock, detail::NodeClock value) {
  *clock = value;
}

__global__ void combine_kernel(std::int64_t n, float* out, const float* base, bool use_h,
                               const detail::NodeClock* clock, detail::NodeTerms terms,
                               float* tape) {
  const float scale = use_h ? static_cast<float>(clock->h) : 1.0f;
  for (const std::int64_t i : grid_stride(n)) {
    const float v = detail::node_combine(base, scale, terms, i);
    out[i] = v;
    if (tape) tape[i] = v;
  }
}

__global__ void pack_time_kernel(std::int64_t batch, std::int64_t d, const float* __restrict__ y,
                                 const detail::NodeClock* clock, double ck, float* x) {
  const float t = detail::node_stage_time(*clock, ck);
  const std::int64_t width = d + 1;
  for (const std::int64_t i : grid_stride(batch * width)) {
    const std::int64_t r = i / width, c = i % width;
    x[i] = c < d ? y[r * d + c] : t;
  }
}

__global__ void scale_columns_kernel(std::int64_t rows, std::int64_t cols,
                                     const float* __restrict__ src, std::int64_t ld, float alpha,
                                     float* dst) {
  for (const std::int64_t i : grid_stride(rows * cols)) {
    const std::int64_t r = i / cols, c = i % cols;
    dst[i] = alpha * src[r * ld + c];
  }
}

// Pass 1: block b's share of the sum into partial[b] (gridDim.x = kNodeNormBlocks).
__global__ void scaled_squares_kernel(std::int64_t n, const float* __restrict__ x,
                                      const float* __restrict__ ya, const float* __restrict__ yb,
                                      double atol, double rtol, double* partial) {
  __shared__ double scratch[kThreads / kWarp];
  double s = 0.0;
  for (const std::int64_t i : grid_stride(n))
    s += detail::node_scaled_square(x[i], ya[i], yb[i], atol, rtol);
  s = block_reduce<kThreads>(s, Sum{}, 0.0, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// Pass 2 (one block): partial[kNodeNormBlocks] = the sum of the partials, in a fixed order.
__global__ void sum_partials_kernel(double* partial) {
  __shared__ double scratch[kThreads / kWarp];
  double s = 0.0;
  for (int b = threadIdx.x; b < kNodeNormBlocks; b += kThreads) s += partial[b];
  s = block_reduce<kThreads>(s, Sum{}, 0.0, scratch);
  if (threadIdx.x == 0) partial[kNodeNormBlocks] = s;
}

}  // namespace

void node_set_clock(const Context& ctx, detail::NodeClock* clock, const detail::NodeClock& value) {
  launch(ctx, set_clock_kernel, 1, 1, 0, clock, value);
}

void node_combine(const Context& ctx, std::int64_t n, float* out, const float* base, bool use_h,
                  const detail::NodeClock* clock, const detail::NodeTerms& terms, float* tape) {
  launch(ctx, combine_kernel, grid_for(n, kThreads), kThreads, 0, n, out, base, use_h, clock, terms,
         tape);
}

void node_pack_time(const Context& ctx, std::int64_t batch, std::int64_t d, const float* y,
                    const detail::NodeClock* clock, double ck, float* x) {
  launch(ctx, pack_time_kernel, grid_for(batch * (d + 1), kThreads), kThreads, 0, batch, d, y,
         clock, ck, x);
}

void node_scale_columns(const Context& ctx, std::int64_t rows, std::int64_t cols, const float* src,
                        std::int64_t ld, float alpha, float* dst) {
  launch(ctx, scale_columns_kernel, grid_for(rows * cols, kThreads), kThreads, 0, rows, cols, src,
         ld, alpha, dst);
}

double node_sum_scaled_squares(const Context& ctx, std::int64_t n, const float* x, const float* ya,
                               const float* yb, double atol, double rtol, double* partial) {
  launch(ctx, scaled_squares_kernel, kNodeNormBlocks, kThreads, 0, n, x, ya, yb, atol, rtol,
         partial);
  launch(ctx, sum_partials_kernel, 1, kThreads, 0, partial);
  double s = 0.0;
  GENAI_CUDA_CHECK(cudaMemcpyAsync(&s, partial + kNodeNormBlocks, sizeof s, cudaMemcpyDeviceToHost,
                                   ctx.stream()));
  GENAI_CUDA_CHECK(cudaStreamSynchronize(ctx.stream()));
  return s;
}

NodeGraph::~NodeGraph() {
  if (exec_) cudaGraphExecDestroy(exec_);  // a destructor must not throw
}

void NodeGraph::capture(const Context& ctx, const std::function<void()>& body) {
  if (exec_) {
    cudaGraphExecDestroy(exec_);
    exec_ = nullptr;
  }
  ctx.make_current();
  const cudaStream_t stream = ctx.stream();
  GENAI_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  cudaGraph_t graph = nullptr;
  try {
    body();
  } catch (...) {
    cudaStreamEndCapture(stream, &graph);  // ends the capture whatever body left behind
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    throw;
  }
  GENAI_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  GENAI_CUDA_CHECK(e);
  exec_ = exec;
}

void NodeGraph::launch(const Context& ctx) const {
  ctx.make_current();
  GENAI_CUDA_CHECK(cudaGraphLaunch(exec_, ctx.stream()));
}

}  // namespace genai::cuda
