// genai entropy / genai kl: the info module on the command line.
#include <cstdio>

#include "cli/common.hpp"
#include "genai/buffer.hpp"
#include "genai/info.hpp"
#include "genai/io.hpp"
#include "genai/rng.hpp"

namespace genai::cli {
namespace {

struct InfoArgs {
  std::string p, q, base = "2", device = "auto", out;
};

LogBase parse_base(const std::string& b) { return b == "e" ? LogBase::Nats : LogBase::Bits; }

void add_common(CLI::App* cmd, InfoArgs& a) {
  cmd->add_option("--p", a.p, "distribution(s) P: 0.9,0.1 or a .npy file of rows")->required();
  cmd->add_option("--base", a.base, "logarithm base: 2 (bits) or e (nats)")
      ->check(CLI::IsMember({"2", "e"}))
      ->capture_default_str();
  cmd->add_option("--out", a.out, "also write the values to this .npy file");
  add_device_option(*cmd, a.device);
}

void report(const char* label, const std::vector<float>& v, const InfoArgs& a) {
  const char* unit = a.base == "e" ? "nats" : "bits";
  for (std::size_t r = 0; r < v.size(); ++r) {
    if (v.size() == 1)
      std::printf("%s = %.6f %s\n", label, v[r], unit);
    else
      std::printf("row %zu: %s = %.6f %s\n", r, label, v[r], unit);
  }
  if (!a.out.empty())
    io::write_npy(a.out, std::span<const float>(v), {static_cast<std::int64_t>(v.size())});
}

void add_info_commands(CLI::App& app) {
  auto a = std::make_shared<InfoArgs>();
  auto* h = app.add_subcommand("entropy", "entropy H(P) of each row of P");
  add_common(h, *a);
  h->callback([a] {
    const Context ctx = Context::from_name(a->device);
    const Rows p = read_rows(a->p, "p");
    const auto v = on_device(ctx, {&p.values}, p.rows, [&](const auto& in, float* out) {
      entropy(ctx, in[0], p.rows, p.cols, out, {.base = parse_base(a->base)});
    });
    report("H(P)", v, *a);
  });

  auto b = std::make_shared<InfoArgs>();
  auto* kl = app.add_subcommand("kl", "KL(P||Q) and cross-entropy H(P,Q) of each row pair");
  add_common(kl, *b);
  kl->add_option("--q", b->q, "distribution(s) Q, same shape as P")->required();
  kl->callback([b] {
    const Context ctx = Context::from_name(b->device);
    const Rows p = read_rows(b->p, "p"), q = read_rows(b->q, "q");
    if (p.rows != q.rows || p.cols != q.cols)
      throw ArgumentError("genai kl: --q has shape " + std::to_string(q.rows) + "x" +
                          std::to_string(q.cols) + ", --p " + std::to_string(p.rows) + "x" +
                          std::to_string(p.cols));
    const InfoOptions opts{.base = parse_base(b->base)};
    const auto v = on_device(ctx, {&p.values, &q.values}, p.rows, [&](const auto& in, float* out) {
      kl_divergence(ctx, in[0], in[1], p.rows, p.cols, out, opts);
    });
    const auto ce = on_device(ctx, {&p.values, &q.values}, p.rows, [&](const auto& in, float* out) {
      cross_entropy(ctx, in[0], in[1], p.rows, p.cols, out, opts);
    });
    report("KL(P||Q)", v, *b);
    InfoArgs no_out = *b;
    no_out.out.clear();
    report("H(P,Q)", ce, no_out);
  });
}

// Demo rows: entropy and KL of 4096 random distributions of 1024 outcomes, and the problem-set
// answers 3.3, 6.1, 6.2 computed on the tour's device.
void tour_info(Tour& t) {
  const Context cpu = Context::cpu();
  const std::int64_t rows = 4096, K = 1024;
  std::vector<float> p(rows * K), q(rows * K);
  fill_uniform(cpu, p.data(), rows * K, {7, 0, 0});
  fill_uniform(cpu, q.data(), rows * K, {7, 1, 0});
  for (auto* v : {&p, &q})
    for (std::int64_t r = 0; r < rows; ++r) {
      double s = 0;
      for (std::int64_t k = 0; k < K; ++k) s += (*v)[r * K + k];
      for (std::int64_t k = 0; k < K; ++k) (*v)[r * K + k] = float((*v)[r * K + k] / s);
    }
  Buffer<float> dp(t.ctx, std::span<const float>(p)), dq(t.ctx, std::span<const float>(q));
  const double bytes = 4.0 * rows * K;
  t.add("info", "entropy 4096x1024", rows, bytes,
        [&](const Context& c, float* out) { entropy(c, dp.data(), rows, K, out); },
        [&](float* out) { entropy(cpu, p.data(), rows, K, out); }, 1e-5);
  t.add("info", "KL divergence 4096x1024", rows, 2 * bytes,
        [&](const Context& c, float* out) { kl_divergence(c, dp.data(), dq.data(), rows, K, out); },
        [&](float* out) { kl_divergence(cpu, p.data(), q.data(), rows, K, out); }, 1e-4);

  using Op = void (*)(const Context&, const float*, const float*, std::int64_t, std::int64_t,
                      float*, const InfoOptions&);
  auto one = [&](const std::vector<float>& a, const std::vector<float>& b, Op op) {
    return on_device(t.ctx, {&a, &b}, 1, [&](const auto& in, float* out) {
      op(t.ctx, in[0], in[1], 1, static_cast<std::int64_t>(a.size()), out, {});
    })[0];
  };
  const Op l1 = [](const Context& c, const float* x, const float*, std::int64_t r, std::int64_t k,
                   float* o, const InfoOptions&) { l1_norm(c, x, r, k, o); };
  const Op l2 = [](const Context& c, const float* x, const float*, std::int64_t r, std::int64_t k,
                   float* o, const InfoOptions&) { l2_norm_squared(c, x, r, k, o); };
  const Op h = [](const Context& c, const float* x, const float*, std::int64_t r, std::int64_t k,
                  float* o, const InfoOptions& opt) { entropy(c, x, r, k, o, opt); };
  const std::vector<float> w = {3, 0.01f, -2, 0.001f};
  t.check("3.3(a)", "L1 of [3, 0.01, -2, 0.001]", one(w, w, l1), 5.011, 1e-5);
  t.check("3.3(b)", "L2^2 of the same", one(w, w, l2), 13.000101, 1e-4);
  t.check("6.1(a)", "H(fair coin), bits", one({0.5f, 0.5f}, {0.5f, 0.5f}, h), 1.0, 1e-5);
  t.check("6.1(b)", "H(0.9, 0.1), bits", one({0.9f, 0.1f}, {0.9f, 0.1f}, h), 0.469, 5e-4);
  t.check("6.1(c)", "H(always heads), bits", one({1.0f, 0.0f}, {1.0f, 0.0f}, h), 0.0, 1e-7);
  t.check("6.2(a)", "KL(P‖Q), bits", one({0.5f, 0.5f}, {0.9f, 0.1f}, kl_divergence), 0.737, 5e-4);
  t.check("6.2(b)", "KL(Q‖P), bits", one({0.9f, 0.1f}, {0.5f, 0.5f}, kl_divergence), 0.531, 5e-4);
}

}  // namespace

GENAI_CLI_MODULE(10, "info", add_info_commands, tour_info);

}  // namespace genai::cli
