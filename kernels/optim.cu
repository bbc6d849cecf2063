// Optimizer kernels: multi-tensor Adam / AdamW / AMSGrad, SGD and the weights' EMA, penalties, the
// L1 proximal step.
//
// Multi-tensor apply (as PyTorch's fused optimizers): up to 64 tensors per launch, their
// pointers and sizes in the kernel's arguments (a __grid_constant__ struct of ~3.4 KB: no
// host-to-device copy, nothing to synchronise, capturable in a CUDA graph). Each tensor is cut
// into work units of 16 Ki elements (so that one launch of 64 tensors of 64 Ki still has 256
// blocks); the grid covers the units of all tensors, a block finds its tensor by a scan of the
// units' prefix sums (<= 64 entries) and streams its unit with 16-byte loads and stores
// (scalar ones for a tensor whose arrays are not all 16-byte aligned). The
// per-element update is genai/detail/optim.hpp's, in correctly rounded float operations: the
// same bits as the CPU reference.
//
// Memory-bound: Adam moves 28 bytes per fp32 parameter (reads p, g, m, v; writes p, m, v;
// AMSGrad 36), SGD with momentum 20 (reads p, g, b; writes p, b), the EMA 12 (reads ema, p;
// writes ema), for ~15 flops and one sqrt
// and one divide: the aim is >= 90% of the D2D copy bandwidth on large parameter lists.
#include <array>

#include "genai/buffer.hpp"
#include "kernels/common.cuh"
#include "kernels/optim.cuh"

