// `genai attention` end to end: the written output, lse and weights against the library on the
// same .npy inputs (fp32 and bf16), bad input refused with status 2.
#include <gtest/gtest.h>

#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "cli_test_util.hpp"
#include "genai/attention.hpp"
#include "genai/dtype.hpp"
#include "genai/io.hpp"

namespace genai {
namespace {

using test::CliRun;
using test::expect_refused;
using test::genai_cli;

class AttentionCli : public test::CliTest {
 protected:
  // Q [2, 4, 5, 8], K and V [2, 2, 7, 8] (GQA), written as .npy.
  const AttentionShape shape{.batch = 2, .q_heads = 4, .kv_heads = 2, .q_len = 5, .k_len = 7,
                             .head_dim = 8};
  const std::vector<float> q = test::normals(2 * 4 * 5 * 8, 41), k = test::normals(2 * 2 * 7 * 8, 42),
                           v = test::normals(2 * 2 * 7 * 8, 43);
  std::string inputs() {
    io::write_npy(path("q.npy"), std::span<const float>(q), {2, 4, 5, 8});
    io::write_npy(path("k.npy"), std::span<const float>(k), {2, 2, 7, 8});
    io::write_npy(path("v.npy"), std::span<const float>(v), {2, 2, 7, 8});
    return " --q " + path("q.npy") + " --k " + path("k.npy") + " --v " + path("v.npy");
  }
};

TEST_F(AttentionCli, CausalFp32WritesTheLibrarysOutputs) {
  const CliRun r = genai_cli("attention --device cpu --causal" + inputs() + " --out " +
                             path("o.npy") + " --lse " + path("l.npy") + " --weights " +
                             path("w.npy"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(r.printed("B=2 Hq=4 Hkv=2 Lq=5 Lk=7 d=8")) << r.output;
  std::vector<float> out(2 * 4 * 5 * 8), lse(2 * 4 * 5), w(2 * 4 * 5 * 7);
  attention(Context::cpu(), q.data(), k.data(), v.data(), shape, out.data(), {.causal = true},
            {.lse = lse.data(), .weights = w.data()});
  const io::Array o = io::read_npy(path("o.npy"));
  EXPECT_EQ(o.shape, (std::vector<std::int64_t>{2, 4, 5, 8}));
  EXPECT_EQ(o.to_float(), out);
  EXPECT_EQ(io::read_npy(path("l.npy")).to_float(), lse);
  EXPECT_EQ(io::read_npy(path("w.npy")).to_float(), w);
}

// --dtype bf16: the inputs rounded to bf16, the output written as float32 from the bf16 result.
TEST_F(AttentionCli, Bf16RoundsTheInputsAndWritesFloat) {
  const CliRun r = genai_cli("attention --device cpu --dtype bf16" + inputs() + " --out " +
                             path("o.npy"));
  ASSERT_EQ(r.status, 0) << r.output;
  auto to_bf16 = [](const std::vector<float>& x) { return std::vector<bf16>(x.begin(), x.end()); };
  const auto qb = to_bf16(q), kb = to_bf16(k), vb = to_bf16(v);
  std::vector<bf16> out(q.size());
  attention(Context::cpu(), qb.data(), kb.data(), vb.data(), shape, out.data());
  const std::vector<float> want(out.begin(), out.end());
  EXPECT_EQ(io::read_npy(path("o.npy")).to_float(), want);
}

TEST_F(AttentionCli, BadInputIsRefusedAndNothingWritten) {
  const std::string in = inputs();
  io::write_npy(path("v3.npy"), std::span<const float>(v.data(), 2 * 2 * 6 * 8), {2, 2, 6, 8});
  expect_refused("attention --device cpu --q " + path("q.npy") + " --k " + path("k.npy") +
                     " --v " + path("v3.npy") + " --out " + path("o.npy"),
                 "genai attention: --v must have the shape of --k");
  expect_refused("attention --device cpu --q " + path("q.npy") + " --k " + path("q.npy") +
                     " --v " + path("q.npy") + " --out " + path("o.npy") + " --mask " +
                     path("missing.npy"),
                 "missing.npy: cannot open for reading");
  EXPECT_FALSE(std::filesystem::exists(path("o.npy")));
}

}  // namespace
}  // namespace genai
