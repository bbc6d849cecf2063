// Context and Buffer on a CUDA device.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "genai/buffer.hpp"
#include "genai/context.hpp"
#include "test_util.hpp"

namespace genai {
namespace {

class BufferGpu : public test::GpuTest {};

TEST_F(BufferGpu, DeviceRoundTripAndStreamHandles) {
  const auto h = test::normals(test::sized(1 << 20, 1 << 14), 1);
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
