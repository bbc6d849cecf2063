// Row reductions of the info module: one pass over [rows x K], one value per row.
//
// Memory-bound: each element is read once (4 or 8 bytes) for a few flops and one log, so the
// goal is the device's read bandwidth. A warp owns a row when K <= 1024 (8 rows per 256-thread
// block), a whole block owns a row otherwise; loads are coalesced along the row, partial sums
// go through warp shuffles and, for block rows, one shared-memory step. The distribution check
// (entries >= 0 and finite, row sums within tolerance) rides along in the same pass.
#include <cuda_runtime.h>

#include <cmath>
#include <vector>

#include "genai/buffer.hpp"
#include "genai/cuda_check.hpp"
#include "kernels/info.cuh"
#include "kernels/launch.cuh"

namespace genai::cuda {
namespace {

using ref::InfoOp;

constexpr int kThreads = 256;
constexpr unsigned long long kNoBadRow = ~0ull;

template <InfoOp OP>
constexpr bool uses_q = OP == InfoOp::KL || OP == InfoOp::CrossEntropy;

template <InfoOp OP>
__device__ __forceinline__ float term(float p, float q) {
  if constexpr (OP == InfoOp::L1) return fabsf(p);
  if constexpr (OP == InfoOp::L2Squared) return p * p;
  if constexpr (OP == InfoOp::Entropy) return p > 0.0f ? -p * logf(p) : 0.0f;
  if constexpr (OP == InfoOp::KL) return p > 0.0f ? p * (logf(p) - logf(q)) : 0.0f;  // q=0: +inf
  if constexpr (OP == InfoOp::CrossEntropy) return p > 0.0f ? -p * logf(q) : 0.0f;
}

// Trivially constructible (it lives in __shared__ too); value-initialise: Acc a = {}.
struct Acc {
  float value, sum_p, sum_q;
  unsigned bad;  // an entry negative, NaN or inf

