// nn on the GPU against the double oracle of nn_test_util.hpp (the CPU tests check that oracle
// against finite differences): every activation, the time embedding, every initialisation (bit
// for bit), linear forward / backward through each cuBLASLt epilogue and its fallback, and whole
// MLPs forward + backward (ReLU masks, GELU inputs, residual blocks, the time embedding, gradient
// accumulation, repeated steps on one workspace, a model loaded from a file).
//
// Tolerances: fp32 everywhere, except where cuBLASLt's GELU(tanh) epilogue runs: cuBLASLt does
// not document its tanh, and a fast tanh.approx.f32 (relative error <= 2^-11) is common in GEMM
// epilogues, so those cases use the tf32 bound (3e-4), which that error fits.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "genai/nn.hpp"
#include "nn_test_util.hpp"
#include "test_util.hpp"

namespace genai {
namespace {

class NnGpu : public test::GpuTest {};

const test::Tolerance kFp32 = test::tolerance(test::DType::FP32);
const test::Tolerance kGeluEpilogue = test::tolerance(test::DType::TF32);

constexpr Activation kAll[] = {Activation::None,     Activation::ReLU,    Activation::SiLU,
                               Activation::GELUTanh, Activation::GELUErf, Activation::Sigmoid,
                               Activation::Tanh};

test::Tolerance tolerance_for(Activation a) {
  return a == Activation::GELUTanh ? kGeluEpilogue : kFp32;
}

template <class T>
std::vector<T> host(const Buffer<T>& b) {
  return b.to_host();
}

TEST_F(NnGpu, ActivationsMatchReference) {
  const std::int64_t n = 100003;
  const auto z = test::normals(n, 1, 0, 3), dy = test::normals(n, 2);
  const auto dz_dev = test::to_device(ctx, z), dy_dev = test::to_device(ctx, dy);
  for (const Activation a : kAll) {
    Buffer<float> y(ctx, n), dz(ctx, n);
    test::poison(y);
    test::poison(dz);
    activation_forward(ctx, a, dz_dev.data(), n, y.data());
    activation_backward(ctx, a, dz_dev.data(), dy_dev.data(), n, dz.data());
    test::Vec y_ref(n), dz_ref(n);
    for (std::int64_t i = 0; i < n; ++i) {
      y_ref[i] = detail::activate(a, double(z[i]));
      dz_ref[i] = dy[i] * detail::activate_grad(a, double(z[i]));
    }
    EXPECT_TRUE(test::close(host(y), y_ref, kFp32)) << to_string(a);
    EXPECT_TRUE(test::close(host(dz), dz_ref, kFp32)) << to_string(a);
  }
}

TEST_F(NnGpu, TimeEmbeddingMatchesReference) {
  const std::int64_t N = 517;
  const auto t = test::uniforms(N, 3, 0, 1000);
  const auto t_dev = test::to_device(ctx, t);
  for (const std::int64_t dim : {128, 7, 1})
    for (const bool flip : {false, true}) {
      const TimeEmbeddingOptions o{.flip_sin_to_cos = flip,
                                   .downscale_freq_shift = dim > 2 ? 1.0f : 0.0f};
      Buffer<float> e(ctx, N * dim);
      test::poison(e);
      time_embedding(ctx, t_dev.data(), N, dim, e.data(), o);
      EXPECT_TRUE(test::close(host(e), test::time_embedding_d(t, dim, o), kFp32))
          << "dim " << dim << " flip " << flip;
    }
}

TEST_F(NnGpu, InitMatchesReferenceBitForBit) {
  const std::int64_t out = 77, in = 130;
  for (const Init init : {Init::PyTorchDefault, Init::KaimingUniform, Init::KaimingNormal,
                          Init::XavierUniform, Init::XavierNormal}) {
    std::vector<float> W(out * in), b(out);
    init_linear(Context::cpu(), out, in, W.data(), b.data(), init, 99, 5);
    Buffer<float> Wd(ctx, out * in), bd(ctx, out);
    test::poison(Wd);
    test::poison(bd);
    init_linear(ctx, out, in, Wd.data(), bd.data(), init, 99, 5);
    EXPECT_EQ(host(Wd), W) << static_cast<int>(init);
    EXPECT_EQ(host(bd), b) << static_cast<int>(init);
  }
}

struct Shape {
  std::int64_t N, in, out;
};
// Odd sizes (no GELU epilogue: out % 8 != 0) and epilogue-friendly ones.
constexpr Shape kShapes[] = {{37, 19, 23}, {256, 64, 128}, {1000, 130, 128}};

TEST_F(NnGpu, LinearForwardMatchesReference) {
  std::uint64_t seed = 10;
  for (const Shape& s : kShapes)
    for (const Activation a : kAll)
      for (const bool bias : {true, false})
        for (const bool keep_z : {true, false}) {
          SCOPED_TRACE(::testing::Message() << to_string(a) << " " << s.N << "x" << s.in << "->"
                                            << s.out << (bias ? " bias" : "")
                                            << (keep_z ? " z" : ""));
          const auto x = test::normals(s.N * s.in, seed++), W = test::normals(s.out * s.in, seed++, 0, 0.2f);
          const auto b = test::normals(s.out, seed++);
          const auto xd = test::to_device(ctx, x), Wd = test::to_device(ctx, W), bd = test::to_device(ctx, b);
          Buffer<float> y(ctx, s.N * s.out), z(ctx, s.N * s.out);
          test::poison(y);
          test::poison(z);
          linear_forward(ctx, {s.N, s.in, s.out}, xd.data(), Wd.data(), bias ? bd.data() : nullptr,
                         y.data(), {.activation = a, .pre_activation = keep_z ? z.data() : nullptr});
          const test::Vec z_ref = test::dense_d(s.N, s.in, s.out, test::to_double(x),
                                                test::to_double(W),
                                                bias ? test::to_double(b) : test::Vec());
          EXPECT_TRUE(test::close(host(y), test::activate_d(a, z_ref), tolerance_for(a)));
          if (keep_z) {
            EXPECT_TRUE(test::close(host(z), z_ref, kFp32));
          }
        }
}

TEST_F(NnGpu, LinearBackwardMatchesReference) {
  std::uint64_t seed = 1000;
  for (const Shape& s : kShapes)
    for (const Activation a : kAll)
      for (const bool accumulate : {false, true}) {
        SCOPED_TRACE(::testing::Message() << to_string(a) << " " << s.N << "x" << s.in << "->"
                                          << s.out << (accumulate ? " accumulate" : ""));
        const auto x = test::normals(s.N * s.in, seed++), W = test::normals(s.out * s.in, seed++, 0, 0.2f);
        const auto b = test::normals(s.out, seed++), dy = test::normals(s.N * s.out, seed++);
        const auto dW0 = test::normals(s.out * s.in, seed++), db0 = test::normals(s.out, seed++);
        const auto xd = test::to_device(ctx, x), Wd = test::to_device(ctx, W), bd = test::to_device(ctx, b);
        const auto dyd = test::to_device(ctx, dy);
        Buffer<float> y(ctx, s.N * s.out), z(ctx, s.N * s.out), dx(ctx, s.N * s.in);
        linear_forward(ctx, {s.N, s.in, s.out}, xd.data(), Wd.data(), bd.data(), y.data(),
                       {.activation = a, .pre_activation = z.data()});
        Buffer<float> dW = test::to_device(ctx, dW0), db = test::to_device(ctx, db0);
        if (!accumulate) {
          test::poison(dW);
          test::poison(db);
        }
        test::poison(dx);
        linear_backward(ctx, {s.N, s.in, s.out}, xd.data(), Wd.data(), dyd.data(), dx.data(),
                        dW.data(), db.data(),
                        {.activation = a, .pre_activation = z.data(), .accumulate = accumulate});
        const test::Vec xv = test::to_double(x), Wv = test::to_double(W);
        const auto g = test::linear_backward_d(s.N, s.in, s.out, xv, Wv,
                                               test::dense_d(s.N, s.in, s.out, xv, Wv, test::to_double(b)),
                                               a, test::to_double(dy));
        test::Vec dW_ref = g.dW, db_ref = g.db;
        if (accumulate) {
          for (std::size_t i = 0; i < dW_ref.size(); ++i) dW_ref[i] += dW0[i];
          for (std::size_t i = 0; i < db_ref.size(); ++i) db_ref[i] += db0[i];
        }
        EXPECT_TRUE(test::close(host(dx), g.dx, kFp32));
        EXPECT_TRUE(test::close(host(dW), dW_ref, kFp32));
        EXPECT_TRUE(test::close(host(db), db_ref, kFp32));
      }
}

struct MlpCase {
  MlpOptions opts;
  std::int64_t N;
};

// The fused paths (ReLU masks, GELU inputs with widths divisible by 8 and 128) and the general
// ones (odd widths, residual blocks, SiLU / erf GELU), with and without a time embedding; the
// last is the tiny-diffusion shape.
std::vector<MlpCase> gpu_mlp_cases() {
  return {
      {{.sizes = {3, 128, 128, 128, 2}, .activation = Activation::ReLU}, 300},
      {{.sizes = {3, 128, 64, 64, 2}, .activation = Activation::GELUTanh, .time_embedding_dim = 32},
       300},
      {{.sizes = {5, 37, 37, 19, 3}, .activation = Activation::ReLU, .residual = true}, 101},
      {{.sizes = {4, 24, 24, 24, 1}, .activation = Activation::GELUTanh, .time_embedding_dim = 7,
        .residual = true},
       99},
      {{.sizes = {3, 40, 40, 2}, .activation = Activation::SiLU, .time_embedding_dim = 16}, 77},
      {{.sizes = {2, 128, 128, 128, 2}, .activation = Activation::GELUErf,
        .time_embedding_dim = 128, .residual = true},
       512},
  };
}

TEST_F(NnGpu, MlpForwardBackwardMatchesReference) {
  std::uint64_t seed = 5000;
  for (const MlpCase& c : gpu_mlp_cases()) {
    SCOPED_TRACE(::testing::Message() << to_string(c.opts.activation) << " layers "
                                      << c.opts.sizes.size() - 1 << " N " << c.N);
    Mlp m(ctx, c.opts);
    m.init(seed++, Init::KaimingUniform);
    const std::int64_t xd = m.input_dim(), od = m.output_dim();
    const auto x = test::normals(c.N * xd, seed++), t = test::uniforms(c.N, seed++, 0, 1000);
    const auto dy = test::normals(c.N * od, seed++);
    const auto x_dev = test::to_device(ctx, x), t_dev = test::to_device(ctx, t);
    const auto dy_dev = test::to_device(ctx, dy);
    const float* tp = c.opts.time_embedding_dim > 0 ? t_dev.data() : nullptr;
    MlpWorkspace ws;
    Buffer<float> y(ctx, c.N * od), dx(ctx, c.N * xd);
    const test::Tolerance tol = tolerance_for(c.opts.activation);

    test::MlpD md = test::mlp_d(m);
    test::MlpTapeD tape;
    const test::Vec y_ref = test::mlp_forward_d(md, x, t, c.N, &tape);
    const test::MlpGradsD g = test::mlp_backward_d(md, tape, c.N, test::to_double(dy));
    std::vector<float> grads(m.flat_size());
    for (int step = 0; step < 2; ++step) {  // the second step reuses the workspace and its plans
      test::poison(y);
      test::poison(dx);
      m.forward(ws, x_dev.data(), tp, c.N, y.data());
      m.backward(ws, dy_dev.data(), dx.data());
      EXPECT_TRUE(test::close(host(y), y_ref, tol)) << "step " << step;
      EXPECT_TRUE(test::close(host(dx), g.dx, tol)) << "step " << step;
      detail::copy_bytes(ctx, grads.data(), Device::CPU, m.gradients(), Device::CUDA,
                         grads.size() * sizeof(float));
      for (const MlpParam& p : m.parameter_list()) {
        const int l = std::stoi(p.name.substr(7));
        const std::vector<float> got(grads.begin() + p.offset, grads.begin() + p.offset + p.size);
        EXPECT_TRUE(test::close(got, p.shape.size() == 2 ? g.dW[l] : g.db[l], tol))
            << p.name << " step " << step;
      }
    }
    // Accumulation adds the same gradients again.
    m.backward(ws, dy_dev.data(), nullptr, true);
    std::vector<float> twice(m.flat_size());
    detail::copy_bytes(ctx, twice.data(), Device::CPU, m.gradients(), Device::CUDA,
                       twice.size() * sizeof(float));
    test::Vec doubled(grads.size());
    for (std::size_t i = 0; i < grads.size(); ++i) doubled[i] = 2.0 * grads[i];
    EXPECT_TRUE(test::close(twice, doubled, kFp32));
  }
}

TEST_F(NnGpu, MlpLoadedOnTheGpuMatchesTheCpuModel) {
  const test::TempDir dir;
  const std::string path = dir / "mlp.safetensors";
  Mlp cpu(Context::cpu(), {.sizes = {2, 64, 64, 2}, .activation = Activation::ReLU,
                           .time_embedding_dim = 16, .residual = true});
  cpu.init(4);
  cpu.save(path);
  Mlp gpu = Mlp::load(ctx, path);
  const std::int64_t N = 64;
  const auto x = test::normals(2 * N, 1), t = test::uniforms(N, 2, 0, 100);
  MlpWorkspace ws_cpu, ws_gpu;
  std::vector<float> y_cpu(2 * N);
  cpu.forward(ws_cpu, x.data(), t.data(), N, y_cpu.data());
  const auto xd = test::to_device(ctx, x), td = test::to_device(ctx, t);
  Buffer<float> y_gpu(ctx, 2 * N);
  gpu.forward(ws_gpu, xd.data(), td.data(), N, y_gpu.data());
  EXPECT_TRUE(test::close(host(y_gpu), y_cpu, kFp32));
}

}  // namespace
}  // namespace genai
