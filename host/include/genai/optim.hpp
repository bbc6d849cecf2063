// Optimizers (problem set 3.1-3.4): Adam / AdamW (optional AMSGrad) and SGD with momentum or
// Nesterov, each updating a whole list of parameter tensors in one call (one kernel launch per
// 64 tensors on a CUDA context, as PyTorch's fused / foreach optimizers); the exponential moving
// average of the weights (diffusers' EMAModel), one launch likewise; learning-rate schedules
// (constant, linear warmup + cosine decay, step decay); L1 / L2 penalties and their
// (sub)gradients, and the L1 proximal step that sets small weights to exactly 0 (3.3).
//
// Each tensor is a flat fp32 array of `size` elements; param, grad and the state arrays of one
// tensor are distinct arrays of that size (device pointers with a CUDA context, host pointers
// with a CPU one). State starts zeroed (the caller allocates and zeroes it, as PyTorch's lazily
// created state). The step counter is the caller's and is passed explicitly: 1 on the first
// update, as PyTorch's state['step'] after its increment. A call on a CUDA context only
// enqueues work on the context's stream: no synchronisation, no host round trip, so a training
// step can run wholly on the device (and be captured in a CUDA graph, the step and the learning
// rate then being fixed in the graph's kernel arguments).
//
// The update formulas are PyTorch's (torch.optim.Adam / AdamW / SGD, fused implementation),
// written in genai/detail/optim.hpp with correctly rounded, never contracted float operations:
// the CPU reference and the kernel give the same bits.
#pragma once

#include <cstdint>
#include <span>

#include "genai/context.hpp"

