// Benchmarks of the attention module (kernels/attention.cu, kernels/attention_mma.cu,
// cpu_reference/attention.cpp): scaled dot-product attention, q, k, v [B, H, L, d],
// Hq = Hkv = H, Lq = Lk = L.
//
// Work per call, FlashAttention's convention: flop = 4 B H L^2 d (two GEMMs, QK^T and PV),
// halved for causal; bytes = the compulsory traffic, q, k, v read once and out written once
// (4 B H L d * element size).
//   fp32 (Gpu_Attention): CUDA cores, peak_frac against cuBLAS SGEMM; d in {64, 128},
//     L in {512, 2048}, causal and not, B = 2, H = 8.
//   fp16 / bf16 (Gpu_AttentionFp16 / Gpu_AttentionBf16): tensor cores, peak_frac against the
//     measured cuBLAS fp16 GEMM (fp32 accumulation); FlashAttention's published setting: 16k
//     tokens per batch (B = 16384 / L), hidden 2048 (H = 2048 / d), d in {64, 128}, L from 512
//     to 16384, causal and not.
//   fp32 with the weights output (Gpu_AttentionWeights): the same call plus the second pass that
//     writes exp(s - lse) [B, H, L, L]; bytes add the weights written (4 B H L^2), flop the
//     recomputed logits (2 B H L^2 d, halved for causal). The difference from Gpu_Attention at the
//     same shape is the weights pass.
// Inputs are rotated when one set is smaller than 2x L2. CPU: one small fp32 case.
#include <cstdint>
#include <tuple>
#include <vector>

#include "genai/attention.hpp"
#include "profiling/bench_common.hpp"

