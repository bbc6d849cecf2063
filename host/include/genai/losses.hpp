// Losses with their gradients (problem set 6.4, 8.1(b), 8.2(c), 8.3): cross-entropy from logits,
// the VAE's reparameterisation and negative ELBO, mean squared error, binary cross-entropy from
// logits. Every loss writes the gradient of the loss it returns in the same pass, so a training
// step needs no separate backward call for it.
//
// Layout: row-major [rows x cols]; a "row" is one sample (one token for cross-entropy). Pointers
// are host pointers with a CPU context, device pointers with a CUDA context. Output pointers
// marked "may be null" are written only when given. Scalars (loss, the VAE's reduced terms) are
// written to memory on the context's device, so a CUDA call never waits for the host.
//
// Reductions follow PyTorch: Mean divides by the number of rows that count (cross-entropy: the
// rows whose target is not ignore_index; the element losses: all n * d elements), Sum adds,
// None keeps one value per row. Gradients are those of the value returned (with None: of the
// sum of the rows' values, i.e. an upstream gradient of 1 per row).
//
// Not the info module's genai::cross_entropy: that is H(p, q) between two given distributions,
// row by row; genai::cross_entropy_loss here takes raw logits and class indices, as
// torch.nn.functional.cross_entropy does, and returns the gradient.
#pragma once

#include <cstdint>

#include "genai/context.hpp"
#include "genai/dtype.hpp"

