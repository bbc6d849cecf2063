// genai::Autoencoder: the encoder / decoder pair, its training step (MLPs, losses, Adam) and its
// use (encode, decode, reconstruct, sample) on either backend.
#include "genai/autoencoder.hpp"

#include <algorithm>
#include <cmath>

#include "cpu_reference/autoencoder.hpp"
#include "genai/nvtx.hpp"
#if GENAI_WITH_CUDA
#include "kernels/autoencoder.cuh"
#endif

namespace genai {
namespace {

constexpr std::int64_t kEvalChunk = 1024;

// ---- the element passes on the context's backend (arguments checked by the callers) ----------

void run_gather_rows(const Context& ctx, const float* src, std::int64_t d,
                     const std::int64_t* index, std::int64_t n, float* dst) {
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::gather_rows(ctx, src, d, index, n, dst);
#endif
  (void)ctx;
  ref::gather_rows(src, d, index, n, dst);
}

void run_split_halves(const Context& ctx, const float* h, std::int64_t n, std::int64_t d,
                      float* mu, float* logvar) {
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::split_halves(ctx, h, n, d, mu, logvar);
#endif
  (void)ctx;
  ref::split_halves(h, n, d, mu, logvar);
}

void run_vae_encoder_grad(const Context& ctx, const float* grad_z, const float* eps,
                          const float* logvar, const float* grad_mu_kl,
                          const float* grad_logvar_kl, std::int64_t n, std::int64_t d,
                          float* grad_h) {
#if GENAI_WITH_CUDA
  if (ctx.is_cuda())
    return cuda::vae_encoder_grad(ctx, grad_z, eps, logvar, grad_mu_kl, grad_logvar_kl, n, d,
                                  grad_h);
#endif
  (void)ctx;
  ref::vae_encoder_grad(grad_z, eps, logvar, grad_mu_kl, grad_logvar_kl, n, d, grad_h);
}

// ---- options ---------------------------------------------------------------------------------

AutoencoderOptions checked(AutoencoderOptions o) {
  constexpr const char* fn = "genai::Autoencoder::Autoencoder";
  detail::require_at_least(fn, "opts.input_dim", o.input_dim, 1);
  detail::require_at_least(fn, "opts.latent_dim", o.latent_dim, 1);
  for (const std::int64_t h : o.hidden) detail::require_at_least(fn, "opts.hidden[i]", h, 1);
  if (!(std::isfinite(o.beta) && o.beta >= 0))
    detail::throw_argument(fn, "opts.beta", "must be finite and >= 0 (got ", o.beta, ")");
  if (o.reconstruction != Reconstruction::SquaredError &&
      o.reconstruction != Reconstruction::BernoulliLogits)
    detail::throw_argument(fn, "opts.reconstruction", "is not a Reconstruction (got ",
                           static_cast<int>(o.reconstruction), ")");
  return o;
}

MlpOptions encoder_options(const AutoencoderOptions& o) {
  MlpOptions m{.sizes = {o.input_dim}, .activation = o.activation};
  m.sizes.insert(m.sizes.end(), o.hidden.begin(), o.hidden.end());
  m.sizes.push_back(o.variational ? 2 * o.latent_dim : o.latent_dim);
  return m;
}

MlpOptions decoder_options(const AutoencoderOptions& o) {
  MlpOptions m{.sizes = {o.latent_dim}, .activation = o.activation};
  m.sizes.insert(m.sizes.end(), o.hidden.rbegin(), o.hidden.rend());
  m.sizes.push_back(o.input_dim);
  return m;
}

// Calls f(first row, rows) over [0, n) in chunks of kEvalChunk.
template <class F>
void by_chunks(std::int64_t n, F&& f) {
  for (std::int64_t r = 0; r < n; r += kEvalChunk) f(r, std::min(kEvalChunk, n - r));
}

Buffer<float> zeros(const Context& ctx, std::int64_t n) {
  Buffer<float> b(ctx, static_cast<std::size_t>(n));
  b.fill_bytes(0);
  return b;
}

// Fisher-Yates over [0, n) with Philox words: the t-th swap (i = n - 1 - t) takes word t % 4 of
// block t / 4 of RngKey{seed, stream, step} and j = floor(word (i + 1) / 2^32).
std::vector<std::int64_t> shuffled(std::int64_t n, std::uint64_t seed, std::uint32_t step) {
  std::vector<std::int64_t> order(n);
  for (std::int64_t i = 0; i < n; ++i) order[i] = i;
  rng::Words w{};
  for (std::int64_t t = 0; t + 1 < n; ++t) {
    if (t % 4 == 0) w = rng::philox(seed, rng::streams::autoencoder_batch, t / 4, step);
    const std::int64_t i = n - 1 - t;
    const auto j = static_cast<std::int64_t>(
        (static_cast<std::uint64_t>(w.w[t % 4]) * static_cast<std::uint64_t>(i + 1)) >> 32);
    std::swap(order[i], order[j]);
  }
  return order;
}

}  // namespace

Autoencoder::Autoencoder(const Context& ctx, AutoencoderOptions opts)
    : ctx_(ctx),
      opts_(checked(std::move(opts))),
      encoder_(ctx, encoder_options(opts_)),
      decoder_(ctx, decoder_options(opts_)),
      m_enc_(zeros(ctx, encoder_.flat_size())),
      v_enc_(zeros(ctx, encoder_.flat_size())),
      m_dec_(zeros(ctx, decoder_.flat_size())),
      v_dec_(zeros(ctx, decoder_.flat_size())) {
  encoder_.init(opts_.seed, opts_.init);
  decoder_.init(opts_.seed + 1, opts_.init);
}

std::int64_t Autoencoder::parameter_count() const {
  return encoder_.parameter_count() + decoder_.parameter_count();
}

void Autoencoder::reserve(Scratch& s, std::int64_t rows, bool training) {
  if (s.capacity >= rows && (s.training || !training)) return;
  const std::int64_t k = opts_.latent_dim, D = opts_.input_dim;
  const std::int64_t h = opts_.variational ? 2 * k : k;
  s = Scratch();
  s.capacity = rows;
  s.training = training;
  s.h = Buffer<float>(ctx_, rows * h);
  s.mu = Buffer<float>(ctx_, rows * k);
  s.logvar = Buffer<float>(ctx_, rows * k);
  s.z = Buffer<float>(ctx_, rows * k);
  if (!training) return;
  s.x = Buffer<float>(ctx_, rows * D);
  s.eps = Buffer<float>(ctx_, rows * k);
  s.y = Buffer<float>(ctx_, rows * D);
  s.grad_y = Buffer<float>(ctx_, rows * D);
  s.grad_z = Buffer<float>(ctx_, rows * k);
  s.grad_h = Buffer<float>(ctx_, rows * h);
  s.grad_mu = Buffer<float>(ctx_, rows * k);
  s.grad_logvar = Buffer<float>(ctx_, rows * k);
  s.per_sample = Buffer<float>(ctx_, rows * 3);
}

void Autoencoder::forward_loss(Scratch& s, MlpWorkspace& enc, MlpWorkspace& dec, const float* x,
                               std::int64_t rows, std::uint32_t rng_step, float* losses,
                               Reduction reduction, bool gradients) {
  const std::int64_t k = opts_.latent_dim, D = opts_.input_dim;
  if (!opts_.variational) {
    encoder_.forward(enc, x, nullptr, rows, s.z.data());
    decoder_.forward(dec, s.z.data(), nullptr, rows, s.y.data());
    const LossOutputs out{losses, nullptr, gradients ? s.grad_y.data() : nullptr};
    if (opts_.reconstruction == Reconstruction::SquaredError)
      mse_loss(ctx_, s.y.data(), x, rows, D, out, reduction);
    else
      bce_with_logits_loss(ctx_, s.y.data(), x, rows, D, out, reduction);
    return;
  }
  encoder_.forward(enc, x, nullptr, rows, s.h.data());
  run_split_halves(ctx_, s.h.data(), rows, k, s.mu.data(), s.logvar.data());
  reparameterize(ctx_, s.mu.data(), s.logvar.data(), rows, k, s.z.data(),
                 {.seed = opts_.seed, .step = rng_step, .eps_out = s.eps.data()});
  decoder_.forward(dec, s.z.data(), nullptr, rows, s.y.data());
  float* per_sample = s.per_sample.data();
  vae_loss(ctx_, x, s.y.data(), rows, D, s.mu.data(), s.logvar.data(), k,
           {.reduced = losses,
            .total = per_sample,
            .reconstruction = per_sample + rows,
            .kl = per_sample + 2 * rows,
            .grad_recon = gradients ? s.grad_y.data() : nullptr,
            .grad_mu = gradients ? s.grad_mu.data() : nullptr,
            .grad_logvar = gradients ? s.grad_logvar.data() : nullptr},
           {.beta = opts_.beta, .reconstruction = opts_.reconstruction, .reduction = reduction});
}

void Autoencoder::loss_and_gradients(const float* x, std::int64_t batch, std::uint32_t rng_step,
                                     float* losses) {
  constexpr const char* fn = "genai::Autoencoder::loss_and_gradients";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "batch", batch, 1);
  detail::require_not_null(fn, "x", x);
  reserve(train_, batch, true);
  Scratch& s = train_;
  forward_loss(s, enc_ws_, dec_ws_, x, batch, rng_step, losses, Reduction::Mean, true);
  decoder_.backward(dec_ws_, s.grad_y.data(), s.grad_z.data());
  if (opts_.variational)
    run_vae_encoder_grad(ctx_, s.grad_z.data(), s.eps.data(), s.logvar.data(), s.grad_mu.data(),
                         s.grad_logvar.data(), batch, opts_.latent_dim, s.grad_h.data());
  encoder_.backward(enc_ws_, opts_.variational ? s.grad_h.data() : s.grad_z.data());
}