  __device__ void add(const Acc& o) {
    value += o.value;
    sum_p += o.sum_p;
    sum_q += o.sum_q;
    bad |= o.bad;
  }
};

__device__ __forceinline__ Acc warp_sum(Acc a) {
  for (int offset = 16; offset > 0; offset /= 2) {
    Acc o = {};
    o.value = __shfl_xor_sync(0xffffffffu, a.value, offset);
    o.sum_p = __shfl_xor_sync(0xffffffffu, a.sum_p, offset);
    o.sum_q = __shfl_xor_sync(0xffffffffu, a.sum_q, offset);
    o.bad = __shfl_xor_sync(0xffffffffu, a.bad, offset);
    a.add(o);
  }
  return a;
}

struct Check {
  bool enabled;
  float tolerance;
  unsigned long long* first_bad_row;  // kNoBadRow when every row passed
};

// GROUP threads reduce one row: 32 (a warp) or kThreads (the block).
template <InfoOp OP, int GROUP>
__global__ void __launch_bounds__(kThreads)
    info_kernel(const float* __restrict__ p, const float* __restrict__ q, std::int64_t rows,
                std::int64_t K, float scale, float* __restrict__ out, Check check) {
  constexpr int kRowsPerBlock = kThreads / GROUP;
  __shared__ Acc partial[kThreads / 32];
  const int lane = threadIdx.x % GROUP;
  for (std::int64_t row = blockIdx.x * static_cast<std::int64_t>(kRowsPerBlock) +
                          threadIdx.x / GROUP;
       row < rows; row += static_cast<std::int64_t>(gridDim.x) * kRowsPerBlock) {
    const float* pr = p + row * K;
    const float* qr = uses_q<OP> ? q + row * K : nullptr;
    Acc a = {};
    for (std::int64_t k = lane; k < K; k += GROUP) {
      const float pv = __ldg(pr + k);
      const float qv = uses_q<OP> ? __ldg(qr + k) : 0.0f;
      a.value += term<OP>(pv, qv);
      if (check.enabled) {
        a.sum_p += pv;
        a.sum_q += qv;
        a.bad |= !(pv >= 0.0f && pv < INFINITY) || (uses_q<OP> && !(qv >= 0.0f && qv < INFINITY));
      }
    }
    a = warp_sum(a);
    if constexpr (GROUP > 32) {  // combine the block's warps
      if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = a;
      __syncthreads();
      if (threadIdx.x < 32) {
        a = threadIdx.x < kThreads / 32 ? partial[threadIdx.x] : Acc{};  // zeros
        a = warp_sum(a);
      }
      __syncthreads();
    }
    if (lane == 0) {
      out[row] = a.value * scale;
      if (check.enabled &&
          (a.bad || fabsf(a.sum_p - 1.0f) > check.tolerance ||
           (uses_q<OP> && fabsf(a.sum_q - 1.0f) > check.tolerance)))
        atomicMin(check.first_bad_row, static_cast<unsigned long long>(row));
    }
  }
}

template <InfoOp OP>
void launch(const Context& ctx, const float* p, const float* q, std::int64_t rows,
            std::int64_t K, float scale, float* out, Check check) {
  if (K <= 1024) {
    info_kernel<OP, 32><<<grid_for(rows, kThreads / 32), kThreads, 0, ctx.stream()>>>(
        p, q, rows, K, scale, out, check);
  } else {
    info_kernel<OP, kThreads><<<grid_for(rows, 1), kThreads, 0, ctx.stream()>>>(
        p, q, rows, K, scale, out, check);
  }
  GENAI_LAUNCH_CHECK();
}

void dispatch(InfoOp op, const Context& ctx, const float* p, const float* q, std::int64_t rows,
              std::int64_t K, float scale, float* out, Check check) {
  switch (op) {
    case InfoOp::L1: return launch<InfoOp::L1>(ctx, p, q, rows, K, scale, out, check);
    case InfoOp::L2Squared: return launch<InfoOp::L2Squared>(ctx, p, q, rows, K, scale, out, check);
    case InfoOp::Entropy: return launch<InfoOp::Entropy>(ctx, p, q, rows, K, scale, out, check);
    case InfoOp::KL: return launch<InfoOp::KL>(ctx, p, q, rows, K, scale, out, check);
    case InfoOp::CrossEntropy:
      return launch<InfoOp::CrossEntropy>(ctx, p, q, rows, K, scale, out, check);
  }
}

// Copies row `row` of a [rows x K] device array to the host.
std::vector<float> host_row(const Context& ctx, const float* a, std::int64_t row, std::int64_t K) {
  std::vector<float> h(K);
  detail::copy_bytes(ctx, h.data(), Device::CPU, a + row * K, Device::CUDA, K * sizeof(float));
  return h;
}

}  // namespace

void info_rows(const Context& ctx, const char* fn, InfoOp op, const float* p, const float* q,
               std::int64_t rows, std::int64_t K, LogBase base, bool validate,
               double sum_tolerance, float* out) {
  const bool logarithmic = op == InfoOp::Entropy || op == InfoOp::KL || op == InfoOp::CrossEntropy;
  const float scale = logarithmic && base == LogBase::Bits ? 1.4426950408889634f : 1.0f;
  ctx.make_current();
  if (!validate) {
    dispatch(op, ctx, p, q, rows, K, scale, out, Check{false, 0.0f, nullptr});
    return;
  }
  // Results go to a workspace and reach `out` only when every row passed.
  Buffer<float> result(ctx, rows);
  Buffer<unsigned long long> first_bad(ctx, 1);
  first_bad.fill_bytes(0xFF);  // kNoBadRow
  dispatch(op, ctx, p, q, rows, K, scale, result.data(),
           Check{true, static_cast<float>(sum_tolerance), first_bad.data()});
  const unsigned long long bad = first_bad.to_host()[0];
  if (bad != kNoBadRow) {
    const auto row = static_cast<std::int64_t>(bad);
    ref::check_distributions(fn, "p", host_row(ctx, p, row, K).data(), 1, K, sum_tolerance, row);
    if (q) ref::check_distributions(fn, "q", host_row(ctx, q, row, K).data(), 1, K, sum_tolerance, row);
    // float (device) and double (host) sums can disagree right at the tolerance.
    detail::throw_argument(fn, "p", "row ", row, " failed the distribution check on the device",
                           " (sum off 1 by about sum_tolerance ", sum_tolerance, ")");
  }
  GENAI_CUDA_CHECK(cudaMemcpyAsync(out, result.data(), rows * sizeof(float),
                                   cudaMemcpyDeviceToDevice, ctx.stream()));
}

}  // namespace genai::cuda
