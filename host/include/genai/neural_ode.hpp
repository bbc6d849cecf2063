// A Neural ODE layer (problem set 2.5, 4.3): h(t) = ODESolve(f_theta, h(t_0), t_0, t) with
// f_theta an MLP of (h, t) (genai/nn.hpp), its forward on both backends and its backward two
// ways:
//
//   backprop  backpropagation through the solver's steps (discretise, then differentiate: the
//             exact gradient of the computed h, the step sizes held fixed). The forward keeps a
//             tape of every stage's input, stages x steps x batch x d floats, and the backward
//             re-runs each stage's MLP forward before its backward (no activations on the
//             tape): memory O(steps), as 4.3(a, b)'s ResNet.
//   adjoint   the adjoint method (Chen et al. 2018, "Neural Ordinary Differential Equations",
//             alg. 2; differentiate, then discretise): the augmented state
//               z = [h, a, g],  a = dL/dh,  g = dL/dtheta so far,
//               dz/dt = [f(h, t), -a^T df/dh, -a^T df/dtheta]
//             integrated backwards from t_{T-1} (h the forward's end, a = dL/dh(t_{T-1}), g = 0)
//             to t_0, a and g from the MLP's backward with a given output gradient (its
//             vector-Jacobian products) at each stage. At each recorded time t_i on the way,
//             h is reset to the forward's h(t_i) and dL/dh(t_i) is added to a (torchdiffeq's
//             odeint_adjoint does the same). Memory O(1) in the number of steps (4.3(c)): the
//             solver's stage arrays of z, 2 batch d + parameters floats each, and the
//             trajectory at the recorded times.
//
// f_theta. An Mlp with no time embedding and output_dim() = d. How t enters (NeuralOdeTime):
//   concat  f(h, t) = MLP([h, t]): input_dim() = d + 1, t a float column after h (torchdiffeq's
//           ConcatLinear, FFJORD's "concat" layers) -- the default
//   none    f(h) = MLP(h): input_dim() = d, an autonomous field (torchdiffeq's ode_demo)
// A concatenated t is a feature, not a parameter: no gradient is returned for the times.
//
// Solvers. The batch is one system (as torchdiffeq, and unlike genai::ode_solve's per-row
// control): every row takes the same steps, so that each stage is one batched MLP call -- GEMMs
// of batch rows -- and the adjoint's dL/dtheta, shared by the rows, is one part of one state.
//   fixed step (euler, midpoint, rk4, rk4_38, dopri5 with adaptive = false; tableaux of
//     genai/detail/ode.hpp): each interval [t_i, t_{i+1}] is cut into n_i = ceil(|t_{i+1} -
//     t_i| / dt - 1e-9) (at least 1) equal steps, so every recorded time is stepped on exactly
//     and the adjoint takes the forward's steps in reverse. With times on the grid t_0 + k dt
//     these are genai::ode_solve's steps.
//   adaptive dopri5: SciPy's RK45 controller (genai/ode.hpp has the formulas) on the batch: the
//     error norm is the RMS over every element of the state (the adjoint's: h, a and g, with
//     g's tensor padding not counted), a step never passes the next recorded time (it is
//     clipped onto it; no interpolation), the first step by Hairer's selection (one extra f
//     evaluation), and the step carried over the recorded times. The adjoint chooses its own
//     steps the same way on z. The GPU decides each step on the host: one small reduction and
//     a 8-byte copy back per attempted step.
//
// Memory and layout. Row-major [batch x d] states; a trajectory is [T x batch x d] at the T
// times ts (ts[0] the start, T >= 2, strictly increasing or strictly decreasing: t_{T-1} < t_0
// integrates backwards), its slice 0 a copy of h0. Pointers are host pointers with a CPU
// context (the MLP's), device pointers with a CUDA one. The layer holds a reference to its MLP
// (which must outlive it); the workspace holds the states, stages and tape, sized on first use
// and grown only when needed: a training loop that reuses one workspace allocates nothing
// after its first step. Precision: float on both backends (the MLP's), step decisions and times
// in double. Non-finite values produced by f propagate (adaptive dopri5 then fails with
// genai::Error, its step collapsing); the checks refuse non-finite inputs.
//
// CUDA graphs (GPU, fixed step): each step's kernels -- stage sums, the time column, the MLP's
// GEMMs and epilogues, the adjoint's vector-Jacobian products -- read the step's (t, h) from a
// device-resident clock, so one step is captured once into a graph and replayed per step (one
// tiny clock kernel and one graph launch instead of ~7 launches per stage). Capture needs a
// stream of the context's own (Context::cuda(device, stream) with a created stream): on the
// legacy default stream the steps run as plain launches, with the same results.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "genai/buffer.hpp"
#include "genai/context.hpp"
#include "genai/nn.hpp"
#include "genai/ode.hpp"

