// genai entropy / genai kl: the info module on the command line.
#include <cstdio>

#include "cli/common.hpp"
#include "genai/info.hpp"
#include "genai/io.hpp"

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

}  // namespace

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

}  // namespace genai::cli
