// The nn module in `genai demo`: the tiny-diffusion MLP's forward + backward on the tour's
// device (every parameter gradient checked against the CPU), and problems 2.1 and 4.2 through
// the linear layer's backward.
#include <cmath>
#include <filesystem>
#include <vector>

#include "cli/common.hpp"
#include "genai/buffer.hpp"
#include "genai/nn.hpp"
#include "genai/rng.hpp"

namespace genai::cli {
namespace {

void tour_nn(Tour& t) {
  const Context cpu = Context::cpu();
  const std::int64_t N = 4096;
  const MlpOptions opts{.sizes = {2, 128, 128, 128, 2}, .activation = Activation::GELUErf,
                        .time_embedding_dim = 128, .residual = true};
  std::vector<float> x(N * 2), tt(N), dy(N * 2);
  fill_normal(cpu, x.data(), N * 2, {11});
  fill_uniform(cpu, tt.data(), N, {12}, 0.0f, 1000.0f);
  fill_normal(cpu, dy.data(), N * 2, {13});

  Mlp model(t.ctx, opts), reference(cpu, opts);
  model.init(1);
  reference.init(1);  // the same Philox draws: the same weights on both
  MlpWorkspace ws, ws_ref;
  Buffer<float> dx(t.ctx, N * 2), dt(t.ctx, std::span<const float>(tt)),
      ddy(t.ctx, std::span<const float>(dy)), y(t.ctx, N * 2);
  Buffer<float> dxin(t.ctx, std::span<const float>(x));
  std::vector<float> y_ref(N * 2);
  double widths = 0;
  for (int l = 0; l < model.layers(); ++l) widths += l == 0 ? 130 : opts.sizes[l];
  const auto n = static_cast<std::size_t>(model.flat_size());
  t.add("nn", "MLP 2-128-128-128-2 (+t 128, gelu, skips) fwd+bwd, 4096 rows: grads", n,
        8.0 * N * widths,  // every layer's input written forward, read backward
        [&](const Context& c, float* out) {
          model.forward(ws, dxin.data(), dt.data(), N, y.data());
          model.backward(ws, ddy.data(), dx.data());
          detail::copy_bytes(c, out, c.device(), model.gradients(), c.device(), n * sizeof(float));
        },
        [&](float* out) {
          reference.forward(ws_ref, x.data(), tt.data(), N, y_ref.data());
          reference.backward(ws_ref, dy.data());
          std::copy(reference.gradients(), reference.gradients() + n, out);
        },
        1e-4);
  if (!t.out_dir.empty()) {
    const auto path = (std::filesystem::path(t.out_dir) / "mlp.safetensors").string();
    model.save(path, {{"written_by", "genai demo"}});
    t.files.push_back(path);
  }

  // 2.1: f = sigmoid(W x + b), W 3 x 4. Row 0 of df/dW (dy = e_0) against sigma(1 - sigma) x.
  const std::vector<float> x4 = {0.5f, -1.0f, 2.0f, 0.25f}, W = {0.1f, 0.2f, -0.3f, 0.4f,
                                                                  -0.5f, 0.6f, 0.7f, -0.8f,
                                                                  0.9f, -1.0f, 1.1f, 1.2f};
  const std::vector<float> b = {0.05f, -0.1f, 0.2f}, e0 = {1.0f, 0.0f, 0.0f};
  const LinearShape s{1, 4, 3};
  // out: dW [0, 12), db [12, 15), y [15, 18), z [18, 21), dx [21, 25).
  const auto grads = on_device(t.ctx, {&x4, &W, &b, &e0}, 25,
                               [&](const std::vector<const float*>& in, float* out) {
                                 const LinearBackwardOptions o{.activation = Activation::Sigmoid,
                                                               .pre_activation = out + 18};
                                 linear_forward(t.ctx, s, in[0], in[1], in[2], out + 15,
                                                {.activation = Activation::Sigmoid,
                                                 .pre_activation = out + 18});
                                 linear_backward(t.ctx, s, in[0], in[1], in[3], out + 21, out,
                                                 out + 12, o);
                               });
  double z0 = b[0];
  for (int k = 0; k < 4; ++k) z0 += double(W[k]) * x4[k];
  const double sig = 1 / (1 + std::exp(-z0)), dsig = sig * (1 - sig);
  t.check("2.1(a)", "df0/dW02 = s(1-s) x2", grads[2], dsig * x4[2], 1e-6);
  t.check("2.1(b)", "df0/db0 = s(1-s)", grads[12], dsig, 1e-6);
  t.check("2.1(c)", "max sigmoid' (at 0)", detail::activate_grad(Activation::Sigmoid, 0.0), 0.25,
          0);
  // 4.2: x + tanh(W x + b), W 4 x 4: J_00 = 1 + (J_g)_00, J_g by central
  // differences in double; the library's row 0 from dy = e_0, plus the skip.
  const std::vector<float> W44 = {0.3f, -0.2f, 0.1f, 0.5f, 0.4f, 0.2f, -0.6f, 0.1f,
                            -0.1f, 0.7f, 0.2f, 0.3f, 0.2f, -0.3f, 0.4f, -0.5f};
  const std::vector<float> b4 = {0.1f, -0.2f, 0.05f, 0.0f}, e04 = {1.0f, 0.0f, 0.0f, 0.0f};
  const auto row0 = on_device(t.ctx, {&x4, &W44, &b4, &e04}, 4 + 4 + 4,
                              [&](const std::vector<const float*>& in, float* out) {
    const LinearShape s4{1, 4, 4};
    linear_forward(t.ctx, s4, in[0], in[1], in[2], out + 4,
                   {.activation = Activation::Tanh, .pre_activation = out + 8});
    linear_backward(t.ctx, s4, in[0], in[1], in[3], out, nullptr, nullptr,
                    {.activation = Activation::Tanh, .pre_activation = out + 8});
  });
  auto g0 = [&](double x0) {
    double z = b4[0] + W44[0] * x0;
    for (int k = 1; k < 4; ++k) z += double(W44[k]) * x4[k];
    return std::tanh(z);
  };
  const double h = 1e-6, jg00 = (g0(x4[0] + h) - g0(x4[0] - h)) / (2 * h);
  t.check("4.2(b)", "J_00 of x + g(x) = 1 + (J_g)_00", 1.0 + row0[0], 1.0 + jg00, 1e-6);
}

}  // namespace

GENAI_CLI_MODULE(65, "nn", nullptr, tour_nn);

}  // namespace genai::cli
