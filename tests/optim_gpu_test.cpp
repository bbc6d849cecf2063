// GPU parity of the optim module. The element updates are genai/detail/optim.hpp's correctly
// rounded float operations with per-call scalars computed on the host, so the kernels must give
// the CPU reference's bits: parameters and state compare byte for byte (Adam, AdamW, AMSGrad,
// SGD, the penalties' gradients, the proximal step); the penalty's value sums in double in
// another order, so it compares within fp32 tolerance. Also: more tensors than one launch takes,
// misaligned tensors (the scalar path), and an Adam step captured in a CUDA graph (which fails
// if the call synchronises or copies from the host). Skipped, saying why, without a device.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "genai/optim.hpp"
#include "tests/test_util.hpp"
#if GENAI_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace genai {
namespace {

const Context kCpu = Context::cpu();

class OptimGpu : public test::GpuTest {};

bool same_bytes(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// A list of tensors, each `kArrays` arrays (param, grad, state...), on the host and on the
// device. Device tensor i lives at offset offsets[i] of its own allocation, so an offset of 1
// makes it misaligned.
struct Tensors {
  static constexpr int kArrays = 5;
  std::vector<std::int64_t> sizes, offsets;
  std::vector<std::vector<float>> host[kArrays];
  std::vector<Buffer<float>> device[kArrays];

  Tensors(const Context& ctx, std::vector<std::int64_t> s, std::vector<std::int64_t> o,
          std::uint64_t seed)
      : sizes(std::move(s)), offsets(std::move(o)) {
    for (std::size_t i = 0; i < sizes.size(); ++i)
      for (int a = 0; a < kArrays; ++a) {
        // param, grad ~ N(0, 1); state >= 0 where it must be (v, v_max), anything for m.
        auto h = a >= 3 ? test::uniforms(sizes[i], seed++, 0.0f, 0.01f)
                        : test::normals(sizes[i], seed++);
        std::vector<float> padded(offsets[i], 0.0f);
        padded.insert(padded.end(), h.begin(), h.end());
        host[a].push_back(std::move(h));
        device[a].push_back(test::to_device(ctx, padded));
      }
  }
  float* dev(int a, std::size_t i) { return device[a][i].data() + offsets[i]; }
  std::vector<float> dev_host(int a, std::size_t i) {
    auto h = device[a][i].to_host();
    h.erase(h.begin(), h.begin() + offsets[i]);
    return h;
  }
  std::vector<AdamTensor> adam(bool on_device) {
    std::vector<AdamTensor> l;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      const auto p = [&](int a) { return on_device ? dev(a, i) : host[a][i].data(); };
      l.push_back({p(0), p(1), p(2), p(3), p(4), sizes[i]});
    }
    return l;
  }
  std::vector<EmaTensor> ema(bool on_device) {
    std::vector<EmaTensor> l;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      const auto p = [&](int a) { return on_device ? dev(a, i) : host[a][i].data(); };
      l.push_back({p(2), p(0), sizes[i]});  // the m array as the shadow weights of param
    }
    return l;
  }
  std::vector<SgdTensor> sgd(bool on_device) {
    std::vector<SgdTensor> l;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      const auto p = [&](int a) { return on_device ? dev(a, i) : host[a][i].data(); };
      l.push_back({p(0), p(1), p(2), sizes[i]});
    }
    return l;
  }
  // Every array of every tensor: the device's bytes equal the host's.
  void expect_same(const char* what) {
    for (std::size_t i = 0; i < sizes.size(); ++i)
      for (int a = 0; a < kArrays; ++a)
        EXPECT_TRUE(same_bytes(dev_host(a, i), host[a][i]))
            << what << ": tensor " << i << " (size " << sizes[i] << ", offset " << offsets[i]
            << ") array " << a;
  }
};

// Sizes around the 4-element vectors and the 64 Ki-element work units; tensor 3 misaligned.
const std::vector<std::int64_t> kSizes = {1, 3, 4, 1001, 65536, 65537, 200003};
const std::vector<std::int64_t> kOffsets = {0, 0, 0, 1, 0, 0, 0};

TEST_F(OptimGpu, AdamMatchesReferenceBitForBit) {
  const AdamOptions variants[] = {
      {.lr = 1e-3f},
      {.lr = 3e-3f, .weight_decay = 0.01f},
      {.lr = 3e-3f, .weight_decay = 0.1f, .decoupled_weight_decay = true},
      {.lr = 1e-2f, .beta1 = 0.8f, .beta2 = 0.99f, .eps = 1e-6f, .amsgrad = true},
  };
  std::uint64_t seed = 1000;
  for (const AdamOptions& o : variants) {
    Tensors t(ctx, kSizes, kOffsets, seed += 100);
    for (std::int64_t step = 1; step <= 3; ++step) {
      adam_step(kCpu, t.adam(false), step, o);
      adam_step(ctx, t.adam(true), step, o);
    }
    t.expect_same(o.amsgrad ? "amsgrad" : (o.decoupled_weight_decay ? "adamw" : "adam"));
  }
}

