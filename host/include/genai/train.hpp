// Training a diffusion model end to end (problem set 9.2, 9.4, 9.5; challenges C2 and C3): toy
// data sets, a trainer whose whole step runs on the device, checkpoints that resume bit for bit,
// and the trained network as a genai::Model for the diffusion samplers.
//
// The step (DiffusionTrainer::step), for optimizer step t = k + 1 (k steps done):
//   1. batch: row r < B draws Philox (seed, rng::streams::train_batch, block r, step k): word 0
//      picks the data row i = floor(w0 n / 2^32) (with replacement), word 1 the timestep
//      t_r = floor(w1 T / 2^32); eps [B x d] from (seed, train_noise, step k) in the diffusion
//      module's element layout (row r, feature j: lane j % 4 of block r ceil(d/4) + j / 4);
//      x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, and the target: eps (epsilon), x0 (sample) or
//      v = sqrt(ab_t) eps - sqrt(1 - ab_t) x0 (v_prediction); one kernel;
//   2. prediction = net(x_t, t_r) (the MLP with the sinusoidal embedding of the timestep as a
//      float), loss = mean over the batch and the d features of (prediction - target)^2 (9.2b),
//      its gradient, backward into every parameter's gradient;
//   3. AdamW with lr_t = LrSchedule::warmup_cosine(lr, warmup_steps, steps, min_lr).lr_at(t)
//      over the flat parameter buffer (one tensor, one launch);
//   4. the EMA of the weights, decay ema_decay_at(t) (diffusers' EMAModel), one launch.
// On a CUDA context every part is enqueued on the context's stream: no host round trip in a
// step. The loss stays on the device, in a log of kLossLog steps that is copied back when it is
// full or when losses() is asked for. On a CPU context the same step is the reference: the
// batch is bit for bit the kernel's; the GEMMs run in float through CBLAS (cuBLASLt on the GPU),
// so the two backends agree to float tolerance, and each backend repeats itself exactly.
//
// Checkpoints (safetensors): the tensors "model.layers.<i>.weight|bias" (the weights),
// "ema.layers..." (their moving average), "adam.exp_avg.layers..." and "adam.exp_avg_sq.layers..."
// (AdamW's moments), "train.loss" (the loss of every step done, F32); the metadata holds the
// network's options (Mlp::metadata), every DiffusionTrainOptions field ("train.*"), the data
// ("data.spec", "data.n", "data.d", "data.seed", "data.checksum": FNV-1a of the float bytes),
// and "train.step", the steps done. The random state is (seed, step): counter-based Philox has
// nothing else, so a run saved after k steps and resumed gives the uninterrupted run's bits on
// the same backend. safetensors.torch.load_file reads the file; Mlp::load(ctx, path, "ema.")
// takes the averaged network out of it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "genai/buffer.hpp"
#include "genai/context.hpp"
#include "genai/diffusion.hpp"
#include "genai/nn.hpp"
#include "genai/optim.hpp"

