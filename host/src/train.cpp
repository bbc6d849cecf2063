// genai train module: the diffusion trainer (argument checks, the step over either backend),
// its checkpoints, and the trained network as a sampler's model.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "cpu_reference/train.hpp"
#include "genai/io.hpp"
#include "genai/losses.hpp"
#include "genai/nvtx.hpp"
#include "genai/train.hpp"
#if GENAI_WITH_CUDA
#include "kernels/train.cuh"
#endif

namespace genai {
namespace {

constexpr const char* kFormat = "genai.diffusion-train";

constexpr const char* kBetaNames[] = {"linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"};
constexpr const char* kPredictionNames[] = {"epsilon", "sample", "v_prediction"};
constexpr const char* kInitNames[] = {"pytorch_default", "kaiming_uniform", "kaiming_normal",
                                      "xavier_uniform", "xavier_normal"};

std::string number(double v) {
  char s[32];
  std::snprintf(s, sizeof s, "%.17g", v);
  return s;
}
std::string number(float v) {
  char s[32];
  std::snprintf(s, sizeof s, "%.9g", static_cast<double>(v));
  return s;
}

std::vector<float> host_copy(const Context& ctx, const float* p, std::int64_t n) {
  std::vector<float> h(static_cast<std::size_t>(n));
  detail::copy_bytes(ctx, h.data(), Device::CPU, p, ctx.device(), h.size() * sizeof(float));
  return h;
}
void device_copy(const Context& ctx, float* p, const std::vector<float>& h) {
  detail::copy_bytes(ctx, p, ctx.device(), h.data(), Device::CPU, h.size() * sizeof(float));
}

void fill(const Context& ctx, float* x, std::int64_t n, float value) {
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::fill(ctx, x, n, value);
#endif
  (void)ctx;
  ref::fill(x, n, value);
}

void require_finite_in(const char* fn, const char* arg, double v, double lo, double hi,
                       bool hi_open) {
  if (!(std::isfinite(v) && v >= lo && (hi_open ? v < hi : v <= hi)))
    detail::throw_argument(fn, arg, "must be in [", lo, ", ", hi, hi_open ? ")" : "]", " (got ",
                           v, ")");
}

void check_options(const char* fn, const DiffusionTrainOptions& o) {
  for (const std::int64_t h : o.hidden) detail::require_at_least(fn, "opts.hidden[i]", h, 1);
  detail::require_at_least(fn, "opts.time_embedding_dim", o.time_embedding_dim, 4);
  detail::require_at_least(fn, "opts.steps", o.steps, 1);
  if (o.steps > 0xffffffffll)
    detail::throw_argument(fn, "opts.steps", "must be < 2^32 (the Philox step; got ", o.steps, ")");
  detail::require_at_least(fn, "opts.batch_size", o.batch_size, 1);
  require_finite_in(fn, "opts.lr", o.lr, 0.0, 1e9, false);
  require_finite_in(fn, "opts.min_lr", o.min_lr, 0.0, o.lr, false);
  detail::require_at_least(fn, "opts.warmup_steps", o.warmup_steps, 0);
  if (o.warmup_steps >= o.steps)
    detail::throw_argument(fn, "opts.warmup_steps", "must be < opts.steps = ", o.steps, " (got ",
                           o.warmup_steps, ")");
  require_finite_in(fn, "opts.beta1", o.beta1, 0.0, 1.0, true);
  require_finite_in(fn, "opts.beta2", o.beta2, 0.0, 1.0, true);
  require_finite_in(fn, "opts.adam_eps", o.adam_eps, 0.0, 1e9, false);
  require_finite_in(fn, "opts.weight_decay", o.weight_decay, 0.0, 1e9, false);
  if (o.ema) ema_decay_at(1, o.ema_options);  // checks the EMA options
  const int p = static_cast<int>(o.prediction_type);
  if (p < 0 || p > 2) detail::throw_argument(fn, "opts.prediction_type", "is not a PredictionType");
  const int i = static_cast<int>(o.init);
  if (i < 0 || i > 4) detail::throw_argument(fn, "opts.init", "is not an Init");
}

void check_data(const char* fn, const Dataset& data) {
  detail::require_at_least(fn, "data.n", data.n, 1);
  detail::require_at_least(fn, "data.d", data.d, 1);
  if (static_cast<std::int64_t>(data.x.size()) != data.n * data.d)
    detail::throw_argument(fn, "data.x", "has ", data.x.size(), " values, not n x d = ",
                           data.n * data.d);
  for (std::size_t i = 0; i < data.x.size(); ++i)
    if (!std::isfinite(data.x[i]))
      detail::throw_argument(fn, "data.x", "row ", static_cast<std::int64_t>(i) / data.d, " is not finite");
}

// The checkpoint's metadata as the trainer writes it, and back.
std::map<std::string, std::string> train_metadata(const DiffusionTrainOptions& o) {
  // The network's own options are Mlp::metadata()'s.
  return {{"train.format", kFormat},
          {"train.init", kInitNames[static_cast<int>(o.init)]},
          {"train.schedule.num_train_timesteps", std::to_string(o.schedule.num_train_timesteps)},
          {"train.schedule.beta_schedule", kBetaNames[static_cast<int>(o.schedule.beta_schedule)]},
          {"train.schedule.beta_start", number(o.schedule.beta_start)},
          {"train.schedule.beta_end", number(o.schedule.beta_end)},
          {"train.schedule.max_beta", number(o.schedule.max_beta)},
          {"train.prediction_type", kPredictionNames[static_cast<int>(o.prediction_type)]},
          {"train.steps", std::to_string(o.steps)},
          {"train.batch_size", std::to_string(o.batch_size)},
          {"train.lr", number(o.lr)},
          {"train.min_lr", number(o.min_lr)},
          {"train.warmup_steps", std::to_string(o.warmup_steps)},
          {"train.beta1", number(o.beta1)},
          {"train.beta2", number(o.beta2)},
          {"train.adam_eps", number(o.adam_eps)},
          {"train.weight_decay", number(o.weight_decay)},
          {"train.ema", o.ema ? "true" : "false"},
          {"train.ema.decay", number(o.ema_options.decay)},
          {"train.ema.min_decay", number(o.ema_options.min_decay)},
          {"train.ema.update_after_step", std::to_string(o.ema_options.update_after_step)},
          {"train.seed", std::to_string(o.seed)}};
}

// Reads a checkpoint's metadata; every error is a genai::Error naming the file.
class MetadataReader {
 public:
  MetadataReader(const std::map<std::string, std::string>& m, std::string file)
      : m_(m), file_(std::move(file)) {}
  Error fail(const std::string& what) const {
    return Error("genai::DiffusionTrainer: " + file_ + ": " + what);
  }
  const std::string& text(const std::string& key) const {
    const auto it = m_.find(key);
    if (it == m_.end()) throw fail("metadata has no '" + key + "' (not a training checkpoint?)");
    return it->second;
  }
  double real(const std::string& key) const {
    const std::string& v = text(key);
    try {
      std::size_t used = 0;
      const double d = std::stod(v, &used);
      if (used == v.size() && std::isfinite(d)) return d;
    } catch (const std::exception&) {
    }
    throw fail("metadata '" + key + "' is '" + v + "', not a number");
  }
  std::int64_t integer(const std::string& key) const {
    const std::string& v = text(key);
    if (!v.empty() && v.size() <= 19 && v.find_first_not_of("0123456789") == std::string::npos)
      return std::stoll(v);
    throw fail("metadata '" + key + "' is '" + v + "', not a count");
  }
  std::uint64_t unsigned_integer(const std::string& key) const {
    const std::string& v = text(key);
    if (!v.empty() && v.size() <= 20 && v.find_first_not_of("0123456789") == std::string::npos) {
      try {
        return std::stoull(v);
      } catch (const std::exception&) {
      }
    }
    throw fail("metadata '" + key + "' is '" + v + "', not a count");
  }
  bool flag(const std::string& key) const {
    const std::string& v = text(key);
    if (v != "true" && v != "false") throw fail("metadata '" + key + "' is '" + v + "', not true or false");
    return v == "true";
  }
  template <std::size_t N>
  int name(const std::string& key, const char* const (&names)[N]) const {
    const std::string& v = text(key);
    for (std::size_t i = 0; i < N; ++i)
      if (v == names[i]) return static_cast<int>(i);
    throw fail("metadata '" + key + "' is '" + v + "', not a known name");
  }

