// Philox fills on the GPU equal the CPU's bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numbers>
#include <vector>

#include "genai/rng.hpp"
#include "test_util.hpp"

namespace genai {
namespace {

class RngGpu : public test::GpuTest {};

// The GPU stream equals the CPU stream bit for bit, for aligned (float4 stores) and unaligned
// (scalar stores) outputs and a length that is not a multiple of 4.
TEST_F(RngGpu, FillsMatchReferenceBitForBit) {
  const std::int64_t n = test::sized<std::int64_t>((1 << 20) + 3, (1 << 14) + 3);
  const RngKey key{123456789, 5, 17};
  for (int offset : {0, 1}) {
    Buffer<float> d(ctx, n + 1);
    test::poison(d);
    std::vector<float> cpu(n), gpu(n + 1);
    for (int which = 0; which < 2; ++which) {
      if (which == 0) {
        fill_normal(ctx, d.data() + offset, n, key, 0.5f, 2.0f);
        fill_normal(Context::cpu(), cpu.data(), n, key, 0.5f, 2.0f);
      } else {
        fill_uniform(ctx, d.data() + offset, n, key, -1.0f, 3.0f);
        fill_uniform(Context::cpu(), cpu.data(), n, key, -1.0f, 3.0f);
      }
      d.copy_to_host(gpu);
      EXPECT_EQ(std::memcmp(gpu.data() + offset, cpu.data(), n * sizeof(float)), 0)
          << (which == 0 ? "normal" : "uniform") << ", offset " << offset;
    }
  }
}

}  // namespace
}  // namespace genai
