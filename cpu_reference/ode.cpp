#include "cpu_reference/ode.hpp"

#include <algorithm>
#include <vector>

#include "cpu_reference/parallel.hpp"

namespace genai::ref {
namespace {

using detail::OdeRow;
using detail::OdeSetup;

// The rows' work arrays [batch x arrays x d], y loaded into each row's first array.
std::vector<double> load_work(const OdeSetup<double>& s, int arrays, const double* y) {
  const std::int64_t d = s.d;
  std::vector<double> w(static_cast<std::size_t>(s.batch * arrays * d));
  for (std::int64_t r = 0; r < s.batch; ++r) std::copy_n(y + r * d, d, w.begin() + r * arrays * d);
  return w;
}

void store_work(const OdeSetup<double>& s, int arrays, const std::vector<double>& w, double* y) {
  const std::int64_t d = s.d;
  for (std::int64_t r = 0; r < s.batch; ++r) std::copy_n(w.begin() + r * arrays * d, d, y + r * d);
}

// One batched call of f: rows added with their time, input and output (pointers into the
// work arrays), packed, evaluated, and the derivatives scattered back.
class Batch {
 public:
  Batch(const OdeFunction& f, int d) : f_(f), d_(d) {}
  void add(std::int64_t r, double t, const double* in, double* out) {
    rows_.push_back(r);
    t_.push_back(t);
    y_.insert(y_.end(), in, in + d_);
    out_.push_back(out);
  }
  // Evaluates f on the rows added, counting one evaluation for each, and empties the batch.
  void run(OdeRow<double>* rows) {
    const auto n = static_cast<std::int64_t>(rows_.size());
    if (n > 0) {
      dy_.assign(y_.size(), 0.0);
      f_(OdeEval{n, d_, rows_.data(), t_.data(), y_.data(), dy_.data()});
      for (std::int64_t i = 0; i < n; ++i) {
        std::copy_n(dy_.begin() + i * d_, d_, out_[i]);
        ++rows[rows_[i]].nfev;
      }
    }
    rows_.clear();
    t_.clear();
    y_.clear();
    out_.clear();
  }

