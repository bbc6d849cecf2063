// CPU tests of the optim module: Adam's three steps by hand and against PyTorch, the first step
// as -lr sign(g) (3.2(b)'s bias correction), the seed's MyAdam formulas (3.4), AdamW against
// Adam with L2 (3.2), AMSGrad, many tensors in one call, SGD with momentum / dampening /
// Nesterov against PyTorch, the weights' EMA (diffusers' EMAModel), the schedules (3.1(c)), 3.3's
// penalties and the L1 proximal step, bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <numbers>
#include <vector>

#include "genai/detail/optim.hpp"
#include "genai/optim.hpp"
#include "tests/parallel_test_util.hpp"
#include "tests/test_util.hpp"

namespace genai {
namespace {

const Context kCpu = Context::cpu();

// One parameter tensor with its Adam state, on the host.
struct HostTensor {
  std::vector<float> p, g, m, v, v_max;
  explicit HostTensor(std::vector<float> p0)
      : p(std::move(p0)), g(p.size()), m(p.size()), v(p.size()), v_max(p.size()) {}
  AdamTensor adam() {
    return {p.data(), g.data(), m.data(), v.data(), v_max.data(),
            static_cast<std::int64_t>(p.size())};
  }
  SgdTensor sgd() { return {p.data(), g.data(), m.data(), static_cast<std::int64_t>(p.size())}; }
};

const std::vector<std::vector<float>> kGrads = {
    {0.5f, -1.0f, 2.0f}, {0.1f, 0.3f, -0.2f}, {-0.4f, 0.2f, 0.05f}};

// Three steps of `step(t)` on p = [1, -2, 0.5] with kGrads; the final parameters.
template <class Step>
std::vector<float> three_steps(Step step) {
  HostTensor t({1.0f, -2.0f, 0.5f});
  for (int s = 0; s < 3; ++s) {
    t.g = kGrads[s];
    step(t, s + 1);
  }
  return t.p;
}

void expect_near_all(const std::vector<float>& got, const std::vector<double>& expect,
                     double rel) {
  ASSERT_EQ(got.size(), expect.size());
  for (std::size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], expect[i], rel * std::abs(expect[i])) << i;
}

// The seed's MyAdam (problem 3.4) in double: m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t),
// p -= lr m_hat / (sqrt(v_hat) + eps).
struct MyAdam {
  double lr, b1, b2, eps;
  std::vector<double> p, m, v;
  int t = 0;
  void step(const std::vector<float>& g) {
    ++t;
    for (std::size_t i = 0; i < p.size(); ++i) {
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * double(g[i]) * g[i];
      const double m_hat = m[i] / (1 - std::pow(b1, t)), v_hat = v[i] / (1 - std::pow(b2, t));
      p[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    }
  }
};

// ---- Adam -----------------------------------------------------------------------------------

// By hand, lr 0.1 and PyTorch's defaults otherwise. Step 1: m = 0.1 g, v = 0.001 g^2,
// m_hat = g, v_hat = g^2, so p moves by -0.1 g / (|g| + 1e-8) = -0.1 sign(g) (to 1e-8 / |g|).
// Steps 2 and 3 from the formulas in double; and torch.optim.Adam(lr=0.1)'s float32 results.
TEST(Adam, ThreeStepsByHandAndAsPyTorch) {
  std::vector<std::vector<float>> after;
  HostTensor t({1.0f, -2.0f, 0.5f});
  for (int s = 0; s < 3; ++s) {
    t.g = kGrads[s];
    const AdamTensor a = t.adam();
    adam_step(kCpu, {&a, 1}, s + 1, {.lr = 0.1f});
    after.push_back(t.p);
  }
  expect_near_all(after[0], {0.9, -1.9, 0.4}, 1e-7);
  // Step 2 by hand: m = 0.9 m1 + 0.1 g2, v = 0.999 v1 + 0.001 g2^2, bc1 = 0.19, bc2 = 0.001999.
  std::vector<double> p2(3);
  for (int i = 0; i < 3; ++i) {
    const double g1 = kGrads[0][i], g2 = kGrads[1][i];
    const double m = 0.9 * 0.1 * g1 + 0.1 * g2, v = 0.999 * 0.001 * g1 * g1 + 0.001 * g2 * g2;
    p2[i] = after[0][i] - 0.1 * (m / 0.19) / (std::sqrt(v / 0.001999) + 1e-8);
  }
  expect_near_all(after[1], p2, 1e-6);
  expect_near_all(after[1], {0.8196959495544434, -1.857215166091919, 0.34073513746261597}, 1e-6);
  expect_near_all(after[2], {0.8103260397911072, -1.8367640972137451, 0.29334723949432373}, 1e-6);
}

// 3.2(b): thanks to the bias correction the first step is -lr sign(g) whatever |g| (here over
// twelve orders of magnitude), not the -lr (1 - beta1) g / sqrt((1 - beta2) g^2) = -3.16 lr
// sign(g) it would be without it. With eps = 0 the step is exact up to float rounding.
TEST(Adam, FirstStepIsLrTimesSignOfTheGradient) {
  const std::int64_t n = 1000;
  auto p = test::normals(n, 1);
  const auto p0 = p;
  auto g = test::normals(n, 2);
  for (std::int64_t i = 0; i < n; ++i) g[i] *= std::pow(10.0f, static_cast<float>(i % 13 - 6));
  std::vector<float> m(n), v(n);
  const AdamTensor a{p.data(), g.data(), m.data(), v.data(), nullptr, n};
  adam_step(kCpu, {&a, 1}, 1, {.lr = 0.01f, .eps = 0.0f});
  for (std::int64_t i = 0; i < n; ++i) {
    const double expect = p0[i] - 0.01 * (g[i] > 0 ? 1 : -1);
    EXPECT_NEAR(p[i], expect, 4 * std::numeric_limits<float>::epsilon() * (std::abs(p0[i]) + 0.01))
        << i;
  }
}

// Ten steps on random tensors against MyAdam in double (the seed's formulas): the same update
// within float rounding, with eps at its default.
TEST(Adam, MatchesTheSeedsMyAdam) {
  const std::int64_t n = 257;
  HostTensor t(test::normals(n, 3));
  MyAdam ref{1e-2, 0.9, 0.999, 1e-8, {t.p.begin(), t.p.end()}, std::vector<double>(n),
             std::vector<double>(n)};
  for (int s = 1; s <= 10; ++s) {
    t.g = test::normals(n, 100 + s);
    const AdamTensor a = t.adam();
    adam_step(kCpu, {&a, 1}, s, {.lr = 1e-2f});
    ref.step(t.g);
  }
  EXPECT_TRUE(test::close(t.p, ref.p, {1e-6, 1e-6}));
}

// AdamW decays the weights apart from the moments: p <- p - lr wd p, then the Adam step of g.
// Adam's weight_decay is L2 in the gradient: the moments see g + wd p, so the bias-corrected
// step normalises the decay away. On step 1 with g = 0 at a coordinate, AdamW moves it by
// -lr wd p, Adam-with-L2 by -lr sign(p), a full step: they differ as Loshchilov and Hutter
// describe. Both as torch.optim.AdamW / Adam(weight_decay=0.1) after three steps.
TEST(Adam, AdamWAndAdamWithL2DifferAsDocumented) {
  const std::vector<float> p0 = {2.0f, -0.5f};
  HostTensor w(p0), l2(p0);
  const AdamTensor aw = w.adam(), al2 = l2.adam();
  adam_step(kCpu, {&aw, 1}, 1, {.lr = 0.1f, .weight_decay = 0.1f, .decoupled_weight_decay = true});
  adam_step(kCpu, {&al2, 1}, 1, {.lr = 0.1f, .weight_decay = 0.1f});
  EXPECT_NEAR(w.p[0], 2.0 - 0.1 * 0.1 * 2.0, 1e-7);
  EXPECT_NEAR(w.p[1], -0.5 + 0.1 * 0.1 * 0.5, 1e-7);
  EXPECT_NEAR(l2.p[0], 2.0 - 0.1, 1e-7);
  EXPECT_NEAR(l2.p[1], -0.5 + 0.1, 1e-7);

  const auto adamw = three_steps([](HostTensor& t, int s) {
    const AdamTensor a = t.adam();
    adam_step(kCpu, {&a, 1}, s, {.lr = 0.1f, .weight_decay = 0.1f, .decoupled_weight_decay = true});
  });
  expect_near_all(adamw, {0.7834181189537048, -1.7797799110412598, 0.28107938170433044}, 1e-6);
  const auto adam_l2 = three_steps([](HostTensor& t, int s) {
    const AdamTensor a = t.adam();
    adam_step(kCpu, {&a, 1}, s, {.lr = 0.1f, .weight_decay = 0.1f});
  });
  expect_near_all(adam_l2, {0.7829837799072266, -1.7945972681045532, 0.28926271200180054}, 1e-6);
}

// AMSGrad divides by the running max of v: torch.optim.Adam(lr=0.1, amsgrad=True) after three
// steps (the third coordinate's v falls at step 3, so its step differs from plain Adam's).
TEST(Adam, AmsgradAsPyTorch) {
  const auto p = three_steps([](HostTensor& t, int s) {
    const AdamTensor a = t.adam();
    adam_step(kCpu, {&a, 1}, s, {.lr = 0.1f, .amsgrad = true});
  });
  expect_near_all(p, {0.8103260397911072, -1.8367640972137451, 0.2933562397956848}, 1e-6);
  EXPECT_NE(p[2], three_steps([](HostTensor& t, int s) {
              const AdamTensor a = t.adam();
              adam_step(kCpu, {&a, 1}, s, {.lr = 0.1f});
            })[2]);
}

// One call over several tensors (sizes 0, 1, 5, 1000) gives the bits of one call per tensor.
TEST(Adam, ManyTensorsInOneCallEqualOneCallEach) {
  const std::vector<std::int64_t> sizes = {5, 0, 1000, 1};
  std::vector<HostTensor> one, each;
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    one.emplace_back(test::normals(sizes[k], 10 + k));
    one.back().g = test::normals(sizes[k], 20 + k);
    each.push_back(one.back());
  }
  const AdamOptions o{.lr = 3e-3f, .weight_decay = 0.01f, .decoupled_weight_decay = true,
                      .amsgrad = true};
  for (int s = 1; s <= 3; ++s) {
    std::vector<AdamTensor> list;
    for (auto& t : one) list.push_back(t.adam());
    adam_step(kCpu, list, s, o);
    for (auto& t : each) {
      const AdamTensor a = t.adam();
      adam_step(kCpu, {&a, 1}, s, o);
    }
  }
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    EXPECT_EQ(one[k].p, each[k].p);
    EXPECT_EQ(one[k].v_max, each[k].v_max);
  }
}

