// Context, Error, Buffer and the fp16 / bf16 storage types.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <ios>
#include <limits>
#include <string>

#include "genai/buffer.hpp"
#include "genai/context.hpp"
#include "genai/dtype.hpp"
#include "test_util.hpp"

namespace genai {
namespace {

TEST(Context, CpuContextHasNoDeviceOrHandles) {
  const Context ctx = Context::cpu();
  EXPECT_EQ(ctx.device(), Device::CPU);
  EXPECT_FALSE(ctx.is_cuda());
  EXPECT_EQ(ctx.device_index(), -1);
  EXPECT_THROW(ctx.cublas(), Error);
  EXPECT_THROW(ctx.cusolver(), Error);
  EXPECT_NO_THROW(ctx.synchronize());
}

TEST(Context, CudaWithoutDeviceIsAClearErrorNotACrash) {
  if (Context::cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is present";
  try {
    (void)Context::cuda(0);
    FAIL() << "Context::cuda succeeded without a device";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("genai::Context::cuda"), std::string::npos) << msg;
    EXPECT_NE(msg.find("Context::cpu()"), std::string::npos) << msg;
  }
  EXPECT_FALSE(Context::cuda_unavailable_reason().empty());
  EXPECT_EQ(Context::best_available().device(), Device::CPU);
  EXPECT_EQ(Context::from_name("auto").device(), Device::CPU);
}

TEST(Context, FromNameRejectsUnknownDevices) {
  EXPECT_EQ(Context::from_name("cpu").device(), Device::CPU);
  try {
    (void)Context::from_name("tpu");
    FAIL();
  } catch (const ArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("'device'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("tpu"), std::string::npos) << e.what();
  }
}

TEST(Error, ArgumentErrorNamesFunctionArgumentAndValue) {
  try {
    detail::require_at_least("genai::f", "K", 0, 1);
    FAIL();
  } catch (const ArgumentError& e) {
    EXPECT_STREQ(e.what(), "genai::f: argument 'K' must be >= 1 (got 0)");
  }
  EXPECT_THROW(detail::require_not_null("genai::f", "p", nullptr), ArgumentError);
  // Every library error is catchable as genai::Error and as std::runtime_error.
  EXPECT_THROW(detail::require_not_null("genai::f", "p", nullptr), Error);
  EXPECT_THROW(detail::require_not_null("genai::f", "p", nullptr), std::runtime_error);
}

TEST(Buffer, HostRoundTripMoveAndPoison) {
  const Context ctx = Context::cpu();
  const std::vector<float> h = {1.5f, -2.0f, 3.25f};
  Buffer<float> a(ctx, std::span<const float>(h));
  EXPECT_EQ(a.size(), 3u);
  EXPECT_EQ(a.bytes(), 12u);
  EXPECT_EQ(a.to_host(), h);
  Buffer<float> b = std::move(a);
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(b.to_host(), h);
  test::poison(b);
  for (float v : b.to_host()) EXPECT_TRUE(std::isnan(v));
  std::vector<float> wrong(2);
  EXPECT_THROW(b.copy_to_host(wrong), ArgumentError);
}

// ---- fp16 / bf16 storage types (genai/dtype.hpp) -------------------------------------------

std::uint16_t bits_of(float x, fp16) { return fp16(x).bits; }
std::uint16_t bits_of(float x, bf16) { return bf16(x).bits; }

// Known encodings: IEEE binary16 has 10 mantissa bits, exponent bias 15, max 65504, smallest
// normal 2^-14, smallest subnormal 2^-24; bfloat16 is float's upper 16 bits.
TEST(Dtype, KnownValues) {
  const fp16 h{};
  EXPECT_EQ(bits_of(1.0f, h), 0x3C00);
  EXPECT_EQ(bits_of(-2.0f, h), 0xC000);
  EXPECT_EQ(bits_of(0.1f, h), 0x2E66);  // 1.599609375 * 2^-4 = 0.0999755859375
  EXPECT_EQ(bits_of(65504.0f, h), 0x7BFF);
  EXPECT_EQ(bits_of(65519.0f, h), 0x7BFF);  // below 65504 + half an ulp (16)
  EXPECT_EQ(bits_of(65520.0f, h), 0x7C00);  // the tie rounds to the even neighbour: inf
  EXPECT_EQ(bits_of(1e6f, h), 0x7C00);
  EXPECT_EQ(bits_of(-INFINITY, h), 0xFC00);
  EXPECT_EQ(bits_of(-0.0f, h), 0x8000);
  EXPECT_EQ(bits_of(0x1p-14f, h), 0x0400);
  EXPECT_EQ(bits_of(0x1p-24f, h), 0x0001);
  EXPECT_EQ(bits_of(0x1.8p-25f, h), 0x0001);
  EXPECT_EQ(bits_of(1e-10f, h), 0x0000);
  const std::uint16_t hn = bits_of(NAN, h);
  EXPECT_EQ(hn & 0x7E00, 0x7E00);  // exponent all ones, quiet bit set
  EXPECT_EQ(static_cast<float>(fp16::from_bits(0x3555)), 0.333251953125f);
  EXPECT_EQ(static_cast<float>(fp16::from_bits(0x7BFF)), 65504.0f);
  EXPECT_EQ(static_cast<float>(fp16::from_bits(0x0001)), 0x1p-24f);
  EXPECT_EQ(static_cast<float>(fp16::from_bits(0x03FF)), 0x1.ff8p-15f);  // largest subnormal
  EXPECT_TRUE(std::signbit(static_cast<float>(fp16::from_bits(0x8000))));
  EXPECT_EQ(static_cast<float>(fp16::from_bits(0xFC00)), -INFINITY);
  EXPECT_TRUE(std::isnan(static_cast<float>(fp16::from_bits(0x7C01))));

  const bf16 b{};
  EXPECT_EQ(bits_of(1.0f, b), 0x3F80);
  EXPECT_EQ(bits_of(-2.0f, b), 0xC000);
  EXPECT_EQ(bits_of(0.1f, b), 0x3DCD);  // 0x3DCCCCCD rounded up
  EXPECT_EQ(bits_of(0x1.fep127f, b), 0x7F7F);  // bf16's largest finite value
  EXPECT_EQ(bits_of(0x1.fefffep127f, b), 0x7F7F);  // just below max + half an ulp
  EXPECT_EQ(bits_of(0x1.ffp127f, b), 0x7F80);      // the tie rounds to the even neighbour: inf
  EXPECT_EQ(bits_of(std::numeric_limits<float>::max(), b), 0x7F80);
  EXPECT_EQ(bits_of(-INFINITY, b), 0xFF80);
  EXPECT_EQ(bits_of(0x1p-133f, b), 0x0001);  // smallest bf16 subnormal
  EXPECT_EQ(bits_of(0x1p-149f, b), 0x0000);
  EXPECT_EQ(bits_of(-NAN, b) & 0x7FC0, 0x7FC0);
  EXPECT_EQ(static_cast<float>(bf16::from_bits(0x3DCD)), 0.10009765625f);
  EXPECT_EQ(static_cast<float>(bf16::from_bits(0xC049)), -3.140625f);
}

// Ties go to the even neighbour, anywhere in the range: 1 + 2^-11 lies halfway between 1 and
// 1 + 2^-10 in fp16, 1 + 2^-8 halfway between 1 and 1 + 2^-7 in bf16.
TEST(Dtype, RoundsTiesToEven) {
  const fp16 h{};
  EXPECT_EQ(bits_of(1.0f + 0x1p-11f, h), 0x3C00);
  EXPECT_EQ(bits_of(1.0f + 0x1p-11f + 0x1p-20f, h), 0x3C01);  // just above the tie
  EXPECT_EQ(bits_of(1.0f + 3 * 0x1p-11f, h), 0x3C02);         // between 0x3C01 and 0x3C02
  EXPECT_EQ(bits_of(-(1.0f + 3 * 0x1p-11f), h), 0xBC02);
  EXPECT_EQ(bits_of(2048.0f + 1.0f, h), 0x6800);               // 2049: between 2048 and 2050
  EXPECT_EQ(bits_of(2048.0f + 3.0f, h), 0x6802);               // 2051: between 2050 and 2052
  EXPECT_EQ(bits_of(0x1p-25f, h), 0x0000);                     // between 0 and 2^-24
  EXPECT_EQ(bits_of(0x1.8p-24f, h), 0x0002);                   // subnormals 1 and 2
  EXPECT_EQ(bits_of(0x1.4p-23f, h), 0x0002);                   // subnormals 2 and 3
  EXPECT_EQ(bits_of(0x1.ffcp-15f, h), 0x0400);                 // 1023.5 * 2^-24: to 2^-14
  const bf16 b{};
  EXPECT_EQ(bits_of(1.0f + 0x1p-8f, b), 0x3F80);
  EXPECT_EQ(bits_of(1.0f + 0x1p-8f + 0x1p-20f, b), 0x3F81);
  EXPECT_EQ(bits_of(1.0f + 3 * 0x1p-8f, b), 0x3F82);
  EXPECT_EQ(bits_of(-(1.0f + 3 * 0x1p-8f), b), 0xBF82);
}

// Every one of the 65536 encodings survives to-float-and-back (NaNs come back quiet), and
// 10^6 spread floats round to the nearer neighbour (the even one on a tie), checked in double.
template <class T>
void check_round_trip_and_nearest(std::uint16_t quiet_bit, float overflow) {
  for (std::uint32_t u = 0; u < 65536; ++u) {
    const float f = static_cast<float>(T::from_bits(static_cast<std::uint16_t>(u)));
    const std::uint16_t back = T(f).bits;
    if (std::isnan(f))
      ASSERT_EQ(back, u | quiet_bit) << std::hex << u;
    else
      ASSERT_EQ(back, u) << std::hex << u;
  }
  std::uint32_t x = 12345;
  for (int n = 0; n < 1000000; ++n) {
    x = x * 1664525u + 1013904223u;  // a full-period LCG over the float bit patterns
    const float f = std::bit_cast<float>(x);
    if (!std::isfinite(f) || std::abs(f) >= overflow) continue;
    const T h(f);
    const double err = std::abs(double(static_cast<float>(h)) - f);
    for (int step : {-1, 1}) {
      const int mag = (h.bits & 0x7FFF) + step;
      if (mag < 0) continue;
      const float other = static_cast<float>(T::from_bits(
          static_cast<std::uint16_t>((h.bits & 0x8000) | mag)));
      if (!std::isfinite(other)) continue;
      const double other_err = std::abs(double(other) - f);
      ASSERT_TRUE(err < other_err || (err == other_err && (h.bits & 1) == 0))
          << f << " -> " << std::hex << h.bits;
    }
  }
}

TEST(Dtype, RoundTripAndNearestEven) {
  check_round_trip_and_nearest<fp16>(0x0200, 65520.0f);
  check_round_trip_and_nearest<bf16>(0x0040, 0x1.ffp127f);  // bf16 max + half an ulp
}

}  // namespace
}  // namespace genai
