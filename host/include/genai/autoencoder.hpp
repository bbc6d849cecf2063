// Autoencoders and the measures that compare them with PCA (challenge C1; problem set 1.1-1.3,
// 8.1-8.3): an encoder / decoder pair of MLPs, deterministic (a linear one with no activation)
// or variational, trained with Adam on the context's device; PSNR, statistics of latent codes
// (the moment-matched KL to N(0, I), active units, correlations), k-nearest-neighbour
// classification of codes, principal angles between subspaces, the affine map of a linear MLP,
// and the pixel moments of generated samples against data.
//
// Layout: row-major, one sample a row: data x [n x input_dim], codes z [n x latent_dim]. The
// model's pointers (x, z, outputs of encode / decode / sample, training batches) are on the
// context's device (host pointers on a CPU context, device pointers on a CUDA context). The
// evaluation functions further down take host arrays and say where they compute. Bad arguments
// throw genai::ArgumentError naming the function and the argument, before anything is written.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "genai/buffer.hpp"
#include "genai/context.hpp"
#include "genai/losses.hpp"
#include "genai/nn.hpp"
#include "genai/optim.hpp"
#include "genai/rng.hpp"

namespace genai {

// The batch order: epoch e of a model with seed s shuffles with the words of
// RngKey{s, rng::streams::autoencoder_batch, e} (genai/rng.hpp).

struct AutoencoderOptions {
  std::int64_t input_dim = 784;
  // Encoder widths from the input side: encoder input_dim -> hidden... -> latent (2 latent for a
  // VAE: mu and log sigma^2), decoder latent -> hidden reversed... -> input_dim.
  std::vector<std::int64_t> hidden = {512, 256};
  std::int64_t latent_dim = 2;
  // After every hidden layer of both MLPs; None makes the linear autoencoder (an affine encoder
  // and decoder: with squared error it learns PCA's subspace, problem set 1.1).
  Activation activation = Activation::ReLU;
  bool variational = false;
  float beta = 1.0f;  // the VAE's KL weight (beta-VAE, 8.2(c)); >= 0
  // The decoder's likelihood. SquaredError: the output is the reconstruction (a Gaussian
  // decoder of fixed variance). BernoulliLogits: the output is logits, the reconstruction is
  // sigmoid(logits) (data in [0, 1]).
  Reconstruction reconstruction = Reconstruction::SquaredError;
  Init init = Init::PyTorchDefault;
  // Initialisation (encoder: seed, decoder: seed + 1), batch order and the VAE's epsilon
  // (RngKey{seed, rng::streams::vae_reparameterize, training step}).
  std::uint64_t seed = 0;
};

// The losses of a training step (device memory):
//   deterministic, 1 float: the reconstruction loss's mean over all batch x input_dim elements
//                  (the MSE per pixel with SquaredError, the BCE per pixel with BernoulliLogits);
//   variational, 3 floats: the negative ELBO per sample (reconstruction + beta KL, summed over
//                  a sample's elements, averaged over the batch: 8.3), its reconstruction term,
//                  its KL term.
struct EpochOptions {
  std::int64_t batch = 256;
  AdamOptions adam = {};                // its lr unless `schedule` is given
  std::optional<LrSchedule> schedule = std::nullopt;  // lr of each step from steps() + 1
  std::int64_t epoch = 0;               // the batch order's Philox step
  bool drop_last = false;               // skip a last batch smaller than `batch`
};

struct AutoencoderLoss {  // loss() on a data set, as the training losses above
  double total = 0, reconstruction = 0, kl = 0;
};

struct EpochLosses {  // per training step of the epoch, in order (deterministic: kl all 0,
  std::vector<float> total, reconstruction, kl;  // reconstruction = total)
};

class Autoencoder {
 public:
  // Builds the two MLPs on ctx's device and initialises them from opts.seed.
  Autoencoder(const Context& ctx, AutoencoderOptions opts);

  const Context& context() const { return ctx_; }
  const AutoencoderOptions& options() const { return opts_; }
  Mlp& encoder() { return encoder_; }
  Mlp& decoder() { return decoder_; }
  std::int64_t parameter_count() const;
  std::int64_t steps() const { return step_; }  // Adam steps taken