namespace genai {

// ---- Adam / AdamW (3.2, 3.4) -----------------------------------------------------------------

struct AdamOptions {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
  // false (Adam): L2 regularisation, g += weight_decay * p before the moments.
  // true (AdamW): decoupled decay, p -= lr * weight_decay * p, the moments see g alone.
  bool decoupled_weight_decay = false;
  bool amsgrad = false;  // keep v_max = max(v_max, v) and divide by its square root
};

struct AdamTensor {
  float* param = nullptr;
  const float* grad = nullptr;
  float* m = nullptr;      // first moment (exp_avg)
  float* v = nullptr;      // second moment (exp_avg_sq)
  float* v_max = nullptr;  // amsgrad's max_exp_avg_sq (only then; may be null otherwise)
  std::int64_t size = 0;
};

// One Adam step t (>= 1) on every tensor, per element with bc1 = 1 - beta1^t, bc2 = 1 - beta2^t
// (in double, rounded to float once per call):
//   AdamW: p -= (lr wd) p;   Adam with weight_decay: g += wd p
//   m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2;   (amsgrad: v_max = max(v_max, v))
//   p -= (lr / bc1) m / (sqrt(v or v_max) / sqrt(bc2) + eps)
// = MyAdam's p -= lr m_hat / (sqrt(v_hat) + eps), m_hat = m / bc1, v_hat = v / bc2 (3.4).
void adam_step(const Context& ctx, std::span<const AdamTensor> tensors, std::int64_t step,
               const AdamOptions& opts = {});

// ---- exponential moving average of the weights ---------------------------------------------

// diffusers' EMAModel (training/training_utils.py): the shadow weights follow the parameters as
//   ema -= (1 - decay) (ema - param)   (= decay ema + (1 - decay) param, one rounding less),
// with the decay of optimizer step t (the optimizer's counter, 1 after the first update):
//   s = t - update_after_step - 1;  decay_t = 0 for s <= 0 (the shadow copies the weights), else
//   decay_t = max(min_decay, min(decay, (1 + s) / (10 + s)))
// (EMAModel without use_ema_warmup; its default decay is 0.9999, ours 0.999, which suits the
// few thousand steps of the small models here).
struct EmaOptions {
  float decay = 0.999f;                // in [0, 1]
  float min_decay = 0.0f;              // in [0, decay]
  std::int64_t update_after_step = 0;  // >= 0
};

// decay_t above (in double; ema_update rounds it to float).
double ema_decay_at(std::int64_t step, const EmaOptions& opts = {});

struct EmaTensor {
  float* ema = nullptr;
  const float* param = nullptr;
  std::int64_t size = 0;
};

// ema -= (1 - decay) (ema - param) on every tensor, in one launch per 64 tensors on a CUDA
// context (as adam_step: no synchronisation, capturable), the same bits on both backends.
// decay in [0, 1]; ema and param distinct arrays of `size` elements.
void ema_update(const Context& ctx, std::span<const EmaTensor> tensors, float decay);

// ---- SGD -------------------------------------------------------------------------------------

struct SgdOptions {
  float lr = 1e-2f;
  float momentum = 0.0f;
  float dampening = 0.0f;
  float weight_decay = 0.0f;  // L2: g += weight_decay * p
  bool nesterov = false;      // needs momentum > 0 and dampening 0 (as PyTorch)
};

struct SgdTensor {
  float* param = nullptr;
  const float* grad = nullptr;
  float* momentum_buffer = nullptr;  // needed when momentum != 0
  std::int64_t size = 0;
};

// One SGD step t (>= 1), PyTorch's definition:
//   g += wd p;  with momentum: b = g (t = 1) or b = momentum b + (1 - dampening) g (t > 1),
//   g = g + momentum b (Nesterov) or b;   p -= lr g.
void sgd_step(const Context& ctx, std::span<const SgdTensor> tensors, std::int64_t step,
              const SgdOptions& opts = {});

// ---- learning-rate schedules (3.1(c)) --------------------------------------------------------

// lr_at(t) is the learning rate of optimizer step t = 1, 2, ... (the step counter above).
//   constant      lr
//   warmup_cosine lr t / warmup for t <= warmup, then
//                 min_lr + (lr - min_lr) (1 + cos(pi (t - warmup) / (total - warmup))) / 2,
//                 min_lr from t = total on. (Hugging Face's get_cosine_schedule_with_warmup
//                 evaluated at t, with timm's / CosineAnnealingLR's floor min_lr.)
//   step_decay    lr gamma^floor((t - 1) / step_size)   (torch.optim.lr_scheduler.StepLR)
struct LrSchedule {
  enum class Kind { Constant, WarmupCosine, StepDecay };

  static LrSchedule constant(double lr);
  static LrSchedule warmup_cosine(double lr, std::int64_t warmup_steps, std::int64_t total_steps,
                                  double min_lr = 0.0);
  static LrSchedule step_decay(double lr, std::int64_t step_size, double gamma);

  double lr_at(std::int64_t step) const;

  Kind kind = Kind::Constant;
  double lr = 0.0, min_lr = 0.0, gamma = 1.0;
  std::int64_t warmup_steps = 0, total_steps = 0, step_size = 1;
};

// ---- penalties (3.3) -------------------------------------------------------------------------

enum class Penalty { L1, L2 };

// L1: value = lambda sum_i |w_i|,  grad_i += lambda sign(w_i)  (the subgradient 0 at w_i = 0);
// L2: value = lambda sum_i w_i^2,  grad_i += 2 lambda w_i.
// value [1] and grad [n] may each be null; grad is accumulated into (add the penalty's gradient
// to the loss's).
void add_penalty(const Context& ctx, Penalty penalty, const float* w, std::int64_t n,
                 float lambda, float* value, float* grad);

// The proximal step of threshold * ||w||_1 (soft thresholding, in place):
//   w_i = sign(w_i) max(|w_i| - threshold, 0),
// which sets every |w_i| <= threshold to exactly 0 -- why L1 gives sparse weights and L2
// (w_i *= 1 - 2 lr lambda, never 0 for w_i != 0) does not (3.3(c)). threshold = lr * lambda.
void l1_proximal_step(const Context& ctx, float* w, std::int64_t n, float threshold);

}  // namespace genai
