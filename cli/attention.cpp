// genai attention: scaled dot-product attention of .npy arrays on the command line, and the
// attention rows of the demo.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/common.hpp"
#include "genai/attention.hpp"
#include "genai/buffer.hpp"
#include "genai/io.hpp"
#include "genai/rng.hpp"

namespace genai::cli {
namespace {

struct AttentionArgs {
  std::string q, k, v, mask, out, weights, lse, dtype = "fp32", device = "auto";
  bool causal = false;
};

// A [B, H, L, d] array; a 3-D [B, L, d] file is one head.
struct Heads {
  std::vector<float> values;
  std::int64_t B = 0, H = 0, L = 0, d = 0;
  bool three_d = false;
};

Heads read_heads(const std::string& path, const char* flag) {
  const io::Array a = io::read_npy(path);
  if (a.shape.size() != 3 && a.shape.size() != 4)
    throw ArgumentError(std::string("genai attention: ") + flag + " " + path +
                        " must be 4-D [B, H, L, d] or 3-D [B, L, d], it has " +
                        std::to_string(a.shape.size()) + " dimensions");
  Heads h{a.to_float(), a.shape[0], 1, 0, 0, a.shape.size() == 3};
  h.L = a.shape[a.shape.size() - 2];
  h.d = a.shape.back();
  if (!h.three_d) h.H = a.shape[1];
  return h;
}

// Host floats -> T on ctx's device, genai::attention in T, out back as floats.
template <class T>
std::vector<float> attention_as(const Context& ctx, const std::vector<float>& q,
                                const std::vector<float>& k, const std::vector<float>& v,
                                const AttentionShape& s, const AttentionOptions& opts,
                                const AttentionOutputs& outputs) {
  auto upload = [&](const std::vector<float>& x) {
    std::vector<T> t;
    t.reserve(x.size());
    for (float f : x) t.push_back(T(f));
    return Buffer<T>(ctx, std::span<const T>(t));
  };
  Buffer<T> dq = upload(q), dk = upload(k), dv = upload(v), out(ctx, q.size());
  attention(ctx, dq.data(), dk.data(), dv.data(), s, out.data(), opts, outputs);
  std::vector<float> r;
  r.reserve(q.size());
  for (T x : out.to_host()) r.push_back(static_cast<float>(x));
  return r;
}

void add_attention_command(CLI::App& app) {
  auto a = std::make_shared<AttentionArgs>();
  auto* cmd = app.add_subcommand(
      "attention", "softmax(scale Q K^T + mask) V of [B, H, L, d] arrays (3-D [B, L, d]: one head)");
  cmd->add_option("--q", a->q, "queries Q [B, Hq, Lq, d] (.npy)")->required();
  cmd->add_option("--k", a->k, "keys K [B, Hkv, Lk, d] (.npy); Hkv divides Hq")->required();
  cmd->add_option("--v", a->v, "values V, the shape of K (.npy)")->required();
  cmd->add_flag("--causal", a->causal, "causal mask, aligned bottom-right when Lq != Lk");
  cmd->add_option("--mask", a->mask,
                  "boolean mask (.npy, nonzero = attend) broadcastable over [B, Hq, Lq, Lk]; "
                  "fewer than 4 dims are leading 1s");
  cmd->add_option("--out", a->out, "output O [B, Hq, Lq, d] (.npy)")->required();
  cmd->add_option("--weights", a->weights, "also write the weights [B, Hq, Lq, Lk] (.npy)");
  cmd->add_option("--lse", a->lse, "also write the log-sum-exp [B, Hq, Lq] (.npy)");
  cmd->add_option("--dtype", a->dtype,
                  "compute type: the inputs are rounded to it, out is written as float32")
      ->check(CLI::IsMember({"fp32", "fp16", "bf16"}))
      ->capture_default_str();
  add_device_option(*cmd, a->device);
  cmd->callback([a] {
    const Context ctx = Context::from_name(a->device);
    const Heads q = read_heads(a->q, "--q"), k = read_heads(a->k, "--k"),
                v = read_heads(a->v, "--v");
    if (k.B != v.B || k.H != v.H || k.L != v.L || k.d != v.d)
      throw ArgumentError("genai attention: --v must have the shape of --k");
    if (k.B != q.B || k.d != q.d)
      throw ArgumentError("genai attention: --k has batch " + std::to_string(k.B) + " and d " +
                          std::to_string(k.d) + ", --q batch " + std::to_string(q.B) + " and d " +
                          std::to_string(q.d));
    const AttentionShape s{.batch = q.B, .q_heads = q.H, .kv_heads = k.H, .q_len = q.L,
                           .k_len = k.L, .head_dim = q.d};
    AttentionOptions opts{.causal = a->causal};
    std::unique_ptr<bool[]> mask;
    std::int64_t mask_n = 0;
    if (!a->mask.empty()) {
      const io::Array m = io::read_npy(a->mask);
      if (m.shape.empty() || m.shape.size() > 4)
        throw ArgumentError("genai attention: --mask " + a->mask + " must have 1 to 4 dimensions");
      std::int64_t dims[4] = {1, 1, 1, 1};
      std::copy(m.shape.begin(), m.shape.end(), dims + 4 - m.shape.size());
      opts.mask_shape = {.batch = dims[0], .heads = dims[1], .q_len = dims[2], .k_len = dims[3]};
      const std::vector<float> f = m.to_float();
      mask_n = static_cast<std::int64_t>(f.size());
      mask.reset(new bool[mask_n]);
      for (std::int64_t e = 0; e < mask_n; ++e) mask[e] = f[e] != 0.0f;
    }
    Buffer<bool> dmask(ctx, std::span<const bool>(mask.get(), mask_n));
    if (mask) opts.mask = dmask.data();
    const std::int64_t rows = s.batch * s.q_heads * s.q_len;
    Buffer<float> lse(ctx, a->lse.empty() ? 0 : rows), w(ctx, a->weights.empty() ? 0 : rows * s.k_len);
    const AttentionOutputs outputs{.lse = lse.data(), .weights = w.data()};
    std::vector<float> out_host;
    if (a->dtype == "fp16")
      out_host = attention_as<fp16>(ctx, q.values, k.values, v.values, s, opts, outputs);
    else if (a->dtype == "bf16")
      out_host = attention_as<bf16>(ctx, q.values, k.values, v.values, s, opts, outputs);
    else
      out_host = attention_as<float>(ctx, q.values, k.values, v.values, s, opts, outputs);
    auto shape = [&](std::int64_t last) {
      return q.three_d ? std::vector<std::int64_t>{s.batch, s.q_len, last}
                       : std::vector<std::int64_t>{s.batch, s.q_heads, s.q_len, last};
    };
    io::write_npy(a->out, std::span<const float>(out_host), shape(s.head_dim));
    if (!a->weights.empty())
      io::write_npy(a->weights, std::span<const float>(w.to_host()), shape(s.k_len));
    if (!a->lse.empty()) {
      const auto l = lse.to_host();
      io::write_npy(a->lse, std::span<const float>(l),
                    q.three_d ? std::vector<std::int64_t>{s.batch, s.q_len}
                              : std::vector<std::int64_t>{s.batch, s.q_heads, s.q_len});
    }
    std::printf("attention %s B=%lld Hq=%lld Hkv=%lld Lq=%lld Lk=%lld d=%lld%s%s on %s -> %s\n",
                a->dtype.c_str(),
                static_cast<long long>(s.batch), static_cast<long long>(s.q_heads),
                static_cast<long long>(s.kv_heads), static_cast<long long>(s.q_len),
                static_cast<long long>(s.k_len), static_cast<long long>(s.head_dim),
                a->causal ? " causal" : "", mask ? " masked" : "", to_string(ctx.device()).c_str(),
                a->out.c_str());
  });
}

// One demo row: attention in T (B 1, H 8, L 256, d 64) on the tour's device against the CPU
// reference in T on the same (rounded) inputs, with FlashAttention's flop count 4 B H Lq Lk d.
template <class T>
void tour_row(Tour& t, const char* dtype, const std::vector<float>& q, const std::vector<float>& k,
              const std::vector<float>& v, const AttentionShape& s, double tolerance) {
  const std::int64_t n = static_cast<std::int64_t>(q.size());
  auto to_t = [](const std::vector<float>& x) {
    std::vector<T> r;
    r.reserve(x.size());
    for (float f : x) r.push_back(T(f));
    return r;
  };
  const std::vector<T> hq = to_t(q), hk = to_t(k), hv = to_t(v);
  std::vector<T> want(n);
  Buffer<T> dq(t.ctx, std::span<const T>(hq)), dk(t.ctx, std::span<const T>(hk)),
      dv(t.ctx, std::span<const T>(hv)), out(t.ctx, n);
  const double ms = t.time([&] { attention(t.ctx, dq.data(), dk.data(), dv.data(), s, out.data()); });
  attention(Context::cpu(), hq.data(), hk.data(), hv.data(), s, want.data());
  const auto got = out.to_host();
  double err = 0, ref_max = 1e-30;
  for (std::int64_t e = 0; e < n; ++e) {
    const double g = static_cast<float>(got[e]), w = static_cast<float>(want[e]);
    err = std::isnan(g) ? INFINITY : std::max(err, std::abs(g - w));
    ref_max = std::max(ref_max, std::abs(w));
  }
  const double flop = 4.0 * s.batch * s.q_heads * s.q_len * s.k_len * s.head_dim;
  char tp[64];
  std::snprintf(tp, sizeof tp, "%.2f GFLOP/s", flop / (ms * 1e6));
  t.rows.push_back({"attention", std::string(dtype) + " B1 H8 L256 d64", to_string(t.ctx.device()),
                    err / ref_max, ms, tp, err / ref_max <= tolerance});
}

// Demo: the attention case in fp32, fp16 and bf16 (tolerances as the tests': 1e-5, 1e-2); and
// the problem-set 1.4 checks, through the attention op.
void tour_attention(Tour& t) {
  const Context cpu = Context::cpu();
  const AttentionShape s{.batch = 1, .q_heads = 8, .kv_heads = 8, .q_len = 256, .k_len = 256,
                         .head_dim = 64};
  const std::int64_t n = s.batch * s.q_heads * s.q_len * s.head_dim;
  std::vector<float> q(n), k(n), v(n);
  fill_normal(cpu, q.data(), n, {50, 0, 0});
  fill_normal(cpu, k.data(), n, {50, 1, 0});
  fill_normal(cpu, v.data(), n, {50, 2, 0});
  tour_row<float>(t, "fp32", q, k, v, s, 1e-5);
  tour_row<fp16>(t, "fp16", q, k, v, s, 1e-2);
  tour_row<bf16>(t, "bf16", q, k, v, s, 1e-2);

  // 1.4(c): softmax([0, 100, 0, 0]) is one-hot.
  const std::vector<float> x = {0, 100, 0, 0};
  const auto p = on_device(t.ctx, {&x}, 4, [&](const auto& in, float* o) {
    softmax(t.ctx, in[0], 1, 4, o);
  });
  t.check("1.4(c)", "softmax([0, 100, 0, 0])[1]", p[1], 1.0, 1e-7);

  // 1.4(a, b) at the problem's d = 512: X = q^T k for 4000 pairs of N(0, I_512). The op's
  // largest head dim is 256, so X = q1^T k1 + q2^T k2 over the halves, each the lse of a call
  // with one key and scale 1 (the lse of a single key is its logit).
  const std::int64_t N = 4000, d = 512, h = d / 2;
  std::vector<float> a(N * d), b(N * d);
  fill_normal(cpu, a.data(), N * d, {51, 0, 0});
  fill_normal(cpu, b.data(), N * d, {51, 1, 0});
  const AttentionShape half{.batch = 1, .q_heads = N, .kv_heads = N, .q_len = 1, .k_len = 1,
                            .head_dim = h};
  std::vector<double> X(N, 0.0);
  for (std::int64_t part = 0; part < 2; ++part) {
    std::vector<float> qa(N * h), kb(N * h);
    for (std::int64_t i = 0; i < N; ++i)
      for (std::int64_t c = 0; c < h; ++c) {
        qa[i * h + c] = a[i * d + part * h + c];
        kb[i * h + c] = b[i * d + part * h + c];
      }
    Buffer<float> dq(t.ctx, std::span<const float>(qa)), dk(t.ctx, std::span<const float>(kb)),
        o(t.ctx, N * h), lse(t.ctx, N);
    attention(t.ctx, dq.data(), dk.data(), dk.data(), half, o.data(), {.scale = 1.0f},
              {.lse = lse.data()});
    const auto l = lse.to_host();
    for (std::int64_t i = 0; i < N; ++i) X[i] += l[i];
  }
  double mean = 0, var = 0;
  for (double x : X) mean += x;
  mean /= N;
  for (double x : X) var += (x - mean) * (x - mean);
  var /= N - 1;
  // 5 standard errors: SE(mean) = sqrt(d / N); E[X^4] = 3 d^2 + 6 d, so SE(sample variance) =
  // sqrt((2 d^2 + 6 d) / N).
  const double se_mean = std::sqrt(double(d) / N), se_var = std::sqrt((2.0 * d * d + 6.0 * d) / N);
  t.check("1.4(a)", "E[q·k], d = 512, 4000 pairs", mean, 0.0, 5 * se_mean);
  t.check("1.4(b)", "Var[q·k], same pairs", var, double(d), 5 * se_var);
  t.check("1.4", "Var[q·k / √d], same pairs", var / d, 1.0, 5 * se_var / d);
}

}  // namespace

GENAI_CLI_MODULE(50, "attention", add_attention_command, tour_attention);

}  // namespace genai::cli
