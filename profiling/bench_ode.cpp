// Benchmarks of the ODE module (kernels/ode.cu, cpu_reference/ode.cpp): sample-steps per second
// of every method on torchdiffeq's 2-D spiral, dy/dt = (y^3) A, from y0 = (1, 0) + N(0, 0.2^2 I):
// fixed-step methods with dt = 0.01 over [0, 1] (100 steps, inside Euler's stability region for
// these starts), dopri5 with SciPy's default tolerances (rtol 1e-3, atol 1e-6) over [0, 1].
// profiling/peers/ode_peers.py runs the same workloads in SciPy's solve_ivp, NumPy, PyTorch and
// torchdiffeq.
//
// Each call starts from the same y0 (a copy, counted in bytes): bytes = the state read and
// written (2 rows d 4) plus the copy (2 rows d 4), and on the GPU each row's final state
// (sizeof(detail::OdeRow<float>)) written and read once by the failed-row scan (the timed calls
// run with counts off: nothing per row comes back to the host). flop: per row-step, the method's f evaluations
// (the spiral: 10 flops) and its stage combinations counted from the tableau (2 per nonzero
// coefficient and dimension, plus 2 per stage and dimension; dopri5 also its error norm). The
// roof is cuBLAS SGEMM's FP32 rate, which a kernel built from dependent scalar steps (and without
// FMA contraction, kernels/ode.cu) cannot approach: peak_frac says how far. sample_steps per
// second is the rate that matters. The GPU call includes the initial-state scan and the
// failed-row scan (two synchronisations).
#include <cstdint>
#include <numeric>
#include <vector>

#include "genai/detail/ode.hpp"
#include "genai/ode.hpp"
#include "profiling/bench_common.hpp"
#if GENAI_WITH_CUDA
#include <cuda_runtime.h>

#include "genai/cuda_check.hpp"
#endif

