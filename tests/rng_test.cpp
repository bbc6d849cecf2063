// Philox4x32-10 counter layout, uniform/normal transforms, moments, CPU == GPU bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numbers>
#include <vector>

#include "cpu_reference/rng.hpp"
#include "genai/rng.hpp"
#include "parallel_test_util.hpp"
#include "test_util.hpp"

namespace genai {
namespace {

// Random123's known-answer vectors (kat_vectors, "philox4x32 10"): counter[4], key[2] -> out[4].
// Through our layout: counter = {block lo, block hi, step, stream}, key = {seed lo, seed hi}.
struct Kat {
  std::uint32_t ctr[4], key[2], out[4];
};
constexpr Kat kKats[] = {
    {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
     {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
     {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

TEST(Rng, PhiloxMatchesRandom123KnownAnswers) {
  for (const Kat& k : kKats) {
    const std::uint64_t seed = (std::uint64_t{k.key[1]} << 32) | k.key[0];
    const std::uint64_t block = (std::uint64_t{k.ctr[1]} << 32) | k.ctr[0];
    const rng::Words w = rng::philox(seed, /*stream=*/k.ctr[3], block, /*step=*/k.ctr[2]);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(w.w[i], k.out[i]) << "word " << i;
  }
}

TEST(Rng, UniformIsExactOnHalfOpenUnitInterval) {
  EXPECT_EQ(rng::uniform(0u), 1.0f / 16777216.0f);  // never 0
  EXPECT_EQ(rng::uniform(0xffffffffu), 1.0f);       // 1 is reachable
  EXPECT_EQ(rng::uniform(0x80000000u), 0.5f + 1.0f / 16777216.0f);
}

TEST(Rng, OwnLogAndSinCosAreAccurate) {
  double worst_log = 0, worst_trig = 0;
  for (std::uint32_t k = 1; k <= (1u << 24); k += 997) {
    const float u = static_cast<float>(k) / 16777216.0f;
    worst_log = std::max(worst_log, std::abs(rng::detail::log(u) - std::log(double(u))));
    float s, c;
    rng::detail::sincos_2pi(u, s, c);
    const double a = 2 * std::numbers::pi * u;
    worst_trig = std::max({worst_trig, std::abs(s - std::sin(a)), std::abs(c - std::cos(a))});
  }
  EXPECT_LT(worst_log, 4e-6);   // |ln u| <= 16.7: a few float ulps
  EXPECT_LT(worst_trig, 5e-7);
}

TEST(Rng, FillTakesLaneIModFourOfBlockIDivFour) {
  const RngKey key{42, 7, 3};
  std::vector<float> out(10);
  fill_normal(Context::cpu(), out.data(), 10, key);
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(out[i], rng::normal4(42, 7, i / 4, 3).v[i % 4]) << i;
  fill_uniform(Context::cpu(), out.data(), 10, key);
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(out[i], rng::uniform4(42, 7, i / 4, 3).v[i % 4]) << i;
}

// The CPU's 16-blocks-at-a-time generator (vectorised, in the clone this machine picks) is the
// scalar rng::normal4 / uniform4 bit for bit: any start (across the 2^32 boundary of the block's
// low word), any count (partial groups of 16).
TEST(Rng, BlockGeneratorIsTheScalarOneBitForBit) {
  const RngKey key{0x123456789abcdefull, 0x201, 77};
  for (const std::uint64_t first : {std::uint64_t{0}, std::uint64_t{12345}, (std::uint64_t{1} << 32) - 5})
    for (const std::int64_t count : {1, 15, 16, 17, 100}) {
      std::vector<float> z(4 * count), u(4 * count);
      ref::normal_blocks(key, first, count, z.data());
      ref::uniform_blocks(key, first, count, u.data());
      for (std::int64_t i = 0; i < count; ++i) {
        const rng::Float4 zn = rng::normal4(key.seed, key.stream, first + i, key.step);
        const rng::Float4 un = rng::uniform4(key.seed, key.stream, first + i, key.step);
        for (int lane = 0; lane < 4; ++lane) {
          ASSERT_EQ(rng::detail::bits(z[4 * i + lane]), rng::detail::bits(zn.v[lane]))
              << "first " << first << " block " << i << " lane " << lane;
          ASSERT_EQ(rng::detail::bits(u[4 * i + lane]), rng::detail::bits(un.v[lane]));
        }
      }
    }
}

// A fill over several chunks: element i is still lane i % 4 of block i / 4, on any thread count.
TEST(Rng, LargeFillsAreTheSameOnAnyThreadCount) {
  const std::int64_t n = 4 * 3 * ref::kBlocksPerChunk + 7;
  const RngKey key{9, 3, 1};
  test::expect_same_on_any_thread_count([&] {
    std::vector<float> z(n), u(n);
    fill_normal(Context::cpu(), z.data(), n, key, 1.0f, 2.0f);
    fill_uniform(Context::cpu(), u.data(), n, key, -1.0f, 3.0f);
    return std::vector<std::vector<float>>{z, u};
  });
  std::vector<float> z(n);
  fill_normal(Context::cpu(), z.data(), n, key, 1.0f, 2.0f);
  for (std::int64_t i = 0; i < n; i += 997)
    EXPECT_EQ(z[i], rng::detail::fma(2.0f, rng::normal4(9, 3, i / 4, 1).v[i % 4], 1.0f)) << i;
}

TEST(Rng, SeedStreamAndStepEachChangeTheNumbers) {
  auto draw = [](RngKey k) {
    std::vector<float> v(8);
    fill_normal(Context::cpu(), v.data(), 8, k);
    return v;
  };
  const auto base = draw({1, 0, 0});
  EXPECT_EQ(draw({1, 0, 0}), base);
  EXPECT_NE(draw({2, 0, 0}), base);
  EXPECT_NE(draw({1, 1, 0}), base);
  EXPECT_NE(draw({1, 0, 1}), base);
}

// Sample moments of n = 10^6 draws against N(0,1). Standard errors: mean 1/sqrt(n) = 1e-3,
// variance sqrt(2/n) = 1.4e-3, skewness sqrt(6/n) = 2.4e-3, excess kurtosis sqrt(24/n) = 4.9e-3.
// The bounds are 5 standard errors (the draws are fixed by the seed, so this never flakes, and a
// wrong transform -- e.g. a missing factor 2 under the root -- misses them by far).
TEST(Rng, NormalMomentsOfAMillionDraws) {
  const std::int64_t n = 1'000'000;
  for (std::uint64_t seed : {1ull, 20261123ull}) {
    std::vector<float> z(n);
    fill_normal(Context::cpu(), z.data(), n, RngKey{seed});
    double m1 = 0, m2 = 0, m3 = 0, m4 = 0;
    for (float v : z) m1 += v;
    m1 /= n;
    for (float v : z) {
      const double d = v - m1;
      m2 += d * d;
      m3 += d * d * d;
      m4 += d * d * d * d;
    }
    m2 /= n;
    m3 /= n;
    m4 /= n;
    EXPECT_NEAR(m1, 0.0, 5e-3);
    EXPECT_NEAR(m2, 1.0, 7.1e-3);
    EXPECT_NEAR(m3 / std::pow(m2, 1.5), 0.0, 1.23e-2);
    EXPECT_NEAR(m4 / (m2 * m2) - 3.0, 0.0, 2.45e-2);
  }
}

// U(0,1]: mean 1/2 (SE sqrt(1/12n) = 2.9e-4), variance 1/12 (SE sqrt(1/180n) = 7.5e-5).
TEST(Rng, UniformMomentsAndAffineRange) {
  const std::int64_t n = 1'000'000;
  std::vector<float> u(n);
  fill_uniform(Context::cpu(), u.data(), n, RngKey{9});
  double m = 0, v = 0;
  for (float x : u) {
    ASSERT_GT(x, 0.0f);
    ASSERT_LE(x, 1.0f);
    m += x;
  }
  m /= n;
  for (float x : u) v += (x - m) * (x - m);
  v /= n;
  EXPECT_NEAR(m, 0.5, 1.5e-3);
  EXPECT_NEAR(v, 1.0 / 12, 3.8e-4);
  fill_uniform(Context::cpu(), u.data(), n, RngKey{9}, -3.0f, 5.0f);
  for (float x : u) {
    ASSERT_GT(x, -3.0f);
    ASSERT_LE(x, 5.0f);
  }
}

TEST(Rng, BadArgumentsAreRejectedByName) {
  const Context cpu = Context::cpu();
  float x[4];
  const auto message = [](auto&& f) { return test::error_of(f); };
  EXPECT_NE(message([&] { fill_normal(cpu, x, -1, {}); }).find("'n'"), std::string::npos);
  EXPECT_NE(message([&] { fill_normal(cpu, nullptr, 4, {}); }).find("'out'"), std::string::npos);
  EXPECT_NE(message([&] { fill_normal(cpu, x, 4, {}, 0, -1); }).find("'stddev'"), std::string::npos);
  EXPECT_NE(message([&] { fill_normal(cpu, x, 4, {}, NAN, 1); }).find("'mean'"), std::string::npos);
  EXPECT_NE(message([&] { fill_uniform(cpu, x, 4, {}, 1, 1); }).find("'high'"), std::string::npos);
  EXPECT_NO_THROW(fill_normal(cpu, nullptr, 0, {}));  // nothing to write
}

}  // namespace
}  // namespace genai