  // ---- training ----
  // The loss of the batch x [batch x input_dim] and every parameter's gradient (into
  // encoder().gradients() and decoder().gradients()). A VAE draws its epsilon from
  // RngKey{opts.seed, vae_reparameterize, rng_step}. losses: [1] or [3] (above) on ctx's device,
  // may be null. Nothing leaves the device: on a CUDA context the call only enqueues work.
  void loss_and_gradients(const float* x, std::int64_t batch, std::uint32_t rng_step,
                          float* losses);
  // loss_and_gradients with rng_step = steps(), then one Adam step on both models (moments kept
  // here; steps() + 1).
  void train_step(const float* x, std::int64_t batch, const AdamOptions& adam,
                  float* losses = nullptr);
  // One pass over data [n x input_dim] (ctx's device) in the order of a Fisher-Yates shuffle
  // drawn from RngKey{opts.seed, rng::streams::autoencoder_batch, epoch}, batches gathered on the
  // device. on_step(s, steps) runs on the host after the s-th step is enqueued (s from 1). The
  // losses come back once, at the end (one synchronisation per epoch).
  EpochLosses train_epoch(const float* data, std::int64_t n, const EpochOptions& opts,
                          const std::function<void(std::int64_t, std::int64_t)>& on_step = {});

  // ---- use (chunks of at most 1024 rows; the training state is untouched) ----
  // The training loss of x [n x input_dim] without gradients (a validation loss): over all n
  // rows, reduced as the training losses are (deterministic: per element; variational: per
  // sample, with one z ~ q(z|x) per row, chunk c drawing its epsilon at Philox step
  // rng_step + c). Synchronises: the values come back to the host.
  AutoencoderLoss loss(const float* x, std::int64_t n, std::uint32_t rng_step = 0);
  // Codes of x [n x input_dim]: z = encoder(x), or for a VAE the posterior mean mu, and its
  // log-variance into logvar [n x latent_dim] when not null (else logvar must be null).
  void encode(const float* x, std::int64_t n, float* z, float* logvar = nullptr);
  // The decoder's mean of p(x | z) for z [n x latent_dim]: its output (SquaredError) or
  // sigmoid(output) (BernoulliLogits), into x [n x input_dim].
  void decode(const float* z, std::int64_t n, float* x);
  // decode(encode(x)) (the VAE through its posterior mean).
  void reconstruct(const float* x, std::int64_t n, float* out);
  // decode(z) with z ~ N(0, I) from fill_normal(key): generation from the prior; z written to
  // z_out [n x latent_dim] when not null.
  void sample(std::int64_t n, const RngKey& key, float* x, float* z_out = nullptr);

 private:
  struct Scratch {  // per-batch arrays, sized for `capacity` rows (training: all of them)
    std::int64_t capacity = 0;
    bool training = false;
    Buffer<float> x, h, mu, logvar, z, eps, y, grad_y, grad_z, grad_h, grad_mu, grad_logvar,
        per_sample;
  };
  void reserve(Scratch& s, std::int64_t rows, bool training);
  // Forward pass and loss of x [rows] through s and the workspaces; with `gradients`, the loss's
  // gradients in s.grad_y (and the VAE's s.grad_mu, s.grad_logvar).
  void forward_loss(Scratch& s, MlpWorkspace& enc, MlpWorkspace& dec, const float* x,
                    std::int64_t rows, std::uint32_t rng_step, float* losses, Reduction reduction,
                    bool gradients);
  void encode_chunk(const float* x, std::int64_t n, float* z, float* logvar);
  void decode_chunk(const float* z, std::int64_t n, float* x);

