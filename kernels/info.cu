// Row reductions of the info module: one pass over [rows x K], one value per row.
//
// Memory-bound: each element is read once (4 or 8 bytes) for a few flops and one log, so the
// goal is the device's read bandwidth. A warp owns a row when K <= 1024 (8 rows per 256-thread
// block), a whole block owns a row otherwise; loads are coalesced along the row, partial sums
// go through warp shuffles and, for block rows, one shared-memory step. The distribution check
// (entries >= 0 and finite, row sums within tolerance) rides along in the same pass.
#include <cuda_runtime.h>

#include <type_traits>


#include "genai/buffer.hpp"
#include "kernels/common.cuh"
#include "kernels/info.cuh"

namespace genai::cuda {
namespace {

using detail::InfoOp;

constexpr int kThreads = 256;
constexpr unsigned long long kNoBadRow = ~0ull;

// Trivially constructible (it lives in __shared__ too); value-initialise: Acc a = {}.
struct Acc {
  float value, sum_p, sum_q;
  unsigned bad;  // an entry negative, NaN or inf

  __device__ Acc operator+(const Acc& o) const {
    return {value + o.value, sum_p + o.sum_p, sum_q + o.sum_q, bad | o.bad};
  }
};

// Acc through the warp reductions of kernels/common.cuh (found by argument-dependent lookup).
__device__ __forceinline__ Acc shfl_xor(const Acc& a, int offset) {
  return {cuda::shfl_xor(a.value, offset), cuda::shfl_xor(a.sum_p, offset),
          cuda::shfl_xor(a.sum_q, offset), cuda::shfl_xor(a.bad, offset)};
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
  __shared__ Acc partial[kThreads / kWarp];
  const int lane = threadIdx.x % GROUP;
  for (const std::int64_t row : grid_stride(rows, GROUP)) {
    const float* pr = p + row * K;
    const float* qr = detail::info_uses_q(OP) ? q + row * K : nullptr;
    Acc a = {};
    for (std::int64_t k = lane; k < K; k += GROUP) {
      const float pv = __ldg(pr + k);
      const float qv = detail::info_uses_q(OP) ? __ldg(qr + k) : 0.0f;
      a.value += detail::info_term<float>(OP, pv, qv);
      if (check.enabled) {
        a.sum_p += pv;
        a.sum_q += qv;
        a.bad |= !(pv >= 0.0f && pv < INFINITY) ||
                 (detail::info_uses_q(OP) && !(qv >= 0.0f && qv < INFINITY));
      }
    }
    if constexpr (GROUP == kWarp)
      a = warp_reduce(a, Sum{});
    else
      a = block_reduce<kThreads>(a, Sum{}, Acc{}, partial);
    if (lane == 0) {
      out[row] = a.value * scale;
      if (check.enabled &&
          (a.bad || fabsf(a.sum_p - 1.0f) > check.tolerance ||
           (detail::info_uses_q(OP) && fabsf(a.sum_q - 1.0f) > check.tolerance)))
        atomicMin(check.first_bad_row, static_cast<unsigned long long>(row));
    }
  }
}

template <InfoOp OP>
void launch_op(const Context& ctx, const float* p, const float* q, std::int64_t rows,
            std::int64_t K, float scale, float* out, Check check) {
  if (K <= 1024)
    launch(ctx, info_kernel<OP, kWarp>, grid_for(rows, kThreads / kWarp), kThreads, 0, p, q, rows,
           K, scale, out, check);
  else
    launch(ctx, info_kernel<OP, kThreads>, grid_for(rows, 1), kThreads, 0, p, q, rows, K, scale,
           out, check);
}

void dispatch(InfoOp op, const Context& ctx, const float* p, const float* q, std::int64_t rows,
              std::int64_t K, float scale, float* out, Check check) {
  auto run = [&](auto kernel_op) {
    launch_op<decltype(kernel_op)::value>(ctx, p, q, rows, K, scale, out, check);
  };
  switch (op) {
    case InfoOp::L1: return run(std::integral_constant<InfoOp, InfoOp::L1>{});
    case InfoOp::L2Squared: return run(std::integral_constant<InfoOp, InfoOp::L2Squared>{});
    case InfoOp::Entropy: return run(std::integral_constant<InfoOp, InfoOp::Entropy>{});
    case InfoOp::KL: return run(std::integral_constant<InfoOp, InfoOp::KL>{});
    case InfoOp::CrossEntropy: return run(std::integral_constant<InfoOp, InfoOp::CrossEntropy>{});
  }
}

}  // namespace

std::int64_t info_rows(const Context& ctx, InfoOp op, const float* p, const float* q,
                       std::int64_t rows, std::int64_t K, LogBase base, bool validate,
                       double sum_tolerance, float* out) {
  const float scale =
      detail::info_is_logarithmic(op) && base == LogBase::Bits ? 1.4426950408889634f : 1.0f;
  ctx.make_current();
  if (!validate) {
    dispatch(op, ctx, p, q, rows, K, scale, out, Check{false, 0.0f, nullptr});
    return -1;
  }
  // Results go to a workspace and reach `out` only when every row passed.
  Buffer<float> result(ctx, rows);
  Buffer<unsigned long long> first_bad(ctx, 1);
  first_bad.fill_bytes(0xFF);  // kNoBadRow
  dispatch(op, ctx, p, q, rows, K, scale, result.data(),
           Check{true, static_cast<float>(sum_tolerance), first_bad.data()});
  const unsigned long long bad = first_bad.to_host()[0];
  if (bad != kNoBadRow) return static_cast<std::int64_t>(bad);
  GENAI_CUDA_CHECK(cudaMemcpyAsync(out, result.data(), rows * sizeof(float),
                                   cudaMemcpyDeviceToDevice, ctx.stream()));
  return -1;
}

}  // namespace genai::cuda
