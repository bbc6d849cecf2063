// CPU backend of the rng fills: Philox4x32-10 and the transforms of genai/rng.hpp over 16
// blocks at a time.
#include "cpu_reference/rng.hpp"

#include <algorithm>

namespace genai::ref {
namespace {

constexpr int kLanes = 16;

// The four words of blocks first .. first + 15: Random123's Philox4x32 rounds (two 32 x 32 -> 64
// multiplies, the key bumped before rounds 2..10) on 16 counters side by side, each word in its
// own array so that every round is one vector loop.
struct Words16 {
  std::uint32_t w[4][kLanes];
};

[[gnu::always_inline]] inline void philox16(const RngKey& key, std::uint64_t first, Words16& c) {
  for (int l = 0; l < kLanes; ++l) {
    const std::uint64_t block = first + static_cast<std::uint64_t>(l);
    c.w[0][l] = static_cast<std::uint32_t>(block);
    c.w[1][l] = static_cast<std::uint32_t>(block >> 32);
    c.w[2][l] = key.step;
    c.w[3][l] = key.stream;
  }
  std::uint32_t k0 = static_cast<std::uint32_t>(key.seed);
  std::uint32_t k1 = static_cast<std::uint32_t>(key.seed >> 32);
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    // Not unrolled: kept a loop, GCC vectorises it (unrolled, it does not).
#pragma GCC unroll 1
    for (int l = 0; l < kLanes; ++l) {
      const std::uint32_t a = c.w[0][l], b = c.w[2][l];
      const auto hi0 = static_cast<std::uint32_t>((std::uint64_t{0xD2511F53u} * a) >> 32);
      const auto hi1 = static_cast<std::uint32_t>((std::uint64_t{0xCD9E8D57u} * b) >> 32);
      c.w[0][l] = hi1 ^ c.w[1][l] ^ k0;
      c.w[1][l] = 0xCD9E8D57u * b;
      c.w[2][l] = hi0 ^ c.w[3][l] ^ k1;
      c.w[3][l] = 0xD2511F53u * a;
    }
  }
}

// out[4 i + lane] for 16 blocks (count of them kept, <= 16).
[[gnu::always_inline]] inline void normal16(const RngKey& key, std::uint64_t first, int count, float* out) {
  Words16 c;
  philox16(key, first, c);
  float z[4][kLanes];
  for (int l = 0; l < kLanes; ++l) rng::box_muller(c.w[0][l], c.w[1][l], z[0][l], z[1][l]);
  for (int l = 0; l < kLanes; ++l) rng::box_muller(c.w[2][l], c.w[3][l], z[2][l], z[3][l]);
  for (int l = 0; l < count; ++l)
    for (int lane = 0; lane < 4; ++lane) out[4 * l + lane] = z[lane][l];
}

[[gnu::always_inline]] inline void uniform16(const RngKey& key, std::uint64_t first, int count, float* out) {
  Words16 c;
  philox16(key, first, c);
  for (int l = 0; l < count; ++l)
    for (int lane = 0; lane < 4; ++lane) out[4 * l + lane] = rng::uniform(c.w[lane][l]);
}

}  // namespace

GENAI_CPU_CLONES void normal_blocks(const RngKey& key, std::uint64_t first, std::int64_t count,
                                    float* out) {
  for (std::int64_t i = 0; i < count; i += kLanes)
    normal16(key, first + static_cast<std::uint64_t>(i),
             static_cast<int>(std::min<std::int64_t>(kLanes, count - i)), out + 4 * i);
}

GENAI_CPU_CLONES void uniform_blocks(const RngKey& key, std::uint64_t first, std::int64_t count,
                                     float* out) {
  for (std::int64_t i = 0; i < count; i += kLanes)
    uniform16(key, first + static_cast<std::uint64_t>(i),
              static_cast<int>(std::min<std::int64_t>(kLanes, count - i)), out + 4 * i);
}

namespace {

// out[i] = fma(a, z[i], b), i < n.
GENAI_CPU_CLONES void fma_map(float a, const float* z, float b, std::int64_t n, float* out) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = rng::detail::fma(a, z[i], b);
}

// out[i] = fma(a, number of element i, b), i < n.
void fill(bool normal, float* out, std::int64_t n, const RngKey& key, float a, float b) {
  for_blocks(normal, key, (n + 3) / 4, kBlocksPerChunk,
             [&](std::int64_t b0, std::int64_t b1, const float* z) {
               fma_map(a, z, b, std::min(n, 4 * b1) - 4 * b0, out + 4 * b0);
             });
}

}  // namespace

void fill_uniform(float* out, std::int64_t n, RngKey key, float low, float high) {
  fill(false, out, n, key, rng::detail::add(high, -low), low);
}

void fill_normal(float* out, std::int64_t n, RngKey key, float mean, float stddev) {
  fill(true, out, n, key, stddev, mean);
}

}  // namespace genai::ref
