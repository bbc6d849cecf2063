// CPU reference of the losses module.
#include "cpu_reference/losses.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu_reference/exp.hpp"
#include "cpu_reference/parallel.hpp"
#include "cpu_reference/rng.hpp"
#include "genai/rng.hpp"

namespace genai::ref {
namespace {

double value_of(float x) { return x; }
double value_of(bf16 x) { return static_cast<float>(x); }
template <class T>
T stored(double v) {
  return T(static_cast<float>(v));
}

}  // namespace

std::int64_t first_bad_target(const std::int64_t* targets, std::int64_t N, std::int64_t C,
                              std::int64_t ignore_index) {
  for (std::int64_t i = 0; i < N; ++i)
    if (targets[i] != ignore_index && (targets[i] < 0 || targets[i] >= C)) return i;
  return -1;
}

namespace {

// Rows per chunk of the backend's threads for the row losses; the reduced loss adds the chunks'
// sums in chunk order.
constexpr std::int64_t kLossRows = 16;

// The reduced loss: chunk c's rows' sum in part[c], then the chunks in order.
template <class RowLoss>
double sum_of_rows(std::int64_t n, std::int64_t rows, RowLoss row_loss) {
  std::vector<double> part(static_cast<std::size_t>((n + rows - 1) / rows), 0.0);
  parallel_rows(n, rows, [&](std::int64_t r0, std::int64_t r1) {
    double s = 0;
    for (std::int64_t r = r0; r < r1; ++r) s += row_loss(r);
    part[r0 / rows] = s;
  });
  double total = 0;
  for (double s : part) total += s;
  return total;
}

// A row widened to E (double for the reference, float for the users' path: both exact) in e;
// its max, and (with label smoothing, the only user of it) its sum in double, four interleaved
// partial sums.
template <class E, class T>
void row_max_and_sum(const T* x, std::int64_t C, bool with_sum, E* e, E& m, double& sum_x) {
  for (std::int64_t j = 0; j < C; ++j) e[j] = static_cast<E>(value_of(x[j]));
  m = max_of(e, C);
  if (!with_sum) return;
  double part[4] = {0, 0, 0, 0};
  std::int64_t j = 0;
  for (; j + 4 <= C; j += 4)
    for (int lane = 0; lane < 4; ++lane) part[lane] += e[j + lane];
  for (; j < C; ++j) part[0] += e[j];
  sum_x = (part[0] + part[1]) + (part[2] + part[3]);
}

// g[j] = the gradient of a row from its exponentials e[j] = exp(x_j - m) and their sum s.
template <class E, class T>
GENAI_CPU_CLONES void ce_grad_row(const detail::CeRow<double> row, const E* e, double s,
                                  std::int64_t C, std::int64_t t, double scale, T* g) {
  for (std::int64_t j = 0; j < C; ++j)
    g[j] = stored<T>(detail::ce_grad_of_p(row, double(e[j]) / s, j == t, scale));
}

// Both paths: E = double, the reference (exp_d); E = float, the users' path (exp_f, the sums and
// the row's formulas still in double).
template <class E, class T>
void cross_entropy_rows(const T* logits, const std::int64_t* targets, std::int64_t N,
                        std::int64_t C, float* loss, T* grad, const CrossEntropyOptions& opts) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  std::int64_t counted = 0;
  for (std::int64_t i = 0; i < N; ++i) counted += targets[i] != opts.ignore_index;
  const double scale = opts.reduction == Reduction::Mean ? 1.0 / static_cast<double>(counted) : 1.0;
  // Row i's loss (and its gradient row): the statistics in two passes over the row widened to
  // E -- max and sum, then the exponentials, kept for the gradient.
  auto row_loss = [&](std::int64_t i) {
    thread_local std::vector<E> e;
    e.resize(static_cast<std::size_t>(C));
    const T* x = logits + i * C;
    T* g = grad ? grad + i * C : nullptr;
    const std::int64_t t = targets[i];
    double row_loss = 0;
    if (t == opts.ignore_index) {
      if (g)
        for (std::int64_t j = 0; j < C; ++j) g[j] = stored<T>(0.0);
    } else if (t < 0 || t >= C) {  // an unchecked bad target
      row_loss = kNaN;
      if (g)
        for (std::int64_t j = 0; j < C; ++j) g[j] = stored<T>(kNaN);
    } else {
      auto stats = detail::stats_identity<double>();
      E m;
      row_max_and_sum(x, C, opts.label_smoothing != 0, e.data(), m, stats.sum_x);
      stats.m = m;
      stats.s = exp_shifted(e.data(), C, m);  // exp(-inf - m) = 0
      stats.x_target = value_of(x[t]);
      const auto row = detail::ce_row<double>(stats, C, opts.label_smoothing, opts.z_loss);
      row_loss = row.loss;
      if (g) ce_grad_row(row, e.data(), stats.s, C, t, scale, g);
    }
    if (opts.reduction == Reduction::None) loss[i] = static_cast<float>(row_loss);
    return row_loss;
  };
  const double total = sum_of_rows(N, kLossRows, row_loss);
  if (opts.reduction != Reduction::None) loss[0] = static_cast<float>(total * scale);
}

}  // namespace