// Tensors longer than a chunk (16384 elements) run in chunks on the backend's threads, in the
// AVX-512 / AVX2 clone of the update loop: three steps of `library` (the tensors as one list)
// give the bits of `scalar` (genai/detail/optim.hpp's update element by element), on any thread
// count.
template <class Library, class Scalar>
void expect_scalar_bits_on_any_thread_count(Library library, Scalar scalar) {
  const std::vector<std::int64_t> sizes = {40000, 3, 16384};
  auto run = [&](auto step_all) {
    std::vector<HostTensor> ts;
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      ts.emplace_back(test::normals(sizes[k], 30 + k));
      ts.back().g = test::normals(sizes[k], 40 + k);
    }
    for (int s = 1; s <= 3; ++s) step_all(ts, s);
    std::vector<std::vector<float>> out;
    for (auto& t : ts) out.insert(out.end(), {t.p, t.m, t.v, t.v_max});
    return out;
  };
  EXPECT_TRUE(test::same_bytes(run(library), run(scalar)));
  test::expect_same_on_any_thread_count([&] { return run(library); });
}

TEST(Adam, ChunkedLoopsAreTheScalarUpdateOnAnyThreadCount) {
  for (const bool ams : {false, true}) {
    SCOPED_TRACE(ams ? "amsgrad" : "adam");
    const AdamOptions o{.lr = 3e-3f, .weight_decay = 0.01f, .amsgrad = ams};
    expect_scalar_bits_on_any_thread_count(
        [&](std::vector<HostTensor>& ts, int s) {
          std::vector<AdamTensor> list;
          for (auto& t : ts) list.push_back(t.adam());
          adam_step(kCpu, list, s, o);
        },
        [&](std::vector<HostTensor>& ts, int s) {
          const detail::AdamCoeffs k = detail::adam_coeffs(o, s);
          for (auto& t : ts)
            for (std::size_t i = 0; i < t.p.size(); ++i)
              detail::adam_element(k, t.p[i], t.g[i], t.m[i], t.v[i], t.v_max[i]);
        });
  }
}

