// Neural-network building blocks for the training loops (problem set 2.1, 4.2): activations,
// the sinusoidal time embedding, linear layers (forward and backward), Kaiming / Xavier
// initialisation, and a small MLP container with its flat parameter and gradient lists and its
// safetensors save / load.
//
// Conventions (PyTorch's): row-major everywhere; a batch of `batch` rows; a linear layer maps
// x [batch x in] to y [batch x out] with W [out x in] and b [out]:
//
//   z = x W^T + b,   y = act(z)
//   backward, given dy = dL/dy:  dz = dy * act'(z),  dx = dz W,  dW = dz^T x,  db = sum_rows dz
//
// Pointers are host pointers with a CPU context, device pointers with a CUDA context. Inputs and
// outputs must not overlap unless a function says they may. Bad arguments throw
// genai::ArgumentError naming the function and the argument, before anything is written.
//
// Backends: the CPU does its GEMMs through CBLAS (OpenBLAS), float accumulation; the GPU through
// cuBLASLt, fp32 (no TF32), fusing the bias, ReLU and GELU(tanh) into the GEMM's epilogue and
// the bias gradient into the weight-gradient GEMM (README, "nn", has the table of what runs
// where). Activations and their derivatives are the formulas of genai/detail/nn.hpp on both.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "genai/buffer.hpp"
#include "genai/context.hpp"
#include "genai/detail/nn.hpp"

