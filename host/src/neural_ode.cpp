// genai::NeuralOde: argument checks, the workspace, and the stepping -- one code for both
// backends, over the primitives of cpu_reference/neural_ode.hpp / kernels/neural_ode.cuh and the
// MLP's forward and backward (genai/nn.hpp). The formulas are in genai/neural_ode.hpp.
#include "genai/neural_ode.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>

#include "cpu_reference/neural_ode.hpp"
#include "genai/detail/neural_ode.hpp"
#include "genai/detail/ode.hpp"
#include "genai/nvtx.hpp"
#include "host/src/finite.hpp"
#if GENAI_WITH_CUDA
#include "kernels/neural_ode.cuh"
#endif

namespace genai {

namespace detail {
struct NeuralOdeGraphs {
#if GENAI_WITH_CUDA
  cuda::NodeGraph forward, adjoint;
#endif
};
}  // namespace detail

namespace {

using detail::NodeClock;
using detail::NodeTerms;
using detail::throw_argument;

std::atomic<std::uint64_t> next_layer_id{1};

// ---- the primitives on the context's backend ------------------------------------------------

void set_clock([[maybe_unused]] const Context& ctx, NodeClock* clock, const NodeClock& v) {
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::node_set_clock(ctx, clock, v);
#endif
  *clock = v;
}

void combine([[maybe_unused]] const Context& ctx, std::int64_t n, float* out, const float* base,
             bool use_h, const NodeClock* clock, const NodeTerms& terms, float* tape = nullptr) {
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::node_combine(ctx, n, out, base, use_h, clock, terms, tape);
#endif
  ref::node_combine(n, out, base, use_h, *clock, terms, tape);
}

void pack_time([[maybe_unused]] const Context& ctx, std::int64_t batch, std::int64_t d,
               const float* y, const NodeClock* clock, double ck, float* x) {
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::node_pack_time(ctx, batch, d, y, clock, ck, x);
#endif
  ref::node_pack_time(batch, d, y, *clock, ck, x);
}

void scale_columns([[maybe_unused]] const Context& ctx, std::int64_t rows, std::int64_t cols,
                   const float* src, std::int64_t ld, float alpha, float* dst) {
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::node_scale_columns(ctx, rows, cols, src, ld, alpha, dst);
#endif
  ref::node_scale_columns(rows, cols, src, ld, alpha, dst);
}

double sum_scaled_squares([[maybe_unused]] const Context& ctx, std::int64_t n, const float* x,
                          const float* ya, const float* yb, double atol, double rtol,
                          [[maybe_unused]] double* partial) {
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::node_sum_scaled_squares(ctx, n, x, ya, yb, atol, rtol, partial);
#endif
  return ref::node_sum_scaled_squares(n, x, ya, yb, atol, rtol);
}

// A tableau row's terms: the nonzero coefficients with their arrays.
struct Terms {
  NodeTerms t{{}, {}, 0};
  Terms& add(double coef, const float* x) {
    if (coef != 0) {
      t.x[t.count] = x;
      t.coef[t.count] = static_cast<float>(coef);
      ++t.count;
    }
    return *this;
  }
};

// Stages a step uses: dopri5's last (first-same-as-last) stage only serves the error estimate.
int used_stages(const detail::Tableau& tab) { return tab.fsal ? tab.stages - 1 : tab.stages; }

bool is_fixed(const NeuralOdeOptions& o) { return o.method != OdeMethod::Dopri5 || !o.adaptive; }

// Fixed step: interval i of ts is cut into `steps` equal steps of size h.
struct Segment {
  double a, b, h;
  std::int64_t steps;
};
Segment segment(std::span<const double> ts, std::size_t i, double dt) {
  const double a = ts[i], b = ts[i + 1];
  const auto steps =
      static_cast<std::int64_t>(std::max(1.0, std::ceil(std::abs(b - a) / dt - 1e-9)));
  return {a, b, (b - a) / static_cast<double>(steps), steps};
}
// Step j of s: from a + j h to a + (j + 1) h, the last one ending exactly on b.
NodeClock segment_step(const Segment& s, std::int64_t j) {
  const double t = j == 0 ? s.a : s.a + static_cast<double>(j) * s.h;
  const double t_next = j + 1 == s.steps ? s.b : s.a + static_cast<double>(j + 1) * s.h;
  return {t, t_next - t, t_next};
}

OdeOptions as_ode_options(const NeuralOdeOptions& o) {
  OdeOptions r;
  r.method = o.method;
  r.dt = o.dt;
  r.adaptive = o.adaptive;
  r.rtol = o.rtol, r.atol = o.atol;
  r.safety = o.safety, r.min_factor = o.min_factor, r.max_factor = o.max_factor;
  r.max_steps = o.max_steps;
  return r;
}

}  // namespace

// ---- names ----------------------------------------------------------------------------------

NeuralOdeTime parse_neural_ode_time(const std::string& name) {
  if (name == "concat") return NeuralOdeTime::Concat;
  if (name == "none") return NeuralOdeTime::None;
  throw_argument("genai::parse_neural_ode_time", "name", "is '", name, "' (valid: concat, none)");
}

NeuralOdeGradient parse_neural_ode_gradient(const std::string& name) {
  if (name == "none") return NeuralOdeGradient::None;
  if (name == "backprop") return NeuralOdeGradient::Backprop;
  if (name == "adjoint") return NeuralOdeGradient::Adjoint;
  throw_argument("genai::parse_neural_ode_gradient", "name", "is '", name,
                 "' (valid: none, backprop, adjoint)");
}

std::string to_string(NeuralOdeTime t) { return t == NeuralOdeTime::Concat ? "concat" : "none"; }

std::string to_string(NeuralOdeGradient g) {
  switch (g) {
    case NeuralOdeGradient::None: return "none";
    case NeuralOdeGradient::Backprop: return "backprop";
    case NeuralOdeGradient::Adjoint: return "adjoint";
  }
  return "unknown";
}

// ---- workspace ------------------------------------------------------------------------------

NeuralOdeWorkspace::NeuralOdeWorkspace() = default;
NeuralOdeWorkspace::~NeuralOdeWorkspace() = default;
NeuralOdeWorkspace::NeuralOdeWorkspace(NeuralOdeWorkspace&&) noexcept = default;
NeuralOdeWorkspace& NeuralOdeWorkspace::operator=(NeuralOdeWorkspace&&) noexcept = default;

std::size_t NeuralOdeWorkspace::bytes() const {
  return clock_.bytes() + state_.bytes() + input_.bytes() + work_.bytes() + trajectory_.bytes() +
         tape_.bytes() + partial_.bytes();
}

// ---- the stepping ---------------------------------------------------------------------------

namespace detail {

// One call's stepping over a workspace. The state arrays y, ys, err, k_0 .. k_6 are ws.state_'s
// slices of ws.stride_ elements; a system (the forward's h, or the adjoint's z = [h, a, g]) uses
// the first m elements of each.
class NeuralOdeDriver {
 public:
  NeuralOdeDriver(const NeuralOde& layer, NeuralOdeWorkspace& ws)
      : f_(*layer.f_),
        o_(layer.opts_),
        ws_(ws),
        ctx_(f_.context()),
        d_(layer.d_),
        in_(f_.input_dim()),
        P_(f_.flat_size()),
        tab_(tableau(o_.method)),
        S_(used_stages(tab_)),
        id_(layer.id_) {}