namespace genai {

enum class Reduction { Mean, Sum, None };

// ---- cross-entropy from logits (6.4) ----------------------------------------------------------

struct CrossEntropyOptions {
  Reduction reduction = Reduction::Mean;
  std::int64_t ignore_index = -100;  // rows with this target: loss 0, gradient 0, not counted
  float label_smoothing = 0.0f;      // eps in [0, 1]: the target is (1 - eps) one-hot + eps / C
  float z_loss = 0.0f;               // >= 0: adds z_loss * lse^2 per row (PaLM's z-loss)
  // true: a target outside [0, C) (other than ignore_index) throws ArgumentError naming the row
  // and the value, nothing written (on a CUDA context: one pass over the targets and one
  // stream synchronisation before the loss kernel). false: no check and no synchronisation;
  // such a row's loss and gradient row are NaN (so is a mean or sum over it).
  bool check_targets = true;
};

// Per row i with target t = targets[i], lse = log sum_j exp(logits[i, j]):
//   loss_i = lse - (1 - eps) x_t - (eps / C) sum_j x_j + z_loss lse^2
//          = (1 - eps) (-log p_t) + eps * (1/C) sum_j (-log p_j) + z_loss lse^2,
//   d loss_i / d x_j = p_j (1 + 2 z_loss lse) - (1 - eps) [j = t] - eps / C,  p = softmax(x_i),
// which is F.cross_entropy(logits, targets, ignore_index=, label_smoothing=, reduction=) plus
// Liger-Kernel's lse_square_scale term. loss: [1] (Mean: sum_i loss_i / #counted rows, NaN when
// no row counts, as PyTorch; Sum) or [N] (None). grad: [N x C] d loss / d logits, may be null,
// may alias logits (written in place). One pass over each row: an online softmax (running max
// and sum of exponentials) then the gradient, one read of the logits and one write of grad.
// targets: [N] class indices. N >= 0, C >= 1.
void cross_entropy_loss(const Context& ctx, const float* logits, const std::int64_t* targets,
                        std::int64_t N, std::int64_t C, float* loss, float* grad = nullptr,
                        const CrossEntropyOptions& opts = {});
// bf16 logits, computed in float; grad in bf16 (rounded to nearest even), loss in float.
void cross_entropy_loss(const Context& ctx, const bf16* logits, const std::int64_t* targets,
                        std::int64_t N, std::int64_t C, float* loss, bf16* grad = nullptr,
                        const CrossEntropyOptions& opts = {});

// ---- element losses: MSE, BCE with logits -----------------------------------------------------

struct LossOutputs {
  float* loss = nullptr;      // [1]: the reduced loss (Mean over n * d elements, or Sum)
  float* row_loss = nullptr;  // [n]: each row's loss, reduced over its d elements the same way
  float* grad = nullptr;      // [n x d]: d loss / d prediction (or logits)
};

// Squared error (pred_j - target_j)^2 per element; grad = 2 (pred - target) / (n d) (Mean) or
// 2 (pred - target) (Sum). Reduction None is refused (row_loss holds the per-row values).
// pred, target [n x d]. n >= 0, d >= 1.
void mse_loss(const Context& ctx, const float* pred, const float* target, std::int64_t n,
              std::int64_t d, const LossOutputs& out, Reduction reduction = Reduction::Mean);

// Binary cross-entropy from logits l against targets y (in [0, 1]) per element,
//   max(l, 0) - l y + log(1 + exp(-|l|))  = -(y log sigmoid(l) + (1 - y) log(1 - sigmoid(l))),
// stable for any l; grad = (sigmoid(l) - y) / (n d) (Mean) or sigmoid(l) - y (Sum), as
// F.binary_cross_entropy_with_logits. logits, target [n x d].
void bce_with_logits_loss(const Context& ctx, const float* logits, const float* target,
                          std::int64_t n, std::int64_t d, const LossOutputs& out,
                          Reduction reduction = Reduction::Mean);

// ---- VAE (8.1(b), 8.2(c), 8.3) ----------------------------------------------------------------

struct ReparameterizeOptions {
  std::uint64_t seed = 0;
  std::uint32_t step = 0;      // Philox step (e.g. the training iteration)
  float* eps_out = nullptr;    // [n x d] the epsilon drawn, when not null
};

// z = mu + exp(logvar / 2) * eps, eps ~ N(0, I) from Philox: element i of the flat [n x d]
// arrays draws lane i % 4 of block i / 4 of (seed, rng::streams::vae_reparameterize, step) --
// the numbers genai::fill_normal gives for that key. The exponential is the library's own
// correctly-rounded-operation polynomial (genai/detail/losses.hpp), so z has the same bits on
// the CPU and the GPU. mu, logvar, z [n x d]; z may alias mu or logvar.
void reparameterize(const Context& ctx, const float* mu, const float* logvar, std::int64_t n,
                    std::int64_t d, float* z, const ReparameterizeOptions& opts = {});

enum class Reconstruction {
  SquaredError,    // sum_j (x_recon_j - x_j)^2
  BernoulliLogits  // sum_j BCE-with-logits(x_recon_j, x_j) = -log p(x | z), x in [0, 1]
};

struct VaeLossOptions {
  float beta = 1.0f;  // >= 0: weight of the KL term (beta-VAE, 8.2(c))
  Reconstruction reconstruction = Reconstruction::SquaredError;
  Reduction reduction = Reduction::Mean;  // over the batch (Mean or Sum) for `reduced` and grads
};

struct VaeLossOutputs {
  float* reduced = nullptr;          // [3]: total, reconstruction, KL reduced over the batch
  float* total = nullptr;            // [n] per sample: reconstruction + beta KL
  float* reconstruction = nullptr;   // [n]
  float* kl = nullptr;               // [n]
  float* grad_recon = nullptr;       // [n x D] d total / d x_recon (or its logits)
  float* grad_mu = nullptr;          // [n x d]
  float* grad_logvar = nullptr;      // [n x d]
};

// The negative ELBO of 8.3 per sample i: reconstruction_i + beta KL_i with
//   KL_i = KL(N(mu_i, diag exp(logvar_i)) || N(0, I)) = -1/2 sum_k (1 + logvar - mu^2 - exp(logvar)).
// Gradients of the reduced total (s = 1/n for Mean, 1 for Sum):
//   x_recon: s 2 (x_recon - x) (squared error) or s (sigmoid(x_recon) - x) (Bernoulli logits),
//   mu: s beta mu,   logvar: s beta (exp(logvar) - 1) / 2.
// x, x_recon [n x D]; mu, logvar [n x d]. Reduction None is refused (the per-sample arrays are
// the unreduced values; the gradients then need a reduction).
void vae_loss(const Context& ctx, const float* x, const float* x_recon, std::int64_t n,
              std::int64_t D, const float* mu, const float* logvar, std::int64_t d,
              const VaeLossOutputs& out, const VaeLossOptions& opts = {});

}  // namespace genai