TEST(Sgd, ChunkedLoopsAreTheScalarUpdateOnAnyThreadCount) {
  const SgdOptions o{.lr = 0.01f, .momentum = 0.9f, .weight_decay = 1e-3f, .nesterov = true};
  expect_scalar_bits_on_any_thread_count(
      [&](std::vector<HostTensor>& ts, int s) {
        std::vector<SgdTensor> list;
        for (auto& t : ts) list.push_back(t.sgd());
        sgd_step(kCpu, list, s, o);
      },
      [&](std::vector<HostTensor>& ts, int s) {
        const detail::SgdCoeffs k = detail::sgd_coeffs(o, s);
        for (auto& t : ts)
          for (std::size_t i = 0; i < t.p.size(); ++i)
            detail::sgd_element(k, t.p[i], t.g[i], t.m[i]);
      });
}

TEST(Ema, ChunkedLoopsAreTheScalarUpdateOnAnyThreadCount) {
  const float decay = 0.9f, omd = static_cast<float>(1.0 - static_cast<double>(decay));
  expect_scalar_bits_on_any_thread_count(
      [&](std::vector<HostTensor>& ts, int) {
        std::vector<EmaTensor> list;
        for (auto& t : ts)
          list.push_back({t.m.data(), t.p.data(), static_cast<std::int64_t>(t.p.size())});
        ema_update(kCpu, list, decay);
      },
      [&](std::vector<HostTensor>& ts, int) {
        for (auto& t : ts)
          for (std::size_t i = 0; i < t.p.size(); ++i) detail::ema_element(omd, t.m[i], t.p[i]);
      });
}