  Context ctx_;
  AutoencoderOptions opts_;
  Mlp encoder_, decoder_;
  MlpWorkspace enc_ws_, dec_ws_, enc_eval_, dec_eval_;
  Scratch train_, eval_;
  Buffer<float> m_enc_, v_enc_, m_dec_, v_dec_;
  Buffer<std::int64_t> order_;
  std::int64_t step_ = 0;
};

// ---- evaluation (host arrays) ------------------------------------------------------------------

// Peak signal-to-noise ratio in dB, 10 log10(peak^2 / mse); mse > 0, peak > 0.
double psnr(double mse, double peak = 1.0);

// Moments of codes z [n x dim] (n >= 2), in double.
struct LatentStatistics {
  std::int64_t samples = 0, dim = 0;
  std::vector<double> mean, variance;  // [dim]; variance with the n - 1 denominator
  std::vector<double> covariance;      // [dim x dim]
  // The largest |corr(z_i, z_j)|, i < j, and its pair (0 and (0, 0) when dim = 1 or every pair
  // has a constant member).
  double max_correlation = 0;
  std::int64_t max_correlation_i = 0, max_correlation_j = 0;
  // KL(N(mean, covariance) || N(0, I)) = (tr C + |mean|^2 - dim - log det C) / 2, the
  // aggregate codes' moment-matched Gaussian against the prior, in nats; +inf when C is
  // singular (a constant or collinear code).
  double kl_to_standard_normal = 0;
};
LatentStatistics latent_statistics(const float* z, std::int64_t n, std::int64_t dim);

// Active units (Burda et al. 2016): the dimensions whose variance exceeds `threshold` -- given
// the statistics of a VAE's posterior means, Var_x(E_q[z_i | x]) > 0.01.
std::int64_t active_units(const LatentStatistics& s, double threshold = 0.01);

struct KnnOptions {
  std::int64_t k = 5;         // neighbours that vote, 1 <= k <= reference rows
  std::int64_t chunk = 256;   // queries per distance GEMM
};

// The class of each query [m x dim] by a majority vote of its k nearest reference rows [n x dim]
// (Euclidean; labels [n], any int64 values), a tie going to the tied class whose member is
// nearest. Host arrays; the distances |r|^2 - 2 q.r come from one GEMM per chunk of queries on
// ctx (linear_forward: CBLAS on the CPU, cuBLASLt on the GPU), the selection runs on the host.
std::vector<std::int64_t> knn_classify(const Context& ctx, const float* reference,
                                       const std::int64_t* labels, std::int64_t n,
                                       const float* queries, std::int64_t m, std::int64_t dim,
                                       const KnnOptions& opts = {});

// The principal angles (radians, ascending, min(p, q) of them) between the column spaces of
// A [rows x p] and B [rows x q] (host, row-major, each of full column rank, p, q <= rows).
// Orthonormal bases Qa, Qb from the SVD (on ctx, in double); cos theta from the singular values
// of Qa^T Qb, and for angles below pi/4 sin theta from those of Qb - Qa Qa^T Qb (accurate for
// small angles, where acos is not: Knyazev and Argentati 2002).
std::vector<double> principal_angles(const Context& ctx, const double* A, const double* B,
                                     std::int64_t rows, std::int64_t p, std::int64_t q);

// The affine map x = A z + b of an MLP without activations between its layers (activation None,
// or a single layer) and without time embedding: A [output_dim x input_dim] row-major (the
// product of the weights), b [output_dim], in double. The decoder of a linear autoencoder spans
// the column space of A.
struct AffineMap {
  std::int64_t rows = 0, cols = 0;
  std::vector<double> A, b;
};
AffineMap affine_map(Mlp& mlp);

// Per-feature moments of two sample sets a [na x d] and b [nb x d] (na, nb >= 2): generated
// images against data, a check of sample quality that needs no feature network (no FID).
struct MomentComparison {
  double mean_a = 0, mean_b = 0;          // the average of all entries
  double variance_a = 0, variance_b = 0;  // the average over features of the per-feature variance
  double mean_rmse = 0;  // sqrt(mean_j (mean_a[j] - mean_b[j])^2)
  double std_rmse = 0;   // sqrt(mean_j (std_a[j] - std_b[j])^2)
};
MomentComparison compare_moments(const float* a, std::int64_t na, const float* b, std::int64_t nb,
                                 std::int64_t d);

}  // namespace genai
