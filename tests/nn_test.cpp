// nn on the CPU: activations and their derivatives, problem 2.1 (the sigmoid layer's gradient in
// closed form), problem 4.2 (the Jacobian of x + g(x)), every layer's backward against finite
// differences in double, CBLAS against the double loop oracle, the time embedding against
// diffusers' formula, initialisation statistics, the MLP (forward, backward, accumulation,
// parameter list, safetensors save / load) and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "genai/io.hpp"
#include "genai/nn.hpp"
#include "nn_test_util.hpp"
#include "parallel_test_util.hpp"
#include "test_util.hpp"

namespace genai {
namespace {

const Context kCpu = Context::cpu();
const test::Tolerance kFp32 = test::tolerance(test::DType::FP32);

constexpr Activation kAll[] = {Activation::None,     Activation::ReLU,    Activation::SiLU,
                               Activation::GELUTanh, Activation::GELUErf, Activation::Sigmoid,
                               Activation::Tanh};

// Central differences of a scalar function of `v`, in double.
test::Vec finite_differences(test::Vec& v, const std::function<double()>& f, double h = 1e-6) {
  test::Vec g(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    const double keep = v[i];
    v[i] = keep + h;
    const double up = f();
    v[i] = keep - h;
    const double down = f();
    v[i] = keep;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

double dot(const test::Vec& a, const test::Vec& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Double against double: max |a - b| <= tol * max(1, max |b|).
::testing::AssertionResult close_d(const test::Vec& a, const test::Vec& b, double tol) {
  double err = 0, scale = 1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  if (a.size() == b.size() && err <= tol * scale) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max abs error " << err << " (bound " << tol * scale
                                       << "), sizes " << a.size() << " and " << b.size();
}

// ---- activations --------------------------------------------------------------------------

TEST(Nn, ActivationValuesAreThoseOfPyTorch) {
  // torch.nn.functional at 1.0 (float64).
  EXPECT_DOUBLE_EQ(detail::activate(Activation::ReLU, -1.0), 0.0);
  EXPECT_NEAR(detail::activate(Activation::SiLU, 1.0), 0.7310585786300049, 1e-15);
  EXPECT_NEAR(detail::activate(Activation::GELUErf, 1.0), 0.8413447460685429, 1e-15);
  EXPECT_NEAR(detail::activate(Activation::GELUTanh, 1.0), 0.8411919906082768, 1e-15);
  EXPECT_NEAR(detail::activate(Activation::Sigmoid, 1.0), 0.7310585786300049, 1e-15);
  EXPECT_NEAR(detail::activate(Activation::Tanh, 1.0), 0.7615941559557649, 1e-15);
  EXPECT_NEAR(detail::activate(Activation::GELUErf, -3.0), -0.00404969409489031, 1e-15);
  // Saturation stays finite in float.
  EXPECT_EQ(detail::activate(Activation::Sigmoid, -200.0f), 0.0f);
  EXPECT_EQ(detail::activate(Activation::SiLU, -200.0f), -0.0f);
  EXPECT_EQ(detail::activate_grad(Activation::Sigmoid, 200.0f), 0.0f);
  for (const Activation a : kAll) EXPECT_EQ(activation_from_string(to_string(a)), a);
}

// The float functions the activations use (genai/detail/nn.hpp), against double.
TEST(Nn, FloatElementaryFunctionsMeetTheirDocumentedAccuracy) {
  auto ulp = [](double v) {
    const float f = std::abs(static_cast<float>(v));
    return double(std::nextafter(f, INFINITY)) - f;
  };
  double exp_ulp = 0, tanh_ulp = 0, erf_abs = 0;
  for (double x = -87.0; x <= 88.0; x += 3.3e-5) {
    const auto f = static_cast<float>(x);
    exp_ulp = std::max(exp_ulp, std::abs(detail::exp_f(f) - std::exp(double(f))) / ulp(std::exp(double(f))));
  }
  for (double x = -20.0; x <= 20.0; x += 7e-6) {
    const auto f = static_cast<float>(x);
    tanh_ulp = std::max(tanh_ulp, std::abs(detail::tanh_f(f) - std::tanh(double(f))) / ulp(std::tanh(double(f))));
    erf_abs = std::max(erf_abs, std::abs(double(detail::erf_f(f)) - std::erf(double(f))));
  }
  EXPECT_LE(exp_ulp, 1.0);
  EXPECT_LE(tanh_ulp, 1.3);
  EXPECT_LE(erf_abs, 6.4e-7);
  EXPECT_TRUE(std::isnan(detail::exp_f(NAN)));
  EXPECT_EQ(detail::exp_f(100.0f), INFINITY);
  EXPECT_EQ(detail::exp_f(-100.0f), 0.0f);
  EXPECT_EQ(detail::tanh_f(-50.0f), -1.0f);
  EXPECT_EQ(detail::erf_f(INFINITY), 1.0f);
  EXPECT_EQ(detail::erf_f(-INFINITY), -1.0f);
}

TEST(Nn, ActivationDerivativesMatchFiniteDifferences) {
  for (const Activation a : kAll)
    for (double z = -4.05; z < 4.1; z += 0.1) {  // never exactly 0 (ReLU's kink)
      const double h = 1e-6;
      const double fd = (detail::activate(a, z + h) - detail::activate(a, z - h)) / (2 * h);
      EXPECT_NEAR(detail::activate_grad(a, z), fd, 1e-8) << to_string(a) << " at " << z;
    }
}

TEST(Nn, ActivationForwardAndBackwardApplyTheFormulas) {
  const auto z = test::normals(1001, 1, 0, 3);
  const auto dy = test::normals(1001, 2);
  for (const Activation a : kAll) {
    std::vector<float> y(z.size()), dz(z.size());
    activation_forward(kCpu, a, z.data(), 1001, y.data());
    activation_backward(kCpu, a, z.data(), dy.data(), 1001, dz.data());
    test::Vec y_ref(z.size()), dz_ref(z.size());
    for (std::size_t i = 0; i < z.size(); ++i) {
      y_ref[i] = detail::activate(a, double(z[i]));
      dz_ref[i] = dy[i] * detail::activate_grad(a, double(z[i]));
    }
    EXPECT_TRUE(test::close(y, y_ref, kFp32)) << to_string(a);
    EXPECT_TRUE(test::close(dz, dz_ref, kFp32)) << to_string(a);
    // In place.
    std::vector<float> inplace = dy;
    activation_backward(kCpu, a, z.data(), inplace.data(), 1001, inplace.data());
    EXPECT_EQ(inplace, dz) << to_string(a);
  }
}

// The CPU's activation loops run in chunks on the backend's threads, in the AVX-512 / AVX2 clone
// the machine picks: every element is the scalar float formula of genai/detail/nn.hpp bit for
// bit (NaN for NaN), over several chunks, the special values and both ends of exp_f's range.
TEST(Nn, ActivationLoopsAreTheScalarFloatFormulasBitForBit) {
  std::vector<float> z = test::normals(100003, 3, 0, 8);
  const std::vector<float> dy = test::normals(z.size(), 4);
  const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 88.5f, -88.5f, 87.9f, -86.9f,
                           1e-30f, -1e-30f, 100.0f, -100.0f, 0.625f, -0.625f};
  std::copy(std::begin(special), std::end(special), z.begin() + 5000);
  auto bits = [](float f) { return f != f ? 0x7fc00000u : rng::detail::bits(f); };
  for (const Activation a : kAll) {
    std::vector<float> y(z.size()), dz(z.size());
    activation_forward(kCpu, a, z.data(), static_cast<std::int64_t>(z.size()), y.data());
    activation_backward(kCpu, a, z.data(), dy.data(), static_cast<std::int64_t>(z.size()),
                        dz.data());
    for (std::size_t i = 0; i < z.size(); ++i) {
      ASSERT_EQ(bits(y[i]), bits(detail::activate(a, z[i]))) << to_string(a) << " at " << z[i];
      ASSERT_EQ(bits(dz[i]), bits(dy[i] * detail::activate_grad(a, z[i])))
          << to_string(a) << " at " << z[i];
    }
  }
}

// ---- 2.1: f(x) = sigmoid(W x + b) ---------------------------------------------------------

// (a) df_i/dW_jk = delta_ij sigma_i (1 - sigma_i) x_k, (b) df_i/db_j = delta_ij sigma_i (1 -
// sigma_i): the library's backward with dy = e_i gives row i of each, checked against the closed
// form and against finite differences of the double oracle. (c) sigma' <= 1/4, vanishing away
// from 0.
TEST(Nn, SigmoidLayerGradientOfProblem2_1) {
  const std::int64_t in = 4, out = 3;
  const auto x = test::normals(in, 21), W = test::normals(out * in, 22), b = test::normals(out, 23);
  const LinearShape shape{1, in, out};
  std::vector<float> y(out), z(out);
  linear_forward(kCpu, shape, x.data(), W.data(), b.data(), y.data(),
                 {.activation = Activation::Sigmoid, .pre_activation = z.data()});
  test::Vec xd = test::to_double(x), Wd = test::to_double(W), bd = test::to_double(b);
  for (std::int64_t i = 0; i < out; ++i) {
    std::vector<float> dy(out, 0.0f), dW(out * in), db(out);
    dy[i] = 1.0f;
    linear_backward(kCpu, shape, x.data(), W.data(), dy.data(), nullptr, dW.data(), db.data(),
                    {.activation = Activation::Sigmoid, .pre_activation = z.data()});
    const double s = detail::sigmoid(test::dense_d(1, in, out, xd, Wd, bd)[i]);
    test::Vec dW_closed(out * in, 0.0), db_closed(out, 0.0);
    for (std::int64_t k = 0; k < in; ++k) dW_closed[i * in + k] = s * (1 - s) * xd[k];
    db_closed[i] = s * (1 - s);
    EXPECT_TRUE(test::close(dW, dW_closed, kFp32)) << "row " << i;
    EXPECT_TRUE(test::close(db, db_closed, kFp32)) << "row " << i;
    auto f_i = [&] {
      return detail::sigmoid(test::dense_d(1, in, out, xd, Wd, bd)[i]);
    };
    const test::Vec fd_W = finite_differences(Wd, f_i), fd_b = finite_differences(bd, f_i);
    EXPECT_TRUE(close_d(fd_W, dW_closed, 1e-8)) << "row " << i;
    EXPECT_TRUE(close_d(fd_b, db_closed, 1e-8)) << "row " << i;
  }
  EXPECT_DOUBLE_EQ(detail::activate_grad(Activation::Sigmoid, 0.0), 0.25);
  for (double zz = -10; zz <= 10; zz += 0.25)
    EXPECT_LE(detail::activate_grad(Activation::Sigmoid, zz), 0.25);
  EXPECT_LT(detail::activate_grad(Activation::Sigmoid, 10.0), 5e-5);
}

// ---- linear layers ------------------------------------------------------------------------

struct LinearCase {
  std::int64_t N = 37, in = 19, out = 23;
  std::vector<float> x, W, b;
  explicit LinearCase(std::uint64_t seed)
      : x(test::normals(N * in, seed)),
        W(test::normals(out * in, seed + 1, 0, 0.3f)),
        b(test::normals(out, seed + 2)) {}
  LinearShape shape() const { return {N, in, out}; }
};

TEST(Nn, LinearForwardMatchesTheLoopOracle) {
  const LinearCase c(100);
  for (const Activation a : kAll)
    for (const bool bias : {true, false}) {
      std::vector<float> y(c.N * c.out), z(c.N * c.out);
      test::poison(y);
      test::poison(z);
      linear_forward(kCpu, c.shape(), c.x.data(), c.W.data(), bias ? c.b.data() : nullptr,
                     y.data(), {.activation = a, .pre_activation = z.data()});
      const test::Vec z_ref = test::dense_d(c.N, c.in, c.out, test::to_double(c.x),
                                            test::to_double(c.W),
                                            bias ? test::to_double(c.b) : test::Vec());
      EXPECT_TRUE(test::close(z, z_ref, kFp32)) << to_string(a);
      EXPECT_TRUE(test::close(y, test::activate_d(a, z_ref), kFp32)) << to_string(a);
      // Without pre_activation the same y.
      std::vector<float> y2(y.size());
      linear_forward(kCpu, c.shape(), c.x.data(), c.W.data(), bias ? c.b.data() : nullptr,
                     y2.data(), {.activation = a});
      EXPECT_EQ(y2, y) << to_string(a);
    }
}

// L = sum(u * y): the library's dx, dW, db against central differences of the double oracle.
TEST(Nn, LinearBackwardMatchesFiniteDifferences) {
  const LinearCase c(200);
  const auto u = test::normals(c.N * c.out, 203);
  for (const Activation a : kAll) {
    std::vector<float> y(c.N * c.out), z(c.N * c.out);
    linear_forward(kCpu, c.shape(), c.x.data(), c.W.data(), c.b.data(), y.data(),
                   {.activation = a, .pre_activation = z.data()});
    std::vector<float> dx(c.N * c.in), dW(c.out * c.in), db(c.out);
    test::poison(dx), test::poison(dW), test::poison(db);
    linear_backward(kCpu, c.shape(), c.x.data(), c.W.data(), u.data(), dx.data(), dW.data(),
                    db.data(), {.activation = a, .pre_activation = z.data()});
    test::Vec xd = test::to_double(c.x), Wd = test::to_double(c.W), bd = test::to_double(c.b);
    const test::Vec ud = test::to_double(u);
    auto loss = [&] {
      return dot(ud, test::activate_d(a, test::dense_d(c.N, c.in, c.out, xd, Wd, bd)));
    };
    EXPECT_TRUE(test::close(dx, finite_differences(xd, loss), kFp32)) << to_string(a);
    EXPECT_TRUE(test::close(dW, finite_differences(Wd, loss), kFp32)) << to_string(a);
    EXPECT_TRUE(test::close(db, finite_differences(bd, loss), kFp32)) << to_string(a);
    // The oracle's hand-written backward agrees with the same differences.
    const auto g = test::linear_backward_d(c.N, c.in, c.out, xd,  Wd,
                                           test::dense_d(c.N, c.in, c.out, xd, Wd, bd), a, ud);
    EXPECT_TRUE(close_d(g.dW, finite_differences(Wd, loss), 1e-7)) << to_string(a);
  }
}

TEST(Nn, LinearBackwardAccumulatesAndWorksInPlace) {
  const LinearCase c(300);
  const auto dy = test::normals(c.N * c.out, 301);
  std::vector<float> z(c.N * c.out), y(c.N * c.out);
  const LinearOptions fwd{.activation = Activation::SiLU, .pre_activation = z.data()};
  linear_forward(kCpu, c.shape(), c.x.data(), c.W.data(), c.b.data(), y.data(), fwd);
  std::vector<float> dW1(c.out * c.in), db1(c.out), dx1(c.N * c.in);
  const LinearBackwardOptions bwd{.activation = Activation::SiLU, .pre_activation = z.data()};
  linear_backward(kCpu, c.shape(), c.x.data(), c.W.data(), dy.data(), dx1.data(), dW1.data(),
                  db1.data(), bwd);
  // Accumulating onto the same gradients doubles them.
  std::vector<float> dW2 = dW1, db2 = db1;
  LinearBackwardOptions acc = bwd;
  acc.accumulate = true;
  linear_backward(kCpu, c.shape(), c.x.data(), c.W.data(), dy.data(), nullptr, dW2.data(),
                  db2.data(), acc);
  for (std::size_t i = 0; i < dW1.size(); ++i) EXPECT_FLOAT_EQ(dW2[i], 2 * dW1[i]);
  for (std::size_t i = 0; i < db1.size(); ++i) EXPECT_FLOAT_EQ(db2[i], 2 * db1[i]);
  // dz in dy's own storage.
  std::vector<float> scratch = dy, dx3(c.N * c.in);
  LinearBackwardOptions inplace = bwd;
  inplace.dz = scratch.data();
  linear_backward(kCpu, c.shape(), c.x.data(), c.W.data(), scratch.data(), dx3.data(), nullptr,
                  nullptr, inplace);
  EXPECT_EQ(dx3, dx1);
  // An empty batch: gradients of a sum over no rows are 0.
  std::vector<float> dW0(c.out * c.in, 5.0f), db0(c.out, 5.0f);
  linear_backward(kCpu, {0, c.in, c.out}, nullptr, c.W.data(), nullptr, nullptr, dW0.data(),
                  db0.data());
  EXPECT_EQ(dW0, std::vector<float>(c.out * c.in, 0.0f));
  EXPECT_EQ(db0, std::vector<float>(c.out, 0.0f));
}

// 4.2: f(x) = x + g(x), g(x) = act(W x + b): J_f = I + J_g, by finite differences of the double
// oracle, and the library's backward of the block (dx = dy + linear_backward) gives J_f's rows.
TEST(Nn, ResidualBlockJacobianIsIdentityPlusJgOfProblem4_2) {
  const std::int64_t d = 6;
  const auto x = test::normals(d, 41), W = test::normals(d * d, 42, 0, 0.5f), b = test::normals(d, 43);
  for (const Activation a : {Activation::Tanh, Activation::GELUErf, Activation::ReLU}) {
    test::Vec xd = test::to_double(x);
    const test::Vec Wd = test::to_double(W), bd = test::to_double(b);
    std::vector<float> z(d), gx(d);
    linear_forward(kCpu, {1, d, d}, x.data(), W.data(), b.data(), gx.data(),
                   {.activation = a, .pre_activation = z.data()});
    for (std::int64_t i = 0; i < d; ++i) {
      auto g_i = [&] { return test::activate_d(a, test::dense_d(1, d, d, xd, Wd, bd))[i]; };
      auto f_i = [&] { return xd[i] + g_i(); };
      const test::Vec Jg = finite_differences(xd, g_i), Jf = finite_differences(xd, f_i);
      test::Vec identity_plus(d);
      for (std::int64_t k = 0; k < d; ++k) identity_plus[k] = (k == i) + Jg[k];
      EXPECT_TRUE(close_d(Jf, identity_plus, 1e-8)) << to_string(a);
      std::vector<float> dy(d, 0.0f), dx(d);
      dy[i] = 1.0f;
      linear_backward(kCpu, {1, d, d}, x.data(), W.data(), dy.data(), dx.data(), nullptr, nullptr,
                      {.activation = a, .pre_activation = z.data()});
      for (std::int64_t k = 0; k < d; ++k) dx[k] += dy[k];  // the skip
      EXPECT_TRUE(test::close(dx, identity_plus, kFp32)) << to_string(a) << " row " << i;
    }
  }
}

TEST(Nn, LinearBadInputNamesTheArgumentAndWritesNothing) {
  const LinearCase c(400);
  std::vector<float> y(c.N * c.out, -7.0f);
  const std::vector<float> untouched = y;
  auto expect = [&](const std::function<void()>& f, const std::string& what) {
    const std::string m = test::error_of(f);
    EXPECT_NE(m.find(what), std::string::npos) << m;
    EXPECT_EQ(y, untouched);
  };
  expect([&] { linear_forward(kCpu, {c.N, 0, c.out}, c.x.data(), c.W.data(), nullptr, y.data()); },
         "genai::linear_forward: argument 'shape.in' must be >= 1 (got 0)");
  expect([&] { linear_forward(kCpu, {-1, c.in, c.out}, c.x.data(), c.W.data(), nullptr, y.data()); },
         "argument 'shape.batch' must be >= 0 (got -1)");
  expect([&] { linear_forward(kCpu, c.shape(), nullptr, c.W.data(), nullptr, y.data()); },
         "argument 'x' must not be null");
  expect([&] { linear_forward(kCpu, c.shape(), c.x.data(), nullptr, nullptr, y.data()); },
         "argument 'W' must not be null");
  expect([&] {
    linear_forward(kCpu, c.shape(), c.x.data(), c.W.data(), nullptr, y.data(),
                   {.activation = static_cast<Activation>(42)});
  }, "argument 'opts.activation' is not an Activation (value 42)");
  expect([&] {
    linear_forward(kCpu, c.shape(), c.x.data(), c.W.data(), nullptr, y.data(),
                   {.activation = Activation::ReLU, .pre_activation = y.data()});
  }, "argument 'opts.pre_activation' must not be y");
  expect([&] {
    linear_backward(kCpu, c.shape(), c.x.data(), c.W.data(), c.x.data(), y.data(), nullptr,
                    nullptr, {.activation = Activation::Tanh});
  }, "genai::linear_backward: argument 'opts.pre_activation' must not be null");
  expect([&] {
    linear_backward(kCpu, c.shape(), c.x.data(), c.W.data(), nullptr, y.data(), nullptr, nullptr);
  }, "argument 'dy' must not be null");
  expect([&] { activation_forward(kCpu, Activation::ReLU, nullptr, 3, y.data()); },
         "genai::activation_forward: argument 'z' must not be null");
  expect([&] { time_embedding(kCpu, c.x.data(), 2, 4, y.data(), {.downscale_freq_shift = 2}); },
         "genai::time_embedding: argument 'opts.downscale_freq_shift' must be finite and < dim / 2 = 2");
  expect([&] { time_embedding(kCpu, c.x.data(), 2, 4, y.data(), {.max_period = 0}); },
         "argument 'opts.max_period' must be finite and > 0");
  expect([&] { init_linear(kCpu, 3, 4, y.data(), nullptr, static_cast<Init>(9), 1); },
         "genai::init_linear: argument 'init' is not an Init (value 9)");
  EXPECT_NE(test::error_of([] { activation_from_string("gelu_exact"); })
                .find("must be one of none, relu, silu, gelu_tanh, gelu, sigmoid, tanh"),
            std::string::npos);
}

// ---- time embedding -----------------------------------------------------------------------

TEST(Nn, TimeEmbeddingIsDiffusersGetTimestepEmbedding) {
  // dim 4, t = 1: h = 2, f = [1, exp(-ln(1e4) / (2 - 1))] = [1, 1e-4].
  const std::vector<float> t = {1.0f};
  std::vector<float> e(5);
  time_embedding(kCpu, t.data(), 1, 4, e.data());
  EXPECT_NEAR(e[0], std::sin(1.0), 1e-7);
  EXPECT_NEAR(e[1], std::sin(1e-4), 1e-10);
  EXPECT_NEAR(e[2], std::cos(1.0), 1e-7);
  EXPECT_NEAR(e[3], std::cos(1e-4), 1e-7);
  time_embedding(kCpu, t.data(), 1, 5, e.data(), {.flip_sin_to_cos = true});
  EXPECT_NEAR(e[0], std::cos(1.0), 1e-7);
  EXPECT_NEAR(e[2], std::sin(1.0), 1e-7);
  EXPECT_EQ(e[4], 0.0f);  // odd dim: a zero column
  // diffusers' defaults on the tiny-diffusion shape: 128 columns, t up to 1000.
  const auto ts = test::uniforms(64, 5, 0, 1000);
  std::vector<float> big(64 * 128);
  test::poison(big);
  const TimeEmbeddingOptions o{.downscale_freq_shift = 0.0f, .scale = 2.0f};
  time_embedding(kCpu, ts.data(), 64, 128, big.data(), o);
  test::Vec ref(64 * 128);
  for (int r = 0; r < 64; ++r)
    for (int i = 0; i < 64; ++i) {  // PyTorch float32: f and t * f rounded to float
      const auto f = static_cast<float>(std::exp(-std::log(10000.0) * i / 64.0));
      const double a = (2.0f * ts[r]) * f;
      ref[r * 128 + i] = std::sin(a);
      ref[r * 128 + 64 + i] = std::cos(a);
    }
  EXPECT_TRUE(test::close(big, ref, kFp32));
}

// ---- initialisation -----------------------------------------------------------------------

TEST(Nn, InitDrawsTheDocumentedDistributionsDeterministically) {
  const std::int64_t out = 256, in = 300, n = out * in;
  std::vector<float> W(n), b(out, 9.0f);
  auto moments = [&](const std::vector<float>& v, double& mean, double& var) {
    mean = 0, var = 0;
    for (const float x : v) mean += x;
    mean /= double(v.size());
    for (const float x : v) var += (x - mean) * (x - mean);
    var /= double(v.size() - 1);
  };
  struct Case {
    Init init;
    double var;    // of W
    double bound;  // |W| <= bound (0: unbounded)
    bool zero_bias;
  };
  const double fan_in = in, fan_sum = in + out;
  const Case cases[] = {{Init::PyTorchDefault, 1 / (3 * fan_in), 1 / std::sqrt(fan_in), false},
                        {Init::KaimingUniform, 2 / fan_in, std::sqrt(6 / fan_in), true},
                        {Init::KaimingNormal, 2 / fan_in, 0, true},
                        {Init::XavierUniform, 2 / fan_sum, std::sqrt(6 / fan_sum), true},
                        {Init::XavierNormal, 2 / fan_sum, 0, true}};
  for (const Case& c : cases) {
    init_linear(kCpu, out, in, W.data(), b.data(), c.init, 7, 3);
    double mean, var;
    moments(W, mean, var);
    // Standard errors: sd / sqrt(n) for the mean, var * sqrt(2 / n) (normal) or less.
    EXPECT_LT(std::abs(mean), 5 * std::sqrt(c.var / n)) << static_cast<int>(c.init);
    EXPECT_LT(std::abs(var / c.var - 1), 5 * std::sqrt(2.0 / n)) << static_cast<int>(c.init);
    for (const float w : W) {
      if (c.bound > 0) {
        ASSERT_LE(std::abs(w), c.bound * (1 + 1e-6));
      }
    }
    for (const float x : b) {
      if (c.zero_bias) {
        ASSERT_EQ(x, 0.0f);
      } else {
        ASSERT_LE(std::abs(x), 1 / std::sqrt(fan_in) * (1 + 1e-6));
      }
    }
    // Same key, same bits; the layer index changes them.
    std::vector<float> again(n), other(n);
    init_linear(kCpu, out, in, again.data(), nullptr, c.init, 7, 3);
    init_linear(kCpu, out, in, other.data(), nullptr, c.init, 7, 4);
    EXPECT_EQ(again, W);
    EXPECT_NE(other, W);
  }
  // The documented key: W is fill_uniform(seed, nn_init, step 2 * layer).
  std::vector<float> expect(n);
  const float bound = static_cast<float>(1 / std::sqrt(fan_in));
  fill_uniform(kCpu, expect.data(), n, RngKey{7, rng::streams::nn_init, 6}, -bound, bound);
  init_linear(kCpu, out, in, W.data(), nullptr, Init::PyTorchDefault, 7, 3);
  EXPECT_EQ(W, expect);
}

// ---- MLP ------------------------------------------------------------------------------------

struct MlpCase {
  MlpOptions opts;
  std::int64_t N;
};

std::vector<MlpCase> mlp_cases() {
  return {
      {{.sizes = {3, 16, 16, 16, 2}, .activation = Activation::ReLU}, 33},
      {{.sizes = {2, 24, 24, 24, 2}, .activation = Activation::GELUErf, .time_embedding_dim = 12,
        .residual = true},
       29},
      {{.sizes = {4, 16, 8, 8, 3}, .activation = Activation::GELUTanh, .time_embedding_dim = 7,
        .time_embedding = {.flip_sin_to_cos = true}, .residual = true},
       17},
      {{.sizes = {5, 12, 12, 1}, .activation = Activation::SiLU, .residual = true}, 20},
      {{.sizes = {5, 12, 12, 12, 12, 1}, .activation = Activation::ReLU, .residual = true}, 20},
      {{.sizes = {3, 9, 9, 2}, .activation = Activation::Tanh}, 11},
      {{.sizes = {3, 4}, .activation = Activation::Sigmoid, .time_embedding_dim = 4}, 6},
  };
}

std::string describe(const MlpOptions& o) {
  std::string s = to_string(o.activation);
  for (const auto v : o.sizes) {
    s += ' ';
    s += std::to_string(v);
  }
  return s + (o.residual ? " residual" : "") + " t" + std::to_string(o.time_embedding_dim);
}

// Whole-model gradients against the oracle's backward, and the oracle's against finite
// differences of the loss sum(u * y) in double.
TEST(Nn, MlpForwardBackwardMatchOracleAndFiniteDifferences) {
  std::uint64_t seed = 500;
  for (const MlpCase& c : mlp_cases()) {
    SCOPED_TRACE(describe(c.opts));
    Mlp m(kCpu, c.opts);
    m.init(seed++, Init::KaimingUniform);
    const std::int64_t xd = m.input_dim(), od = m.output_dim();
    const auto x = test::normals(c.N * xd, seed++);
    const auto t = test::uniforms(c.N, seed++, 0, 50);
    const float* tp = c.opts.time_embedding_dim > 0 ? t.data() : nullptr;
    const auto u = test::normals(c.N * od, seed++);
    MlpWorkspace ws;
    std::vector<float> y(c.N * od), dx(c.N * xd);
    test::poison(y);
    test::poison(dx);
    m.forward(ws, x.data(), tp, c.N, y.data());
    m.backward(ws, u.data(), dx.data());
    ASSERT_EQ(ws.batch(), c.N);

    test::MlpD md = test::mlp_d(m);
    test::MlpTapeD tape;
    EXPECT_TRUE(test::close(y, test::mlp_forward_d(md, x, t, c.N, &tape), kFp32));
    const test::MlpGradsD g = test::mlp_backward_d(md, tape, c.N, test::to_double(u));
    EXPECT_TRUE(test::close(dx, g.dx, kFp32));
    const std::vector<float> grads(m.gradients(), m.gradients() + m.flat_size());
    const test::Vec ud = test::to_double(u);
    for (const MlpParam& p : m.parameter_list()) {
      const int l = std::stoi(p.name.substr(7));
      const bool weight = p.shape.size() == 2;
      const std::vector<float> got(grads.begin() + p.offset, grads.begin() + p.offset + p.size);
      EXPECT_TRUE(test::close(got, weight ? g.dW[l] : g.db[l], kFp32)) << p.name;
      // Finite differences of the double model on this tensor.
      test::Vec& v = weight ? md.W[l] : md.b[l];
      const test::Vec fd =
          finite_differences(v, [&] { return dot(ud, test::mlp_forward_d(md, x, t, c.N)); });
      EXPECT_TRUE(close_d(fd, weight ? g.dW[l] : g.db[l], 1e-7)) << p.name;
    }
    // The padding of the flat buffers stays 0.
    std::vector<bool> used(m.flat_size(), false);
    for (const MlpParam& p : m.parameter_list()) {
      EXPECT_EQ(p.offset % 4, 0) << p.name;
      for (std::int64_t i = 0; i < p.size; ++i) used[p.offset + i] = true;
    }
    for (std::int64_t i = 0; i < m.flat_size(); ++i) {
      if (!used[i]) {
        ASSERT_EQ(grads[i], 0.0f) << i;
      }
    }
  }
}

// The tiny-diffusion shape at width w (2 -> w -> w -> w -> 2, GELU(erf), residual, a time
// embedding of w / 2) initialised from init_seed, and a batch of n inputs, times and output
// gradients drawn from seeds seed, seed + 1, seed + 2.
struct GeluMlpCase {
  Mlp m;
  std::int64_t N;
  std::vector<float> x, t, dy;
  GeluMlpCase(std::int64_t w, std::int64_t n, std::uint64_t init_seed, std::uint64_t seed)
      : m(kCpu, {.sizes = {2, w, w, w, 2}, .activation = Activation::GELUErf,
                 .time_embedding_dim = w / 2, .residual = true}),
        N(n), x(test::normals(2 * n, seed)), t(test::uniforms(n, seed + 1, 0, 1000)),
        dy(test::normals(2 * n, seed + 2)) {
    m.init(init_seed);
  }
};

// A step's GEMMs in blocks of rows (and of output features for the weight gradients), the
// bias gradients of the row blocks added in block order: output, input gradient and every
// parameter gradient are the same bytes on any thread count.
TEST(Nn, MlpStepIsTheSameOnAnyThreadCount) {
  GeluMlpCase c(64, 600, 5, 21);
  test::expect_same_on_any_thread_count([&] {
    MlpWorkspace ws;
    std::vector<float> y(2 * c.N), dx(2 * c.N);
    c.m.forward(ws, c.x.data(), c.t.data(), c.N, y.data());
    c.m.backward(ws, c.dy.data(), dx.data());
    return std::vector<std::vector<float>>{
        y, dx, std::vector<float>(c.m.gradients(), c.m.gradients() + c.m.flat_size())};
  });
}

TEST(Nn, MlpAccumulatesGradientsAndReusesItsWorkspace) {
  GeluMlpCase c(32, 40, 3, 11);
  Mlp& m = c.m;
  const std::int64_t N = c.N;
  const auto &x = c.x, &t = c.t, &dy = c.dy;
  MlpWorkspace ws;
  std::vector<float> y(2 * N);
  m.forward(ws, x.data(), t.data(), N, y.data());
  m.backward(ws, dy.data());
  const std::vector<float> once(m.gradients(), m.gradients() + m.flat_size());
  m.backward(ws, dy.data(), nullptr, true);  // the state of the forward is still there
  for (std::int64_t i = 0; i < m.flat_size(); ++i)
    ASSERT_FLOAT_EQ(m.gradients()[i], 2 * once[i]) << i;
  // Two half batches accumulated = the whole batch (the loss is a sum over rows).
  m.zero_grad();
  const std::int64_t h = N / 2;
  for (int part = 0; part < 2; ++part) {
    std::vector<float> yh(2 * h);
    m.forward(ws, x.data() + part * 2 * h, t.data() + part * h, h, yh.data());
    m.backward(ws, dy.data() + part * 2 * h, nullptr, true);
  }
  const std::vector<float> halves(m.gradients(), m.gradients() + m.flat_size());
  EXPECT_TRUE(test::close(halves, std::vector<float>(once), kFp32));
  EXPECT_EQ(ws.batch(), h);
  m.zero_grad();
  for (std::int64_t i = 0; i < m.flat_size(); ++i) ASSERT_EQ(m.gradients()[i], 0.0f);
}

TEST(Nn, MlpParameterListIsTheFlatBufferInOrder) {
  Mlp m(kCpu, {.sizes = {2, 128, 128, 128, 2}, .activation = Activation::GELUErf,
               .time_embedding_dim = 128, .residual = true});
  EXPECT_EQ(m.layers(), 4);
  EXPECT_FALSE(m.is_residual(0));
  EXPECT_TRUE(m.is_residual(1));
  EXPECT_TRUE(m.is_residual(2));
  EXPECT_FALSE(m.is_residual(3));
  const auto list = m.parameter_list();
  ASSERT_EQ(list.size(), 8u);
  EXPECT_EQ(list[0].name, "layers.0.weight");
  EXPECT_EQ(list[0].shape, (std::vector<std::int64_t>{128, 130}));
  EXPECT_EQ(list[7].name, "layers.3.bias");
  EXPECT_EQ(list[7].shape, std::vector<std::int64_t>{2});
  std::int64_t count = 0, end = 0;
  for (const MlpParam& p : list) {
    EXPECT_GE(p.offset, end);
    EXPECT_LT(p.offset - end, 4);
    EXPECT_EQ(p.param, m.parameters() + p.offset);
    EXPECT_EQ(p.grad, m.gradients() + p.offset);
    count += p.size;
    end = p.offset + p.size;
  }
  EXPECT_EQ(count, m.parameter_count());
  EXPECT_EQ(count, 128 * 130 + 128 + 2 * (128 * 128 + 128) + 2 * 128 + 2);
  EXPECT_LT(m.flat_size() - count, 4 * 8);
}

class NnFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = std::filesystem::temp_directory_path() /
          ("genai_nn_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
           "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir);
  }
  void TearDown() override { std::filesystem::remove_all(dir); }
  std::string path(const std::string& name) const { return (dir / name).string(); }
  std::filesystem::path dir;
};

TEST_F(NnFiles, MlpSavesAndLoadsThroughSafetensors) {
  const MlpOptions o{.sizes = {2, 16, 16, 2}, .activation = Activation::GELUTanh,
                     .time_embedding_dim = 6,
                     .time_embedding = {.flip_sin_to_cos = true, .downscale_freq_shift = 0.5f,
                                        .max_period = 1000.0f, .scale = 0.1f},
                     .residual = true};
  Mlp m(kCpu, o);
  m.init(9, Init::XavierNormal);
  m.save(path("mlp.safetensors"), {{"step", "1200"}});
  const Mlp back = Mlp::load(kCpu, path("mlp.safetensors"));
  EXPECT_EQ(back.options().sizes, o.sizes);
  EXPECT_EQ(back.options().activation, o.activation);
  EXPECT_EQ(back.options().time_embedding_dim, 6);
  EXPECT_TRUE(back.options().time_embedding.flip_sin_to_cos);
  EXPECT_EQ(back.options().time_embedding.downscale_freq_shift, 0.5f);
  EXPECT_EQ(back.options().time_embedding.max_period, 1000.0f);
  EXPECT_EQ(back.options().time_embedding.scale, 0.1f);
  EXPECT_TRUE(back.options().residual);
  ASSERT_EQ(back.flat_size(), m.flat_size());
  EXPECT_TRUE(std::equal(m.parameters(), m.parameters() + m.flat_size(), back.parameters()));
  const io::Safetensors st = io::read_safetensors(path("mlp.safetensors"));
  EXPECT_EQ(st.metadata.at("step"), "1200");
  EXPECT_EQ(st.metadata.at("format"), "genai.mlp");
  EXPECT_EQ(st.metadata.at("activation"), "gelu_tanh");
  EXPECT_EQ(st.tensors.at("layers.0.weight").shape, (std::vector<std::int64_t>{16, 8}));
  EXPECT_NE(test::error_of([&] { m.save(path("x.safetensors"), {{"sizes", "1"}}); })
                .find("argument 'metadata' key 'sizes' is one the model writes itself"),
            std::string::npos);
}

// Several arrays of the model's layout in one file, under prefixes (a training checkpoint's
// weights and moving average): each loads by its prefix, the others left alone; a stray tensor
// under a prefix is refused, and without a prefix the tensors must be the model's own names.
TEST_F(NnFiles, MlpTensorsUnderPrefixesShareOneFile) {
  Mlp a(kCpu, {.sizes = {2, 8, 2}, .time_embedding_dim = 4});
  Mlp b(kCpu, a.options());
  a.init(1);
  b.init(2);
  const auto flat = [](const Mlp& m) {
    return std::vector<float>(m.parameters(), m.parameters() + m.flat_size());
  };
  io::Safetensors st;
  st.metadata = a.metadata();
  a.add_tensors(st, "model.", flat(a));
  a.add_tensors(st, "ema.", flat(b));
  io::write_safetensors(path("two.safetensors"), st);
  EXPECT_EQ(flat(Mlp::load(kCpu, path("two.safetensors"), "model.")), flat(a));
  EXPECT_EQ(flat(Mlp::load(kCpu, path("two.safetensors"), "ema.")), flat(b));
  EXPECT_EQ(a.read_tensors(st, "ema.", "f"), flat(b));
  const std::string all = path("two.safetensors");
  auto message = [&](const std::string& prefix) {
    try {
      Mlp::load(kCpu, all, prefix);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(message("").find("no tensor 'layers.0.weight'"), std::string::npos);
  EXPECT_NE(message("adam.").find("no tensor 'adam.layers.0.weight'"), std::string::npos);
  st.tensors["ema.step"] = io::Array{io::DType::F32, {1}, std::vector<std::byte>(4)};
  io::write_safetensors(all, st);
  EXPECT_NE(message("ema.").find("the file has 5 tensors under 'ema.', the model 4"),
            std::string::npos);
  EXPECT_EQ(test::error_of([&] { a.add_tensors(st, "x.", std::vector<float>(3)); }),
            "genai::Mlp::add_tensors: argument 'flat' has 3 elements, the model's flat_size() is " +
                std::to_string(a.flat_size()));
  EXPECT_EQ(Mlp::options_from_metadata(a.metadata(), "f").sizes, a.options().sizes);
}

TEST_F(NnFiles, MlpLoadRejectsFilesThatAreNotItsModel) {
  Mlp m(kCpu, {.sizes = {3, 8, 2}, .activation = Activation::Tanh});
  m.init(1);
  m.save(path("good.safetensors"));
  const io::Safetensors good = io::read_safetensors(path("good.safetensors"));
  auto fails_with = [&](io::Safetensors st, const std::string& what) {
    io::write_safetensors(path("bad.safetensors"), st);
    try {
      Mlp::load(kCpu, path("bad.safetensors"));
      ADD_FAILURE() << "no error for: " << what;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(path("bad.safetensors")), std::string::npos) << msg;
      EXPECT_NE(msg.find(what), std::string::npos) << msg;
    }
  };
  using Edit = std::function<void(io::Safetensors&)>;
  auto set_meta = [](const char* key, const char* value) {
    return Edit([=](io::Safetensors& st) { st.metadata[key] = value; });
  };
  const std::vector<std::pair<Edit, std::string>> cases = {
      {[](io::Safetensors& st) { st.tensors.erase("layers.1.bias"); }, "no tensor 'layers.1.bias'"},
      {[](io::Safetensors& st) { st.tensors["layers.0.weight"].shape = {3, 8}; },
       "tensor 'layers.0.weight' has shape 3,8, the model needs 8,3"},
      {[](io::Safetensors& st) {
         io::Array& w = st.tensors["layers.0.weight"];
         w.dtype = io::DType::F16;
         w.bytes.resize(w.bytes.size() / 2);
       },
       "tensor 'layers.0.weight' has dtype F16, the model needs F32"},
      {[](io::Safetensors& st) {
         st.tensors["extra"] = io::Array{io::DType::F32, {1}, std::vector<std::byte>(4)};
       },
       "the file has 5 tensors, the model 4"},
      {set_meta("format", "other"), "metadata 'format' is 'other', not 'genai.mlp'"},
      {[](io::Safetensors& st) { st.metadata.erase("activation"); },
       "metadata has no 'activation'"},
      {set_meta("activation", "swish"), "argument 'name' must be one of"},
      {set_meta("sizes", "3,,2"), "metadata 'sizes' is '3,,2', not a list like 2,128,2"},
      {set_meta("sizes", "3,0,2"), "the options in the metadata are not a valid model"},
      {set_meta("residual", "yes"), "metadata 'residual' is 'yes', not true or false"},
      {set_meta("max_period", "1e4x"), "metadata 'max_period' is '1e4x', not a number"},
  };
  for (const auto& [edit, what] : cases) {
    io::Safetensors st = good;
    edit(st);
    fails_with(st, what);
  }
}

TEST(Nn, MlpBadInputNamesTheArgument) {
  auto has = [](const std::function<void()>& f, const std::string& what) {
    const std::string m = test::error_of(f);
    EXPECT_NE(m.find(what), std::string::npos) << m;
  };
  has([] { Mlp(kCpu, {.sizes = {3}}); }, "genai::Mlp::Mlp: argument 'opts.sizes' needs at least 2");
  has([] { Mlp(kCpu, {.sizes = {3, 0, 2}}); }, "argument 'opts.sizes[i]' must be >= 1 (got 0)");
  has([] { Mlp(kCpu, {.sizes = {3, 2}, .time_embedding_dim = 2}); },
      "argument 'opts.downscale_freq_shift' must be finite and < dim / 2 = 1");
  Mlp m(kCpu, {.sizes = {3, 4, 2}});
  Mlp other(kCpu, {.sizes = {3, 4, 2}});
  MlpWorkspace ws;
  std::vector<float> x(6), y(4, -7.0f), t(2);
  has([&] { m.backward(ws, y.data()); },
      "genai::Mlp::backward: argument 'ws' holds no forward of this model");
  has([&] { m.forward(ws, x.data(), t.data(), 2, y.data()); },
      "genai::Mlp::forward: argument 't' must be null: the model has no time embedding");
  has([&] { m.forward(ws, nullptr, nullptr, 2, y.data()); }, "argument 'x' must not be null");
  EXPECT_EQ(y, std::vector<float>(4, -7.0f));
  m.forward(ws, x.data(), nullptr, 2, y.data());
  has([&] { other.backward(ws, y.data()); }, "argument 'ws' holds no forward of this model");
  has([&] { m.backward(ws, nullptr); }, "argument 'dy' must not be null");
}

}  // namespace
}  // namespace genai
