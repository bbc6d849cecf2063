// Context, Error and Buffer.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "genai/buffer.hpp"
#include "genai/context.hpp"
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

class BufferGpu : public test::GpuTest {};

TEST_F(BufferGpu, DeviceRoundTripAndStreamHandles) {
  const auto h = test::normals(1 << 20, 1);
  Buffer<float> d(ctx, std::span<const float>(h));
  EXPECT_EQ(d.where(), Device::CUDA);
  EXPECT_EQ(d.to_host(), h);
  EXPECT_NE(ctx.cublas(), nullptr);
  EXPECT_EQ(ctx.cublas(), ctx.cublas());  // created once
  EXPECT_NE(ctx.cusolver(), nullptr);
  Context copy = ctx;
  EXPECT_EQ(copy.cublas(), ctx.cublas());  // copies share handles
}

TEST_F(BufferGpu, BadDeviceIndexNamesTheArgument) {
  try {
    (void)Context::cuda(Context::cuda_device_count());
    FAIL();
  } catch (const ArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("'device'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace genai