namespace {

namespace bench = genai::bench;

struct AttentionInputs {
  std::vector<genai::Buffer<float>> q, k, v, out;  // one entry per rotation set
};

AttentionInputs make_inputs(const genai::Context& ctx, std::int64_t n, int sets) {
  AttentionInputs in;
  for (int s = 0; s < sets; ++s) {
    for (auto* b : {&in.q, &in.k, &in.v}) {
      b->emplace_back(ctx, static_cast<std::size_t>(n));
      genai::fill_normal(ctx, b->back().data(), n, {2000, static_cast<std::uint32_t>(s), 0});
    }
    in.out.emplace_back(ctx, static_cast<std::size_t>(n));
  }
  return in;
}

genai::AttentionShape shape_of(const benchmark::State& state) {
  return {.batch = 2, .q_heads = state.range(0), .kv_heads = state.range(0),
          .q_len = state.range(1), .k_len = state.range(1), .head_dim = state.range(2)};
}

bench::Work work_of(const genai::AttentionShape& s, bool causal) {
  const double heads = static_cast<double>(s.batch * s.q_heads);
  bench::Work w;
  w.flop = 4.0 * heads * s.q_len * s.k_len * s.head_dim * (causal ? 0.5 : 1.0);
  w.bytes = 4.0 * heads * s.q_len * s.head_dim * sizeof(float);
  w.roof = bench::Work::Roof::Sgemm;
  return w;
}

// fp32, with (Gpu_AttentionWeights) or without (Gpu_Attention) the weights output: one weights
// array (>= 16 MiB, written only) shared by the rotation sets.
void gpu_fp32(benchmark::State& state, bool weights) {
  if (!bench::require_gpu(state)) return;
  bench::guarded(state, [&] {
    const genai::AttentionShape s = shape_of(state);
    const bool causal = state.range(3) != 0;
    const genai::Context& ctx = bench::gpu_context();
    const std::int64_t n = s.batch * s.q_heads * s.q_len * s.head_dim;
    const std::int64_t nw = weights ? s.batch * s.q_heads * s.q_len * s.k_len : 0;
    const int sets = bench::l2_rotation_sets(static_cast<std::size_t>(3 * n) * sizeof(float));
    auto& in = bench::cached<AttentionInputs>(std::tuple{n, sets},
                                              [&] { return make_inputs(ctx, n, sets); });
    auto& w = bench::cached<genai::Buffer<float>>(std::tuple{nw}, [&] {
      return genai::Buffer<float>(ctx, static_cast<std::size_t>(nw));
    });
    const auto one_call = [&](std::int64_t c) {
      const std::size_t i = static_cast<std::size_t>(c % sets);
      genai::attention(ctx, in.q[i].data(), in.k[i].data(), in.v[i].data(), s, in.out[i].data(),
                       {.causal = causal}, {.weights = weights ? w.data() : nullptr});
    };
    bench::Work work = work_of(s, causal);
    if (weights) {
      work.bytes += 4.0 * static_cast<double>(nw);
      work.flop *= 1.5;  // QK^T once more
    }
    bench::time_gpu(state, one_call, work);
  });
}

void Gpu_Attention(benchmark::State& state) { gpu_fp32(state, false); }
void Gpu_AttentionWeights(benchmark::State& state) { gpu_fp32(state, true); }

// q, k, v, out in T (fp16 / bf16), drawn in fp32 on the host and rounded; one per rotation set.
template <class T>
struct LowInputs {
  std::vector<genai::Buffer<T>> q, k, v, out;
};

template <class T>
LowInputs<T> make_low_inputs(const genai::Context& ctx, std::int64_t n, int sets) {
  LowInputs<T> in;
  std::vector<float> x(static_cast<std::size_t>(n));
  std::vector<T> h(static_cast<std::size_t>(n));
  std::uint32_t stream = 0;
  for (int s = 0; s < sets; ++s) {
    for (auto* b : {&in.q, &in.k, &in.v}) {
      genai::fill_normal(genai::Context::cpu(), x.data(), n, {2001, stream++, 0});
      for (std::size_t e = 0; e < x.size(); ++e) h[e] = T(x[e]);
      b->emplace_back(ctx, std::span<const T>(h));
    }
    in.out.emplace_back(ctx, static_cast<std::size_t>(n));
  }
  return in;
}

// state: B, H, L, d, causal.
template <class T>
void gpu_low(benchmark::State& state) {
  if (!bench::require_gpu(state)) return;
  bench::guarded(state, [&] {
    const genai::AttentionShape s{.batch = state.range(0), .q_heads = state.range(1),
                                  .kv_heads = state.range(1), .q_len = state.range(2),
                                  .k_len = state.range(2), .head_dim = state.range(3)};
    const bool causal = state.range(4) != 0;
    const genai::Context& ctx = bench::gpu_context();
    const std::int64_t n = s.batch * s.q_heads * s.q_len * s.head_dim;
    const int sets = bench::l2_rotation_sets(static_cast<std::size_t>(3 * n) * sizeof(T));
    auto& in = bench::cached<LowInputs<T>>(std::tuple{n, sets},
                                           [&] { return make_low_inputs<T>(ctx, n, sets); });
    const auto one_call = [&](std::int64_t c) {
      const std::size_t i = static_cast<std::size_t>(c % sets);
      genai::attention(ctx, in.q[i].data(), in.k[i].data(), in.v[i].data(), s, in.out[i].data(),
                       {.causal = causal});
    };
    bench::Work w = work_of(s, causal);
    w.bytes = w.bytes / sizeof(float) * sizeof(T);
    w.roof = bench::Work::Roof::Fp16Gemm;
    bench::time_gpu(state, one_call, w);
  });
}

void Gpu_AttentionFp16(benchmark::State& state) { gpu_low<genai::fp16>(state); }
void Gpu_AttentionBf16(benchmark::State& state) { gpu_low<genai::bf16>(state); }

void Cpu_Attention(benchmark::State& state) {
  bench::guarded(state, [&] {
    const genai::AttentionShape s = shape_of(state);
    const bool causal = state.range(3) != 0;
    const genai::Context ctx = genai::Context::cpu();
    const std::int64_t n = s.batch * s.q_heads * s.q_len * s.head_dim;
    auto& in = bench::cached<AttentionInputs>(std::tuple{n}, [&] { return make_inputs(ctx, n, 1); });
    bench::time_cpu(state,
                    [&] {
                      genai::attention(ctx, in.q[0].data(), in.k[0].data(), in.v[0].data(), s,
                                       in.out[0].data(), {.causal = causal});
                    },
                    work_of(s, causal));
  });
}

void gpu_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"H", "L", "d", "causal"});
  for (std::int64_t d : {64, 128})
    for (std::int64_t L : {512, 2048})
      for (int causal : {0, 1}) b->Args({8, L, d, causal});
}

// 16k tokens per batch, hidden 2048: B = 16384 / L, H = 2048 / d.
void gpu_low_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"B", "H", "L", "d", "causal"});
  for (std::int64_t d : {64, 128})
    for (std::int64_t L : {512, 1024, 2048, 4096, 8192, 16384})
      for (int causal : {0, 1}) b->Args({16384 / L, 2048 / d, L, d, causal});
}

BENCHMARK(Cpu_Attention)
    ->ArgNames({"H", "L", "d", "causal"})
    ->Args({4, 256, 64, 0})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(Gpu_Attention)->Apply(gpu_shapes)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(Gpu_AttentionWeights)->Apply(gpu_shapes)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(Gpu_AttentionFp16)->Apply(gpu_low_shapes)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(Gpu_AttentionBf16)->Apply(gpu_low_shapes)->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace
