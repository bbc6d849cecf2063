// CPU tests of the train module: the built-in data sets, .npy data and what is refused; the
// batch as documented (bit for bit); the first step as AdamW on the MSE gradient of that batch
// (bit for bit against the nn / losses / optim calls); a run saved and resumed equals the
// uninterrupted run bit for bit (across the device loss log's flush); the trained network as a
// sampler's model; a trained model on two_modes recovers the 0.8 / 0.2 weights and the
// exact-score sampler's MMD^2 within a factor, and a broken sampler fails the same bound; bad
// input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "genai/io.hpp"
#include "genai/losses.hpp"
#include "genai/metrics.hpp"
#include "genai/train.hpp"
#include "tests/test_util.hpp"
#include "tests/train_test_util.hpp"

namespace genai {
namespace {

const Context kCpu = Context::cpu();

bool same_bytes(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// ---- data ------------------------------------------------------------------------------------

TEST(TrainData, BuiltInSetsAreDeterministicPerSeedAndSet) {
  for (const std::string& name : dataset_names()) {
    const Dataset a = make_dataset(name, 1000, 7), b = make_dataset(name, 1000, 7);
    EXPECT_EQ(a.n, 1000);
    EXPECT_EQ(a.d, 2);
    EXPECT_EQ(a.spec, name);
    EXPECT_TRUE(same_bytes(a.x, b.x)) << name;
    EXPECT_FALSE(same_bytes(a.x, make_dataset(name, 1000, 7, 1).x)) << name;
    EXPECT_FALSE(same_bytes(a.x, make_dataset(name, 1000, 8).x)) << name;
    // The first rows do not depend on n.
    const Dataset small = make_dataset(name, 10, 7);
    EXPECT_TRUE(same_bytes(small.x, std::vector<float>(a.x.begin(), a.x.begin() + 20))) << name;
    EXPECT_EQ(dataset_checksum(a), dataset_checksum(b));
    EXPECT_NE(dataset_checksum(a), dataset_checksum(small));
  }
  EXPECT_TRUE(dataset_mixture("gmm8").has_value());
  EXPECT_FALSE(dataset_mixture("two_moons").has_value());
}

TEST(TrainData, BuiltInSetsHaveTheirShapes) {
  const std::int64_t n = 20000;
  {
    // Moons: before the affine map, the upper moon lies on the unit circle, the lower on the
    // circle of radius 1 about (1, 0.5), each within the 0.03 noise (5 sd: 0.15 in radius).
    const Dataset m = make_dataset("two_moons", n, 1);
    std::int64_t upper = 0;
    for (std::int64_t r = 0; r < n; ++r) {
      const double x = (m.x[2 * r] + 1) / 2 - 0.3, y = (m.x[2 * r + 1] + 1) / 3 - 0.3;
      const double ru = std::hypot(x, y), rl = std::hypot(x - 1, y - 0.5);
      const bool on_upper = std::abs(ru - 1) < 0.15 && y > -0.15;
      const bool on_lower = std::abs(rl - 1) < 0.15 && y < 0.65;
      EXPECT_TRUE(on_upper || on_lower) << "row " << r << ": " << x << ", " << y;
      upper += on_upper && !on_lower;
    }
    EXPECT_NEAR(double(upper) / n, 0.5, 0.05);  // the overlap near the tips goes to neither
  }
  {
    // Checkerboard: every point in a square of even floor(x/2) + floor(y/2), in [-4, 4]^2.
    const Dataset c = make_dataset("checkerboard", n, 2);
    for (std::int64_t r = 0; r < n; ++r) {
      const double x = c.x[2 * r], y = c.x[2 * r + 1];
      ASSERT_LE(std::abs(x), 4.0);
      ASSERT_LE(std::abs(y), 4.0);
      EXPECT_EQ((static_cast<long>(std::floor(x / 2)) + static_cast<long>(std::floor(y / 2))) % 2, 0)
          << x << ", " << y;
    }
  }
  {
    // Swiss roll: 5 |p| is the arc parameter s in [1.5 pi, 4.5 pi] plus N(0, I) noise.
    const Dataset s = make_dataset("swiss_roll", n, 3);
    for (std::int64_t r = 0; r < n; ++r) {
      const double rad = 5 * std::hypot(s.x[2 * r], s.x[2 * r + 1]);
      EXPECT_GT(rad, 1.5 * M_PI - 6.5);
      EXPECT_LT(rad, 4.5 * M_PI + 6.5);
    }
  }
  {
    const Dataset t = make_dataset("two_modes", n, 4);
    const std::vector<double> w = mode_weights(t.x.data(), n, *dataset_mixture("two_modes"));
    EXPECT_NEAR(w[0], 0.8, 5 * std::sqrt(0.16 / n));
  }
}

class TrainFiles : public ::testing::Test {
 protected:
  test::TempDir dir;
};

TEST_F(TrainFiles, NpyDataIsReadAndWhatIsNotNByDFloatIsRefused) {
  const std::vector<float> rows = {1, 2, 3, 4, 5, 6};
  io::write_npy(dir / "ok.npy", std::span<const float>(rows), {2, 3});
  const Dataset d = load_dataset(dir / "ok.npy", 0, 0);
  EXPECT_EQ(d.n, 2);
  EXPECT_EQ(d.d, 3);
  EXPECT_EQ(d.x, rows);
  const std::vector<double> dbl = {1, 2};
  io::write_npy(dir / "f64.npy", std::span<const double>(dbl), {2, 1});
  EXPECT_EQ(read_dataset(dir / "f64.npy").x, (std::vector<float>{1, 2}));
  io::write_npy(dir / "flat.npy", std::span<const float>(rows), {6});
  io::write_npy(dir / "cube.npy", std::span<const float>(rows), {1, 2, 3});
  io::write_npy(dir / "empty.npy", std::span<const float>(), {0, 2});
  const std::vector<std::int64_t> ints = {1, 2};
  io::write_npy(dir / "int.npy", std::span<const std::int64_t>(ints), {1, 2});
  const std::vector<float> nan = {1, NAN, 3, 4};
  io::write_npy(dir / "nan.npy", std::span<const float>(nan), {2, 2});
  io::write_file(dir / "junk.npy", std::vector<std::byte>(40, std::byte{7}));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"flat.npy", "holds an array of shape [6]: data must be [n x d]"},
      {"cube.npy", "shape [1 x 2 x 3]"},
      {"empty.npy", "shape [0 x 2]"},
      {"int.npy", "holds <i8 values: data must be float32 or float64"},
      {"nan.npy", "row 0 column 1 is nan (data must be finite)"},
      {"junk.npy", "is not a readable .npy file"},
      {"missing.npy", "is not a readable .npy file"},
  };
  for (const auto& [file, what] : cases)
    test::expect_argument_error([&] { read_dataset(dir / file); }, what);
  test::expect_argument_error([&] { make_dataset("moons", 10, 0); },
                              "is 'moons' (built-in sets: two_moons, swiss_roll, gmm8, two_modes, "
                              "checkerboard)");
  test::expect_argument_error([&] { make_dataset("gmm8", 0, 0); }, "'n' must be >= 1");
}

// ---- the step --------------------------------------------------------------------------------

// Row r of step k as train.hpp documents it, recomputed from rng.hpp and the noising formula.
TEST(Trainer, BatchIsTheDocumentedDrawBitForBit) {
  const Dataset data = make_dataset("gmm8", 300, 1);
  for (const PredictionType type :
       {PredictionType::Epsilon, PredictionType::Sample, PredictionType::VPrediction}) {
    DiffusionTrainOptions o = test::small_training(10, 64);
    o.prediction_type = type;
    DiffusionTrainer tr(kCpu, data, o);
    tr.step();
    tr.step();  // step k = 1
    const DiffusionTrainer::Batch b = tr.last_batch();
    const NoiseSchedule& s = tr.schedule();
    for (std::int64_t r = 0; r < 64; ++r) {
      const rng::Words w = rng::philox(o.seed, rng::streams::train_batch, r, 1);
      const auto row = static_cast<std::int64_t>((std::uint64_t{w.w[0]} * 300) >> 32);
      const auto t = static_cast<std::int64_t>((std::uint64_t{w.w[1]} * 1000) >> 32);
      ASSERT_EQ(b.t[r], static_cast<float>(t));
      const rng::Float4 eps = rng::normal4(o.seed, rng::streams::train_noise, r, 1);
      const auto sa = static_cast<float>(s.sqrt_alphas_cumprod()[t]);
      const auto sb = static_cast<float>(s.sqrt_one_minus_alphas_cumprod()[t]);
      for (int j = 0; j < 2; ++j) {
        const float x0 = data.x[row * 2 + j], e = eps.v[j];
        EXPECT_EQ(b.x_t[r * 2 + j], sa * x0 + sb * e) << r;
        const float target = type == PredictionType::Epsilon ? e
                             : type == PredictionType::Sample ? x0
                                                              : sa * e - sb * x0;
        EXPECT_EQ(b.target[r * 2 + j], target) << r;
      }
    }
  }
}

// Step 1 is AdamW (lr = warmup's lr / warmup_steps) on the gradient of the MSE between the
// network's prediction on the batch and the target, and the EMA (decay 0 at step 1) copies the
// weights: the same calls made by hand give the same bits.
TEST(Trainer, FirstStepIsAdamWOnTheMseGradientOfItsBatch) {
  const Dataset data = make_dataset("two_moons", 500, 2);
  const DiffusionTrainOptions o = test::small_training(50, 128);
  DiffusionTrainer tr(kCpu, data, o);
  const std::vector<float> w0 = tr.weights();
  EXPECT_EQ(tr.ema_weights(), w0);
  tr.step();
  const DiffusionTrainer::Batch b = tr.last_batch();
  Mlp net(kCpu, network_options(o, 2));
  net.init(o.seed);
  EXPECT_TRUE(same_bytes(std::vector<float>(net.parameters(), net.parameters() + net.flat_size()), w0));
  MlpWorkspace ws;
  std::vector<float> pred(256), grad(256), rows(128);
  float loss = 0;
  net.forward(ws, b.x_t.data(), b.t.data(), 128, pred.data());
  mse_loss(kCpu, pred.data(), b.target.data(), 128, 2,
           {.loss = &loss, .row_loss = rows.data(), .grad = grad.data()});
  net.backward(ws, grad.data());
  std::vector<float> m(net.flat_size(), 0.0f), v(net.flat_size(), 0.0f);
  const AdamTensor p{net.parameters(), net.gradients(), m.data(), v.data(), nullptr, net.flat_size()};
  adam_step(kCpu, {&p, 1}, 1,
            {.lr = static_cast<float>(o.lr / o.warmup_steps), .weight_decay = o.weight_decay,
             .decoupled_weight_decay = true});
  const std::vector<float> w1(net.parameters(), net.parameters() + net.flat_size());
  EXPECT_TRUE(same_bytes(tr.weights(), w1));
  EXPECT_TRUE(same_bytes(tr.ema_weights(), w1));
  EXPECT_TRUE(same_bytes(tr.exp_avg(), m));
  EXPECT_TRUE(same_bytes(tr.exp_avg_sq(), v));
  ASSERT_EQ(tr.losses().size(), 1u);
  EXPECT_EQ(tr.losses()[0], loss);
  EXPECT_FALSE(same_bytes(w1, w0));
}

// 1100 steps of a tiny model, interrupted after 1030 (past the 1024-step device loss log) and
// resumed from the file, against one uninterrupted run: weights, EMA, moments and losses
// byte for byte; the file's averaged network loads by itself.
TEST_F(TrainFiles, ResumedRunEqualsTheUninterruptedRunBitForBit) {
  const Dataset data = make_dataset("checkerboard", 2000, 3);
  DiffusionTrainOptions o = test::small_training(1100, 16, 8);
  DiffusionTrainer whole(kCpu, data, o);
  for (int i = 0; i < 1100; ++i) whole.step();
  DiffusionTrainer first(kCpu, data, o);
  for (int i = 0; i < 1030; ++i) first.step();
  first.save(dir / "ckpt.safetensors", {{"note", "interrupted"}});
  DiffusionTrainer resumed = DiffusionTrainer::resume(kCpu, data, dir / "ckpt.safetensors");
  EXPECT_EQ(resumed.steps_done(), 1030);
  for (int i = 0; i < 70; ++i) resumed.step();
  EXPECT_TRUE(same_bytes(resumed.weights(), whole.weights()));
  EXPECT_TRUE(same_bytes(resumed.ema_weights(), whole.ema_weights()));
  EXPECT_TRUE(same_bytes(resumed.exp_avg(), whole.exp_avg()));
  EXPECT_TRUE(same_bytes(resumed.exp_avg_sq(), whole.exp_avg_sq()));
  EXPECT_TRUE(same_bytes(resumed.losses(), whole.losses()));
  EXPECT_EQ(resumed.losses().size(), 1100u);
  // The file: options and data in the metadata, the EMA network by itself.
  const io::Safetensors st = io::read_safetensors(dir / "ckpt.safetensors");
  EXPECT_EQ(st.metadata.at("train.step"), "1030");
  EXPECT_EQ(st.metadata.at("data.spec"), "checkerboard");
  EXPECT_EQ(st.metadata.at("note"), "interrupted");
  const Mlp ema = Mlp::load(kCpu, dir / "ckpt.safetensors", "ema.");
  EXPECT_TRUE(same_bytes(std::vector<float>(ema.parameters(), ema.parameters() + ema.flat_size()),
                         first.ema_weights()));
  const TrainedModel tm = load_trained_model(kCpu, dir / "ckpt.safetensors");
  EXPECT_EQ(tm.steps_done, 1030);
  EXPECT_EQ(tm.options.hidden, o.hidden);
  EXPECT_EQ(tm.options.batch_size, 16);
  EXPECT_EQ(tm.options.lr, o.lr);
  EXPECT_EQ(tm.data_spec, "checkerboard");
  EXPECT_EQ(tm.dim(), 2);
  EXPECT_TRUE(same_bytes(
      std::vector<float>(tm.net->parameters(), tm.net->parameters() + tm.net->flat_size()),
      first.ema_weights()));
  const TrainedModel raw = load_trained_model(kCpu, dir / "ckpt.safetensors", false);
  EXPECT_TRUE(same_bytes(
      std::vector<float>(raw.net->parameters(), raw.net->parameters() + raw.net->flat_size()),
      first.weights()));
}

TEST_F(TrainFiles, ResumeAndLoadRefuseWhatIsNotTheRunsFileOrData) {
  const Dataset data = make_dataset("gmm8", 500, 1);
  DiffusionTrainer tr(kCpu, data, test::small_training(20, 32, 8));
  tr.step();
  tr.save(dir / "ckpt.safetensors");
  auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  auto has = [](const std::string& m, const std::string& what) {
    EXPECT_NE(m.find(what), std::string::npos) << m;
  };
  const std::string ckpt = dir / "ckpt.safetensors";
  // Other data: other rows, other d.
  has(message([&] { DiffusionTrainer::resume(kCpu, make_dataset("gmm8", 500, 2), ckpt); }),
      "argument 'data' is not the run's data");
  Dataset wide{"wide", 500, 3, 0, std::vector<float>(1500, 0.5f)};
  has(message([&] { DiffusionTrainer::resume(kCpu, wide, ckpt); }),
      "argument 'data' has d = 3, the checkpoint's network d = 2");
  // Not a checkpoint: a missing file, a plain network file, a broken one.
  has(message([&] { load_trained_model(kCpu, dir / "missing.safetensors"); }),
      "cannot read the checkpoint");
  Mlp plain(kCpu, network_options(tr.options(), 2));
  plain.save(dir / "plain.safetensors");
  has(message([&] { load_trained_model(kCpu, dir / "plain.safetensors"); }),
      "metadata has no 'train.format' (not a training checkpoint?)");
  io::write_file(dir / "junk.safetensors", std::vector<std::byte>(64, std::byte{1}));
  has(message([&] { DiffusionTrainer::resume(kCpu, data, dir / "junk.safetensors"); }),
      "junk.safetensors");
  io::Safetensors st = io::read_safetensors(ckpt);
  st.tensors.erase("adam.exp_avg_sq.layers.1.bias");
  io::write_safetensors(dir / "cut.safetensors", st);
  has(message([&] { DiffusionTrainer::resume(kCpu, data, dir / "cut.safetensors"); }),
      "no tensor 'adam.exp_avg_sq.layers.1.bias'");
  st = io::read_safetensors(ckpt);
  st.metadata["train.batch_size"] = "0";
  io::write_safetensors(dir / "bad.safetensors", st);
  has(message([&] { load_trained_model(kCpu, dir / "bad.safetensors"); }),
      "the options in the metadata are not valid");
  st = io::read_safetensors(ckpt);
  st.metadata["data.d"] = "3";
  io::write_safetensors(dir / "d3.safetensors", st);
  has(message([&] { load_trained_model(kCpu, dir / "d3.safetensors"); }),
      "the network maps 2 -> 2 features, the data has d = 3");
  has(message([&] { tr.save(dir / "x.safetensors", {{"train.step", "1"}}); }),
      "key 'train.step' is one the trainer writes itself");
  EXPECT_FALSE(std::filesystem::exists(dir / "x.safetensors"));
}

TEST(Trainer, BadOptionsNameTheOption) {
  const Dataset data = make_dataset("gmm8", 100, 1);
  auto fails = [&](const std::function<void(DiffusionTrainOptions&)>& edit, const std::string& what) {
    DiffusionTrainOptions o = test::small_training(10, 8);
    edit(o);
    test::expect_argument_error([&] { DiffusionTrainer(kCpu, data, o); }, what);
  };
  fails([](auto& o) { o.steps = 0; }, "'opts.steps' must be >= 1 (got 0)");
  fails([](auto& o) { o.batch_size = -4; }, "'opts.batch_size' must be >= 1 (got -4)");
  fails([](auto& o) { o.warmup_steps = 10; }, "'opts.warmup_steps' must be < opts.steps = 10");
  fails([](auto& o) { o.lr = NAN; }, "'opts.lr'");
  fails([](auto& o) { o.hidden = {8, 0}; }, "'opts.hidden[i]' must be >= 1");
  fails([](auto& o) { o.time_embedding_dim = 2; }, "'opts.time_embedding_dim' must be >= 4");
  fails([](auto& o) { o.beta2 = 1; }, "'opts.beta2'");
  fails([](auto& o) { o.ema_options.decay = 2; }, "'opts.decay'");
  fails([](auto& o) { o.schedule.num_train_timesteps = 0; }, "'opts.num_train_timesteps' must be >= 1");
  Dataset bad{"x", 2, 2, 0, {1, 2, 3}};
  test::expect_argument_error([&] { DiffusionTrainer(kCpu, bad, test::small_training(10, 8)); },
                              "'data.x' has 3 values, not n x d = 4");
  bad.x = {1, 2, INFINITY, 4};
  test::expect_argument_error([&] { DiffusionTrainer(kCpu, bad, test::small_training(10, 8)); },
                              "'data.x' row 1 is not finite");
}

// ---- the trained network as a model ------------------------------------------------------------

TEST(NetworkModel, RunsTheNetworkInChunksAndRefusesOtherShapes) {
  auto net = std::make_shared<Mlp>(kCpu, MlpOptions{.sizes = {2, 16, 2}, .time_embedding_dim = 8});
  net->init(3);
  const std::int64_t n = 37;
  const auto x = test::normals(n * 2, 1);
  std::vector<float> whole(n * 2), chunked(n * 2), want(n * 2);
  network_model(net)(kCpu, 417, x.data(), n, 2, whole.data());
  network_model(net, 8)(kCpu, 417, x.data(), n, 2, chunked.data());
  MlpWorkspace ws;
  const std::vector<float> t(n, 417.0f);
  net->forward(ws, x.data(), t.data(), n, want.data());
  EXPECT_EQ(whole, want);
  EXPECT_TRUE(test::close(chunked, want, test::tolerance(test::DType::FP32)));
  test::expect_argument_error([&] { network_model(net)(kCpu, 1, x.data(), n, 3, whole.data()); },
                              "argument 'd' is 3, the network takes d = 2");
  auto no_t = std::make_shared<Mlp>(kCpu, MlpOptions{.sizes = {2, 4, 2}});
  test::expect_argument_error([&] { network_model(no_t); }, "has no time embedding");
  auto wrong = std::make_shared<Mlp>(kCpu, MlpOptions{.sizes = {2, 4, 3}, .time_embedding_dim = 4});
  test::expect_argument_error([&] { network_model(wrong); }, "maps 2 -> 3 features");
  test::expect_argument_error([&] { network_model(nullptr); }, "'net' must not be null");
  test::expect_argument_error([&] { network_model(net, 0); }, "'max_rows' must be >= 1");
}

// ---- a trained model samples the data (9.5) ------------------------------------------------------

// A small network trained on two_modes (weights 0.8 / 0.2 at (5, 5) and (-5, -5)), sampled with
// DDPM (50 steps) from the checkpoint file, against the same sampler on the exact score:
//   * the weight of (5, 5) within 5 binomial standard errors of 0.8 plus the exact sampler's
//     own bias at 50 steps (|w_exact - 0.8|, itself within 5 SE);
//   * the MMD^2 to fresh data within a factor 3 of the exact sampler's. The biased (V-)statistic
//     is used here: it is positive, about (2/n)(1 - E k) for two samples of one law, so the
//     ratio of two of them means something (the unbiased one of the exact sampler sits around
//     0 and may be negative).
// The broken sampler (the same network with its epsilon's sign flipped: the reverse drift pushes
// away from the data) must fail both bounds, so the test can fail.
TEST_F(TrainFiles, TrainedModelRecoversTwoModesAndTheBrokenSamplerDoesNot) {
  const Dataset data = make_dataset("two_modes", 8192, 1);
  DiffusionTrainOptions o = test::small_training(2000, 256, 64);
  o.activation = Activation::ReLU;  // the cheapest on the CPU
  o.time_embedding_dim = 32;
  o.lr = 3e-3;
  DiffusionTrainer tr(kCpu, data, o);
  for (std::int64_t i = 0; i < o.steps; ++i) tr.step();
  tr.save(dir / "two_modes.safetensors");
  const TrainedModel tm = load_trained_model(kCpu, dir / "two_modes.safetensors");
  const NoiseSchedule s = tm.schedule();
  const GaussianMixture mix = *dataset_mixture("two_modes");
  const std::int64_t n = 4000;
  const Dataset fresh = make_dataset("two_modes", n, 1, 1);
  const SamplerOptions so{.sampler = SamplerKind::DDPM, .num_inference_steps = 50, .step = {.seed = 3}};
  struct Quality {
    double w0, mmd2;
  };
  auto quality = [&](const std::vector<float>& x) {
    return Quality{mode_weights(x.data(), n, mix)[0],
                   mmd2_rbf(x.data(), n, fresh.x.data(), n, 2, {.unbiased = false}).mmd2};
  };
  std::vector<float> x(n * 2);
  sample_mixture(kCpu, s, mix, n, x.data(), so);
  const Quality exact = quality(x);
  const Model model = tm.model();
  sample(kCpu, s, model, n, 2, x.data(), so);
  const Quality trained = quality(x);
  const Model broken = [&](const Context& c, std::int64_t t, const float* xt, std::int64_t rows,
                           std::int64_t d, float* out) {
    model(c, t, xt, rows, d, out);
    for (std::int64_t i = 0; i < rows * d; ++i) out[i] = -out[i];
  };
  sample(kCpu, s, broken, n, 2, x.data(), so);
  const Quality bad = quality(x);
  const double se = std::sqrt(0.8 * 0.2 / n);
  ASSERT_LT(std::abs(exact.w0 - 0.8), 5 * se) << exact.w0;
  const double w_bound = 5 * se + std::abs(exact.w0 - 0.8);
  const double factor = 3;
  EXPECT_LT(std::abs(trained.w0 - 0.8), w_bound) << "trained weight " << trained.w0;
  EXPECT_LT(trained.mmd2, factor * exact.mmd2) << trained.mmd2 << " vs exact " << exact.mmd2;
  EXPECT_GT(std::abs(bad.w0 - 0.8), w_bound) << "broken weight " << bad.w0;
  EXPECT_GT(bad.mmd2, factor * exact.mmd2) << bad.mmd2 << " vs exact " << exact.mmd2;
}

}  // namespace
}  // namespace genai