// 150 tensors: three launches of at most 64.
TEST_F(OptimGpu, AdamOverManyLaunchesMatchesReferenceBitForBit) {
  std::vector<std::int64_t> sizes, offsets;
  for (int i = 0; i < 150; ++i) {
    sizes.push_back(1 + (i * 37) % 300);
    offsets.push_back(i % 7 == 0);
  }
  Tensors t(ctx, sizes, offsets, 2000);
  adam_step(kCpu, t.adam(false), 5, {.lr = 1e-2f, .amsgrad = true});
  adam_step(ctx, t.adam(true), 5, {.lr = 1e-2f, .amsgrad = true});
  t.expect_same("150 tensors");
}

TEST_F(OptimGpu, SgdMatchesReferenceBitForBit) {
  const SgdOptions variants[] = {
      {.lr = 0.1f},
      {.lr = 0.05f, .momentum = 0.9f, .weight_decay = 1e-4f},
      {.lr = 0.05f, .momentum = 0.9f, .nesterov = true},
      {.lr = 0.05f, .momentum = 0.5f, .dampening = 0.3f},
  };
  std::uint64_t seed = 3000;
  for (const SgdOptions& o : variants) {
    Tensors t(ctx, kSizes, kOffsets, seed += 100);
    for (std::int64_t step = 1; step <= 3; ++step) {
      sgd_step(kCpu, t.sgd(false), step, o);
      sgd_step(ctx, t.sgd(true), step, o);
    }
    t.expect_same("sgd");
  }
}

// The weights' EMA over the same tensors (diffusers' warm-up decays of steps 1..4, then 0.999)
// and over 150 tensors (three launches).
TEST_F(OptimGpu, EmaMatchesReferenceBitForBit) {
  Tensors t(ctx, kSizes, kOffsets, 3500);
  for (const float decay : {0.0f, 0.1818182f, 0.25f, 0.999f, 1.0f}) {
    ema_update(kCpu, t.ema(false), decay);
    ema_update(ctx, t.ema(true), decay);
  }
  t.expect_same("ema");
  std::vector<std::int64_t> sizes, offsets;
  for (int i = 0; i < 150; ++i) {
    sizes.push_back(1 + (i * 53) % 400);
    offsets.push_back(i % 5 == 0);
  }
  Tensors many(ctx, sizes, offsets, 3600);
  ema_update(kCpu, many.ema(false), 0.99f);
  ema_update(ctx, many.ema(true), 0.99f);
  many.expect_same("ema, 150 tensors");
}

TEST_F(OptimGpu, PenaltiesAndProximalStepMatchReference) {
  const std::int64_t n = 300001;
  const auto w = test::normals(n, 4000);
  auto dw = test::to_device(ctx, w);
  for (const Penalty p : {Penalty::L1, Penalty::L2}) {
    auto g = test::normals(n, 4001);
    auto dg = test::to_device(ctx, g);
    float value = 0;
    Buffer<float> dvalue(ctx, 1);
    test::poison(dvalue);
    add_penalty(kCpu, p, w.data(), n, 0.3f, &value, g.data());
    add_penalty(ctx, p, dw.data(), n, 0.3f, dvalue.data(), dg.data());
    EXPECT_TRUE(same_bytes(dg.to_host(), g));
    EXPECT_TRUE(test::close(dvalue.to_host(), std::vector<float>{value},
                            test::tolerance(test::DType::FP32)));
  }
  auto wc = w;
  l1_proximal_step(kCpu, wc.data(), n, 0.5f);
  l1_proximal_step(ctx, dw.data(), n, 0.5f);
  EXPECT_TRUE(same_bytes(dw.to_host(), wc));
}

#if GENAI_WITH_CUDA
// The step enqueues kernels only: captured into a CUDA graph (capture fails on a
// synchronisation or a host copy) and replayed twice, it makes two steps t = 1 -- the graph
// fixes t and the learning rate in its kernels' arguments.
TEST_F(OptimGpu, AdamStepCapturesInACudaGraph) {
  Tensors t(ctx, {1000, 70000}, {0, 0}, 5000);
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  const Context sctx = Context::cuda(0, stream);
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), cudaSuccess);
  const auto list = t.adam(true);
  adam_step(sctx, list, 1, {.lr = 1e-2f});
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  for (int r = 0; r < 2; ++r) {
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    adam_step(kCpu, t.adam(false), 1, {.lr = 1e-2f});
  }
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  t.expect_same("graph");
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}
#endif

}  // namespace
}  // namespace genai