TEST(Adam, BadArgumentsNameTheArgument) {
  HostTensor t({1.0f, 2.0f});
  AdamTensor a = t.adam();
  const auto err = [&](std::int64_t step, const AdamOptions& o) {
    return test::error_of([&] { adam_step(kCpu, {&a, 1}, step, o); });
  };
  EXPECT_NE(err(0, {}).find("'step' must be >= 1"), std::string::npos);
  EXPECT_NE(err(1, {.beta1 = 1.0f}).find("'opts.beta1'"), std::string::npos);
  EXPECT_NE(err(1, {.beta2 = -0.1f}).find("'opts.beta2'"), std::string::npos);
  EXPECT_NE(err(1, {.lr = NAN}).find("'opts.lr'"), std::string::npos);
  EXPECT_NE(err(1, {.eps = -1.0f}).find("'opts.eps'"), std::string::npos);
  EXPECT_NE(err(1, {.weight_decay = -1.0f}).find("'opts.weight_decay'"), std::string::npos);
  a.v_max = nullptr;
  EXPECT_NE(err(1, {.amsgrad = true}).find("'tensors[0].v_max' must not be null"),
            std::string::npos);
  a.grad = a.param;
  EXPECT_NE(err(1, {}).find("'tensors[0].grad' is the same array as tensors[0].param"),
            std::string::npos);
  a = t.adam();
  a.size = -1;
  EXPECT_NE(err(1, {}).find("'tensors[0].size'"), std::string::npos);
  EXPECT_EQ(t.p, (std::vector<float>{1.0f, 2.0f}));  // nothing moved
}

// ---- SGD ------------------------------------------------------------------------------------