namespace genai {

enum class NeuralOdeTime { Concat, None };
enum class NeuralOdeGradient {
  None,      // forward only: nothing kept for a backward
  Backprop,  // through the solver's steps: a tape of stage inputs, memory O(steps)
  Adjoint,   // the adjoint method: memory O(1) in the steps
};

// "concat", "none"; "none", "backprop", "adjoint". Unknown names throw ArgumentError listing the
// valid ones.
NeuralOdeTime parse_neural_ode_time(const std::string& name);
NeuralOdeGradient parse_neural_ode_gradient(const std::string& name);
std::string to_string(NeuralOdeTime t);
std::string to_string(NeuralOdeGradient g);

// The defaults are genai::OdeOptions': adaptive dopri5 at SciPy's tolerances (torchdiffeq's
// default method too); a fixed-step method needs dt.
struct NeuralOdeOptions {
  OdeMethod method = OdeMethod::Dopri5;
  // Fixed-step methods: the largest step, > 0. Adaptive dopri5: the first step (0: Hairer's
  // selection), as genai::OdeOptions::dt.
  double dt = 0;
  bool adaptive = true;                                    // dopri5 only
  double rtol = 1e-3, atol = 1e-6;                         // adaptive dopri5, forward and adjoint
  double safety = 0.9, min_factor = 0.2, max_factor = 10;  // SciPy's controller
  // Per integration (the forward, and the adjoint): attempted steps before genai::Error, and
  // (fixed step) the most steps a call may take -- more is an ArgumentError naming dt.
  std::int64_t max_steps = 100000;
  NeuralOdeTime time = NeuralOdeTime::Concat;
  NeuralOdeGradient gradient = NeuralOdeGradient::Adjoint;
  bool cuda_graphs = true;  // GPU, fixed step, a created stream: replay each step as a graph
};

// Work of one forward or backward call.
struct NeuralOdeStats {
  std::int64_t steps = 0;     // accepted steps
  std::int64_t rejected = 0;  // adaptive dopri5's rejected attempts
  std::int64_t nfev = 0;      // batched evaluations of the MLP (forwards), probes included
  std::int64_t vjp = 0;       // batched MLP backwards (vector-Jacobian products)
  std::int64_t graph_steps = 0;  // GPU: steps replayed from a CUDA graph
};

namespace detail {
struct NeuralOdeGraphs;  // the captured step graphs (GPU)
class NeuralOdeDriver;   // the stepping (host/src/neural_ode.cpp)
}  // namespace detail

// What NeuralOde::forward keeps for NeuralOde::backward, and both calls' scratch, on the MLP's
// device. One workspace per forward / backward pair in flight; its contents are the layer's
// business.
class NeuralOdeWorkspace {
 public:
  NeuralOdeWorkspace();
  ~NeuralOdeWorkspace();
  NeuralOdeWorkspace(NeuralOdeWorkspace&&) noexcept;
  NeuralOdeWorkspace& operator=(NeuralOdeWorkspace&&) noexcept;

