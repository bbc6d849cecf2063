// genai receptive-field: the receptive field and jump after each layer of a conv / pool stack
// (problem 4.1); and the conv module's demo rows (a 3x3 convolution, the residual block of 4.4)
// and problem-set checks (4.1, 4.2(b), 4.4).
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/common.hpp"
#include "genai/buffer.hpp"
#include "genai/conv.hpp"
#include "genai/nn.hpp"
#include "genai/rng.hpp"

namespace genai::cli {
namespace {

void run_receptive_field(const std::string& spec) {
  const std::vector<FieldLayer> layers = parse_field_layers(spec);
  const std::vector<FieldStep> steps = receptive_field(layers);
  std::printf("%-14s %6s %6s %7s %8s %6s %6s %6s\n", "layer", "kernel", "stride", "padding",
              "dilation", "field", "jump", "start");
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const FieldLayer& l = layers[i];
    std::printf("%-14s %6lld %6lld %7lld %8lld %6lld %6lld %6lld\n", to_string(l).c_str(),
                static_cast<long long>(l.kernel), static_cast<long long>(l.stride),
                static_cast<long long>(l.padding), static_cast<long long>(l.dilation),
                static_cast<long long>(steps[i].size), static_cast<long long>(steps[i].jump),
                static_cast<long long>(steps[i].start));
  }
  const FieldStep& last = steps.back();
  std::printf("one output sees %lld x %lld input pixels; neighbouring outputs are %lld apart\n",
              static_cast<long long>(last.size), static_cast<long long>(last.size),
              static_cast<long long>(last.jump));
}

void add_conv_commands(CLI::App& app) {
  auto spec = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand(
      "receptive-field", "the receptive field and jump after each layer of a conv / pool stack");
  cmd->add_option("--layers", *spec,
                  "comma-separated layers: conv<k>, maxpool<k>, avgpool<k>, each optionally with "
                  "s<stride> p<padding> d<dilation> (a conv's stride defaults to 1, a pool's to "
                  "its kernel), e.g. conv3,conv3,maxpool2,conv3 (problem 4.1(b))")
      ->required();
  cmd->callback([spec] { run_receptive_field(*spec); });
}

// ---- demo ------------------------------------------------------------------------------------

void tour_conv(Tour& t) {
  const Context cpu = Context::cpu();
  // A 3x3 convolution (64 -> 64 channels, 28 x 28, batch 8) on the tour's device (TF32 on a GPU:
  // about 1e-3 of the largest output off the CPU's fp32) against the CPU reference.
  const Conv2dShape s{.batch = 8, .in_channels = 64, .height = 28, .width = 28, .out_channels = 64};
  const std::int64_t nx = 8 * 64 * 28 * 28, nw = 64 * 64 * 9;
  std::vector<float> x(nx), W(nw);
  fill_normal(cpu, x.data(), nx, {21});
  init_linear(cpu, 64, 64 * 9, W.data(), nullptr, Init::PyTorchDefault, 22);
  const Buffer<float> xd(t.ctx, std::span<const float>(x)), Wd(t.ctx, std::span<const float>(W));
  t.add("conv", "3x3 conv 64->64, [8, 64, 28, 28] (TF32 on a GPU)", nx, 4.0 * (2 * nx + nw),
        [&](const Context& c, float* out) { conv2d_forward(c, s, xd.data(), Wd.data(), nullptr, out); },
        [&](float* out) { conv2d_forward(cpu, s, x.data(), W.data(), nullptr, out); }, 5e-3);

  // The residual block (fp32), forward + backward: dx against the CPU's.
  ResidualBlock block(t.ctx, {.channels = 64, .math = ConvMath::FP32}), ref(cpu, {.channels = 64});
  block.init(23);
  ref.init(23);  // the same Philox draws: the same weights
  std::vector<float> dy(nx), y(nx);
  fill_normal(cpu, dy.data(), nx, {24});
  const Buffer<float> dyd(t.ctx, std::span<const float>(dy));
  Buffer<float> yd(t.ctx, nx);
  ResidualBlockWorkspace ws, ws_ref;
  t.add("conv", "ResNet block (4.4) fwd+bwd, [8, 64, 28, 28]: dx", nx, 4.0 * 16 * nx,
        [&](const Context&, float* out) {
          block.forward(ws, xd.data(), 8, 28, 28, yd.data());
          block.backward(ws, dyd.data(), out);
        },
        [&](float* out) {
          ref.forward(ws_ref, x.data(), 8, 28, 28, y.data());
          ref.backward(ws_ref, dy.data(), out);
        },
        1e-4);

  // 4.1: receptive fields of three 3x3 convs, and with a 2x2 / 2 max pool after the second.
  t.check("4.1(a)", "field of conv3,conv3,conv3", receptive_field(parse_field_layers("conv3,conv3,conv3")).back().size, 7, 0);
  t.check("4.1(b)", "field with maxpool2 after conv 2 (seed's 14: erratum)",
          receptive_field(parse_field_layers("conv3,conv3,maxpool2,conv3")).back().size, 10, 0);

  // 4.4: ResidualBlock(64) keeps x [1, 64, 32, 32]'s shape. 4.2(b): its Jacobian's diagonal is
  // 1 + (J_F)_ii: J_ii from the backward (dy = e_i), (J_F)_ii = d(y_i - x_i)/dx_i by central
  // differences (float, h = 1e-2: error ~1e-4).
  ResidualBlock small(cpu, {.channels = 64});
  small.init(25);
  const std::int64_t n = 64 * 32 * 32;
  std::vector<float> x1(n), y1(n, NAN), e(n, 0.0f), dx1(n);
  fill_normal(cpu, x1.data(), n, {26});
  ResidualBlockWorkspace w1;
  small.forward(w1, x1.data(), 1, 32, 32, y1.data());
  std::int64_t written = 0;
  for (const float v : y1) written += std::isfinite(v) ? 1 : 0;
  t.check("4.4", "ResidualBlock(64): [1, 64, 32, 32] -> elements of y", static_cast<double>(written),
          static_cast<double>(n), 0);
  const std::int64_t i = 5 * 1024 + 17 * 32 + 9;
  e[i] = 1.0f;
  small.backward(w1, e.data(), dx1.data());
  auto F_i = [&](float xi) {
    std::vector<float> xp = x1, yp(n);
    xp[i] = xi;
    ResidualBlockWorkspace w;
    small.forward(w, xp.data(), 1, 32, 32, yp.data());
    return static_cast<double>(yp[i]) - xi;
  };
  const double h = 1e-2, jf = (F_i(x1[i] + h) - F_i(x1[i] - h)) / (2 * h);
  t.check("4.2(b)", "J_ii of x + F(x) = 1 + (J_F)_ii", dx1[i], 1.0 + jf, 2e-3);
}

}  // namespace

GENAI_CLI_MODULE(66, "conv", add_conv_commands, tour_conv);

}  // namespace genai::cli