void Autoencoder::train_step(const float* x, std::int64_t batch, const AdamOptions& adam,
                             float* losses) {
  GENAI_NVTX_RANGE("genai::Autoencoder::train_step");
  if (step_ >= std::int64_t{0xffffffff})
    detail::throw_argument("genai::Autoencoder::train_step", "steps()",
                           "has reached 2^32 - 1, the last Philox step of the VAE's epsilon");
  loss_and_gradients(x, batch, static_cast<std::uint32_t>(step_), losses);
  const AdamTensor tensors[] = {
      {encoder_.parameters(), encoder_.gradients(), m_enc_.data(), v_enc_.data(), nullptr,
       encoder_.flat_size()},
      {decoder_.parameters(), decoder_.gradients(), m_dec_.data(), v_dec_.data(), nullptr,
       decoder_.flat_size()}};
  adam_step(ctx_, tensors, step_ + 1, adam);
  ++step_;
}

EpochLosses Autoencoder::train_epoch(const float* data, std::int64_t n, const EpochOptions& opts,
                                     const std::function<void(std::int64_t, std::int64_t)>& on_step) {
  constexpr const char* fn = "genai::Autoencoder::train_epoch";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "n", n, 1);
  detail::require_not_null(fn, "data", data);
  detail::require_at_least(fn, "opts.batch", opts.batch, 1);
  if (opts.epoch < 0 || opts.epoch > std::int64_t{0xffffffff})
    detail::throw_argument(fn, "opts.epoch", "must be in [0, 2^32) (got ", opts.epoch, ")");
  const std::int64_t B = opts.batch;
  const std::int64_t steps = opts.drop_last ? n / B : (n + B - 1) / B;
  EpochLosses out;
  if (steps == 0) return out;
  const std::vector<std::int64_t> order =
      shuffled(n, opts_.seed, static_cast<std::uint32_t>(opts.epoch));
  if (static_cast<std::int64_t>(order_.size()) < n) order_ = Buffer<std::int64_t>(ctx_, n);
  detail::copy_bytes(ctx_, order_.data(), ctx_.device(), order.data(), Device::CPU,
                     n * sizeof(std::int64_t));
  Buffer<float> losses = zeros(ctx_, 3 * steps);
  const std::int64_t D = opts_.input_dim;
  for (std::int64_t s = 0; s < steps; ++s) {
    const std::int64_t rows = std::min(B, n - s * B);
    reserve(train_, B, true);
    run_gather_rows(ctx_, data, D, order_.data() + s * B, rows, train_.x.data());
    AdamOptions adam = opts.adam;
    if (opts.schedule) adam.lr = static_cast<float>(opts.schedule->lr_at(step_ + 1));
    train_step(train_.x.data(), rows, adam, losses.data() + 3 * s);
    if (on_step) on_step(s + 1, steps);
  }
  const std::vector<float> host = losses.to_host();
  for (std::int64_t s = 0; s < steps; ++s) {
    out.total.push_back(host[3 * s]);
    out.reconstruction.push_back(opts_.variational ? host[3 * s + 1] : host[3 * s]);
    out.kl.push_back(host[3 * s + 2]);
  }
  return out;
}