  // Bytes of the buffers the workspace holds now (states, stages, tape, trajectory copy), the
  // MLP's workspace excepted (its size depends on the batch and the widths, not on the steps).
  // Buffers only grow, so this is also the most the layer has held through this workspace.
  std::size_t bytes() const;
  // Steps on the tape of the last forward (Backprop), 0 otherwise.
  std::int64_t tape_steps() const { return static_cast<std::int64_t>(tape_times_.size()); }

 private:
  friend class NeuralOde;
  friend class detail::NeuralOdeDriver;
  struct StepTimes {
    double t, h, t_next;
  };
  std::uint64_t owner_ = 0;  // NeuralOde::id_ of the layer whose forward it holds
  std::int64_t batch_ = 0;   // of that forward (0: none)
  std::int64_t stride_ = 0;  // elements of each state array
  NeuralOdeGradient recorded_ = NeuralOdeGradient::None;
  std::vector<double> ts_;               // the forward's times
  std::vector<std::int64_t> stop_step_;  // backprop: steps taken on reaching each time
  std::vector<StepTimes> tape_times_;    // backprop: each step's clock
  MlpWorkspace mlp_;
  Buffer<std::byte> clock_;   // one detail::NodeClock
  Buffer<float> state_;       // y, ys, err and the stages k_0 .. k_6, stride_ elements each
  Buffer<float> input_;       // the MLP's input and dx, [batch x (d + 1)] each
  Buffer<float> work_;        // backprop: ybar, kbar, Ybar_k; adjoint: the gradients kept
  Buffer<float> trajectory_;  // adjoint: the forward's trajectory [T x batch x d]
  Buffer<float> tape_;        // backprop: stage inputs [steps x stages x batch x d]
  Buffer<double> partial_;    // GPU: the error norm's partial sums
  std::unique_ptr<detail::NeuralOdeGraphs> graphs_;
};

class NeuralOde {
 public:
  // f: output_dim() = d >= 1, input_dim() = d + 1 (concat) or d (none), no time embedding.
  // Options checked here (ArgumentError naming the field).
  NeuralOde(Mlp& f, NeuralOdeOptions opts = {});

  std::int64_t dim() const { return d_; }
  const NeuralOdeOptions& options() const { return opts_; }
  Mlp& mlp() { return *f_; }

  // traj [ts.size() x batch x d]: h at each time of ts, from h0 [batch x d] at ts[0] (slice 0 is
  // h0). Keeps in ws what backward needs (opts.gradient). Throws ArgumentError before writing
  // anything for bad arguments (batch < 1, null pointers, ts with fewer than 2 times, not
  // finite or not strictly monotone, non-finite h0, a fixed step that needs more than
  // opts.max_steps steps); genai::Error when adaptive dopri5 fails (max_steps, step too
  // small): traj then holds what was reached.
  NeuralOdeStats forward(NeuralOdeWorkspace& ws, const float* h0, std::int64_t batch,
                         std::span<const double> ts, float* traj) const;

  // From dtraj = dL/dtraj [T x batch x d] of the forward that filled ws: dL/dtheta into the
  // MLP's gradients() (= or, with accumulate, +=) and, when dh0 is not null, dL/dh0
  // [batch x d]. By the method of opts.gradient at the forward (None is refused). Uses the
  // parameters as they are now: call it before changing them. The adjoint overwrites the MLP's
  // gradients() during the call (its vector-Jacobian products) and leaves the result there.
  NeuralOdeStats backward(NeuralOdeWorkspace& ws, const float* dtraj, float* dh0 = nullptr,
                          bool accumulate = false);

 private:
  friend class detail::NeuralOdeDriver;
  Mlp* f_;
  NeuralOdeOptions opts_;
  std::int64_t d_ = 0;
  std::uint64_t id_ = 0;
};

}  // namespace genai
