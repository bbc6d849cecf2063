// Benchmarks of the conv module (kernels/conv.cu, cpu_reference/conv.cpp).
//
// 3x3 convolution, stride 1, padding 1, C = K = 64 (ResNet's first stage): forward (y) and
// backward (dx and dW), 2 N K C R S P Q flop each GEMM (forward 1, backward 2), against the
// device's cuBLAS TF32 (ConvMath::TF32) or SGEMM (ConvMath::FP32) peak. bytes = the compulsory
// traffic (forward: x, W read, y written; backward: x, W, dy read, dx, dW written).
//   GPU: [32, 64, 56, 56] (7.4 GFLOP per GEMM), math tf32 (0) and fp32 (1).
//   CPU: [8, 64, 56, 56] (OpenBLAS sgemm per image, its own threads).
//
// Residual block (4.4), training mode: forward (conv1 -> bn1 -> relu -> conv2 -> bn2 + x), and
// a step = forward + backward (every parameter gradient and dx); flop counts the convolutions
// only (2 and 6 GEMMs of 2 N K C R S P Q), so TFLOP/s compares with the convolutions' rate and
// the batch norms, ReLU and sum show up as the gap. Same shapes as the convolution.
// The peers (profiling/peers/conv_peers.py): torch.nn.Conv2d and the 4.4 block in PyTorch on
// cuDNN, NCHW and channels-last, TF32 on and off, eager; on the CPU PyTorch eager float32.
#include <cstdint>
#include <tuple>

#include "profiling/bench_common.hpp"

namespace {

namespace bench = genai::bench;
using genai::ConvMath;

constexpr ConvMath kMaths[] = {ConvMath::TF32, ConvMath::FP32};

genai::Conv2dShape conv_shape(std::int64_t N, std::int64_t C, std::int64_t H) {
  return {.batch = N, .in_channels = C, .height = H, .width = H, .out_channels = C};
}

double conv_flop(const genai::Conv2dShape& s) {
  return 2.0 * s.batch * s.out_channels * s.in_channels * s.kernel_h * s.kernel_w *
         s.out_height() * s.out_width();
}

// ---- convolution -------------------------------------------------------------------------------

struct ConvInputs {
  genai::Buffer<float> x, W, y, dy, dx, dW;
};

ConvInputs make_conv(const genai::Context& ctx, const genai::Conv2dShape& s) {
  const std::int64_t nx = s.batch * s.in_channels * s.height * s.width;
  const std::int64_t ny = s.batch * s.out_channels * s.out_height() * s.out_width();
  const std::int64_t nw = s.out_channels * s.in_channels * s.kernel_h * s.kernel_w;
  ConvInputs c{genai::Buffer<float>(ctx, nx), genai::Buffer<float>(ctx, nw),
               genai::Buffer<float>(ctx, ny), genai::Buffer<float>(ctx, ny),
               genai::Buffer<float>(ctx, nx), genai::Buffer<float>(ctx, nw)};
  genai::fill_normal(ctx, c.x.data(), nx, {1});
  genai::init_linear(ctx, s.out_channels, s.in_channels * s.kernel_h * s.kernel_w, c.W.data(),
                     nullptr, genai::Init::PyTorchDefault, 2);
  genai::fill_normal(ctx, c.dy.data(), ny, {3});
  return c;
}

bench::Work conv_work(const genai::Conv2dShape& s, bool backward, ConvMath math) {
  const double nx = static_cast<double>(s.batch) * s.in_channels * s.height * s.width;
  const double ny = static_cast<double>(s.batch) * s.out_channels * s.out_height() * s.out_width();
  const double nw = static_cast<double>(s.out_channels) * s.in_channels * s.kernel_h * s.kernel_w;
  bench::Work w;
  w.flop = (backward ? 2 : 1) * conv_flop(s);
  w.bytes = 4 * (backward ? 2 * nx + 2 * nw + ny : nx + nw + ny);
  w.roof = math == ConvMath::TF32 ? bench::Work::Roof::Tf32Gemm : bench::Work::Roof::Sgemm;
  return w;
}

void run_conv(const genai::Context& ctx, ConvInputs& c, const genai::Conv2dShape& s,
              bool backward, ConvMath math) {
  if (!backward) {
    genai::conv2d_forward(ctx, s, c.x.data(), c.W.data(), nullptr, c.y.data(), {.math = math});
    return;
  }
  genai::conv2d_backward(ctx, s, c.x.data(), c.W.data(), c.dy.data(), c.dx.data(), c.dW.data(),
                         nullptr, {.math = math});
}

void Gpu_Conv(benchmark::State& state, bool backward) {
  if (!bench::require_gpu(state)) return;
  bench::guarded(state, [&] {
    const genai::Conv2dShape s = conv_shape(state.range(0), state.range(1), state.range(2));
    const ConvMath math = kMaths[state.range(3)];
    const genai::Context& ctx = bench::gpu_context();
    auto& c = bench::cached<ConvInputs>(std::tuple{s.batch, s.in_channels, s.height},
                                        [&] { return make_conv(ctx, s); });
    bench::time_gpu(state, [&](std::int64_t) { run_conv(ctx, c, s, backward, math); },
                    conv_work(s, backward, math));
  });
}

void Cpu_Conv(benchmark::State& state, bool backward) {
  bench::guarded(state, [&] {
    const genai::Conv2dShape s = conv_shape(state.range(0), state.range(1), state.range(2));
    const genai::Context ctx = genai::Context::cpu();
    auto& c = bench::cached<ConvInputs>(std::tuple{s.batch, s.in_channels, s.height},
                                        [&] { return make_conv(ctx, s); });
    bench::time_cpu(state, [&] { run_conv(ctx, c, s, backward, ConvMath::FP32); },
                    conv_work(s, backward, ConvMath::FP32));
  });
}

void gpu_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "C", "H", "math"});
  b->Args({32, 64, 56, 0});
  b->Args({32, 64, 56, 1});
}
void cpu_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "C", "H"});
  b->Args({8, 64, 56});
}