void Autoencoder::encode_chunk(const float* x, std::int64_t n, float* z, float* logvar) {
  reserve(eval_, kEvalChunk, false);
  if (!opts_.variational) return encoder_.forward(enc_eval_, x, nullptr, n, z);
  encoder_.forward(enc_eval_, x, nullptr, n, eval_.h.data());
  run_split_halves(ctx_, eval_.h.data(), n, opts_.latent_dim, z,
                   logvar ? logvar : eval_.logvar.data());
}

void Autoencoder::decode_chunk(const float* z, std::int64_t n, float* x) {
  decoder_.forward(dec_eval_, z, nullptr, n, x);
  if (opts_.reconstruction == Reconstruction::BernoulliLogits)
    activation_forward(ctx_, Activation::Sigmoid, x, n * opts_.input_dim, x);
}

AutoencoderLoss Autoencoder::loss(const float* x, std::int64_t n, std::uint32_t rng_step) {
  constexpr const char* fn = "genai::Autoencoder::loss";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "n", n, 1);
  detail::require_not_null(fn, "x", x);
  reserve(eval_, kEvalChunk, true);
  const std::int64_t D = opts_.input_dim;
  Buffer<float> reduced(ctx_, 3);
  AutoencoderLoss sum;
  std::uint32_t step = rng_step;
  by_chunks(n, [&](std::int64_t r, std::int64_t rows) {
    forward_loss(eval_, enc_eval_, dec_eval_, x + r * D, rows, step++, reduced.data(),
                 Reduction::Sum, false);
    const std::vector<float> v = reduced.to_host();
    sum.reconstruction += v[opts_.variational ? 1 : 0];
    if (opts_.variational) sum.kl += v[2];
  });
  const double count = static_cast<double>(opts_.variational ? n : n * D);
  sum.reconstruction /= count;
  sum.kl /= count;
  sum.total = sum.reconstruction + opts_.beta * sum.kl;
  return sum;
}