 private:
  const std::map<std::string, std::string>& m_;
  std::string file_;
};

// What a checkpoint file holds besides its tensors.
struct CheckpointHeader {
  DiffusionTrainOptions opts;
  MlpOptions net;
  std::int64_t step = 0, data_n = 0, data_d = 0;
  std::uint64_t data_seed = 0;
  std::string data_spec, data_checksum;
};

CheckpointHeader read_header(const io::Safetensors& st, const std::string& path) {
  const MetadataReader r(st.metadata, path);
  if (r.text("train.format") != kFormat)
    throw r.fail("metadata 'train.format' is '" + r.text("train.format") + "', not '" + kFormat + "'");
  CheckpointHeader h;
  h.net = Mlp::options_from_metadata(st.metadata, path);
  DiffusionTrainOptions& o = h.opts;
  o.hidden.assign(h.net.sizes.begin() + 1, h.net.sizes.end() - 1);
  o.activation = h.net.activation;
  o.time_embedding_dim = h.net.time_embedding_dim;
  o.residual = h.net.residual;
  o.init = static_cast<Init>(r.name("train.init", kInitNames));
  o.schedule.num_train_timesteps = r.integer("train.schedule.num_train_timesteps");
  o.schedule.beta_schedule = static_cast<BetaSchedule>(r.name("train.schedule.beta_schedule", kBetaNames));
  o.schedule.beta_start = r.real("train.schedule.beta_start");
  o.schedule.beta_end = r.real("train.schedule.beta_end");
  o.schedule.max_beta = r.real("train.schedule.max_beta");
  o.prediction_type = static_cast<PredictionType>(r.name("train.prediction_type", kPredictionNames));
  o.steps = r.integer("train.steps");
  o.batch_size = r.integer("train.batch_size");
  o.lr = r.real("train.lr");
  o.min_lr = r.real("train.min_lr");
  o.warmup_steps = r.integer("train.warmup_steps");
  o.beta1 = static_cast<float>(r.real("train.beta1"));
  o.beta2 = static_cast<float>(r.real("train.beta2"));
  o.adam_eps = static_cast<float>(r.real("train.adam_eps"));
  o.weight_decay = static_cast<float>(r.real("train.weight_decay"));
  o.ema = r.flag("train.ema");
  o.ema_options.decay = static_cast<float>(r.real("train.ema.decay"));
  o.ema_options.min_decay = static_cast<float>(r.real("train.ema.min_decay"));
  o.ema_options.update_after_step = r.integer("train.ema.update_after_step");
  o.seed = r.unsigned_integer("train.seed");
  h.step = r.integer("train.step");
  h.data_spec = r.text("data.spec");
  h.data_n = r.integer("data.n");
  h.data_d = r.integer("data.d");
  h.data_seed = r.unsigned_integer("data.seed");
  h.data_checksum = r.text("data.checksum");
  try {
    check_options("genai::DiffusionTrainer", o);
    (void)NoiseSchedule(o.schedule);
  } catch (const ArgumentError& e) {
    throw r.fail(std::string("the options in the metadata are not valid: ") + e.what());
  }
  if (h.net.sizes.front() != h.data_d || h.net.sizes.back() != h.data_d)
    throw r.fail("the network maps " + std::to_string(h.net.sizes.front()) + " -> " +
                 std::to_string(h.net.sizes.back()) + " features, the data has d = " +
                 std::to_string(h.data_d));
  const auto loss = st.tensors.find("train.loss");
  if (loss == st.tensors.end() || loss->second.dtype != io::DType::F32 ||
      loss->second.shape != std::vector<std::int64_t>{h.step})
    throw r.fail("no F32 tensor 'train.loss' of " + std::to_string(h.step) + " losses");
  return h;
}

io::Safetensors read_checkpoint(const std::string& path) {
  try {
    return io::read_safetensors(path);
  } catch (const ArgumentError&) {
    throw;
  } catch (const Error& e) {
    throw Error(std::string("genai::DiffusionTrainer: cannot read the checkpoint: ") + e.what());
  }
}

}  // namespace

MlpOptions network_options(const DiffusionTrainOptions& o, std::int64_t d) {
  std::vector<std::int64_t> sizes = {d};
  sizes.insert(sizes.end(), o.hidden.begin(), o.hidden.end());
  sizes.push_back(d);
  return {.sizes = std::move(sizes), .activation = o.activation,
          .time_embedding_dim = o.time_embedding_dim, .residual = o.residual};
}

DiffusionTrainer::DiffusionTrainer(const Context& ctx, const Dataset& data,
                                   DiffusionTrainOptions opts)
    : DiffusionTrainer(ctx, data, std::move(opts), true) {}

DiffusionTrainer::DiffusionTrainer(const Context& ctx, const Dataset& data,
                                   DiffusionTrainOptions opts, bool init)
    : ctx_(ctx),
      opts_((check_options("genai::DiffusionTrainer", opts), std::move(opts))),
      schedule_((check_data("genai::DiffusionTrainer", data), opts_.schedule)),
      lr_(LrSchedule::warmup_cosine(opts_.lr, opts_.warmup_steps, opts_.steps, opts_.min_lr)),
      n_(data.n),
      d_(data.d),
      data_spec_(data.spec),
      data_checksum_(dataset_checksum(data)),
      data_seed_(data.seed),
      net_(ctx, network_options(opts_, data.d)) {
  GENAI_NVTX_RANGE("genai::DiffusionTrainer");
  const std::int64_t B = opts_.batch_size, flat = net_.flat_size();
  const auto T = static_cast<std::size_t>(schedule_.num_train_timesteps());
  data_ = Buffer<float>(ctx_, std::span<const float>(data.x));
  std::vector<float> sa(T), sb(T);
  for (std::size_t t = 0; t < T; ++t) {
    sa[t] = static_cast<float>(schedule_.sqrt_alphas_cumprod()[t]);
    sb[t] = static_cast<float>(schedule_.sqrt_one_minus_alphas_cumprod()[t]);
  }
  sa_ = Buffer<float>(ctx_, std::span<const float>(sa));
  sb_ = Buffer<float>(ctx_, std::span<const float>(sb));
  for (Buffer<float>* b : {&x_t_, &target_, &pred_, &dy_}) *b = Buffer<float>(ctx_, B * d_);
  t_in_ = Buffer<float>(ctx_, B);
  rows_ = Buffer<float>(ctx_, B);
  for (Buffer<float>* b : {&m_, &v_}) {
    *b = Buffer<float>(ctx_, flat);
    b->fill_bytes(0);
  }
  ema_ = Buffer<float>(ctx_, opts_.ema ? flat : 0);
  log_ = Buffer<float>(ctx_, kLossLog);
  if (!init) return;
  net_.init(opts_.seed, opts_.init);
  if (opts_.ema)
    detail::copy_bytes(ctx_, ema_.data(), ctx_.device(), net_.parameters(), ctx_.device(),
                       ema_.bytes());
}

void DiffusionTrainer::step() {
  GENAI_NVTX_RANGE("genai::DiffusionTrainer::step");
  const std::int64_t B = opts_.batch_size, k = step_, t = k + 1;
  if (k - logged_ == kLossLog) losses();  // the device log is full: to the host
  const detail::TrainBatch batch{data_.data(), n_, d_, sa_.data(), sb_.data(),
                                 schedule_.num_train_timesteps(), B, opts_.seed,
                                 static_cast<std::uint32_t>(k),
                                 // PredictionType and TrainTarget share their order.
                                 static_cast<detail::TrainTarget>(opts_.prediction_type),
                                 x_t_.data(), target_.data(), t_in_.data()};
#if GENAI_WITH_CUDA
  if (ctx_.is_cuda())
    cuda::train_batch(ctx_, batch);
  else
#endif
    ref::train_batch(batch);
  net_.forward(ws_, x_t_.data(), t_in_.data(), B, pred_.data());
  mse_loss(ctx_, pred_.data(), target_.data(), B, d_,
           {.loss = log_.data() + (k - logged_), .row_loss = rows_.data(), .grad = dy_.data()});
  net_.backward(ws_, dy_.data());
  const AdamTensor p{net_.parameters(), net_.gradients(), m_.data(), v_.data(), nullptr,
                     net_.flat_size()};
  adam_step(ctx_, {&p, 1}, t,
            {.lr = static_cast<float>(lr_.lr_at(t)), .beta1 = opts_.beta1, .beta2 = opts_.beta2,
             .eps = opts_.adam_eps, .weight_decay = opts_.weight_decay,
             .decoupled_weight_decay = true});
  if (opts_.ema) {
    const EmaTensor e{ema_.data(), net_.parameters(), net_.flat_size()};
    ema_update(ctx_, {&e, 1}, static_cast<float>(ema_decay_at(t, opts_.ema_options)));
  }
  ++step_;
}

const std::vector<float>& DiffusionTrainer::losses() {
  if (step_ > logged_) {
    const std::vector<float> h = host_copy(ctx_, log_.data(), step_ - logged_);
    losses_.insert(losses_.end(), h.begin(), h.end());
    logged_ = step_;
  }
  return losses_;
}

DiffusionTrainer::Batch DiffusionTrainer::last_batch() const {
  return {x_t_.to_host(), target_.to_host(), t_in_.to_host()};
}

std::vector<float> DiffusionTrainer::weights() const {
  return host_copy(ctx_, net_.parameters(), net_.flat_size());
}

std::shared_ptr<const Mlp> DiffusionTrainer::copy_network(bool ema) const {
  auto copy = std::make_shared<Mlp>(ctx_, net_.options());
  const float* src = ema && opts_.ema ? ema_.data() : net_.parameters();
  detail::copy_bytes(ctx_, copy->parameters(), ctx_.device(), src, ctx_.device(),
                     static_cast<std::size_t>(net_.flat_size()) * sizeof(float));
  return copy;
}

void DiffusionTrainer::save(const std::string& path,
                            const std::map<std::string, std::string>& metadata) {
  constexpr const char* fn = "genai::DiffusionTrainer::save";
  GENAI_NVTX_RANGE(fn);
  io::Safetensors st;
  st.metadata = net_.metadata();
  for (auto& kv : train_metadata(opts_)) st.metadata.insert(std::move(kv));
  st.metadata["train.step"] = std::to_string(step_);
  st.metadata["data.spec"] = data_spec_;
  st.metadata["data.n"] = std::to_string(n_);
  st.metadata["data.d"] = std::to_string(d_);
  st.metadata["data.seed"] = std::to_string(data_seed_);
  st.metadata["data.checksum"] = data_checksum_;
  for (const auto& [k, v] : metadata)
    if (!st.metadata.emplace(k, v).second)
      detail::throw_argument(fn, "metadata", "key '", k, "' is one the trainer writes itself");
  net_.add_tensors(st, "model.", weights());
  if (opts_.ema) net_.add_tensors(st, "ema.", ema_weights());
  net_.add_tensors(st, "adam.exp_avg.", exp_avg());
  net_.add_tensors(st, "adam.exp_avg_sq.", exp_avg_sq());
  const std::vector<float>& l = losses();
  const auto* b = reinterpret_cast<const std::byte*>(l.data());
  st.tensors["train.loss"] =
      io::Array{io::DType::F32, {step_}, {b, b + l.size() * sizeof(float)}};
  io::write_safetensors(path, st);
}

DiffusionTrainer DiffusionTrainer::resume(const Context& ctx, const Dataset& data,
                                          const std::string& path) {
  constexpr const char* fn = "genai::DiffusionTrainer::resume";
  GENAI_NVTX_RANGE(fn);
  check_data(fn, data);
  const io::Safetensors st = read_checkpoint(path);
  const CheckpointHeader h = read_header(st, path);
  if (data.d != h.data_d)
    detail::throw_argument(fn, "data", "has d = ", data.d, ", the checkpoint's network d = ",
                           h.data_d, " (", path, ")");
  if (data.n != h.data_n || dataset_checksum(data) != h.data_checksum)
    detail::throw_argument(fn, "data", "is not the run's data (", data.n, " rows, checksum ",
                           dataset_checksum(data), "; ", path, " was trained on ", h.data_spec,
                           ": ", h.data_n, " rows, checksum ", h.data_checksum, ")");
  // Every tensor checked on the host before anything is allocated on ctx.
  const Mlp probe(Context::cpu(), h.net);
  const std::vector<float> w = probe.read_tensors(st, "model.", path);
  const std::vector<float> e = h.opts.ema ? probe.read_tensors(st, "ema.", path) : std::vector<float>{};
  const std::vector<float> m = probe.read_tensors(st, "adam.exp_avg.", path);
  const std::vector<float> v = probe.read_tensors(st, "adam.exp_avg_sq.", path);
  const io::Array& loss = st.tensors.at("train.loss");
  DiffusionTrainer tr(ctx, data, h.opts, false);
  device_copy(ctx, tr.net_.parameters(), w);
  if (h.opts.ema) device_copy(ctx, tr.ema_.data(), e);
  device_copy(ctx, tr.m_.data(), m);
  device_copy(ctx, tr.v_.data(), v);
  tr.losses_ = loss.to_float();
  tr.step_ = tr.logged_ = h.step;
  return tr;
}

// ---- a trained network as a model ------------------------------------------------------------

Model network_model(std::shared_ptr<const Mlp> net, std::int64_t max_rows) {
  constexpr const char* fn = "genai::network_model";
  if (!net) detail::throw_argument(fn, "net", "must not be null");
  detail::require_at_least(fn, "max_rows", max_rows, 1);
  if (net->options().time_embedding_dim < 1)
    detail::throw_argument(fn, "net", "has no time embedding (a diffusion model needs t)");
  if (net->output_dim() != net->input_dim())
    detail::throw_argument(fn, "net", "maps ", net->input_dim(), " -> ", net->output_dim(),
                           " features (a diffusion model's output has the input's shape)");
  struct State {
    std::shared_ptr<const Mlp> net;
    MlpWorkspace ws;
    Buffer<float> t;
  };
  auto state = std::make_shared<State>();
  state->net = std::move(net);
  state->t = Buffer<float>(state->net->context(), static_cast<std::size_t>(max_rows));
  return [state, max_rows](const Context& ctx, std::int64_t t, const float* x, std::int64_t n,
                           std::int64_t d, float* out) {
    constexpr const char* call = "genai::network_model (call)";
    const Context& own = state->net->context();
    if (ctx.device() != own.device() || ctx.device_index() != own.device_index() ||
        ctx.stream() != own.stream())
      detail::throw_argument(call, "ctx", "is ", to_string(ctx.device()), " ", ctx.device_index(),
                             ", the network lives on ", to_string(own.device()), " ",
                             own.device_index(), " (same device and stream needed)");
    if (d != state->net->input_dim())
      detail::throw_argument(call, "d", "is ", d, ", the network takes d = ",
                             state->net->input_dim());
    if (n == 0) return;
    fill(own, state->t.data(), std::min(n, max_rows), static_cast<float>(t));
    for (std::int64_t at = 0; at < n; at += max_rows) {
      const std::int64_t rows = std::min(max_rows, n - at);
      state->net->forward(state->ws, x + at * d, state->t.data(), rows, out + at * d);
    }
  };
}

TrainedModel load_trained_model(const Context& ctx, const std::string& path, bool ema) {
  GENAI_NVTX_RANGE("genai::load_trained_model");
  const io::Safetensors st = read_checkpoint(path);
  const CheckpointHeader h = read_header(st, path);
  const Mlp probe(Context::cpu(), h.net);
  const std::vector<float> w = probe.read_tensors(st, ema && h.opts.ema ? "ema." : "model.", path);
  auto net = std::make_shared<Mlp>(ctx, h.net);
  device_copy(ctx, net->parameters(), w);
  return {std::move(net), h.opts, h.step, h.data_spec, h.data_n, h.data_seed};
}

}  // namespace genai
