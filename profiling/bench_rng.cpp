// Benchmarks of the rng fills (kernels/rng.cu, cpu_reference/rng.cpp): genai::fill_uniform and
// genai::fill_normal of n floats.
//
// Work per call: bytes = n*4 written; nothing is read. A write-only stream's roof is the DRAM
// write bandwidth, which HBM draws from the same budget as reads, so peak_frac compares it
// with the D2D copy's read + write bytes/s (see bench_info.cpp). The arithmetic per 16 bytes
// (one Philox4x32-10 call, and for normals two Box-Muller transforms with correctly rounded
// log / sqrt / sin / cos) is reported nowhere as flop: integer and transcendental work, not
// FMAs; if fill_normal falls short of fill_uniform, that is where the time goes.
//
// Each call draws a different step of the same key, so no call can reuse another's numbers.
// The GPU output (2^28 floats, 1 GiB) is far larger than L2.
#include <cstdint>
#include <vector>

#include "profiling/bench_common.hpp"

namespace {

namespace bench = genai::bench;

enum class Dist { Uniform, Normal };

void fill(Dist d, const genai::Context& ctx, float* out, std::int64_t n, std::int64_t call) {
  const genai::RngKey key{0x5EED, genai::rng::streams::user, static_cast<std::uint32_t>(call)};
  if (d == Dist::Uniform)
    genai::fill_uniform(ctx, out, n, key);
  else
    genai::fill_normal(ctx, out, n, key);
}

bench::Work work_of(std::int64_t n) {
  bench::Work w;
  w.bytes = static_cast<double>(n) * sizeof(float);
  return w;
}

void Gpu_Rng(benchmark::State& state, Dist d) {
  if (!bench::require_gpu(state)) return;
  bench::guarded(state, [&] {
    const std::int64_t n = state.range(0);
    const genai::Context& ctx = bench::gpu_context();
    const int sets = bench::l2_rotation_sets(static_cast<std::size_t>(n) * sizeof(float));
    auto& out = bench::cached<std::vector<genai::Buffer<float>>>(std::pair{n, sets}, [&] {
      std::vector<genai::Buffer<float>> v;
      for (int s = 0; s < sets; ++s) v.emplace_back(ctx, static_cast<std::size_t>(n));
      return v;
    });
    const auto one_call = [&](std::int64_t c) {
      fill(d, ctx, out[static_cast<std::size_t>(c % sets)].data(), n, c);
    };
    bench::time_gpu(state, one_call, work_of(n));
  });
}

void Cpu_Rng(benchmark::State& state, Dist d) {
  bench::guarded(state, [&] {
    const std::int64_t n = state.range(0);
    const genai::Context ctx = genai::Context::cpu();
    auto& out = bench::cached<genai::Buffer<float>>(
        n, [&] { return genai::Buffer<float>(ctx, static_cast<std::size_t>(n)); });
    std::int64_t c = 0;
    bench::time_cpu(state, [&] { fill(d, ctx, out.data(), n, c++); }, work_of(n));
  });
}

BENCHMARK_CAPTURE(Cpu_Rng, fill_uniform, Dist::Uniform)
    ->ArgName("n")->Arg(1 << 22)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Cpu_Rng, fill_normal, Dist::Normal)
    ->ArgName("n")->Arg(1 << 22)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_CAPTURE(Gpu_Rng, fill_uniform, Dist::Uniform)
    ->ArgName("n")->Arg(1 << 28)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(Gpu_Rng, fill_normal, Dist::Normal)
    ->ArgName("n")->Arg(1 << 28)->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