template <class T>
void cross_entropy_loss(const T* logits, const std::int64_t* targets, std::int64_t N,
                        std::int64_t C, float* loss, T* grad, const CrossEntropyOptions& opts) {
  cross_entropy_rows<double>(logits, targets, N, C, loss, grad, opts);
}

template <class T>
void cross_entropy_loss_float(const T* logits, const std::int64_t* targets, std::int64_t N,
                              std::int64_t C, float* loss, T* grad, const CrossEntropyOptions& opts) {
  cross_entropy_rows<float>(logits, targets, N, C, loss, grad, opts);
}

#define GENAI_CROSS_ENTROPY(name, T)                                                           \
  template void name(const T*, const std::int64_t*, std::int64_t, std::int64_t, float*, T*, \
                     const CrossEntropyOptions&);
GENAI_CROSS_ENTROPY(cross_entropy_loss, float)
GENAI_CROSS_ENTROPY(cross_entropy_loss, bf16)
GENAI_CROSS_ENTROPY(cross_entropy_loss_float, float)
GENAI_CROSS_ENTROPY(cross_entropy_loss_float, bf16)
#undef GENAI_CROSS_ENTROPY

void element_loss(detail::ElementLoss kind, const float* pred, const float* target, std::int64_t n,
                  std::int64_t d, const LossOutputs& out, Reduction reduction) {
  const bool mean = reduction == Reduction::Mean;
  const double scale = mean ? 1.0 / (static_cast<double>(n) * static_cast<double>(d)) : 1.0;
  double total = 0;
  for (std::int64_t r = 0; r < n; ++r) {
    double row = 0;
    for (std::int64_t j = r * d; j < (r + 1) * d; ++j) {
      const auto e = detail::element_loss<double>(kind, pred[j], target[j]);
      row += e.value;
      if (out.grad) out.grad[j] = static_cast<float>(scale * e.grad);
    }
    if (out.row_loss) out.row_loss[r] = static_cast<float>(mean ? row / static_cast<double>(d) : row);
    total += row;
  }
  if (out.loss) out.loss[0] = static_cast<float>(total * scale);
}

namespace {

// z = mu + exp(logvar / 2) eps over n elements, and eps_out = eps where asked.
GENAI_CPU_CLONES void reparameterize_span(const float* mu, const float* logvar, const float* eps,
                                          std::int64_t n, float* z, float* eps_out) {
  for (std::int64_t i = 0; i < n; ++i) z[i] = detail::reparameterize_element(mu[i], logvar[i], eps[i]);
  if (eps_out) std::copy_n(eps, n, eps_out);
}

}  // namespace

void reparameterize(const float* mu, const float* logvar, std::int64_t n, std::int64_t d,
                    float* z, const ReparameterizeOptions& opts) {
  const std::int64_t total = n * d;
  for_blocks(true, {opts.seed, rng::streams::vae_reparameterize, opts.step}, (total + 3) / 4,
             kBlocksPerChunk, [&](std::int64_t b0, std::int64_t b1, const float* eps) {
               const std::int64_t i0 = 4 * b0, count = std::min(total, 4 * b1) - i0;
               reparameterize_span(mu + i0, logvar + i0, eps, count, z + i0,
                                   opts.eps_out ? opts.eps_out + i0 : nullptr);
             });
}

void vae_loss(const float* x, const float* x_recon, std::int64_t n, std::int64_t D,
              const float* mu, const float* logvar, std::int64_t d, const VaeLossOutputs& out,
              const VaeLossOptions& opts) {
  const double s = opts.reduction == Reduction::Mean ? 1.0 / static_cast<double>(n) : 1.0;
  const double beta = opts.beta;
  const auto kind = detail::element_loss_of(opts.reconstruction);
  double sum_total = 0, sum_recon = 0, sum_kl = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    double recon = 0, kl = 0;
    for (std::int64_t j = i * D; j < (i + 1) * D; ++j) {
      const auto e = detail::element_loss<double>(kind, x_recon[j], x[j]);
      recon += e.value;
      if (out.grad_recon) out.grad_recon[j] = static_cast<float>(s * e.grad);
    }
    for (std::int64_t k = i * d; k < (i + 1) * d; ++k) {
      const auto e = detail::gaussian_kl<double>(mu[k], logvar[k]);
      kl += e.value;
      if (out.grad_mu) out.grad_mu[k] = static_cast<float>(s * beta * e.d_mu);
      if (out.grad_logvar) out.grad_logvar[k] = static_cast<float>(s * beta * e.d_logvar);
    }
    const double total = recon + beta * kl;
    if (out.total) out.total[i] = static_cast<float>(total);
    if (out.reconstruction) out.reconstruction[i] = static_cast<float>(recon);
    if (out.kl) out.kl[i] = static_cast<float>(kl);
    sum_total += total;
    sum_recon += recon;
    sum_kl += kl;
  }
  if (out.reduced) {
    out.reduced[0] = static_cast<float>(sum_total * s);
    out.reduced[1] = static_cast<float>(sum_recon * s);
    out.reduced[2] = static_cast<float>(sum_kl * s);
  }
}

}  // namespace genai::ref