namespace genai {

namespace io {
struct Safetensors;
}

// "none", "relu", "silu", "gelu_tanh", "gelu", "sigmoid", "tanh" (PyTorch's names, lower case).
std::string to_string(Activation a);
// The inverse of to_string; an unknown name is an ArgumentError listing the known ones.
Activation activation_from_string(const std::string& name);

// ---- activations -----------------------------------------------------------------------------

// y[i] = act(z[i]), i < n. y may be z (in place).
void activation_forward(const Context& ctx, Activation act, const float* z, std::int64_t n,
                        float* y);
// dz[i] = dy[i] * act'(z[i]), i < n (z: the pre-activation). dz may be dy (in place).
void activation_backward(const Context& ctx, Activation act, const float* z, const float* dy,
                         std::int64_t n, float* dz);

// ---- sinusoidal time embedding ----------------------------------------------------------------

// out[r * dim + c] = the embedding of t[r] (TimeEmbeddingOptions in genai/detail/nn.hpp has the
// formula and its conventions), r < batch, c < dim. dim >= 1, and dim / 2 > downscale_freq_shift
// (the frequencies' denominator), max_period > 0, all finite.
void time_embedding(const Context& ctx, const float* t, std::int64_t batch, std::int64_t dim,
                    float* out, const TimeEmbeddingOptions& opts = {});

// ---- linear layer ----------------------------------------------------------------------------

struct LinearShape {
  std::int64_t batch = 0;  // rows of x and y (>= 0)
  std::int64_t in = 0;     // >= 1
  std::int64_t out = 0;    // >= 1
};

struct LinearOptions {
  Activation activation = Activation::None;
  // [batch x out]: z = x W^T + b is also written here when not null (what linear_backward needs
  // for an activation other than None).
  float* pre_activation = nullptr;
};

// y [batch x out] = act(x W^T + b). b may be null (no bias).
void linear_forward(const Context& ctx, const LinearShape& shape, const float* x, const float* W,
                    const float* b, float* y, const LinearOptions& opts = {});

struct LinearBackwardOptions {
  Activation activation = Activation::None;
  const float* pre_activation = nullptr;  // z of the forward; required unless activation is None
  // [batch x out] scratch for dz = dy * act'(z) when activation is not None; it may be dy itself
  // (dy is then overwritten). Null: allocated for the call.
  float* dz = nullptr;
  // dW += and db += (gradient accumulation over micro-batches) instead of dW = and db =.
  bool accumulate = false;
};

// From dy [batch x out]: dx [batch x in], dW [out x in], db [out]. Each of dx, dW, db may be null
// (not computed).
void linear_backward(const Context& ctx, const LinearShape& shape, const float* x, const float* W,
                     const float* dy, float* dx, float* dW, float* db,
                     const LinearBackwardOptions& opts = {});

// ---- initialisation --------------------------------------------------------------------------

// fan_in = in, fan_out = out.
enum class Init {
  PyTorchDefault,  // nn.Linear's: W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
                   // (kaiming_uniform_(a = sqrt(5)) for W)
  KaimingUniform,  // W ~ U(-sqrt(6 / fan_in), sqrt(6 / fan_in)) (ReLU gain sqrt(2)), b = 0
  KaimingNormal,   // W ~ N(0, 2 / fan_in), b = 0
  XavierUniform,   // W ~ U(-sqrt(6 / (fan_in + fan_out)), +sqrt(...)), b = 0
  XavierNormal,    // W ~ N(0, 2 / (fan_in + fan_out)), b = 0
};

// Fills W [out x in] and b [out] (b may be null) from Philox: W draws from RngKey{seed,
// rng::streams::nn_init, step 2 * layer}, b from step 2 * layer + 1, element i from lane i % 4 of
// block i / 4 (genai/rng.hpp), so both backends write the same bits.
void init_linear(const Context& ctx, std::int64_t out, std::int64_t in, float* W, float* b,
                 Init init, std::uint64_t seed, std::uint32_t layer = 0);

// ---- MLP -------------------------------------------------------------------------------------

struct MlpOptions {
  // {in, hidden..., out}: sizes.size() - 1 linear layers, every size >= 1.
  std::vector<std::int64_t> sizes;
  // After every layer but the last (the output layer is linear).
  Activation activation = Activation::ReLU;
  // > 0: the first layer sees [x, embed(t)], in + time_embedding_dim inputs, where embed is
  // time_embedding with these options (t is a condition: no gradient flows to it).
  std::int64_t time_embedding_dim = 0;
  TimeEmbeddingOptions time_embedding = {};
  // Hidden-to-hidden layers (not the first, not the last) whose input and output widths are
  // equal become residual blocks h = h_prev + act(z) (problem 4.2's x + g(x)).
  bool residual = false;
};

// One parameter tensor: `param` and `grad` point into the model's flat buffers (device memory on
// a CUDA context).
struct MlpParam {
  std::string name;                 // "layers.<i>.weight" / "layers.<i>.bias", i from 0
  float* param = nullptr;
  float* grad = nullptr;
  std::int64_t size = 0;            // elements
  std::vector<std::int64_t> shape;  // {out, in} or {out}
  std::int64_t offset = 0;          // of param in parameters() (and of grad in gradients())
};

// What Mlp::forward keeps for Mlp::backward (every layer's input, the pre-activations the
// derivatives need, the GPU's ReLU masks) and backward's scratch, on the model's device. Sized
// on first use and grown only when a larger batch comes: a training loop that reuses one
// workspace allocates nothing after its first step. One workspace per forward/backward pair
// in flight; its contents are the backends' business.
class MlpWorkspace {
 public:
  MlpWorkspace() = default;
  // Batch of the forward whose state it holds (0: none yet).
  std::int64_t batch() const { return batch_; }

 private:
  friend class Mlp;
  std::uint64_t owner_ = 0;  // Mlp::id_ of the model that filled it
  std::int64_t batch_ = 0, capacity_ = 0;
  Buffer<float> act_, pre_, scratch_;
  Buffer<std::uint32_t> mask_;
  Buffer<std::byte> blas_;
  std::vector<bool> mask_written_;
  std::shared_ptr<detail::GemmCache> gemm_cache_;
};

class Mlp {
 public:
  // Validates the options and allocates the parameters and gradients on ctx's device, all 0
  // (call init()).
  Mlp(const Context& ctx, MlpOptions opts);

