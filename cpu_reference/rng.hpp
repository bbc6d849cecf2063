// CPU backend of the rng fills, and the generator of every CPU loop that draws many Philox blocks:
// the numbers of rng::uniform4 / rng::normal4 (genai/rng.hpp) bit for bit, 16 blocks at a time
// in loops the compiler vectorises (AVX-512 / AVX2 clones doing the same IEEE operations).
#pragma once

#include <cstdint>
#include <vector>

#include "cpu_reference/parallel.hpp"
#include "genai/rng.hpp"

namespace genai::ref {

// out[4 i + lane] = rng::normal4(key.seed, key.stream, first + i, key.step).v[lane], i < count.
void normal_blocks(const RngKey& key, std::uint64_t first, std::int64_t count, float* out);
// The same with rng::uniform4.
void uniform_blocks(const RngKey& key, std::uint64_t first, std::int64_t count, float* out);

// Blocks [0, count) in chunks of `chunk` blocks on the backend's threads: body(b0, b1, z) with
// z[4 (b - b0) + lane] the normal (or uniform) numbers of block b. The chunks are fixed, so the
// numbers each element sees never depend on the thread count.
template <class Body>
void for_blocks(bool normal, const RngKey& key, std::int64_t count, std::int64_t chunk,
                Body&& body) {
  parallel_rows(count, chunk, [&](std::int64_t b0, std::int64_t b1) {
    thread_local std::vector<float> z;
    z.resize(static_cast<std::size_t>(4 * (b1 - b0)));
    (normal ? normal_blocks : uniform_blocks)(key, static_cast<std::uint64_t>(b0), b1 - b0,
                                              z.data());
    body(b0, b1, static_cast<const float*>(z.data()));
  });
}

// Blocks per chunk of for_blocks for flat arrays (64 KiB of numbers).
inline constexpr std::int64_t kBlocksPerChunk = 4096;

void fill_uniform(float* out, std::int64_t n, RngKey key, float low, float high);
void fill_normal(float* out, std::int64_t n, RngKey key, float mean, float stddev);

}  // namespace genai::ref
