// The autoencoder module on the GPU against the CPU reference: whole training steps (through
// the kernels of the batch gather, the [mu | logvar] split and the reparameterisation's backward),
// an epoch, encode / decode / sample / loss, and the measures whose GEMMs or SVDs run on the
// device (k-NN, principal angles).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "genai/autoencoder.hpp"
#include "tests/autoencoder_test_util.hpp"
#include "tests/test_util.hpp"

namespace genai {
namespace {

class AutoencoderGpu : public test::GpuTest {};

const Context kCpu = Context::cpu();
const test::Tolerance kFp32 = test::tolerance(test::DType::FP32);

std::vector<float> host(const float* p, std::size_t n, const Context& ctx) {
  std::vector<float> v(n);
  detail::copy_bytes(ctx, v.data(), Device::CPU, p, ctx.device(), n * sizeof(float));
  return v;
}

AutoencoderOptions options(bool variational, Reconstruction r) {
  return {.input_dim = 144, .hidden = {96, 40}, .latent_dim = 5, .variational = variational,
          .beta = 0.5f, .reconstruction = r, .seed = 17};
}

// One step's loss and gradients, with batch sizes that leave partial 16-byte vectors, for each
// kind of model. The GEMMs (cuBLASLt against OpenBLAS, fp32) differ in rounding only.
TEST_F(AutoencoderGpu, LossAndGradientsMatchesReference) {
  const Context gpu = Context::cuda();
  const std::int64_t n = test::sized<std::int64_t>(77, 13);
  const std::vector<float> x = test::bump_images(n, 12, 3);
  for (const bool variational : {false, true})
    for (const Reconstruction r : {Reconstruction::SquaredError, Reconstruction::BernoulliLogits}) {
      const AutoencoderOptions o = options(variational, r);
      Autoencoder ref(kCpu, o), dev(gpu, o);
      EXPECT_EQ(host(dev.encoder().parameters(), dev.encoder().flat_size(), gpu),
                host(ref.encoder().parameters(), ref.encoder().flat_size(), kCpu))
          << "the same initialisation, bit for bit";
      Buffer<float> xd(gpu, std::span<const float>(x)), losses(gpu, 3);
      test::poison(losses);
      std::vector<float> want(3, 0.0f);
      ref.loss_and_gradients(x.data(), n, 9, want.data());
      dev.loss_and_gradients(xd.data(), n, 9, losses.data());
      const std::vector<float> got = losses.to_host();
      const int count = variational ? 3 : 1;
      EXPECT_TRUE(test::close(std::span<const float>(got.data(), count),
                              std::span<const float>(want.data(), count), kFp32));
      for (Mlp* m : {&dev.encoder(), &dev.decoder()}) {
        Mlp& r_m = m == &dev.encoder() ? ref.encoder() : ref.decoder();
        EXPECT_TRUE(test::close(host(m->gradients(), m->flat_size(), gpu),
                                host(r_m.gradients(), r_m.flat_size(), kCpu), kFp32))
            << (variational ? "vae " : "ae ") << static_cast<int>(r);
      }
    }
}

// Two epochs of 3 steps each (the last batch partial): the same batch order, so the same losses
// step by step. After the first Adam step the parameters can differ where a gradient's sign
// differs by rounding (|g| ~ 1e-7 of its scale moves that weight 2 lr the other way); such
// weights carry almost no loss, so the losses agree to float rounding of the sums, 1e-4.
TEST_F(AutoencoderGpu, TrainEpochMatchesReference) {
  const Context gpu = Context::cuda();
  const std::int64_t n = 70;
  const std::vector<float> x = test::bump_images(n, 12, 4);
  const AutoencoderOptions o = options(true, Reconstruction::BernoulliLogits);
  Autoencoder ref(kCpu, o), dev(gpu, o);
  Buffer<float> xd(gpu, std::span<const float>(x));
  for (int e = 0; e < 2; ++e) {
    const EpochOptions eo{.batch = 32, .adam = {.lr = 1e-3f}, .epoch = e};
    const EpochLosses want = ref.train_epoch(x.data(), n, eo);
    const EpochLosses got = dev.train_epoch(xd.data(), n, eo);
    ASSERT_EQ(got.total.size(), 3u);
    for (std::size_t s = 0; s < 3; ++s) {
      EXPECT_NEAR(got.total[s], want.total[s], 1e-4 * std::abs(want.total[s])) << e << ", " << s;
      EXPECT_NEAR(got.kl[s], want.kl[s], 1e-4 * std::abs(want.kl[s]) + 1e-6) << e << ", " << s;
    }
  }
  EXPECT_EQ(dev.steps(), 6);
}

// Encode (posterior means and log-variances), decode (Bernoulli means), reconstruct, sample (the
// same z bit for bit: fill_normal), loss.
TEST_F(AutoencoderGpu, EncodeDecodeSampleMatchesReference) {
  const Context gpu = Context::cuda();
  const std::int64_t n = test::sized<std::int64_t>(1500, 40);  // two chunks of the evaluation
  const std::vector<float> x = test::bump_images(n, 12, 5);
  const AutoencoderOptions o = options(true, Reconstruction::BernoulliLogits);
  const std::int64_t k = o.latent_dim, D = o.input_dim;
  Autoencoder ref(kCpu, o), dev(gpu, o);
  Buffer<float> xd(gpu, std::span<const float>(x)), mu(gpu, n * k), lv(gpu, n * k),
      back(gpu, n * D), gen(gpu, n * D), z(gpu, n * k);
  for (Buffer<float>* b : {&mu, &lv, &back, &gen, &z}) test::poison(*b);
  std::vector<float> mu_r(n * k), lv_r(n * k), back_r(n * D), gen_r(n * D), z_r(n * k);
  ref.encode(x.data(), n, mu_r.data(), lv_r.data());
  dev.encode(xd.data(), n, mu.data(), lv.data());
  EXPECT_TRUE(test::close(mu.to_host(), mu_r, kFp32));
  EXPECT_TRUE(test::close(lv.to_host(), lv_r, kFp32));
  ref.reconstruct(x.data(), n, back_r.data());
  dev.reconstruct(xd.data(), n, back.data());
  EXPECT_TRUE(test::close(back.to_host(), back_r, kFp32));
  ref.sample(n, {3, 0, 1}, gen_r.data(), z_r.data());
  dev.sample(n, {3, 0, 1}, gen.data(), z.data());
  EXPECT_EQ(z.to_host(), z_r);
  EXPECT_TRUE(test::close(gen.to_host(), gen_r, kFp32));
  const AutoencoderLoss lr = ref.loss(x.data(), n, 2), lg = dev.loss(xd.data(), n, 2);
  EXPECT_NEAR(lg.total, lr.total, 1e-5 * lr.total);
  EXPECT_NEAR(lg.kl, lr.kl, 1e-5 * lr.kl);
}

// k-NN votes from distances computed by cuBLASLt: the same classes as on the CPU for every query
// whose 5th and 6th nearest neighbours (in double) are apart by more than 1e-3 of the 5th's
// squared distance -- float GEMMs that round differently may swap closer ones, and with them a
// vote -- and those are at least 90 % of the queries. Principal angles from cuSOLVER's SVD.
TEST_F(AutoencoderGpu, KnnAndPrincipalAnglesMatchesReference) {
  const Context gpu = Context::cuda();
  const std::int64_t n = 2000, m = 300, dim = 6, k = 5;
  const std::vector<float> ref = test::normals(n * dim, 41), q = test::normals(m * dim, 42);
  std::vector<std::int64_t> labels(n);
  for (std::int64_t i = 0; i < n; ++i) labels[i] = (i * 7) % 5;
  const std::vector<std::int64_t> got =
      knn_classify(gpu, ref.data(), labels.data(), n, q.data(), m, dim, {.k = k, .chunk = 128});
  const std::vector<std::int64_t> want =
      knn_classify(kCpu, ref.data(), labels.data(), n, q.data(), m, dim, {.k = k, .chunk = 128});
  std::int64_t clear = 0;
  for (std::int64_t i = 0; i < m; ++i) {
    std::vector<double> d2(n);
    for (std::int64_t j = 0; j < n; ++j) {
      d2[j] = 0;
      for (std::int64_t a = 0; a < dim; ++a) {
        const double diff = static_cast<double>(q[i * dim + a]) - ref[j * dim + a];
        d2[j] += diff * diff;
      }
    }
    std::partial_sort(d2.begin(), d2.begin() + k + 1, d2.end());
    if (d2[k] - d2[k - 1] <= 1e-3 * d2[k - 1]) continue;
    ++clear;
    EXPECT_EQ(got[i], want[i]) << "query " << i;
  }
  EXPECT_GE(clear, m * 9 / 10);
  const std::vector<float> a = test::normals(30 * 4, 43), b = test::normals(30 * 3, 44);
  const std::vector<double> A(a.begin(), a.end()), B(b.begin(), b.end());
  const std::vector<double> angles = principal_angles(gpu, A.data(), B.data(), 30, 4, 3);
  const std::vector<double> angles_ref = principal_angles(kCpu, A.data(), B.data(), 30, 4, 3);
  ASSERT_EQ(angles.size(), angles_ref.size());
  for (std::size_t i = 0; i < angles.size(); ++i) EXPECT_NEAR(angles[i], angles_ref[i], 1e-10) << i;
}

}  // namespace
}  // namespace genai