  const Context& context() const { return ctx_; }
  const MlpOptions& options() const { return opts_; }
  int layers() const { return static_cast<int>(opts_.sizes.size()) - 1; }
  std::int64_t input_dim() const { return opts_.sizes.front(); }   // of x (without t)
  std::int64_t output_dim() const { return opts_.sizes.back(); }
  bool is_residual(int layer) const;  // layer i (from 0) is a residual block
  std::int64_t parameter_count() const { return count_; }  // elements of all tensors

  // The flat buffers: every tensor starts at a multiple of 4 floats (16 bytes); the few
  // padding elements between tensors are 0 in both and stay 0 under any elementwise optimizer
  // (their gradient is always 0). flat_size() elements each.
  std::int64_t flat_size() const { return static_cast<std::int64_t>(params_.size()); }
  float* parameters() { return params_.data(); }
  const float* parameters() const { return params_.data(); }
  float* gradients() { return grads_.data(); }
  const float* gradients() const { return grads_.data(); }
  // Per tensor, in order: layers.0.weight, layers.0.bias, layers.1.weight, ...
  std::vector<MlpParam> parameter_list();

  // init_linear(layer i) for every layer with this seed.
  void init(std::uint64_t seed, Init init = Init::PyTorchDefault);
  void zero_grad();

  // y [batch x output_dim()] from x [batch x input_dim()] and, with a time embedding, t [batch]
  // (else t must be null). Keeps in ws what backward needs; x and t may change afterwards.
  void forward(MlpWorkspace& ws, const float* x, const float* t, std::int64_t batch,
               float* y) const;
  // From dy = dL/dy [ws.batch() x output_dim()] of the forward that filled ws: every parameter's
  // gradient into gradients() (= or, with accumulate, +=) and, when dx is not null, dL/dx
  // [batch x input_dim()]. Uses the parameters as they are now: call it before changing them.
  void backward(MlpWorkspace& ws, const float* dy, float* dx = nullptr, bool accumulate = false);

  // safetensors: one F32 tensor per parameter (names and shapes of parameter_list()), the
  // options in the metadata (metadata(): format = "genai.mlp", sizes, activation,
  // time_embedding_dim, the embedding options, residual) plus `metadata`. PyTorch reads it with
  // safetensors.torch.load_file.
  void save(const std::string& path, const std::map<std::string, std::string>& metadata = {}) const;
  // A model from a file save() wrote (its options from the metadata); a missing, extra or
  // misshapen tensor, a dtype other than F32 or bad metadata is a genai::Error naming the file.
  // With a prefix, the tensors are "<prefix>layers.<i>.weight" / ".bias" and tensors whose names
  // do not start with the prefix are left alone: one file can hold several arrays of the
  // model's layout (a training checkpoint: "model.", "ema.", the optimizer's moments).
  static Mlp load(const Context& ctx, const std::string& path, const std::string& prefix = "");

  // The pieces of save / load, for files holding more than the weights.
  // The options as save() writes them into the metadata.
  std::map<std::string, std::string> metadata() const;
  // The options stored by metadata(), checked to make a valid model; a genai::Error naming
  // `file` otherwise.
  static MlpOptions options_from_metadata(const std::map<std::string, std::string>& metadata,
                                          const std::string& file);
  // Adds to st one F32 tensor per parameter, "<prefix>layers.<i>.weight" / ".bias", from `flat`:
  // flat_size() host values laid out as parameters() (the weights, or an optimizer state or a
  // moving average of the same layout).
  void add_tensors(io::Safetensors& st, const std::string& prefix,
                   const std::vector<float>& flat) const;
  // The inverse: flat_size() host values (padding 0) from st's tensors under `prefix`, checked
  // as load() checks them (errors name `file`).
  std::vector<float> read_tensors(const io::Safetensors& st, const std::string& prefix,
                                  const std::string& file) const;

 private:
  struct LayerInfo {
    std::int64_t in, out, w_offset, b_offset;
    bool residual;
  };
  Context ctx_;
  MlpOptions opts_;
  std::vector<LayerInfo> info_;
  std::int64_t count_ = 0;
  std::uint64_t id_ = 0;
  Buffer<float> params_, grads_;
};

}  // namespace genai
