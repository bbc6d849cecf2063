// CUDA backend of the Neural ODE layer's stepping primitives (genai::cuda, internal): the
// kernels of genai/detail/neural_ode.hpp's formulas, and the CUDA graph of a step. Arguments
// are checked by host/src/neural_ode.cpp, which drives the steps (the MLP through genai::Mlp).
#pragma once

#include <cstdint>
#include <functional>

#include "genai/context.hpp"
#include "genai/detail/neural_ode.hpp"

struct CUgraphExec_st;  // == cudaGraphExec_t's pointee, declared without CUDA headers

namespace genai::cuda {

// *clock = value (one thread), in stream order: the step's numbers for the launches after it.
void node_set_clock(const Context& ctx, detail::NodeClock* clock, const detail::NodeClock& value);

// As ref::node_combine, the clock in device memory.
void node_combine(const Context& ctx, std::int64_t n, float* out, const float* base, bool use_h,
                  const detail::NodeClock* clock, const detail::NodeTerms& terms, float* tape);
void node_pack_time(const Context& ctx, std::int64_t batch, std::int64_t d, const float* y,
                    const detail::NodeClock* clock, double ck, float* x);
void node_scale_columns(const Context& ctx, std::int64_t rows, std::int64_t cols, const float* src,
                        std::int64_t ld, float alpha, float* dst);

// Blocks of the error norm's first pass; `partial` holds kNodeNormBlocks + 1 doubles.
inline constexpr int kNodeNormBlocks = 256;
// As ref::node_sum_scaled_squares, in two deterministic passes (per-block partial sums, then
// one block over them); waits for the stream and returns the sum.
double node_sum_scaled_squares(const Context& ctx, std::int64_t n, const float* x, const float* ya,
                               const float* yb, double atol, double rtol, double* partial);

// The launches of one step, captured from ctx's stream (which must not be the legacy default
// stream) into an executable CUDA graph and replayed.
class NodeGraph {
 public:
  NodeGraph() = default;
  NodeGraph(const NodeGraph&) = delete;
  NodeGraph& operator=(const NodeGraph&) = delete;
  ~NodeGraph();
  // Runs body() under stream capture (thread-local mode) and instantiates what it launched;
  // body must only enqueue work on ctx's stream (no synchronisation, no allocation). The
  // launches are recorded, not run.
  void capture(const Context& ctx, const std::function<void()>& body);
  bool captured() const { return exec_ != nullptr; }
  // One replay on ctx's stream.
  void launch(const Context& ctx) const;

 private:
  CUgraphExec_st* exec_ = nullptr;
};

}  // namespace genai::cuda