// torch.optim.SGD(lr=0.1, ...) after three steps (float32): momentum 0.9; Nesterov with
// weight_decay 0.01; dampening 0.5 (the first step's buffer is the gradient, undamped).
TEST(Sgd, MomentumNesterovAndDampeningAsPyTorch) {
  const auto run = [](const SgdOptions& o) {
    return three_steps([&](HostTensor& t, int s) {
      const SgdTensor a = t.sgd();
      sgd_step(kCpu, {&a, 1}, s, o);
    });
  };
  expect_near_all(run({.lr = 0.1f, .momentum = 0.9f}),
                  {0.8854999542236328, -1.805999994277954, -0.008999964222311974}, 1e-6);
  expect_near_all(run({.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.01f, .nesterov = true}),
                  {0.8694655299186707, -1.7602506875991821, -0.14513155817985535}, 1e-6);
  expect_near_all(run({.lr = 0.1f, .momentum = 0.9f, .dampening = 0.5f}),
                  {0.875, -1.7674999237060547, -0.025499975308775902}, 1e-6);
  // Plain SGD by hand: p - 0.1 (g1 + g2 + g3).
  expect_near_all(run({.lr = 0.1f}), {1 - 0.1 * 0.2, -2 - 0.1 * -0.5, 0.5 - 0.1 * 1.85}, 1e-6);
}

TEST(Sgd, BadArgumentsNameTheArgument) {
  HostTensor t({1.0f});
  SgdTensor a = t.sgd();
  const auto err = [&](const SgdOptions& o) {
    return test::error_of([&] { sgd_step(kCpu, {&a, 1}, 1, o); });
  };
  EXPECT_NE(err({.nesterov = true}).find("'opts.nesterov'"), std::string::npos);
  EXPECT_NE(err({.momentum = 0.9f, .dampening = 0.1f, .nesterov = true}).find("'opts.nesterov'"),
            std::string::npos);
  EXPECT_NE(err({.momentum = -0.5f}).find("'opts.momentum'"), std::string::npos);
  a.momentum_buffer = nullptr;
  EXPECT_NE(err({.momentum = 0.9f}).find("'tensors[0].momentum_buffer'"), std::string::npos);
  EXPECT_EQ(err({}), "(no ArgumentError)");  // no momentum: no buffer needed
}

// ---- schedules (3.1(c)) ---------------------------------------------------------------------

// diffusers' EMAModel.get_decay without warm-up: 0 at the first step (the shadow copies the
// weights), (1 + s) / (10 + s) for s = step - 1 while below the cap, then the cap; min_decay
// and update_after_step as EMAModel's.
TEST(Ema, DecayScheduleAsDiffusers) {
  EXPECT_EQ(ema_decay_at(1), 0.0);
  EXPECT_DOUBLE_EQ(ema_decay_at(2), 2.0 / 11.0);
  EXPECT_DOUBLE_EQ(ema_decay_at(100), 100.0 / 109.0);
  EXPECT_DOUBLE_EQ(ema_decay_at(8992), double(0.999f));  // 8992 / 9001 = 0.9990001: capped
  EXPECT_DOUBLE_EQ(ema_decay_at(8990), 8990.0 / 8999.0);  // just below the cap
  EXPECT_DOUBLE_EQ(ema_decay_at(1000000, {.decay = 0.9999f}), double(0.9999f));
  EXPECT_DOUBLE_EQ(ema_decay_at(3, {.min_decay = 0.5f}), 0.5);  // 3 / 12 < 0.5
  EXPECT_EQ(ema_decay_at(5, {.update_after_step = 4}), 0.0);
  EXPECT_DOUBLE_EQ(ema_decay_at(7, {.update_after_step = 4}), 3.0 / 12.0);
}

// ema -= (1 - decay) (ema - param): decay 0 copies the parameters, 1 keeps the shadow, and a
// run of updates towards a fixed parameter closes the gap by decay^k (to float rounding).
TEST(Ema, UpdateFormulaOverManyTensors) {
  std::vector<float> p1 = {1.0f, -2.0f, 0.5f}, p2 = {3.0f}, e1 = {0.0f, 0.0f, 0.0f}, e2 = {-1.0f};
  std::vector<EmaTensor> list = {{e1.data(), p1.data(), 3}, {e2.data(), p2.data(), 1}};
  ema_update(kCpu, list, 0.9f);
  // e1 = omd p1, e2 = -1 + omd (3 + 1) = -0.6, omd = 1 - decay rounded to float once.
  const auto omd = static_cast<float>(1.0 - double(0.9f));
  EXPECT_EQ(e1, (std::vector<float>{omd * 1.0f, -(omd * 2.0f), omd * 0.5f}));
  EXPECT_FLOAT_EQ(e2[0], -0.6f);
  ema_update(kCpu, list, 1.0f);
  EXPECT_FLOAT_EQ(e2[0], -0.6f);
  for (int k = 0; k < 50; ++k) ema_update(kCpu, list, 0.9f);
  EXPECT_NEAR(e2[0], 3.0 - 3.6 * std::pow(0.9, 50), 1e-5);
  ema_update(kCpu, list, 0.0f);
  EXPECT_EQ(e1, p1);
  EXPECT_EQ(e2, p2);
}