namespace {

namespace bench = genai::bench;
using genai::OdeMethod;
using genai::OdeOptions;

constexpr double kSpiralFlops = 10;  // two cubes (4), four products, two sums

// Per row-step flops of method m on d dimensions (f: f_flops per evaluation).
double flop_per_step(OdeMethod m, double d, double f_flops) {
  const genai::detail::Tableau t = genai::detail::tableau(m);
  const int first = t.fsal ? 1 : 0;
  double flop = (t.stages - first) * f_flops;
  for (int k = 1; k < t.stages; ++k) {
    int nnz = 0;
    for (int i = 0; i < k; ++i) nnz += t.a[k][i] != 0;
    flop += d * (2 * nnz + 2);
  }
  if (t.fsal) {
    int nnz = 0;
    for (double e : t.e) nnz += e != 0;
    flop += d * (2 * nnz + 8);  // the error estimate and its scaled square
  } else {
    int nnz = 0;
    for (double b : t.b) nnz += b != 0;
    flop += d * (2 * nnz + 2);
  }
  return flop;
}

OdeOptions options_of(OdeMethod m) {
  if (m == OdeMethod::Dopri5) return {};
  return {.method = m, .dt = 0.01};
}

std::vector<float> spiral_starts(std::int64_t rows) {
  std::vector<float> y(2 * rows);
  genai::fill_normal(genai::Context::cpu(), y.data(), 2 * rows, {16, 0, 0}, 0.0f, 0.2f);
  for (std::int64_t r = 0; r < rows; ++r) y[2 * r] += 1.0f;
  return y;
}

bench::Work work_of(OdeMethod m, std::int64_t rows, double steps, double row_state_bytes) {
  bench::Work w;
  const double state = static_cast<double>(rows) * 2 * sizeof(float);
  w.bytes = 4 * state + static_cast<double>(rows) * row_state_bytes;
  w.flop = static_cast<double>(rows) * steps * flop_per_step(m, 2, kSpiralFlops);
  w.roof = bench::Work::Roof::Sgemm;
  return w;
}

// Rows x accepted steps, and f evaluations, per second.
void set_rates(benchmark::State& state, const genai::OdeStats& st) {
  const double steps = static_cast<double>(std::accumulate(st.accepted.begin(), st.accepted.end(), std::int64_t{0}));
  const double evals = static_cast<double>(std::accumulate(st.nfev.begin(), st.nfev.end(), std::int64_t{0}));
  state.counters["sample_steps"] = benchmark::Counter(steps, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["f_evals"] = benchmark::Counter(evals, benchmark::Counter::kIsIterationInvariantRate);
}

double mean_steps(const genai::OdeStats& st) {
  return static_cast<double>(std::accumulate(st.accepted.begin(), st.accepted.end(), std::int64_t{0})) /
         static_cast<double>(st.accepted.size());
}

// The built-in spiral on the CPU reference (double, row by row).
void Cpu_Ode(benchmark::State& state, OdeMethod m) {
  bench::guarded(state, [&] {
    const std::int64_t rows = state.range(0);
    const genai::Context cpu = genai::Context::cpu();
    const auto y0 = spiral_starts(rows);
    std::vector<float> y = y0;
    const OdeOptions o = options_of(m);
    genai::OdeStats st = genai::ode_solve(cpu, genai::OdeProblem::spiral(), y.data(), rows, 0.0, 1.0, o);
    bench::time_cpu(state, [&] {
      y = y0;
      st = genai::ode_solve(cpu, genai::OdeProblem::spiral(), y.data(), rows, 0.0, 1.0, o);
    }, work_of(m, rows, mean_steps(st), 0));
    set_rates(state, st);
  });
}

// The same through a batched callable (the path of a neural f: one call per stage for every
// row still integrating).
void Cpu_OdeCallable(benchmark::State& state, OdeMethod m) {
  bench::guarded(state, [&] {
    const std::int64_t rows = state.range(0);
    const auto y0f = spiral_starts(rows);
    const std::vector<double> y0(y0f.begin(), y0f.end());
    std::vector<double> y = y0;
    const genai::OdeProblem p = genai::OdeProblem::spiral();
    const genai::detail::BuiltinOde f{p.kind, {p.p[0], p.p[1], p.p[2], p.p[3]}};
    const genai::OdeFunction fn = [&](const genai::OdeEval& e) {
      for (std::int64_t i = 0; i < e.n; ++i) f(e.rows[i], e.t[i], e.y + 2 * i, e.dydt + 2 * i, 2);
    };
    const OdeOptions o = options_of(m);
    genai::OdeStats st = genai::ode_solve(fn, y.data(), rows, 2, 0.0, 1.0, o);
    bench::time_cpu(state, [&] {
      y = y0;
      st = genai::ode_solve(fn, y.data(), rows, 2, 0.0, 1.0, o);
    }, work_of(m, rows, mean_steps(st), 0));
    set_rates(state, st);
  });
}

void Gpu_Ode(benchmark::State& state, OdeMethod m) {
  if (!bench::require_gpu(state)) return;
#if GENAI_WITH_CUDA
  bench::guarded(state, [&] {
    const std::int64_t rows = state.range(0);
    const genai::Context& ctx = bench::gpu_context();
    struct Inputs {
      genai::Buffer<float> y0, y;
    };
    auto& in = bench::cached<Inputs>(rows, [&] {
      const auto h = spiral_starts(rows);
      return Inputs{genai::Buffer<float>(ctx, std::span<const float>(h)),
                    genai::Buffer<float>(ctx, std::span<const float>(h))};
    });
    // The counts once (untimed); the timed calls leave the row states on the device.
    OdeOptions o = options_of(m);
    const genai::OdeStats st = genai::ode_solve(ctx, genai::OdeProblem::spiral(), in.y.data(), rows, 0.0, 1.0, o);
    o.counts = false;
    bench::time_gpu(state, [&](std::int64_t) {
      GENAI_CUDA_CHECK(cudaMemcpyAsync(in.y.data(), in.y0.data(), in.y.bytes(), cudaMemcpyDeviceToDevice,
                                       ctx.stream()));
      genai::ode_solve(ctx, genai::OdeProblem::spiral(), in.y.data(), rows, 0.0, 1.0, o);
    }, work_of(m, rows, mean_steps(st), 2 * sizeof(genai::detail::OdeRow<float>)));
    set_rates(state, st);
  });
#else
  (void)m;
#endif
}

void cpu_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows"});
  b->Arg(4096);
}
void gpu_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows"});
  b->Arg(100000);   // the 1e5 samples of a 2-D problem
  b->Arg(1 << 20);  // a full device
}

#define GENAI_ODE_BENCH(fn, shapes, timing)                                                    \
  BENCHMARK_CAPTURE(fn, euler, OdeMethod::Euler)->Apply(shapes)->timing()->Unit(benchmark::kMillisecond); \
  BENCHMARK_CAPTURE(fn, midpoint, OdeMethod::Midpoint)->Apply(shapes)->timing()->Unit(benchmark::kMillisecond); \
  BENCHMARK_CAPTURE(fn, rk4, OdeMethod::RK4)->Apply(shapes)->timing()->Unit(benchmark::kMillisecond); \
  BENCHMARK_CAPTURE(fn, rk4_38, OdeMethod::RK4_38)->Apply(shapes)->timing()->Unit(benchmark::kMillisecond); \
  BENCHMARK_CAPTURE(fn, dopri5, OdeMethod::Dopri5)->Apply(shapes)->timing()->Unit(benchmark::kMillisecond)

GENAI_ODE_BENCH(Cpu_Ode, cpu_shapes, UseRealTime);
GENAI_ODE_BENCH(Cpu_OdeCallable, cpu_shapes, UseRealTime);
GENAI_ODE_BENCH(Gpu_Ode, gpu_shapes, UseManualTime);

}  // namespace
