// Benchmarks of the autoencoder module: one training epoch of C1's VAE at k = 32 -- encoder
// 784 -> 512 -> 256 -> 64 (mu, log sigma^2), decoder 32 -> 256 -> 512 -> 784, ReLU, Bernoulli
// decoder, Adam -- over 60 000 images of 28 x 28 in batches of 256 (235 steps; the data resident
// on the device, each batch gathered by the shuffled order, as Autoencoder::train_epoch does).
// The images are uniform noise in [0, 1] (the time does not depend on the pixels), so the
// benchmark needs no data set. flop = 6 x 60000 x the MACs of both MLPs, less the encoder's first
// layer's dx (2 x 60000 x 784 x 512): compute-bound on the GEMMs; peak_frac against SGEMM.
// epoch_s = seconds per epoch. The peer (profiling/peers/autoencoder_peers.py) trains the same
// model in PyTorch eager (float32; CPU and GPU) on the same shapes: its vae_epoch rows.
#include <cstdint>
#include <tuple>

#include "profiling/bench_common.hpp"

namespace {

namespace bench = genai::bench;

constexpr std::int64_t kImages = 60000, kPixels = 784;

struct EpochInputs {
  genai::Autoencoder model;
  genai::Buffer<float> data;
  std::int64_t epoch = 0;
};

genai::AutoencoderOptions vae(std::int64_t k) {
  return {.input_dim = kPixels, .hidden = {512, 256}, .latent_dim = k, .variational = true,
          .reconstruction = genai::Reconstruction::BernoulliLogits, .seed = 1};
}

EpochInputs make_epoch(const genai::Context& ctx, std::int64_t k) {
  EpochInputs e{genai::Autoencoder(ctx, vae(k)), genai::Buffer<float>(ctx, kImages * kPixels)};
  genai::fill_uniform(ctx, e.data.data(), kImages * kPixels, {2});
  return e;
}

bench::Work epoch_work(std::int64_t k) {
  const double macs = kPixels * 512.0 + 512.0 * 256 + 256.0 * 2 * k   // encoder
                      + k * 256.0 + 256.0 * 512 + 512.0 * kPixels;     // decoder
  bench::Work w;
  w.flop = 2.0 * kImages * (3 * macs - kPixels * 512.0);
  w.bytes = 4.0 * kImages * kPixels;  // the images, once
  w.roof = bench::Work::Roof::Sgemm;
  return w;
}

void run_epoch(EpochInputs& e, std::int64_t batch) {
  e.model.train_epoch(e.data.data(), kImages, {.batch = batch, .epoch = e.epoch++});
}

void set_epoch_seconds(benchmark::State& state) {
  state.counters["epoch_s"] = benchmark::Counter(static_cast<double>(state.iterations()),
                                                 benchmark::Counter::kIsRate |
                                                     benchmark::Counter::kInvert);
}

void Gpu_VaeEpoch(benchmark::State& state) {
  if (!bench::require_gpu(state)) return;
  bench::guarded(state, [&] {
    const std::int64_t k = state.range(0), batch = state.range(1);
    const genai::Context& ctx = bench::gpu_context();
    auto& e = bench::cached<EpochInputs>(std::tuple{k}, [&] { return make_epoch(ctx, k); });
    bench::time_gpu(state, [&](std::int64_t) { run_epoch(e, batch); }, epoch_work(k), 1);
    set_epoch_seconds(state);
  });
}

void Cpu_VaeEpoch(benchmark::State& state) {
  bench::guarded(state, [&] {
    const std::int64_t k = state.range(0), batch = state.range(1);
    const genai::Context ctx = genai::Context::cpu();
    auto& e = bench::cached<EpochInputs>(std::tuple{k}, [&] { return make_epoch(ctx, k); });
    bench::time_cpu(state, [&] { run_epoch(e, batch); }, epoch_work(k));
    set_epoch_seconds(state);
  });
}

void epoch_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"k", "batch"});
  b->Args({32, 256});
}

BENCHMARK(Gpu_VaeEpoch)->Apply(epoch_args)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(Cpu_VaeEpoch)->Apply(epoch_args)->UseRealTime()->Iterations(1)->Unit(benchmark::kSecond);

}  // namespace