namespace genai {

// ---- data ------------------------------------------------------------------------------------

// n rows of d features, row-major, on the host.
struct Dataset {
  std::string spec;  // a built-in name, or the .npy file it came from
  std::int64_t n = 0, d = 0;
  std::uint64_t seed = 0;  // of a built-in set (0 for a file)
  std::vector<float> x;
};

// "two_moons", "swiss_roll", "gmm8", "two_modes", "checkerboard".
const std::vector<std::string>& dataset_names();

// n >= 1 rows of a built-in 2-D set, drawn from Philox (seed, rng::streams::train_data): row r
// takes the four normals of block r at step 2 set and the four uniforms u of block r at step
// 2 set + 1 (`set` numbers independent draws of one seed: 0 for training, 1 for evaluation):
//   two_moons     tiny-diffusion's moons: the upper half circle (cos a, sin a) or the lower one
//                 (1 - cos a, 0.5 - sin a) with probability 1/2 each (u0), a = pi u1, plus
//                 0.03 N(0, I) (sklearn.make_moons's noise), then x = 2 (x + 0.3) - 1,
//                 y = 3 (y + 0.3) - 1
//   swiss_roll    FFJORD's: s = 1.5 pi (1 + 2 u0), (s cos s, s sin s) + N(0, I), all / 5
//   checkerboard  FFJORD's: x1 = 4 u0 - 2, x2 = u1 - 2 [u2 > 1/2] + (floor(x1) mod 2), times 2
//   gmm8, two_modes  mixture_draw of GaussianMixture::preset(name), key (seed, train_data,
//                 step 2 set)
// An unknown name is an ArgumentError listing the known ones.
Dataset make_dataset(const std::string& name, std::int64_t n, std::uint64_t seed,
                     std::uint32_t set = 0);
// A .npy file [n x d] (n, d >= 1) of float32 or float64 finite values; anything else (another
// rank, an integer dtype, a non-finite value, an unreadable file) is an ArgumentError naming
// the file.
Dataset read_dataset(const std::string& path);
// A path ending in ".npy" is read; anything else is a built-in name (n, seed, set as above).
Dataset load_dataset(const std::string& spec, std::int64_t n, std::uint64_t seed,
                     std::uint32_t set = 0);
// The mixture a built-in set is drawn from (gmm8, two_modes), for exact scores and mode
// weights; nothing for the others.
std::optional<GaussianMixture> dataset_mixture(const std::string& spec);
// FNV-1a (64-bit) of the rows' float bytes, as 16 hex digits: what a checkpoint checks the
// data of a resumed run against.
std::string dataset_checksum(const Dataset& data);

// ---- the trainer -----------------------------------------------------------------------------

struct DiffusionTrainOptions {
  // The network: d -> hidden... -> d, the first layer seeing [x, embed(t)] (time_embedding_dim
  // sinusoidal features of the timestep, diffusers' defaults), `activation` after every hidden
  // layer, equal-width hidden layers as residual blocks when `residual` (nn's MlpOptions).
  // The defaults are tiny-diffusion's shape: 3 hidden layers of 128, GELU (the tanh form,
  // which cuBLASLt fuses into its GEMMs), embedding 128.
  std::vector<std::int64_t> hidden = {128, 128, 128};
  Activation activation = Activation::GELUTanh;
  std::int64_t time_embedding_dim = 128;
  bool residual = false;
  Init init = Init::PyTorchDefault;
  // The forward process (the diffusion module's schedules) and what the network predicts.
  ScheduleOptions schedule = {};
  PredictionType prediction_type = PredictionType::Epsilon;
  // Optimisation: AdamW on a linear-warmup + cosine learning rate over `steps` steps.
  std::int64_t steps = 2000;        // >= 1: the planned total (the cosine's length)
  std::int64_t batch_size = 1024;   // >= 1
  double lr = 1e-3;
  double min_lr = 0.0;
  std::int64_t warmup_steps = 100;  // < steps
  float beta1 = 0.9f, beta2 = 0.999f, adam_eps = 1e-8f;
  float weight_decay = 0.01f;       // AdamW's decoupled decay (torch.optim.AdamW's default)
  // The moving average of the weights (on by default, as diffusers' training scripts).
  bool ema = true;
  EmaOptions ema_options = {};
  // Initialisation (nn's init_linear, seed) and every draw of the steps.
  std::uint64_t seed = 0;
};

// The sizes {d, hidden..., d} and the rest of the network's options.
MlpOptions network_options(const DiffusionTrainOptions& opts, std::int64_t d);

class DiffusionTrainer {
 public:
  // Losses kept on the device between copies to the host.
  static constexpr std::int64_t kLossLog = 1024;