TEST(Ema, BadArgumentsNameTheArgument) {
  std::vector<float> p(4, 1.0f), e(4, 0.0f);
  const std::vector<EmaTensor> ok = {{e.data(), p.data(), 4}};
  test::expect_argument_error([&] { ema_update(kCpu, ok, 1.5f); }, "'decay'");
  test::expect_argument_error([&] { ema_update(kCpu, ok, NAN); }, "'decay'");
  const std::vector<EmaTensor> same = {{p.data(), p.data(), 4}};
  test::expect_argument_error([&] { ema_update(kCpu, same, 0.5f); }, "tensors[0].param");
  const std::vector<EmaTensor> null = {{nullptr, p.data(), 4}};
  test::expect_argument_error([&] { ema_update(kCpu, null, 0.5f); }, "tensors[0].ema");
  EXPECT_EQ(e, std::vector<float>(4, 0.0f));
  test::expect_argument_error([&] { ema_decay_at(0); }, "'step'");
  test::expect_argument_error([&] { ema_decay_at(1, {.decay = 0.5f, .min_decay = 0.6f}); },
                              "opts.min_decay");
  test::expect_argument_error([&] { ema_decay_at(1, {.update_after_step = -1}); },
                              "opts.update_after_step");
}

TEST(LrSchedule, ConstantWarmupCosineAndStepDecay) {
  EXPECT_EQ(LrSchedule::constant(0.1).lr_at(12345), 0.1);
  const LrSchedule s = LrSchedule::warmup_cosine(1e-3, 10, 110, 1e-5);
  EXPECT_DOUBLE_EQ(s.lr_at(1), 1e-4);   // lr / warmup: never 0
  EXPECT_DOUBLE_EQ(s.lr_at(5), 5e-4);
  EXPECT_DOUBLE_EQ(s.lr_at(10), 1e-3);  // warm
  EXPECT_DOUBLE_EQ(s.lr_at(60), 1e-5 + (1e-3 - 1e-5) * 0.5);  // half way: cos(pi/2) = 0
  EXPECT_DOUBLE_EQ(s.lr_at(35), 1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + std::cos(std::numbers::pi / 4)));
  EXPECT_DOUBLE_EQ(s.lr_at(110), 1e-5);
  EXPECT_DOUBLE_EQ(s.lr_at(1000), 1e-5);
  for (std::int64_t t = 11; t < 110; ++t) EXPECT_LT(s.lr_at(t + 1), s.lr_at(t)) << t;
  const LrSchedule d = LrSchedule::step_decay(0.1, 30, 0.1);
  EXPECT_DOUBLE_EQ(d.lr_at(1), 0.1);
  EXPECT_DOUBLE_EQ(d.lr_at(30), 0.1);
  EXPECT_DOUBLE_EQ(d.lr_at(31), 0.1 * 0.1);
  EXPECT_DOUBLE_EQ(d.lr_at(61), 0.1 * 0.1 * 0.1);
  EXPECT_DOUBLE_EQ(LrSchedule::warmup_cosine(1.0, 0, 4).lr_at(2), 0.5);
}

