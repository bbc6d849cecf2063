// The optim module's demo rows: one multi-tensor Adam step on the tour's device against the
// CPU reference (the same bits); the problem-set checks 3.1(c), 3.2(b), 3.3(c), 3.4.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "cli/common.hpp"
#include "genai/buffer.hpp"
#include "genai/optim.hpp"
#include "genai/rng.hpp"

namespace genai::cli {
namespace {

void tour_optim(Tour& t) {
  const Context cpu = Context::cpu();
  {  // AdamW, 16 tensors of 256 Ki parameters; each run restarts from the same state.
    const std::int64_t tensors = 16, size = 1 << 18, total = tensors * size;
    std::vector<float> p0(total), g(total);
    fill_normal(cpu, p0.data(), total, {70, 0, 0});
    fill_normal(cpu, g.data(), total, {71, 0, 0});
    Buffer<float> dp0(t.ctx, std::span<const float>(p0)), dg(t.ctx, std::span<const float>(g));
    Buffer<float> dm(t.ctx, total), dv(t.ctx, total);
    std::vector<float> hm(total), hv(total);
    const AdamOptions o{.lr = 1e-3f, .weight_decay = 0.01f, .decoupled_weight_decay = true};
    const auto step = [&](const Context& c, float* p, const float* grad, float* m, float* v) {
      std::vector<AdamTensor> list;
      for (std::int64_t i = 0; i < tensors; ++i)
        list.push_back({p + i * size, grad + i * size, m + i * size, v + i * size, nullptr, size});
      adam_step(c, list, 3, o);
    };
    t.add("optim", "AdamW step, 16 tensors x 256Ki (bit-exact; with the state reset)", total,
          28.0 * total,
          [&](const Context& c, float* p) {
            detail::copy_bytes(c, p, c.device(), dp0.data(), c.device(), total * sizeof(float));
            dm.fill_bytes(0);
            dv.fill_bytes(0);
            step(c, p, dg.data(), dm.data(), dv.data());
          },
          [&](float* p) {
            std::copy(p0.begin(), p0.end(), p);
            std::fill(hm.begin(), hm.end(), 0.0f);
            std::fill(hv.begin(), hv.end(), 0.0f);
            step(cpu, p, g.data(), hm.data(), hv.data());
          },
          0.0);
  }

  // 3.4 / 3.2(b): Adam (lr 0.1) on p = [1, -2, 0.5] with three gradients, on the tour's device:
  // the first step is -lr sign(g); after three, torch.optim.Adam's 0.8103260 for p[0].
  const std::vector<std::vector<float>> grads = {
      {0.5f, -1.0f, 2.0f}, {0.1f, 0.3f, -0.2f}, {-0.4f, 0.2f, 0.05f}};
  const std::vector<float> p_init = {1.0f, -2.0f, 0.5f};
  Buffer<float> p(t.ctx, std::span<const float>(p_init)), g(t.ctx, 3), m(t.ctx, 3), v(t.ctx, 3);
  m.fill_bytes(0);
  v.fill_bytes(0);
  std::vector<float> after_first;
  for (int s = 1; s <= 3; ++s) {
    g.copy_from_host(grads[s - 1]);
    const AdamTensor a{p.data(), g.data(), m.data(), v.data(), nullptr, 3};
    adam_step(t.ctx, {&a, 1}, s, {.lr = 0.1f});
    if (s == 1) after_first = p.to_host();
  }
  double worst = 0;
  for (int i = 0; i < 3; ++i)
    worst = std::max(worst, std::abs(after_first[i] - p_init[i] + 0.1 * std::copysign(1.0, grads[0][i])));
  t.check("3.2(b)", "first Adam step + lr sign(g), max over p", worst, 0.0, 1e-7);
  t.check("3.4", "p[0] after three Adam steps (torch: 0.8103260)", p.to_host()[0], 0.8103260,
          1e-6);

  // 3.3(c): the L1 proximal step zeroes 0.01 and 0.001 of w = [3, 0.01, -2, 0.001].
  const std::vector<float> w = {3.0f, 0.01f, -2.0f, 0.001f};
  const auto shrunk = on_device(t.ctx, {&w}, 4, [&](const auto& in, float* out) {
    detail::copy_bytes(t.ctx, out, t.ctx.device(), in[0], t.ctx.device(), 4 * sizeof(float));
    l1_proximal_step(t.ctx, out, 4, 0.02f);
  });
  double zeros = 0;
  for (float x : shrunk) zeros += x == 0.0f;
  t.check("3.3(c)", "weights set to exactly 0 by the L1 step", zeros, 2.0, 0.0);

  // 3.1(c): warmup to 1e-3 over 100 steps, cosine to 0 at 1000: half way down at step 550.
  const LrSchedule s = LrSchedule::warmup_cosine(1e-3, 100, 1000);
  t.check("3.1(c)", "lr at step 550 of warmup 100 + cosine to 1000", s.lr_at(550), 5e-4, 1e-12);
}

}  // namespace

GENAI_CLI_MODULE(70, "optim", nullptr, tour_optim);

}  // namespace genai::cli
