// GPU parity of the losses module: every kernel against the CPU reference on fresh random
// inputs, outputs poisoned with NaN first. Cross-entropy, MSE, BCE and the VAE loss compare
// within fp32 tolerance (float sums and expf on the device, double on the host; bf16 gradients
// within bf16 tolerance); the reparameterisation compares bit for bit (Philox and the
// correctly-rounded-operation exponential). Skipped, saying why, without a CUDA device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu_reference/losses.hpp"
#include "genai/losses.hpp"
#include "tests/test_util.hpp"

namespace genai {
namespace {

const Context kCpu = Context::cpu();

class LossesGpu : public test::GpuTest {};

std::vector<float> widen(const std::vector<bf16>& v) {
  std::vector<float> f(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) f[i] = static_cast<float>(v[i]);
  return f;
}

template <class T>
bool same_bytes(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// Targets in [0, C), every fifth row ignore_index.
std::vector<std::int64_t> random_targets(std::int64_t N, std::int64_t C, std::uint64_t seed,
                                         std::int64_t ignore_index) {
  const auto u = test::uniforms(N, seed);
  std::vector<std::int64_t> t(N);
  for (std::int64_t i = 0; i < N; ++i)
    t[i] = i % 5 == 4 ? ignore_index
                      : std::min<std::int64_t>(C - 1, static_cast<std::int64_t>(u[i] * C));
  return t;
}

// Shapes covering each launch path: a warp per row (C <= 1024) with scalar access (C % 4 != 0)
// and vector access, its boundary, a block per row, and a row longer than the register cache
// (C > 16384: the tail re-read in the gradient pass).
constexpr std::int64_t kShapes[][2] = {{37, 3}, {300, 1000}, {64, 1024}, {20, 1025},
                                       {16, 4096}, {4, 40000}};

TEST_F(LossesGpu, CrossEntropyMatchesReference) {
  std::uint64_t seed = 100;
  for (const auto& [N, C] : kShapes) {
    const auto x = test::normals(N * C, ++seed, 0.0f, 2.0f);
    const auto t = random_targets(N, C, ++seed, -1);
    for (const Reduction r : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
      const CrossEntropyOptions o{.reduction = r, .ignore_index = -1, .label_smoothing = 0.1f,
                                  .z_loss = 1e-3f};
      const std::int64_t n_loss = r == Reduction::None ? N : 1;
      std::vector<float> loss(n_loss), grad(N * C);
      ref::cross_entropy_loss(x.data(), t.data(), N, C, loss.data(), grad.data(), o);  // the oracle
      auto dx = test::to_device(ctx, x);
      auto dt = test::to_device(ctx, t);
      Buffer<float> dloss(ctx, n_loss), dgrad(ctx, N * C);
      test::poison(dloss);
      test::poison(dgrad);
      cross_entropy_loss(ctx, dx.data(), dt.data(), N, C, dloss.data(), dgrad.data(), o);
      const auto tol = test::tolerance(test::DType::FP32);
      EXPECT_TRUE(test::close(dloss.to_host(), loss, tol)) << N << "x" << C;
      EXPECT_TRUE(test::close(dgrad.to_host(), grad, tol)) << N << "x" << C;
      // In place: the gradient overwrites the logits.
      cross_entropy_loss(ctx, dx.data(), dt.data(), N, C, dloss.data(), dx.data(), o);
      EXPECT_TRUE(test::close(dx.to_host(), grad, tol)) << N << "x" << C << " in place";
    }
  }
}

TEST_F(LossesGpu, CrossEntropyBf16MatchesReference) {
  std::uint64_t seed = 200;
  for (const auto& [N, C] : kShapes) {
    const auto raw = test::normals(N * C, ++seed, 0.0f, 2.0f);
    std::vector<bf16> x(N * C), grad(N * C);
    for (std::int64_t i = 0; i < N * C; ++i) x[i] = bf16(raw[i]);
    const auto t = random_targets(N, C, ++seed, -100);
    float loss = 0;
    ref::cross_entropy_loss(x.data(), t.data(), N, C, &loss, grad.data(), {});  // the oracle
    auto dx = test::to_device(ctx, x);
    auto dt = test::to_device(ctx, t);
    Buffer<float> dloss(ctx, 1);
    Buffer<bf16> dgrad(ctx, N * C);
    test::poison(dloss);
    test::poison(dgrad);
    cross_entropy_loss(ctx, dx.data(), dt.data(), N, C, dloss.data(), dgrad.data());
    EXPECT_TRUE(test::close(dloss.to_host(), std::vector<float>{loss},
                            test::tolerance(test::DType::FP32)))
        << N << "x" << C;
    EXPECT_TRUE(test::close(widen(dgrad.to_host()), widen(grad),
                            test::tolerance(test::DType::BF16)))
        << N << "x" << C;
  }
}

// A bad target on the device: the CPU's message, outputs untouched; unchecked, the NaN rows
// of the reference. Every row ignored: mean NaN, sum 0.
TEST_F(LossesGpu, CrossEntropyTargetsMatchReference) {
  const std::int64_t N = 50, C = 7;
  const auto x = test::normals(N * C, 300);
  auto t = random_targets(N, C, 301, -100);
  t[33] = 7;
  t[41] = -3;
  auto dx = test::to_device(ctx, x);
  auto dt = test::to_device(ctx, t);
  Buffer<float> dloss(ctx, N), dgrad(ctx, N * C);
  test::poison(dloss);
  test::poison(dgrad);
  const auto loss_before = dloss.to_host(), grad_before = dgrad.to_host();
  std::vector<float> loss(N), grad(N * C);
  const std::string cpu_error =
      test::error_of([&] { cross_entropy_loss(kCpu, x.data(), t.data(), N, C, loss.data()); });
  EXPECT_NE(cpu_error.find("row 33 is 7"), std::string::npos) << cpu_error;
  EXPECT_EQ(test::error_of([&] {
              cross_entropy_loss(ctx, dx.data(), dt.data(), N, C, dloss.data(), dgrad.data());
            }),
            cpu_error);
  EXPECT_TRUE(same_bytes(dloss.to_host(), loss_before));
  EXPECT_TRUE(same_bytes(dgrad.to_host(), grad_before));

  const CrossEntropyOptions unchecked{.reduction = Reduction::None, .check_targets = false};
  cross_entropy_loss(kCpu, x.data(), t.data(), N, C, loss.data(), grad.data(), unchecked);
  cross_entropy_loss(ctx, dx.data(), dt.data(), N, C, dloss.data(), dgrad.data(), unchecked);
  EXPECT_TRUE(test::close(dloss.to_host(), loss, test::tolerance(test::DType::FP32)));
  EXPECT_TRUE(test::close(dgrad.to_host(), grad, test::tolerance(test::DType::FP32)));
  EXPECT_TRUE(std::isnan(dloss.to_host()[33]));

  const std::vector<std::int64_t> ignored(N, -100);
  auto di = test::to_device(ctx, ignored);
  cross_entropy_loss(ctx, dx.data(), di.data(), N, C, dloss.data(), dgrad.data());
  EXPECT_TRUE(std::isnan(dloss.to_host()[0]));
  for (float g : dgrad.to_host()) EXPECT_EQ(g, 0.0f);
  cross_entropy_loss(ctx, dx.data(), di.data(), N, C, dloss.data(), nullptr,
                     {.reduction = Reduction::Sum});
  EXPECT_EQ(dloss.to_host()[0], 0.0f);
}

// MSE and BCE on a thread-per-row shape (d = 3) and a warp-per-row one (d = 100), each
// reduction, all outputs; and the loss alone (its rows in a workspace).
TEST_F(LossesGpu, ElementLossesMatchReference) {
  std::uint64_t seed = 400;
  for (const std::int64_t d : {3, 100}) {
    const std::int64_t n = 999;
    const auto p = test::normals(n * d, ++seed, 0.0f, 2.0f), y = test::uniforms(n * d, ++seed);
    auto dp = test::to_device(ctx, p);
    auto dy = test::to_device(ctx, y);
    for (const bool bce : {false, true})
      for (const Reduction r : {Reduction::Mean, Reduction::Sum}) {
        const auto run = [&](const Context& c, const float* a, const float* b,
                             const LossOutputs& out) {
          if (bce)
            bce_with_logits_loss(c, a, b, n, d, out, r);
          else
            mse_loss(c, a, b, n, d, out, r);
        };
        std::vector<float> loss(1), rows(n), grad(n * d);
        run(kCpu, p.data(), y.data(), {loss.data(), rows.data(), grad.data()});
        Buffer<float> dloss(ctx, 1), drows(ctx, n), dgrad(ctx, n * d);
        test::poison(dloss);
        test::poison(drows);
        test::poison(dgrad);
        run(ctx, dp.data(), dy.data(), {dloss.data(), drows.data(), dgrad.data()});
        const auto tol = test::tolerance(test::DType::FP32);
        EXPECT_TRUE(test::close(dloss.to_host(), loss, tol)) << "bce " << bce << " d " << d;
        EXPECT_TRUE(test::close(drows.to_host(), rows, tol)) << "bce " << bce << " d " << d;
        EXPECT_TRUE(test::close(dgrad.to_host(), grad, tol)) << "bce " << bce << " d " << d;
        test::poison(dloss);
        run(ctx, dp.data(), dy.data(), {.loss = dloss.data()});
        EXPECT_TRUE(test::close(dloss.to_host(), loss, tol)) << "loss only, bce " << bce;
      }
  }
}

// The same bits as the CPU: aligned (16-byte access) and misaligned (scalar) arrays, a size not
// a multiple of 4, z written over mu.
TEST_F(LossesGpu, ReparameterizeMatchesReferenceBitForBit) {
  const std::int64_t n = 1001, d = 7;
  const auto mu = test::normals(n * d, 500), lv = test::normals(n * d, 501, 0.0f, 2.0f);
  std::vector<float> z(n * d), eps(n * d);
  const ReparameterizeOptions o{.seed = 9, .step = 4};
  auto with_eps = o;
  with_eps.eps_out = eps.data();
  reparameterize(kCpu, mu.data(), lv.data(), n, d, z.data(), with_eps);
  for (const std::int64_t offset : {0, 1}) {
    std::vector<float> mu_pad(offset, 0.0f), lv_pad(offset, 0.0f);
    mu_pad.insert(mu_pad.end(), mu.begin(), mu.end());
    lv_pad.insert(lv_pad.end(), lv.begin(), lv.end());
    auto dmu = test::to_device(ctx, mu_pad);
    auto dlv = test::to_device(ctx, lv_pad);
    Buffer<float> dz(ctx, n * d + offset), deps(ctx, n * d + offset);
    test::poison(dz);
    test::poison(deps);
    auto dopt = o;
    dopt.eps_out = deps.data() + offset;
    reparameterize(ctx, dmu.data() + offset, dlv.data() + offset, n, d, dz.data() + offset, dopt);
    auto hz = dz.to_host(), heps = deps.to_host();
    hz.erase(hz.begin(), hz.begin() + offset);
    heps.erase(heps.begin(), heps.begin() + offset);
    EXPECT_TRUE(same_bytes(hz, z)) << "offset " << offset;
    EXPECT_TRUE(same_bytes(heps, eps)) << "offset " << offset;
    reparameterize(ctx, dmu.data() + offset, dlv.data() + offset, n, d, dmu.data() + offset, o);
    auto hmu = dmu.to_host();
    hmu.erase(hmu.begin(), hmu.begin() + offset);
    EXPECT_TRUE(same_bytes(hmu, z)) << "in place, offset " << offset;
  }
}

TEST_F(LossesGpu, VaeLossMatchesReference) {
  const std::int64_t n = 513, D = 784, d = 20;
  const auto x = test::uniforms(n * D, 600), xr = test::normals(n * D, 601);
  const auto mu = test::normals(n * d, 602), lv = test::normals(n * d, 603, 0.0f, 0.7f);
  auto dx = test::to_device(ctx, x);
  auto dxr = test::to_device(ctx, xr);
  auto dmu = test::to_device(ctx, mu);
  auto dlv = test::to_device(ctx, lv);
  const auto tol = test::tolerance(test::DType::FP32);
  for (const Reconstruction rc : {Reconstruction::SquaredError, Reconstruction::BernoulliLogits})
    for (const Reduction r : {Reduction::Mean, Reduction::Sum}) {
      const VaeLossOptions o{.beta = 2.5f, .reconstruction = rc, .reduction = r};
      std::vector<float> red(3), tot(n), rec(n), kl(n), gr(n * D), gm(n * d), gl(n * d);
      vae_loss(kCpu, x.data(), xr.data(), n, D, mu.data(), lv.data(), d,
               {red.data(), tot.data(), rec.data(), kl.data(), gr.data(), gm.data(), gl.data()},
               o);
      Buffer<float> dred(ctx, 3), dtot(ctx, n), drec(ctx, n), dkl(ctx, n), dgr(ctx, n * D),
          dgm(ctx, n * d), dgl(ctx, n * d);
      for (auto* b : {&dred, &dtot, &drec, &dkl, &dgr, &dgm, &dgl}) test::poison(*b);
      vae_loss(ctx, dx.data(), dxr.data(), n, D, dmu.data(), dlv.data(), d,
               {dred.data(), dtot.data(), drec.data(), dkl.data(), dgr.data(), dgm.data(),
                dgl.data()},
               o);
      EXPECT_TRUE(test::close(dred.to_host(), red, tol));
      EXPECT_TRUE(test::close(dtot.to_host(), tot, tol));
      EXPECT_TRUE(test::close(drec.to_host(), rec, tol));
      EXPECT_TRUE(test::close(dkl.to_host(), kl, tol));
      EXPECT_TRUE(test::close(dgr.to_host(), gr, tol));
      EXPECT_TRUE(test::close(dgm.to_host(), gm, tol));
      EXPECT_TRUE(test::close(dgl.to_host(), gl, tol));
      test::poison(dred);  // the reduced terms alone: per-sample values in a workspace
      vae_loss(ctx, dx.data(), dxr.data(), n, D, dmu.data(), dlv.data(), d,
               {.reduced = dred.data()}, o);
      EXPECT_TRUE(test::close(dred.to_host(), red, tol));
    }
}

}  // namespace
}  // namespace genai