TEST(LrSchedule, BadArgumentsNameTheArgument) {
  EXPECT_NE(test::error_of([] { LrSchedule::constant(-1); }).find("'lr'"), std::string::npos);
  EXPECT_NE(test::error_of([] { LrSchedule::warmup_cosine(1, 10, 10); }).find("'total_steps'"),
            std::string::npos);
  EXPECT_NE(test::error_of([] { LrSchedule::warmup_cosine(1, 1, 10, 2); }).find("'min_lr'"),
            std::string::npos);
  EXPECT_NE(test::error_of([] { LrSchedule::step_decay(1, 0, 0.5); }).find("'step_size'"),
            std::string::npos);
  EXPECT_NE(test::error_of([] { LrSchedule::step_decay(1, 5, 0); }).find("'gamma'"),
            std::string::npos);
  EXPECT_NE(test::error_of([] { (void)LrSchedule::constant(1).lr_at(0); }).find("'step'"),
            std::string::npos);
}

// ---- penalties (3.3) ------------------------------------------------------------------------

const std::vector<float> kW = {3.0f, 0.01f, -2.0f, 0.001f};

// 3.3(a) L1 = 5.011, (b) L2^2 = 13.000101 (lambda = 1); the subgradient lambda sign(w) and the
// gradient 2 lambda w, added to what grad holds.
TEST(Penalty, SeedNormsAndTheirGradients) {
  float l1 = 0, l2 = 0;
  std::vector<float> g1(4, 1.0f), g2(4, 1.0f);
  add_penalty(kCpu, Penalty::L1, kW.data(), 4, 1.0f, &l1, nullptr);
  add_penalty(kCpu, Penalty::L2, kW.data(), 4, 1.0f, &l2, nullptr);
  EXPECT_NEAR(l1, 5.011, 1e-6);
  EXPECT_NEAR(l2, 13.000101, 1e-6);
  add_penalty(kCpu, Penalty::L1, kW.data(), 4, 0.5f, &l1, g1.data());
  add_penalty(kCpu, Penalty::L2, kW.data(), 4, 0.5f, &l2, g2.data());
  EXPECT_NEAR(l1, 2.5055, 1e-6);
  EXPECT_EQ(g1, (std::vector<float>{1.5f, 1.5f, 0.5f, 1.5f}));
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(g2[i], 1.0f + kW[i]);
  const std::vector<float> zero = {0.0f};
  std::vector<float> g0 = {0.25f};
  add_penalty(kCpu, Penalty::L1, zero.data(), 1, 1.0f, nullptr, g0.data());
  EXPECT_EQ(g0[0], 0.25f);  // the subgradient at 0 is taken as 0
}

// 3.3(c): the L1 proximal step sets 0.01 and 0.001 to exactly 0 (threshold lr * lambda = 0.02),
// shrinking 3 and -2 by 0.02; L2's gradient step w -= lr 2 lambda w only scales them, and a
// hundred steps leave 0.001 small but nonzero.
TEST(Penalty, L1ProximalStepZeroesSmallWeightsAndL2DoesNot) {
  auto w = kW;
  l1_proximal_step(kCpu, w.data(), 4, 0.02f);
  EXPECT_EQ(w, (std::vector<float>{2.98f, 0.0f, -1.98f, 0.0f}));
  auto w2 = kW;
  for (int s = 1; s <= 100; ++s) {
    std::vector<float> g(4, 0.0f);
    add_penalty(kCpu, Penalty::L2, w2.data(), 4, 0.1f, nullptr, g.data());
    const SgdTensor t{w2.data(), g.data(), nullptr, 4};
    sgd_step(kCpu, {&t, 1}, s, {.lr = 0.1f});
  }
  for (int i = 0; i < 4; ++i) {
    EXPECT_NE(w2[i], 0.0f);
    EXPECT_NEAR(w2[i], kW[i] * std::pow(0.98, 100), 1e-6 * std::abs(kW[i]));
  }
}

TEST(Penalty, BadArgumentsNameTheArgument) {
  float v;
  EXPECT_NE(test::error_of([&] { add_penalty(kCpu, Penalty::L1, kW.data(), 4, -1, &v, nullptr); })
                .find("'lambda'"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { add_penalty(kCpu, Penalty::L2, nullptr, 4, 1, &v, nullptr); })
                .find("'w'"),
            std::string::npos);
  std::vector<float> w = kW;
  EXPECT_NE(test::error_of([&] { l1_proximal_step(kCpu, w.data(), 4, -0.1f); }).find("'threshold'"),
            std::string::npos);
}

}  // namespace
}  // namespace genai