void Autoencoder::encode(const float* x, std::int64_t n, float* z, float* logvar) {
  constexpr const char* fn = "genai::Autoencoder::encode";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "n", n, 0);
  if (logvar && !opts_.variational)
    detail::throw_argument(fn, "logvar", "must be null: the model is not variational");
  if (n == 0) return;
  detail::require_not_null(fn, "x", x);
  detail::require_not_null(fn, "z", z);
  const std::int64_t D = opts_.input_dim, k = opts_.latent_dim;
  by_chunks(n, [&](std::int64_t r, std::int64_t rows) {
    encode_chunk(x + r * D, rows, z + r * k, logvar ? logvar + r * k : nullptr);
  });
}

void Autoencoder::decode(const float* z, std::int64_t n, float* x) {
  constexpr const char* fn = "genai::Autoencoder::decode";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "n", n, 0);
  if (n == 0) return;
  detail::require_not_null(fn, "z", z);
  detail::require_not_null(fn, "x", x);
  const std::int64_t D = opts_.input_dim, k = opts_.latent_dim;
  by_chunks(n, [&](std::int64_t r, std::int64_t rows) {
    decode_chunk(z + r * k, rows, x + r * D);
  });
}

void Autoencoder::reconstruct(const float* x, std::int64_t n, float* out) {
  constexpr const char* fn = "genai::Autoencoder::reconstruct";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "n", n, 0);
  if (n == 0) return;
  detail::require_not_null(fn, "x", x);
  detail::require_not_null(fn, "out", out);
  const std::int64_t D = opts_.input_dim;
  reserve(eval_, kEvalChunk, false);
  by_chunks(n, [&](std::int64_t r, std::int64_t rows) {
    encode_chunk(x + r * D, rows, eval_.z.data(), nullptr);
    decode_chunk(eval_.z.data(), rows, out + r * D);
  });
}

void Autoencoder::sample(std::int64_t n, const RngKey& key, float* x, float* z_out) {
  constexpr const char* fn = "genai::Autoencoder::sample";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "n", n, 0);
  if (n == 0) return;
  detail::require_not_null(fn, "x", x);
  Buffer<float> own(ctx_, z_out ? 0 : n * opts_.latent_dim);
  float* z = z_out ? z_out : own.data();
  fill_normal(ctx_, z, n * opts_.latent_dim, key);
  decode(z, n, x);
}

}  // namespace genai