namespace genai::cuda {
namespace {

constexpr int kMaxTensors = 64;
constexpr std::int64_t kUnit = 16384;  // elements per work unit (a multiple of 4 * kThreads)
constexpr int kThreads = 512;

// kArrays arrays per tensor; a null array is neither read nor written.
template <int kArrays>
struct TensorList {
  float* array[kArrays][kMaxTensors];
  std::int64_t size[kMaxTensors];
  int unit_start[kMaxTensors + 1];  // tensor i owns units [unit_start[i], unit_start[i + 1])
  bool vec[kMaxTensors];            // all of tensor i's arrays 16-byte aligned
  int count;
};

struct AdamUpdate {
  detail::AdamCoeffs k;
  static constexpr unsigned kWritten = 0b11101;  // param, m, v, v_max (not grad)
  __device__ void operator()(float (&a)[5][4], int l) const {
    detail::adam_element(k, a[0][l], a[1][l], a[2][l], a[3][l], a[4][l]);
  }
};
struct SgdUpdate {
  detail::SgdCoeffs k;
  static constexpr unsigned kWritten = 0b101;  // param, momentum buffer
  __device__ void operator()(float (&a)[3][4], int l) const {
    detail::sgd_element(k, a[0][l], a[1][l], a[2][l]);
  }
};

struct EmaUpdate {
  float one_minus_decay;
  static constexpr unsigned kWritten = 0b01;  // ema (not param)
  __device__ void operator()(float (&a)[2][4], int l) const {
    detail::ema_element(one_minus_decay, a[0][l], a[1][l]);
  }
};

template <int kArrays, class Update>
__global__ void __launch_bounds__(kThreads)
    multi_tensor_kernel(const __grid_constant__ TensorList<kArrays> list, Update update) {
  for (int u = blockIdx.x; u < list.unit_start[list.count]; u += gridDim.x) {
    int t = 0;
    while (list.unit_start[t + 1] <= u) ++t;
    const std::int64_t begin = static_cast<std::int64_t>(u - list.unit_start[t]) * kUnit;
    const std::int64_t end = begin + kUnit < list.size[t] ? begin + kUnit : list.size[t];
    const bool vec = list.vec[t];
    for (std::int64_t i = begin + threadIdx.x * 4; i < end; i += kThreads * 4) {
      const int count = static_cast<int>(end - i < 4 ? end - i : 4);
      float a[kArrays][4] = {};
#pragma unroll
      for (int k = 0; k < kArrays; ++k)
        if (list.array[k][t]) load4(list.array[k][t] + i, count, vec && count == 4, a[k]);
#pragma unroll
      for (int l = 0; l < 4; ++l)
        if (l < count) update(a, l);
#pragma unroll
      for (int k = 0; k < kArrays; ++k) {
        if (!((Update::kWritten >> k) & 1u) || !list.array[k][t]) continue;
        if (vec && count == 4) {
          store4(list.array[k][t] + i, 4, true, a[k]);
        } else {
#pragma unroll
          for (int l = 0; l < 4; ++l)
            if (l < count) list.array[k][t][i + l] = a[k][l];
        }
      }
    }
  }
}

static_assert(sizeof(TensorList<5>) + sizeof(AdamUpdate) <= 4000,
              "the tensor list must fit the 4 KB of kernel arguments");

// Launches `update` over the tensors, kMaxTensors at a time; arrays_of(i) gives tensor i's
// kArrays pointers (null where unused) and size_of(i) its size.
template <int kArrays, class Update, class Arrays, class Size>
void for_tensors(const Context& ctx, std::size_t n, Arrays arrays_of, Size size_of,
                 Update update) {
  TensorList<kArrays> list{};
  const auto flush = [&] {
    if (list.count == 0) return;
    const int units = list.unit_start[list.count];
    launch(ctx, multi_tensor_kernel<kArrays, Update>, grid_for(units, 1), kThreads, 0, list,
           update);
    list = {};
  };
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t size = size_of(i);
    if (size == 0) continue;
    const auto ptrs = arrays_of(i);
    const int c = list.count;
    bool vec = true;
    for (int k = 0; k < kArrays; ++k) {
      list.array[k][c] = ptrs[k];
      vec = vec && (!ptrs[k] || aligned16(ptrs[k]));
    }
    list.size[c] = size;
    list.vec[c] = vec;
    list.unit_start[c + 1] = list.unit_start[c] + static_cast<int>(ceil_div(size, kUnit));
    list.count = c + 1;
    if (list.count == kMaxTensors) flush();
  }
  flush();
}

// ---- penalties ----------------------------------------------------------------------------------

constexpr int kPenaltyBlocks = 256;  // fixed, so the sums' order (and bits) never change
constexpr int kPenaltyThreads = 256;

__global__ void __launch_bounds__(kPenaltyThreads)
    penalty_kernel(Penalty penalty, const float* __restrict__ w, std::int64_t n, float coeff,
                   float* __restrict__ grad, double* __restrict__ partial) {
  __shared__ double scratch[kPenaltyThreads / kWarp];
  double acc = 0;
  for (const std::int64_t i : grid_stride(n)) {
    const float x = w[i];
    acc += penalty == Penalty::L1 ? fabs(static_cast<double>(x)) : static_cast<double>(x) * x;
    if (grad) grad[i] = rng::detail::add(grad[i], detail::penalty_grad(penalty, coeff, x));
  }
  acc = block_reduce<kPenaltyThreads>(acc, Sum{}, 0.0, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ void __launch_bounds__(kPenaltyBlocks)
    penalty_total_kernel(const double* __restrict__ partial, float lambda, float* value) {
  __shared__ double scratch[kPenaltyBlocks / kWarp];
  const double s = block_reduce<kPenaltyBlocks>(partial[threadIdx.x], Sum{}, 0.0, scratch);
  if (threadIdx.x == 0) value[0] = static_cast<float>(lambda * s);
}

__global__ void __launch_bounds__(kThreads)
    soft_threshold_kernel(float* w, std::int64_t n, float threshold) {
  for (const std::int64_t i : grid_stride(n)) w[i] = detail::soft_threshold(w[i], threshold);
}

}  // namespace

void adam_step(const Context& ctx, std::span<const AdamTensor> tensors,
               const detail::AdamCoeffs& k) {
  for_tensors<5>(
      ctx, tensors.size(),
      [&](std::size_t i) {
        const AdamTensor& t = tensors[i];
        return std::array<float*, 5>{t.param, const_cast<float*>(t.grad), t.m, t.v,
                                     k.amsgrad ? t.v_max : nullptr};
      },
      [&](std::size_t i) { return tensors[i].size; }, AdamUpdate{k});
}

void sgd_step(const Context& ctx, std::span<const SgdTensor> tensors,
              const detail::SgdCoeffs& k) {
  for_tensors<3>(
      ctx, tensors.size(),
      [&](std::size_t i) {
        const SgdTensor& t = tensors[i];
        return std::array<float*, 3>{t.param, const_cast<float*>(t.grad),
                                     k.momentum != 0.0f ? t.momentum_buffer : nullptr};
      },
      [&](std::size_t i) { return tensors[i].size; }, SgdUpdate{k});
}

void ema_update(const Context& ctx, std::span<const EmaTensor> tensors, float one_minus_decay) {
  for_tensors<2>(
      ctx, tensors.size(),
      [&](std::size_t i) {
        return std::array<float*, 2>{tensors[i].ema, const_cast<float*>(tensors[i].param)};
      },
      [&](std::size_t i) { return tensors[i].size; }, EmaUpdate{one_minus_decay});
}

void add_penalty(const Context& ctx, Penalty penalty, const float* w, std::int64_t n,
                 float lambda, float* value, float* grad) {
  Buffer<double> partial(ctx, kPenaltyBlocks);
  const float coeff = penalty == Penalty::L2 ? 2.0f * lambda : lambda;
  launch(ctx, penalty_kernel, kPenaltyBlocks, kPenaltyThreads, 0, penalty, w, n, coeff, grad,
         partial.data());
  if (value) launch(ctx, penalty_total_kernel, 1, kPenaltyBlocks, 0, partial.data(), lambda, value);
}

void l1_proximal_step(const Context& ctx, float* w, std::int64_t n, float threshold) {
  launch(ctx, soft_threshold_kernel, grid_for(n, kThreads), kThreads, 0, w, n, threshold);
}

}  // namespace genai::cuda