  NeuralOdeStats forward(const float* h0, std::int64_t batch, std::span<const double> ts,
                         float* traj);
  NeuralOdeStats backward(const float* dtraj, float* dh0, bool accumulate);

 private:
  enum class System { Forward, Adjoint };
  enum Array { kY = 0, kYs = 1, kErr = 2, kK = 3 };

  // The dopri5 controller's state over one integration (carried across the recorded times).
  struct Adaptive {
    double span;   // |t_{T-1} - t_0|: the first step's bound
    double h = 0;  // the next step's size (0: not chosen yet)
    bool k0_valid = false;
  };

  void prepare(std::int64_t batch, std::size_t T, NeuralOdeGradient mode, std::int64_t steps);
  void grow(Buffer<float>& b, std::int64_t n, bool resets_graphs);
  float* array(int a) { return ws_.state_.data() + slot_[a] * ws_.stride_; }
  NodeClock* clock() { return reinterpret_cast<NodeClock*>(ws_.clock_.data()); }
  void copy(std::int64_t n, float* out, const float* src) {
    combine(ctx_, n, out, src, false, clock(), NodeTerms{{}, {}, 0});
  }
  std::int64_t m(System s) const { return s == System::Forward ? n_ : 2 * n_ + P_; }
  std::int64_t norm_count(System s) const {
    return s == System::Forward ? n_ : 2 * n_ + f_.parameter_count();
  }

