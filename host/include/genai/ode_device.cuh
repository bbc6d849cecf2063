// ODE integration on the GPU for a right-hand side written by the user: a header-only launcher
// to include from a .cu file and instantiate with a __device__ functor. The built-in problems run
// through the same kernels (kernels/ode.cu), so the methods, the per-row step control, t_eval
// records, counts, failures and argument checks are those of genai::ode_solve (genai/ode.hpp).
//
// The right-hand side: a copyable type (passed to the kernel by value) with
//
//   __device__ void operator()(std::int64_t row, float t, const float* y, float* dydt, int d) const;
//
// writing dydt[j] = f_j(y, t) for j < d; row is the batch row (for per-row parameters: a
// conditioning, a probe vector). Example, a decay with one rate per row:
//
//   struct Rates {  // dy/dt = -rate[row] y
//     const float* rate;  // device memory [batch]
//     __device__ void operator()(std::int64_t row, float, const float* y, float* dydt, int d) const {
//       for (int j = 0; j < d; ++j) dydt[j] = -rate[row] * y[j];
//     }
//   };
//   genai::Buffer<float> y(ctx, batch * d);  // initial states [batch x d], device memory
//   auto stats = genai::ode_solve_device(ctx, Rates{rate.data()}, y.data(), batch, d, 0.0, 5.0,
//                                        {.method = genai::OdeMethod::Dopri5, .rtol = 1e-4});
//
// One thread integrates one row from t0 to t1 in one launch, every method (fixed-step loops and
// dopri5's accept/reject loop alike), in float. A row's state and its stages are in registers
// for d = 1, 2, 3, 4, 8 (ode_arrays(method) x d floats: 9 d for dopri5); otherwise in a device
// workspace (one slice per resident thread). The call waits for the kernel: the per-row counts
// come back to the host, and a failed row throws genai::Error. Compile the including file with
// nvcc (C++20); with -fmad=false as well (as kernels/ode.cu is) a row's arithmetic is that of
// the same code run in float on the host, bit for bit (tests/ode_gpu_test.cu checks it), while
// nvcc's default contraction into FMAs changes last bits -- and so, near the threshold, some of
// dopri5's decisions.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "genai/buffer.hpp"
#include "genai/detail/device.cuh"
#include "genai/detail/ode.hpp"
#include "genai/nvtx.hpp"
#include "genai/ode.hpp"

namespace genai {
namespace detail {

inline constexpr int kOdeThreads = 128;

// Blocks of kOdeThreads for `batch` rows (the kernels loop over the rest).
inline unsigned ode_blocks(std::int64_t batch) { return cuda::grid_for(batch, kOdeThreads); }

template <class F, OdeMethod M, int D>
__global__ void __launch_bounds__(kOdeThreads)
    ode_registers(const F f, const OdeSetup<float> s, float* y, OdeRow<float>* rows) {
  for (const std::int64_t r : cuda::grid_stride(s.batch)) {
    float w[ode_arrays(M) * D];
#pragma unroll
    for (int j = 0; j < D; ++j) w[j] = y[r * D + j];
    OdeRow<float> st;
    ode_row<float, M, D>(f, s, r, st, w);
#pragma unroll
    for (int j = 0; j < D; ++j) y[r * D + j] = w[j];
    rows[r] = st;
  }
}

// Thread slot i (global thread index) works in work[i * arrays * d ...].
template <class F, OdeMethod M>
__global__ void __launch_bounds__(kOdeThreads)
    ode_workspace(const F f, const OdeSetup<float> s, float* y, OdeRow<float>* rows, float* work) {
  const std::int64_t slot = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  const int d = s.d;
  float* w = work + slot * ode_arrays(M) * d;
  for (const std::int64_t r : cuda::grid_stride(s.batch)) {  // r starts at slot
    for (int j = 0; j < d; ++j) w[j] = y[r * d + j];
    OdeRow<float> st;
    ode_row<float, M, 0>(f, s, r, st, w);
    for (int j = 0; j < d; ++j) y[r * d + j] = w[j];
    rows[r] = st;
  }
}

template <class F, OdeMethod M, int D>
void launch_ode_registers(const Context& ctx, const F& f, const OdeSetup<float>& s, float* y,
                          OdeRow<float>* rows) {
  cuda::launch(ctx, ode_registers<F, M, D>, ode_blocks(s.batch), kOdeThreads, 0, f, s, y, rows);
}

template <class F, OdeMethod M>
void launch_ode_method(const Context& ctx, const F& f, const OdeSetup<float>& s, float* y,
                       OdeRow<float>* rows) {
  switch (s.d) {
    case 1: return launch_ode_registers<F, M, 1>(ctx, f, s, y, rows);
    case 2: return launch_ode_registers<F, M, 2>(ctx, f, s, y, rows);
    case 3: return launch_ode_registers<F, M, 3>(ctx, f, s, y, rows);
    case 4: return launch_ode_registers<F, M, 4>(ctx, f, s, y, rows);
    case 8: return launch_ode_registers<F, M, 8>(ctx, f, s, y, rows);
    default: break;
  }
  const unsigned blocks = ode_blocks(s.batch);
  const std::int64_t slots = std::min<std::int64_t>(s.batch, std::int64_t{blocks} * kOdeThreads);
  Buffer<float> work(ctx, static_cast<std::size_t>(slots * ode_arrays(M) * s.d));  // stream-ordered
  cuda::launch(ctx, ode_workspace<F, M>, blocks, kOdeThreads, 0, f, s, y, rows, work.data());
}

// The rows of `s` on ctx's device (y, rows and the pointers in s are device pointers).
template <class F>
void launch_ode(const Context& ctx, const F& f, const OdeSetup<float>& s, float* y,
                OdeRow<float>* rows) {
  ctx.make_current();
  with_ode_method(s.method, [&](auto method) {
    launch_ode_method<F, decltype(method)::value>(ctx, f, s, y, rows);
  });
}

}  // namespace detail

// Integrates the rows of y [batch x d] (device memory) from t0 to t1 in place with the user's
// right-hand side f on ctx's device, as genai::ode_solve does for a built-in problem;
// trajectory [t_eval.size() x batch x d] device memory (required exactly when opts.t_eval is
// given). Throws ArgumentError, before touching y, for a CPU context (use OdeProblem::custom or
// an OdeFunction there) and everything genai::ode_solve refuses; genai::Error when a row fails.
template <class F>
OdeStats ode_solve_device(const Context& ctx, const F& f, float* y, std::int64_t batch,
                          std::int64_t d, double t0, double t1, const OdeOptions& opts = {},
                          float* trajectory = nullptr) {
  constexpr const char* fn = "genai::ode_solve_device";
  GENAI_NVTX_RANGE(fn);
  if (!ctx.is_cuda())
    detail::throw_argument(fn, "ctx", "must be a CUDA context (on the CPU, give f as an "
                           "OdeFunction or OdeProblem::custom to genai::ode_solve)");
  detail::OdeDeviceRun run = detail::prepare_ode_device(fn, ctx, y, batch, d, t0, t1, opts, trajectory);
  detail::launch_ode(ctx, f, run.setup, y, run.rows.data());
  return detail::finish_ode_device(fn, run);
}

}  // namespace genai