  // A fresh run: the network initialised from opts.seed, the moments 0, the EMA a copy of the
  // weights; the data copied to ctx's device. Bad options are an ArgumentError naming them.
  DiffusionTrainer(const Context& ctx, const Dataset& data, DiffusionTrainOptions opts);
  // The run a checkpoint holds, continued on ctx: its options, weights, EMA, moments, steps done
  // and losses. `data` must be the run's (n, d and checksum as recorded: an ArgumentError naming
  // what differs otherwise); a file that is not such a checkpoint is a genai::Error naming it.
  static DiffusionTrainer resume(const Context& ctx, const Dataset& data, const std::string& path);

  // One optimizer step (see the top of this file), enqueued on ctx's stream.
  void step();
  std::int64_t steps_done() const { return step_; }
  // The loss of every step done (copies the device log back: a synchronisation).
  const std::vector<float>& losses();

  // The checkpoint (see the top of this file), written atomically; `metadata` adds keys (an
  // ArgumentError when one is the trainer's own).
  void save(const std::string& path, const std::map<std::string, std::string>& metadata = {});

  const DiffusionTrainOptions& options() const { return opts_; }
  const NoiseSchedule& schedule() const { return schedule_; }
  const Context& context() const { return ctx_; }
  const Mlp& network() const { return net_; }  // the weights being trained
  std::int64_t dim() const { return d_; }
  // A copy of the averaged weights (ema true, when the run keeps them) or of the weights, as a
  // network of its own on ctx's device.
  std::shared_ptr<const Mlp> copy_network(bool ema = true) const;
  // The last step's batch, copied to the host: x_t and the target [batch x d], the timesteps
  // (as the floats the network saw) [batch].
  struct Batch {
    std::vector<float> x_t, target, t;
  };
  Batch last_batch() const;
  // The flat arrays of the state (host copies, the layout of Mlp::parameters()): weights, EMA,
  // AdamW's moments.
  std::vector<float> weights() const;
  std::vector<float> ema_weights() const { return ema_.to_host(); }
  std::vector<float> exp_avg() const { return m_.to_host(); }
  std::vector<float> exp_avg_sq() const { return v_.to_host(); }

 private:
  DiffusionTrainer(const Context& ctx, const Dataset& data, DiffusionTrainOptions opts,
                   bool init);
  Context ctx_;
  DiffusionTrainOptions opts_;
  NoiseSchedule schedule_;
  LrSchedule lr_;
  std::int64_t n_, d_;
  std::string data_spec_, data_checksum_;
  std::uint64_t data_seed_;
  Mlp net_;
  MlpWorkspace ws_;
  Buffer<float> data_, sa_, sb_, x_t_, target_, t_in_, pred_, dy_, rows_, m_, v_, ema_, log_;
  std::int64_t step_ = 0, logged_ = 0;  // steps done; of them, losses already on the host
  std::vector<float> losses_;
};

// ---- a trained network as a sampler's model --------------------------------------------------

// The network as a genai::Model: out = net(x_t, t) with t as a float for every row, in chunks of
// at most max_rows rows (the forward keeps its activations: max_rows bounds that memory). Called
// with a context of another device than the network's, or with d != net's input dimension, it
// throws ArgumentError. The callable owns its workspace; copies share it (one call at a time).
Model network_model(std::shared_ptr<const Mlp> net, std::int64_t max_rows = 16384);

// What sampling needs from a checkpoint.
struct TrainedModel {
  std::shared_ptr<const Mlp> net;  // the EMA weights unless asked otherwise
  DiffusionTrainOptions options;
  std::int64_t steps_done = 0;
  std::string data_spec;           // the training data: a built-in name or a .npy path
  std::int64_t data_n = 0;
  std::uint64_t data_seed = 0;
  std::int64_t dim() const { return net->input_dim(); }
  NoiseSchedule schedule() const { return NoiseSchedule(options.schedule); }
  Model model(std::int64_t max_rows = 16384) const { return network_model(net, max_rows); }
};

// A checkpoint's network on ctx (ema: the averaged weights, else the trained ones; a run
// without EMA has only the latter) with its options. Not such a file: genai::Error naming it.
TrainedModel load_trained_model(const Context& ctx, const std::string& path, bool ema = true);

}  // namespace genai