  void eval(System s, const float* y, double ck, float* k);
  void fixed_step(System s, float* tape);
  void fixed_steps(System s, const Segment& seg, bool reverse, float* tape_base);
  void adaptive(System s, Adaptive& st, double t0, double t1, bool record);
  double first_step(System s, double t, double dir, double span);
  float* tape_slot(std::int64_t step);
  void backprop_step(std::int64_t step);

  Mlp& f_;
  const NeuralOdeOptions& o_;
  NeuralOdeWorkspace& ws_;
  const Context& ctx_;
  std::int64_t d_, in_, P_;
  Tableau tab_;
  int S_;
  std::uint64_t id_;
  std::int64_t batch_ = 0, n_ = 0;
  int slot_[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};  // array -> slice of state_ (dopri5 swaps)
  bool counting_ = true;                           // false while a graph is being captured
  NeuralOdeStats stats_;
};

void NeuralOdeDriver::grow(Buffer<float>& b, std::int64_t n, bool resets_graphs) {
  if (static_cast<std::int64_t>(b.size()) >= n) return;
  b = Buffer<float>(ctx_, static_cast<std::size_t>(n));
  if (resets_graphs) ws_.graphs_.reset();
}

// Sizes the workspace for a forward of `batch` rows and T times in `mode` (`steps`: a fixed
// step's total, for the tape). Buffers only grow; the graphs are dropped when a buffer they
// use moves or the layout changes.
void NeuralOdeDriver::prepare(std::int64_t batch, std::size_t T, NeuralOdeGradient mode,
                              std::int64_t steps) {
  if (ws_.owner_ != id_) {
    ws_ = NeuralOdeWorkspace();
    ws_.owner_ = id_;
  }
  batch_ = batch;
  n_ = batch * d_;
  const std::int64_t stride = mode == NeuralOdeGradient::Adjoint ? 2 * n_ + P_ : n_;
  if (ws_.batch_ != batch || ws_.stride_ != stride) ws_.graphs_.reset();
  ws_.batch_ = batch;
  ws_.stride_ = stride;
  if (ws_.clock_.size() == 0) ws_.clock_ = Buffer<std::byte>(ctx_, sizeof(NodeClock));
  grow(ws_.state_, 10 * stride, true);
  grow(ws_.input_, 2 * batch * in_, true);
  if (mode == NeuralOdeGradient::Backprop) grow(ws_.work_, (2 + S_) * n_, false);
  if (mode == NeuralOdeGradient::Adjoint) {
    grow(ws_.work_, P_, true);
    grow(ws_.trajectory_, static_cast<std::int64_t>(T) * n_, false);
  }
  if (mode == NeuralOdeGradient::Backprop && steps > 0) grow(ws_.tape_, steps * S_ * n_, false);
#if GENAI_WITH_CUDA
  if (ctx_.is_cuda() && ws_.partial_.size() == 0)
    ws_.partial_ = Buffer<double>(ctx_, cuda::kNodeNormBlocks + 1);
#endif
  if (!ws_.graphs_) ws_.graphs_ = std::make_unique<NeuralOdeGraphs>();
}

// k = f(y, t + ck h) of system s (the clock holds the step). Forward: the MLP at [y, t] (or y).
// Adjoint, z = [h, a, g]: k = [f(h, t), -a^T df/dh, -a^T df/dtheta], the MLP's forward then its
// backward with output gradient a (the parameter part through the MLP's gradients()).
void NeuralOdeDriver::eval(System s, const float* y, double ck, float* k) {
  float* x = ws_.input_.data();
  float* dx = x + batch_ * in_;
  const float* input = y;
  if (o_.time == NeuralOdeTime::Concat) {
    pack_time(ctx_, batch_, d_, y, clock(), ck, x);
    input = x;
  }
  f_.forward(ws_.mlp_, input, nullptr, batch_, k);
  if (counting_) ++stats_.nfev;
  if (s == System::Forward) return;
  f_.backward(ws_.mlp_, y + n_, dx, false);
  scale_columns(ctx_, batch_, d_, dx, in_, -1.0f, k + n_);
  scale_columns(ctx_, 1, P_, f_.gradients(), P_, -1.0f, k + 2 * n_);
  if (counting_) ++stats_.vjp;
}

// One fixed step of the clock's (t, h): the used stages, then y += h sum_i b_i k_i. With a
// tape, each stage's input (the forward system's) is also written to tape + k n.
void NeuralOdeDriver::fixed_step(System s, float* tape) {
  const std::int64_t ms = m(s);
  float* y = array(kY);
  float* ys = array(kYs);
  for (int k = 0; k < S_; ++k) {
    const float* input = y;
    if (k == 0) {
      if (tape) copy(n_, tape, y);
    } else {
      Terms t;
      for (int j = 0; j < k; ++j) t.add(tab_.a[k][j], array(kK + j));
      combine(ctx_, ms, ys, y, true, clock(), t.t, tape ? tape + k * n_ : nullptr);
      input = ys;
    }
    eval(s, input, tab_.c[k], array(kK + k));
  }
  Terms t;
  for (int j = 0; j < S_; ++j) t.add(tab_.b[j], array(kK + j));
  combine(ctx_, ms, y, y, true, clock(), t.t);
}

// The steps of one interval (reverse: from its end to its start, the forward's steps backwards).
// On a CUDA context with graphs allowed and no tape, the first step runs as plain launches (it
// sizes the MLP's workspace and plans its GEMMs), the second is captured, and every step from
// there replays the graph (kept in the workspace for later calls).
void NeuralOdeDriver::fixed_steps(System s, const Segment& seg, bool reverse, float* tape_base) {
  for (std::int64_t i = 0; i < seg.steps; ++i) {
    const std::int64_t j = reverse ? seg.steps - 1 - i : i;
    NodeClock c = segment_step(seg, j);
    if (reverse) c = {c.t_next, -c.h, c.t};
    set_clock(ctx_, clock(), c);
    if (tape_base) ws_.tape_times_.push_back({c.t, c.h, c.t_next});
    float* tape =
        tape_base ? tape_slot(static_cast<std::int64_t>(ws_.tape_times_.size()) - 1) : nullptr;
#if GENAI_WITH_CUDA
    const bool graphs = ctx_.is_cuda() && o_.cuda_graphs && ctx_.stream() != nullptr && !tape;
    cuda::NodeGraph& g = s == System::Forward ? ws_.graphs_->forward : ws_.graphs_->adjoint;
    if (graphs && (g.captured() || stats_.steps > 0)) {
      if (!g.captured()) {
        counting_ = false;
        try {
          g.capture(ctx_, [&] { fixed_step(s, nullptr); });
        } catch (...) {
          counting_ = true;
          throw;
        }
        counting_ = true;
      }
      g.launch(ctx_);
      ++stats_.graph_steps;
      stats_.nfev += S_;
      if (s == System::Adjoint) stats_.vjp += S_;
      ++stats_.steps;
      continue;
    }
#endif
    fixed_step(s, tape);
    ++stats_.steps;
  }
}

float* NeuralOdeDriver::tape_slot(std::int64_t step) {
  const std::int64_t per_step = S_ * n_;
  if (static_cast<std::int64_t>(ws_.tape_.size()) < (step + 1) * per_step) {  // adaptive: grow
    const std::int64_t steps = std::max<std::int64_t>({step + 1, 2 * step, 16});
    Buffer<float> bigger(ctx_, static_cast<std::size_t>(steps * per_step));
    if (step > 0) copy(step * per_step, bigger.data(), ws_.tape_.data());
    ws_.tape_ = std::move(bigger);
  }
  return ws_.tape_.data() + step * per_step;
}

// Hairer's first step (SciPy's select_initial_step) for system s at (t, y) with k_0 = f(t, y)
// in place; one probe evaluation into k_1.
double NeuralOdeDriver::first_step(System s, double t, double dir, double span) {
  const std::int64_t ms = m(s);
  const double count = static_cast<double>(norm_count(s));
  float* y = array(kY);
  float* k0 = array(kK);
  double* part = ws_.partial_.data();
  const double d0 =
      std::sqrt(sum_scaled_squares(ctx_, ms, y, y, y, o_.atol, o_.rtol, part) / count);
  const double d1 =
      std::sqrt(sum_scaled_squares(ctx_, ms, k0, y, y, o_.atol, o_.rtol, part) / count);
  double h0 = d0 < 1e-5 || d1 < 1e-5 ? 1e-6 : 0.01 * d0 / d1;
  h0 = std::min(h0, span);
  set_clock(ctx_, clock(), {t, dir * h0, t + dir * h0});
  combine(ctx_, ms, array(kYs), y, true, clock(), Terms().add(1, k0).t);
  eval(s, array(kYs), 1.0, array(kK + 1));
  combine(ctx_, ms, array(kErr), array(kK + 1), false, clock(), Terms().add(-1, k0).t);
  const double d2 =
      std::sqrt(sum_scaled_squares(ctx_, ms, array(kErr), y, y, o_.atol, o_.rtol, part) / count) /
      h0;
  const double h1 = d1 <= 1e-15 && d2 <= 1e-15 ? std::max(1e-6, h0 * 1e-3)
                                               : std::pow(0.01 / std::max(d1, d2), 0.2);
  return std::min({100 * h0, h1, span});
}

// Adaptive dopri5 of system s from t0 to t1 (exactly), continuing st. record: the forward's
// accepted steps go on the tape.
void NeuralOdeDriver::adaptive(System s, Adaptive& st, double t0, double t1, bool record) {
  constexpr const char* fn = "genai::NeuralOde";
  const std::int64_t ms = m(s);
  const double dir = t1 > t0 ? 1.0 : -1.0, count = static_cast<double>(norm_count(s));
  double t = t0;
  if (!st.k0_valid) {
    set_clock(ctx_, clock(), {t, 0.0, t});
    eval(s, array(kY), 0.0, array(kK));
    st.k0_valid = true;
  }
  if (st.h == 0) st.h = o_.dt > 0 ? std::min(o_.dt, st.span) : first_step(s, t, dir, st.span);
  bool retry = false;
  while (t != t1) {
    if (stats_.steps + stats_.rejected >= o_.max_steps)
      throw Error(concat(fn, ": dopri5 did not reach t = ", t1, " within opts.max_steps = ",
                         o_.max_steps, " steps (", stats_.steps, " accepted, ", stats_.rejected,
                         " rejected): stopped at t = ", t, " with step size ", st.h));
    const double min_step = 10 * std::abs(std::nextafter(t, dir * HUGE_VAL) - t);
    double habs = std::abs(st.h);
    if (!retry && habs < min_step) habs = min_step;
    if (!(habs >= min_step))
      throw Error(concat(fn, ": dopri5 failed at t = ", t, ": the step size ", habs,
                         " fell below 10 ulp of t or is not finite (f may be non-finite or too "
                         "stiff there for rtol = ",
                         o_.rtol, ", atol = ", o_.atol, ")"));
    double target = t + dir * habs;
    if ((target - t1) * dir >= 0) target = t1;
    const double h = target - t;
    set_clock(ctx_, clock(), {t, h, target});
    float* tape = record ? tape_slot(static_cast<std::int64_t>(ws_.tape_times_.size())) : nullptr;
    float* y = array(kY);
    float* ys = array(kYs);
    if (tape) copy(n_, tape, y);
    for (int k = 1; k < tab_.stages; ++k) {
      Terms terms;
      for (int j = 0; j < k; ++j) terms.add(tab_.a[k][j], array(kK + j));
      combine(ctx_, ms, ys, y, true, clock(), terms.t, tape && k < S_ ? tape + k * n_ : nullptr);
      eval(s, ys, tab_.c[k], array(kK + k));
    }
    Terms e;
    for (int j = 0; j < tab_.stages; ++j) e.add(tab_.e[j], array(kK + j));
    combine(ctx_, ms, array(kErr), nullptr, true, clock(), e.t);
    const double err = std::sqrt(
        sum_scaled_squares(ctx_, ms, array(kErr), y, ys, o_.atol, o_.rtol, ws_.partial_.data()) /
        count);
    if (!(err < 1)) {  // rejected (also a NaN error: shrink by min_factor)
      st.h = h * std::max(o_.min_factor, o_.safety * std::pow(err, -0.2));
      retry = true;
      ++stats_.rejected;
      continue;
    }
    double factor =
        err == 0 ? o_.max_factor : std::min(o_.max_factor, o_.safety * std::pow(err, -0.2));
    if (retry) factor = std::min(1.0, factor);
    std::swap(slot_[kY], slot_[kYs]);                   // y <- y_new
    std::swap(slot_[kK], slot_[kK + tab_.stages - 1]);  // k_0 <- the last stage (FSAL)
    if (record) ws_.tape_times_.push_back({t, h, target});
    t = target;
    st.h = h * factor;
    retry = false;
    ++stats_.steps;
  }
}

NeuralOdeStats NeuralOdeDriver::forward(const float* h0, std::int64_t batch,
                                        std::span<const double> ts, float* traj) {
  const std::size_t T = ts.size();
  const bool fixed = is_fixed(o_);
  std::int64_t total = 0;
  if (fixed)
    for (std::size_t i = 0; i + 1 < T; ++i) total += segment(ts, i, o_.dt).steps;
  const NeuralOdeGradient mode = o_.gradient;
  prepare(batch, T, mode, mode == NeuralOdeGradient::Backprop ? total : 0);
  ws_.recorded_ = NeuralOdeGradient::None;  // until this forward is complete
  ws_.ts_.assign(ts.begin(), ts.end());
  ws_.tape_times_.clear();
  ws_.stop_step_.assign(1, 0);
  const bool tape = mode == NeuralOdeGradient::Backprop;
  copy(n_, array(kY), h0);
  copy(n_, traj, h0);
  Adaptive st{std::abs(ts[T - 1] - ts[0])};
  for (std::size_t i = 0; i + 1 < T; ++i) {
    if (fixed)
      fixed_steps(System::Forward, segment(ts, i, o_.dt), false, tape ? ws_.tape_.data() : nullptr);
    else
      adaptive(System::Forward, st, ts[i], ts[i + 1], tape);
    copy(n_, traj + static_cast<std::int64_t>(i + 1) * n_, array(kY));
    ws_.stop_step_.push_back(stats_.steps);
  }
  if (mode == NeuralOdeGradient::Adjoint)
    copy(static_cast<std::int64_t>(T) * n_, ws_.trajectory_.data(), traj);
  ws_.recorded_ = mode;
  return stats_;
}

// Step `step` of the tape backwards: ybar = dL/dy_{n+1} in, dL/dy_n out; every stage's MLP
// forward re-run from its input on the tape, then its backward with
//   kbar_k = h (b_k ybar + sum_{j > k} a_jk Ybar_j),  Ybar_k = (df/dy(Y_k))^T kbar_k,
// dL/dtheta += (df/dtheta(Y_k))^T kbar_k, and ybar += sum_k Ybar_k.
void NeuralOdeDriver::backprop_step(std::int64_t step) {
  const NeuralOdeWorkspace::StepTimes& c = ws_.tape_times_[static_cast<std::size_t>(step)];
  set_clock(ctx_, clock(), {c.t, c.h, c.t_next});
  float* ybar = ws_.work_.data();
  float* kbar = ybar + n_;
  auto Ybar = [&](int k) { return ybar + (2 + k) * n_; };
  float* x = ws_.input_.data();
  float* dx = x + batch_ * in_;
  const float* tape = ws_.tape_.data() + step * S_ * n_;
  for (int k = S_ - 1; k >= 0; --k) {
    Terms t;
    t.add(tab_.b[k], ybar);
    for (int j = k + 1; j < S_; ++j) t.add(tab_.a[j][k], Ybar(j));
    combine(ctx_, n_, kbar, nullptr, true, clock(), t.t);
    const float* input = tape + k * n_;
    if (o_.time == NeuralOdeTime::Concat) {
      pack_time(ctx_, batch_, d_, input, clock(), tab_.c[k], x);
      input = x;
    }
    f_.forward(ws_.mlp_, input, nullptr, batch_, array(kErr));
    if (o_.time == NeuralOdeTime::Concat) {
      f_.backward(ws_.mlp_, kbar, dx, true);
      scale_columns(ctx_, batch_, d_, dx, in_, 1.0f, Ybar(k));
    } else {
      f_.backward(ws_.mlp_, kbar, Ybar(k), true);
    }
    ++stats_.nfev;
    ++stats_.vjp;
  }
  Terms sum;
  for (int k = 0; k < S_; ++k) sum.add(1, Ybar(k));
  combine(ctx_, n_, ybar, ybar, false, clock(), sum.t);
  ++stats_.steps;
}

NeuralOdeStats NeuralOdeDriver::backward(const float* dtraj, float* dh0, bool accumulate) {
  batch_ = ws_.batch_;
  n_ = batch_ * d_;
  const std::vector<double>& ts = ws_.ts_;
  const std::size_t T = ts.size();
  auto dtraj_at = [&](std::size_t i) { return dtraj + static_cast<std::int64_t>(i) * n_; };
  if (ws_.recorded_ == NeuralOdeGradient::Backprop) {
    float* ybar = ws_.work_.data();
    if (!accumulate) f_.zero_grad();
    copy(n_, ybar, dtraj_at(T - 1));
    for (std::size_t i = T - 1; i >= 1; --i) {
      for (std::int64_t s = ws_.stop_step_[i] - 1; s >= ws_.stop_step_[i - 1]; --s)
        backprop_step(s);
      combine(ctx_, n_, ybar, ybar, false, clock(), Terms().add(1, dtraj_at(i - 1)).t);
    }
    if (dh0) copy(n_, dh0, ybar);
    return stats_;
  }
  // The adjoint: z = [h, a, g] backwards through the recorded times.
  const std::int64_t P = P_;
  float* kept = ws_.work_.data();
  if (accumulate) copy(P, kept, f_.gradients());
  auto z = [&] { return array(kY); };
  copy(n_, z(), ws_.trajectory_.data() + static_cast<std::int64_t>(T - 1) * n_);
  copy(n_, z() + n_, dtraj_at(T - 1));
  combine(ctx_, P, z() + 2 * n_, nullptr, false, clock(), NodeTerms{{}, {}, 0});  // g = 0
  Adaptive st{std::abs(ts[T - 1] - ts[0])};
  for (std::size_t i = T - 1; i >= 1; --i) {
    if (is_fixed(o_)) {
      fixed_steps(System::Adjoint, segment(ts, i - 1, o_.dt), true, nullptr);
    } else {
      st.k0_valid = false;  // z jumped at the recorded time
      adaptive(System::Adjoint, st, ts[i], ts[i - 1], false);
    }
    copy(n_, z(), ws_.trajectory_.data() + static_cast<std::int64_t>(i - 1) * n_);
    combine(ctx_, n_, z() + n_, z() + n_, false, clock(), Terms().add(1, dtraj_at(i - 1)).t);
  }
  if (dh0) copy(n_, dh0, z() + n_);
  combine(ctx_, P, f_.gradients(), accumulate ? kept : nullptr, false, clock(),
          Terms().add(1, z() + 2 * n_).t);
  return stats_;
}

}  // namespace detail

// ---- the layer ------------------------------------------------------------------------------

NeuralOde::NeuralOde(Mlp& f, NeuralOdeOptions opts)
    : f_(&f), opts_(std::move(opts)), d_(f.output_dim()), id_(next_layer_id++) {
  constexpr const char* fn = "genai::NeuralOde::NeuralOde";
  if (f.options().time_embedding_dim != 0)
    throw_argument(
        fn, "f", "has a time embedding (time_embedding_dim = ", f.options().time_embedding_dim,
        "): the layer gives f the time as an input column (time = concat) or not at all");
  if (opts_.time != NeuralOdeTime::Concat && opts_.time != NeuralOdeTime::None)
    throw_argument(fn, "opts.time", "is not a NeuralOdeTime (", static_cast<int>(opts_.time), ")");
  if (opts_.gradient != NeuralOdeGradient::None && opts_.gradient != NeuralOdeGradient::Backprop &&
      opts_.gradient != NeuralOdeGradient::Adjoint)
    throw_argument(fn, "opts.gradient", "is not a NeuralOdeGradient (",
                   static_cast<int>(opts_.gradient), ")");
  const std::int64_t in = d_ + (opts_.time == NeuralOdeTime::Concat ? 1 : 0);
  if (f.input_dim() != in)
    throw_argument(fn, "f", "has input_dim() = ", f.input_dim(),
                   "; with time = ", to_string(opts_.time), " it must be output_dim() ",
                   opts_.time == NeuralOdeTime::Concat ? "+ 1 = " : "= ", in);
  // The solver options, as genai::ode_solve checks them (no interval yet: t0 = t1).
  const float probe = 0;
  detail::check_ode(fn, 1, d_, &probe, 0, 0, as_ode_options(opts_), nullptr);
}

NeuralOdeStats NeuralOde::forward(NeuralOdeWorkspace& ws, const float* h0, std::int64_t batch,
                                  std::span<const double> ts, float* traj) const {
  constexpr const char* fn = "genai::NeuralOde::forward";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "batch", batch, 1);
  detail::require_not_null(fn, "h0", h0);
  detail::require_not_null(fn, "traj", traj);
  if (ts.size() < 2)
    throw_argument(fn, "ts", "needs at least 2 times (the start and one more; got ", ts.size(),
                   ")");
  const double dir = ts[1] > ts[0] ? 1.0 : -1.0;
  for (std::size_t i = 0; i < ts.size(); ++i) {
    if (!std::isfinite(ts[i]))
      throw_argument(fn, "ts", "entry ", i, " is ", ts[i], " (must be finite)");
    if (i > 0 && !((ts[i] - ts[i - 1]) * dir > 0))
      throw_argument(fn, "ts", "entry ", i, " is ", ts[i], " after ", ts[i - 1],
                     ": the times must be strictly monotone");
  }
  if (is_fixed(opts_)) {
    double steps = 0;
    for (std::size_t i = 0; i + 1 < ts.size(); ++i)
      steps += std::max(1.0, std::ceil(std::abs(ts[i + 1] - ts[i]) / opts_.dt - 1e-9));
    if (steps > static_cast<double>(opts_.max_steps))
      throw_argument(fn, "opts.dt", "= ", opts_.dt, " needs ", steps,
                     " steps over ts, more than "
                     "opts.max_steps = ",
                     opts_.max_steps);
  }
  detail::require_finite_matrix(f_->context(), fn, "h0", h0, batch, d_);
  return detail::NeuralOdeDriver(*this, ws).forward(h0, batch, ts, traj);
}

NeuralOdeStats NeuralOde::backward(NeuralOdeWorkspace& ws, const float* dtraj, float* dh0,
                                   bool accumulate) {
  constexpr const char* fn = "genai::NeuralOde::backward";
  GENAI_NVTX_RANGE(fn);
  if (ws.owner_ != id_ || ws.batch_ == 0)
    throw_argument(fn, "ws", "holds no forward of this layer (call forward first)");
  if (ws.recorded_ == NeuralOdeGradient::None)
    throw_argument(fn, "ws",
                   "holds nothing to differentiate: its forward was made with "
                   "opts.gradient = none, or failed");
  detail::require_not_null(fn, "dtraj", dtraj);
  detail::require_finite_matrix(f_->context(), fn, "dtraj", dtraj,
                                static_cast<std::int64_t>(ws.ts_.size()) * ws.batch_, d_);
  return detail::NeuralOdeDriver(*this, ws).backward(dtraj, dh0, accumulate);
}

}  // namespace genai