 private:
  const OdeFunction& f_;
  std::int64_t d_;
  std::vector<std::int64_t> rows_;
  std::vector<double> t_, y_, dy_;
  std::vector<double*> out_;
};

template <OdeMethod M>
void solve_batched(const OdeFunction& f, const OdeSetup<double>& s, double* y, OdeRow<double>* rows) {
  static constexpr detail::Tableau tab = detail::tableau(M);
  constexpr int arrays = detail::ode_arrays(M);
  const int d = s.d;
  std::vector<double> work = load_work(s, arrays, y);
  auto w = [&](std::int64_t r) { return work.data() + r * arrays * d; };
  Batch batch(f, d);
  std::vector<std::int64_t> active;
  for (std::int64_t r = 0; r < s.batch; ++r) {
    detail::ode_begin<double, 0>(s, r, rows[r], w(r));
    if (rows[r].status == detail::kOdeRunning) active.push_back(r);
  }
  if (tab.fsal) {
    for (std::int64_t r : active) batch.add(r, rows[r].t, w(r) + detail::kOdeY * d, w(r) + detail::kOdeK * d);
    batch.run(rows);
    bool probe = false;  // the same answer for every row
    for (std::int64_t r : active)
      if (detail::ode_first_step(s, rows[r])) {
        probe = true;
        const double tp = detail::ode_probe_input<double, 0>(s, rows[r], w(r));
        batch.add(r, tp, w(r) + detail::kOdeYs * d, w(r) + (detail::kOdeK + 1) * d);
      }
    batch.run(rows);
    if (probe)
      for (std::int64_t r : active) detail::ode_probe_finish<double, 0>(s, rows[r], w(r));
  }
  for (;;) {
    std::erase_if(active, [&](std::int64_t r) { return !detail::ode_begin_attempt(s, rows[r]); });
    if (active.empty()) break;
    for (int k = tab.fsal ? 1 : 0; k < tab.stages; ++k) {
      for (std::int64_t r : active) {
        const double tk = detail::ode_stage_input<double, M, 0>(s, rows[r], w(r), k);
        batch.add(r, tk, w(r) + detail::ode_stage_array(k) * d, w(r) + (detail::kOdeK + k) * d);
      }
      batch.run(rows);
    }
    for (std::int64_t r : active) detail::ode_end_attempt<double, M, 0>(s, r, rows[r], w(r));
  }
  store_work(s, arrays, work, y);
}

// ---- fixed steps, kLanes rows at a time ------------------------------------------------------
//
// On a fixed grid every row takes the same steps at the same times: the times, steps, counters
// and records are the same for all rows, only the states differ. So ode_row runs once for kLanes
// rows with T = Lanes, kLanes doubles that every arithmetic operator treats lane by lane with
// the double operation the scalar path does (no contraction: -ffp-contract=off): each lane is
// the scalar row bit for bit, and the loops over the lanes vectorise. The comparisons of Lanes
// (the control: times against the grid, t_eval and t1) read lane 0, which is every lane's value
// on a fixed grid; the adaptive code that compares per-row values is instantiated but never runs.

constexpr int kLanes = 64;

struct Lanes {
  double v[kLanes];
  Lanes() = default;
  [[gnu::always_inline]] Lanes(double x) {  // NOLINT: T(x) and T t = 0 in the shared code
    for (int l = 0; l < kLanes; ++l) v[l] = x;
  }
};

#define GENAI_LANES_OP(op)                                                              \
  [[gnu::always_inline]] inline Lanes operator op(const Lanes& a, const Lanes& b) {      \
    Lanes r;                                                                             \
    for (int l = 0; l < kLanes; ++l) r.v[l] = a.v[l] op b.v[l];                         \
    return r;                                                                            \
  }                                                                                      \
  [[gnu::always_inline]] inline Lanes& operator op##=(Lanes& a, const Lanes& b) { return a = a op b; }
GENAI_LANES_OP(+)
GENAI_LANES_OP(-)
GENAI_LANES_OP(*)
GENAI_LANES_OP(/)
#undef GENAI_LANES_OP
[[gnu::always_inline]] inline Lanes operator-(const Lanes& a) {
  Lanes r;
  for (int l = 0; l < kLanes; ++l) r.v[l] = -a.v[l];
  return r;
}
#define GENAI_LANES_CMP(op) \
  [[gnu::always_inline]] inline bool operator op(const Lanes& a, const Lanes& b) { return a.v[0] op b.v[0]; }
GENAI_LANES_CMP(<)
GENAI_LANES_CMP(>)
GENAI_LANES_CMP(<=)
GENAI_LANES_CMP(>=)
GENAI_LANES_CMP(==)
GENAI_LANES_CMP(!=)
#undef GENAI_LANES_CMP
// The functions the adaptive code calls (found by argument-dependent lookup), lane by lane.
template <class F>
Lanes lanewise(const Lanes& a, F f) {
  Lanes r;
  for (int l = 0; l < kLanes; ++l) r.v[l] = f(a.v[l]);
  return r;
}
Lanes ode_sqrt(const Lanes& a) { return lanewise(a, [](double x) { return detail::ode_sqrt(x); }); }
Lanes ode_root5(const Lanes& a) { return lanewise(a, [](double x) { return detail::ode_root5(x); }); }
Lanes ode_inv_root5(const Lanes& a) {
  return lanewise(a, [](double x) { return detail::ode_inv_root5(x); });
}
Lanes ode_next(const Lanes& t, const Lanes& dir) {
  return lanewise(t, [&](double x) { return detail::ode_next(x, dir.v[0]); });
}

// ode_row for kLanes rows (w: their work arrays lane by lane; records to s.trajectory as lanes,
// s.batch = 1), cloned for AVX-512 / AVX2 with everything inlined into the clone.
template <OdeMethod M, int D>
GENAI_CPU_CLONES __attribute__((flatten)) void lanes_row(const detail::BuiltinOde& f,
                                                         const OdeSetup<Lanes>& s,
                                                         OdeRow<Lanes>& st, Lanes* w) {
  detail::ode_row<Lanes, M, D>(f, s, 0, st, w);
}

// Rows [r0, r1) of a fixed-step solve, kLanes at a time (the last group padded with zero rows,
// whose results are dropped).
template <OdeMethod M, int D>
void fixed_rows(const detail::BuiltinOde& f, const OdeSetup<double>& s, double* y,
                OdeRow<double>* rows, std::int64_t r0, std::int64_t r1) {
  const int d = D > 0 ? D : s.d;
  OdeSetup<Lanes> sl{s.method, s.adaptive, 1, s.d, s.t0, s.t1, s.dir, s.span, s.dt,
                     s.grid_steps, s.slack, s.rtol, s.atol, s.max_step, s.safety,
                     s.min_factor, s.max_factor, s.max_steps, s.n_eval, s.t_eval, nullptr};
  std::vector<Lanes> w(static_cast<std::size_t>(detail::ode_arrays(M) * d)),
      records(static_cast<std::size_t>(s.n_eval * d));
  sl.trajectory = records.data();
  for (std::int64_t g = r0; g < r1; g += kLanes) {
    const int lanes = static_cast<int>(std::min<std::int64_t>(kLanes, r1 - g));
    for (int j = 0; j < d; ++j)
      for (int l = 0; l < kLanes; ++l) w[j].v[l] = l < lanes ? y[(g + l) * d + j] : 0.0;
    OdeRow<Lanes> st;
    lanes_row<M, D>(f, sl, st, w.data());
    for (int l = 0; l < lanes; ++l) {
      const std::int64_t r = g + l;
      for (int j = 0; j < d; ++j) y[r * d + j] = w[j].v[l];
      for (std::int64_t e = 0; e < st.next_eval; ++e)
        for (int j = 0; j < d; ++j) s.trajectory[(e * s.batch + r) * d + j] = records[e * d + j].v[l];
      rows[r] = {st.t.v[l], st.h.v[l], st.target.v[l], st.nfev, st.accepted, st.rejected,
                 st.next_eval, st.grid, st.status, st.retry};
    }
  }
}

// Row by row: the kernels' loop (ode_row), with d fixed at compile time when D > 0; on a fixed
// grid kLanes rows at a time (fixed_rows). Chunks of rows on the backend's threads (a row's
// integration is its own: the same bits on any thread count).
template <OdeMethod M, int D>
void solve_rows(const detail::BuiltinOde& f, const OdeSetup<double>& s, double* y, OdeRow<double>* rows) {
  const int d = D > 0 ? D : s.d;
  parallel_rows(s.batch, 256, [&](std::int64_t r0, std::int64_t r1) {
    if (!s.adaptive) return fixed_rows<M, D>(f, s, y, rows, r0, r1);
    std::vector<double> w(static_cast<std::size_t>(detail::ode_arrays(M) * d));
    for (std::int64_t r = r0; r < r1; ++r) {
      std::copy_n(y + r * d, d, w.begin());
      detail::ode_row<double, M, D>(f, s, r, rows[r], w.data());
      std::copy_n(w.begin(), d, y + r * d);
    }
  });
}

}  // namespace

void ode_solve(const detail::BuiltinOde& f, const OdeSetup<double>& s, double* y, OdeRow<double>* rows) {
  detail::with_ode_method(s.method, [&](auto method) {
    constexpr OdeMethod M = decltype(method)::value;
    // d = 2 (every built-in problem but decay) fixed at compile time, as in the kernels: the
    // same operations, faster loops.
    if (s.d == 2) return solve_rows<M, 2>(f, s, y, rows);
    solve_rows<M, 0>(f, s, y, rows);
  });
}

void ode_solve(const OdeFunction& f, const OdeSetup<double>& s, double* y, OdeRow<double>* rows) {
  detail::with_ode_method(s.method, [&](auto method) {
    solve_batched<decltype(method)::value>(f, s, y, rows);
  });
}

}  // namespace genai::ref
