// Benchmarks of the info module (kernels/info.cu, cpu_reference/info.cpp): entropy,
// kl_divergence and l1_norm over row-major [rows x K] inputs, one value per row.
//
// Work per call: bytes = rows*K*4 for each input read (p; p and q for KL) + rows*4 for the
// output written -- the compulsory DRAM traffic. No flop count: the cost is the bytes (and one
// log per element), not arithmetic.
//
// Roofline convention: these kernels only read (the output is 1/K of the input), so their
// roof is the DRAM read bandwidth. peak_frac divides their bytes/s by the D2D copy's bytes/s,
// where the copy counts the bytes it read plus the bytes it wrote: HBM serves reads and writes
// from one budget, and a read-only stream reaches about the same total bytes/s as a copy.
//
// GPU shapes cover both launch paths of kernels/info.cu:
//   K <= 1024, a warp per row:  1M x 16 (short rows: half of each warp idles, shuffles
//                               dominate) and 64Ki x 1024 (the warp path at its widest);
//   K > 1024, a block per row:  16Ki x 4096 and 1Ki x 65536 (few, long rows).
// Every input is >= 64 MiB; l2_rotation_sets adds copies when one is not 2x the L2.
//
// validate:1 runs the fused distribution check (InfoOptions::validate): the timed call then
// includes the workspace, one stream synchronisation for the verdict, and the copy of the
// result into `out`; bytes stays the compulsory traffic, so the validate:0/1 rows compare
// directly. l1_norm has no validation.
#include <cstdint>
#include <tuple>
#include <vector>

#include "profiling/bench_common.hpp"

namespace {

namespace bench = genai::bench;

enum class Op { Entropy, KL, L1 };

struct InfoInputs {
  std::vector<genai::Buffer<float>> p, q, out;  // one entry per rotation set
};

InfoInputs make_inputs(const genai::Context& ctx, std::int64_t rows, std::int64_t K, int sets) {
  InfoInputs in;
  for (int s = 0; s < sets; ++s) {
    in.p.push_back(bench::random_distributions(ctx, rows, K, 1000 + 2 * s));
    in.q.push_back(bench::random_distributions(ctx, rows, K, 1001 + 2 * s));
    in.out.emplace_back(ctx, static_cast<std::size_t>(rows));
  }
  return in;
}

void call(Op op, const genai::Context& ctx, InfoInputs& in, std::size_t set,
          std::int64_t rows, std::int64_t K, const genai::InfoOptions& opts) {
  const float* p = in.p[set].data();
  const float* q = in.q[set].data();
  float* out = in.out[set].data();
  switch (op) {
    case Op::Entropy: genai::entropy(ctx, p, rows, K, out, opts); break;
    case Op::KL: genai::kl_divergence(ctx, p, q, rows, K, out, opts); break;
    case Op::L1: genai::l1_norm(ctx, p, rows, K, out); break;
  }
}

bench::Work work_of(Op op, std::int64_t rows, std::int64_t K) {
  const double input = static_cast<double>(rows) * static_cast<double>(K) * sizeof(float);
  bench::Work w;
  w.bytes = (op == Op::KL ? 2 : 1) * input + static_cast<double>(rows) * sizeof(float);
  return w;
}

void Gpu_Info(benchmark::State& state, Op op) {
  if (!bench::require_gpu(state)) return;
  bench::guarded(state, [&] {
    const std::int64_t rows = state.range(0), K = state.range(1);
    genai::InfoOptions opts;
    opts.validate = state.range(2) != 0;
    const genai::Context& ctx = bench::gpu_context();
    // Sets sized for p alone (entropy, l1); KL reads twice as much, so it rotates at least as
    // widely as it needs to.
    const int sets = bench::l2_rotation_sets(static_cast<std::size_t>(rows * K) * sizeof(float));
    auto& in = bench::cached<InfoInputs>(std::tuple{rows, K, sets},
                                         [&] { return make_inputs(ctx, rows, K, sets); });
    const auto one_call = [&](std::int64_t c) {
      call(op, ctx, in, static_cast<std::size_t>(c % sets), rows, K, opts);
    };
    bench::time_gpu(state, one_call, work_of(op, rows, K));
  });
}

void Cpu_Info(benchmark::State& state, Op op) {
  bench::guarded(state, [&] {
    const std::int64_t rows = state.range(0), K = state.range(1);
    genai::InfoOptions opts;
    opts.validate = state.range(2) != 0;
    const genai::Context ctx = genai::Context::cpu();
    auto& in = bench::cached<InfoInputs>(std::tuple{rows, K},
                                         [&] { return make_inputs(ctx, rows, K, 1); });
    bench::time_cpu(state, [&] { call(op, ctx, in, 0, rows, K, opts); }, work_of(op, rows, K));
  });
}

constexpr std::int64_t kGpuShapes[][2] = {
    {16384, 4096}, {1 << 20, 16}, {65536, 1024}, {1024, 65536}};
constexpr std::int64_t kCpuShapes[][2] = {{4096, 1024}};

void gpu_validated(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "K", "validate"});
  for (const auto& s : kGpuShapes)
    for (int v : {0, 1}) b->Args({s[0], s[1], v});
}
void gpu_plain(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "K", "validate"});
  for (const auto& s : kGpuShapes) b->Args({s[0], s[1], 0});
}
void cpu_validated(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "K", "validate"});
  for (const auto& s : kCpuShapes)
    for (int v : {0, 1}) b->Args({s[0], s[1], v});
}
void cpu_plain(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "K", "validate"});
  for (const auto& s : kCpuShapes) b->Args({s[0], s[1], 0});
}

BENCHMARK_CAPTURE(Cpu_Info, entropy, Op::Entropy)
    ->Apply(cpu_validated)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Cpu_Info, kl_divergence, Op::KL)
    ->Apply(cpu_validated)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Cpu_Info, l1_norm, Op::L1)
    ->Apply(cpu_plain)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_CAPTURE(Gpu_Info, entropy, Op::Entropy)
    ->Apply(gpu_validated)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(Gpu_Info, kl_divergence, Op::KL)
    ->Apply(gpu_validated)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(Gpu_Info, l1_norm, Op::L1)
    ->Apply(gpu_plain)->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