BENCHMARK_CAPTURE(Gpu_Conv, forward, false)
    ->Apply(gpu_args)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(Gpu_Conv, backward, true)
    ->Apply(gpu_args)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(Cpu_Conv, forward, false)
    ->Apply(cpu_args)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Cpu_Conv, backward, true)
    ->Apply(cpu_args)->UseRealTime()->Unit(benchmark::kMillisecond);

// ---- residual block ----------------------------------------------------------------------------

struct BlockInputs {
  genai::ResidualBlock block;
  genai::ResidualBlockWorkspace ws;
  genai::Buffer<float> x, y, dy, dx;
};

BlockInputs make_block(const genai::Context& ctx, std::int64_t N, std::int64_t C, std::int64_t H,
                       ConvMath math) {
  const std::int64_t n = N * C * H * H;
  BlockInputs b{genai::ResidualBlock(ctx, {.channels = C, .math = math}), {},
                genai::Buffer<float>(ctx, n), genai::Buffer<float>(ctx, n),
                genai::Buffer<float>(ctx, n), genai::Buffer<float>(ctx, n)};
  b.block.init(4);
  genai::fill_normal(ctx, b.x.data(), n, {5});
  genai::fill_normal(ctx, b.dy.data(), n, {6});
  return b;
}

void block_call(BlockInputs& b, std::int64_t N, std::int64_t H, bool step) {
  b.block.forward(b.ws, b.x.data(), N, H, H, b.y.data());
  if (step) b.block.backward(b.ws, b.dy.data(), b.dx.data());
}

bench::Work block_work(const genai::Conv2dShape& s, bool step, ConvMath math) {
  const double n = static_cast<double>(s.batch) * s.in_channels * s.height * s.width;
  bench::Work w;
  w.flop = (step ? 6 : 2) * conv_flop(s);
  // forward: x read, z1, a1, z2 written and read back, y written; the step adds dy, dx and the
  // backward's passes over the same tensors (about as many again).
  w.bytes = 4 * n * (step ? 16 : 8);
  w.roof = math == ConvMath::TF32 ? bench::Work::Roof::Tf32Gemm : bench::Work::Roof::Sgemm;
  return w;
}

void Gpu_ResidualBlock(benchmark::State& state, bool step) {
  if (!bench::require_gpu(state)) return;
  bench::guarded(state, [&] {
    const std::int64_t N = state.range(0), C = state.range(1), H = state.range(2);
    const ConvMath math = kMaths[state.range(3)];
    const genai::Context& ctx = bench::gpu_context();
    auto& b = bench::cached<BlockInputs>(std::tuple{N, C, H, state.range(3)},
                                         [&] { return make_block(ctx, N, C, H, math); });
    bench::time_gpu(state, [&](std::int64_t) { block_call(b, N, H, step); },
                    block_work(conv_shape(N, C, H), step, math));
  });
}

void Cpu_ResidualBlock(benchmark::State& state, bool step) {
  bench::guarded(state, [&] {
    const std::int64_t N = state.range(0), C = state.range(1), H = state.range(2);
    const genai::Context ctx = genai::Context::cpu();
    auto& b = bench::cached<BlockInputs>(std::tuple{N, C, H},
                                         [&] { return make_block(ctx, N, C, H, ConvMath::FP32); });
    bench::time_cpu(state, [&] { block_call(b, N, H, step); },
                    block_work(conv_shape(N, C, H), step, ConvMath::FP32));
  });
}

BENCHMARK_CAPTURE(Gpu_ResidualBlock, forward, false)
    ->Apply(gpu_args)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(Gpu_ResidualBlock, step, true)
    ->Apply(gpu_args)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(Cpu_ResidualBlock, forward, false)
    ->Apply(cpu_args)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Cpu_ResidualBlock, step, true)
    ->Apply(cpu_args)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
