// Convolutional building blocks (problem set 4.1, 4.2, 4.4): 2-D convolution, batch
// normalisation, max and average pooling (forward and backward), the residual block
// out = x + F(x) with F = Conv -> BN -> ReLU -> Conv -> BN, and a receptive-field calculator
// for a stack of conv / pool layers. ReLU itself is nn's activation_forward / _backward.
//
// Conventions (PyTorch's): tensors are NCHW, contiguous, fp32: x [N x C x H x W]; a
// convolution's weight is [K x C x R x S] (out channels, in channels, kernel rows, columns)
// and it computes the cross-correlation
//   y[n, k, p, q] = b[k] + sum_{c, r, s} x[n, c, p sh - ph + r dh, q sw - pw + s dw] W[k, c, r, s]
// with P = floor((H + 2 ph - dh (R - 1) - 1) / sh) + 1 (Q likewise). Every tensor must have
// fewer than 2^31 elements, and heights, widths, paddings and dilated kernels must be < 2^28.
//
// Pointers are host pointers with a CPU context, device pointers with a CUDA context. Inputs
// and outputs must not overlap unless a function says they may. Bad arguments throw
// genai::ArgumentError naming the function and the argument, before anything is written.
//
// Backends. CPU: the convolution as im2col + CBLAS sgemm (OpenBLAS) per image, float
// accumulation; batch norm and the pools as loops with double sums. GPU: the convolution as an
// implicit GEMM written here (kernels/conv.cu: no cuDNN), on the tensor cores with TF32 inputs
// and fp32 accumulation (ConvMath::TF32, PyTorch's default for convolutions:
// torch.backends.cudnn.allow_tf32) or on the CUDA cores in fp32 (ConvMath::FP32); batch norm,
// the pools and the block's fused steps are kernels of the same file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "genai/buffer.hpp"
#include "genai/context.hpp"
#include "genai/detail/conv.hpp"

namespace genai {

// ---- convolution -----------------------------------------------------------------------------

struct Conv2dShape {
  std::int64_t batch = 0;         // N >= 0
  std::int64_t in_channels = 0;   // C >= 1
  std::int64_t height = 0;        // H >= 1
  std::int64_t width = 0;         // W >= 1
  std::int64_t out_channels = 0;  // K >= 1
  std::int64_t kernel_h = 3, kernel_w = 3;      // R, S >= 1
  std::int64_t stride_h = 1, stride_w = 1;      // >= 1
  std::int64_t pad_h = 1, pad_w = 1;            // >= 0 (zeros)
  std::int64_t dilation_h = 1, dilation_w = 1;  // >= 1
  std::int64_t out_height() const {  // P (>= 1 for a valid shape)
    return detail::conv_out_size(height, kernel_h, stride_h, pad_h, dilation_h);
  }
  std::int64_t out_width() const {  // Q
    return detail::conv_out_size(width, kernel_w, stride_w, pad_w, dilation_w);
  }
};

// The GPU's product precision (the CPU computes in fp32 always).
enum class ConvMath {
  TF32,  // tensor cores: x, W (and dy) rounded to TF32 (10-bit fraction), fp32 sums
  FP32,  // CUDA cores, fp32 throughout
};

struct Conv2dOptions {
  ConvMath math = ConvMath::TF32;
};

// y [N x K x P x Q] = conv(x, W) (+ b [K]; b may be null).
void conv2d_forward(const Context& ctx, const Conv2dShape& shape, const float* x, const float* W,
                    const float* b, float* y, const Conv2dOptions& opts = {});

struct Conv2dBackwardOptions {
  ConvMath math = ConvMath::TF32;
  // dW += and db += (gradient accumulation over micro-batches) instead of dW = and db =.
  bool accumulate = false;
};

// From dy [N x K x P x Q]: dx [N x C x H x W], dW [K x C x R x S], db [K]. Each of dx, dW, db
// may be null (not computed); x is needed for dW, W for dx.
void conv2d_backward(const Context& ctx, const Conv2dShape& shape, const float* x, const float* W,
                     const float* dy, float* dx, float* dW, float* db,
                     const Conv2dBackwardOptions& opts = {});

// ---- batch normalisation ---------------------------------------------------------------------

// x [batch x channels x spatial]: BatchNorm2d with spatial = H W (BatchNorm1d: spatial 1 or L).
struct BatchNormShape {
  std::int64_t batch = 0;     // >= 0 (>= 1 for the forward; > 1 value per channel to train)
  std::int64_t channels = 0;  // >= 1
  std::int64_t spatial = 1;   // >= 1
};

struct BatchNormOptions {
  // true: normalise with the batch's mean and biased variance (M = batch * spatial values per
  // channel) and, when running_mean / running_var are given, update them as PyTorch does:
  //   running_mean = (1 - momentum) running_mean + momentum mean
  //   running_var  = (1 - momentum) running_var  + momentum var * M / (M - 1)   (unbiased)
  // false (inference): normalise with running_mean and running_var (both required).
  bool training = true;
  float momentum = 0.1f;  // in [0, 1]
  float eps = 1e-5f;      // > 0
  // [channels] each, when not null: the mean and 1 / sqrt(var + eps) used (what
  // batch_norm_backward takes).
  float* save_mean = nullptr;
  float* save_invstd = nullptr;
};

// y = gamma (x - mean) / sqrt(var + eps) + beta per channel. gamma and beta [channels] may be
// null (1 and 0). y may be x (in place).
void batch_norm_forward(const Context& ctx, const BatchNormShape& shape, const float* x,
                        const float* gamma, const float* beta, float* running_mean,
                        float* running_var, float* y, const BatchNormOptions& opts = {});

struct BatchNormBackwardOptions {
  bool training = true;     // the forward used batch statistics (their gradient flows too)
  bool accumulate = false;  // dgamma += and dbeta += instead of =
};

// From dy: dx, dgamma, dbeta [channels] (each may be null), given the forward's x and the
// save_mean / save_invstd it wrote. With xhat = (x - mean) invstd and M values per channel:
//   dbeta = sum dy,  dgamma = sum dy xhat,
//   dx = gamma invstd (dy - dbeta / M - xhat dgamma / M)   (training), gamma invstd dy (not).
// gamma may be null (1).
void batch_norm_backward(const Context& ctx, const BatchNormShape& shape, const float* x,
                         const float* gamma, const float* save_mean, const float* save_invstd,
                         const float* dy, float* dx, float* dgamma, float* dbeta,
                         const BatchNormBackwardOptions& opts = {});

// ---- pooling ---------------------------------------------------------------------------------

// Windows kernel_h x kernel_w at stride (stride_h, stride_w) over x padded by (pad_h, pad_w);
// a stride of 0 means the kernel size (PyTorch's default). pad <= kernel / 2 (as PyTorch).
// Output P = floor((H + 2 pad_h - kernel_h) / stride_h) + 1 (floor mode).
struct Pool2dShape {
  std::int64_t batch = 0, channels = 0, height = 0, width = 0;
  std::int64_t kernel_h = 2, kernel_w = 2;
  std::int64_t stride_h = 0, stride_w = 0;
  std::int64_t pad_h = 0, pad_w = 0;
  std::int64_t out_height() const {
    return detail::conv_out_size(height, kernel_h, stride_h > 0 ? stride_h : kernel_h, pad_h, 1);
  }
  std::int64_t out_width() const {
    return detail::conv_out_size(width, kernel_w, stride_w > 0 ? stride_w : kernel_w, pad_w, 1);
  }
};

// y [N x C x P x Q] = the max of each window (padding never wins; a NaN does). indices, when not
// null, receives the argmax as h W + w within its plane (PyTorch's return_indices), which
// max_pool2d_backward needs.
void max_pool2d_forward(const Context& ctx, const Pool2dShape& shape, const float* x, float* y,
                        std::int32_t* indices = nullptr);
// dx [N x C x H x W]: each dy routed to its window's argmax (a sum where windows overlap).
void max_pool2d_backward(const Context& ctx, const Pool2dShape& shape, const float* dy,
                         const std::int32_t* indices, float* dx);

struct AvgPoolOptions {
  bool count_include_pad = true;  // divide by kernel_h kernel_w (PyTorch's default), else by
                                  // the window's in-range count
};
void avg_pool2d_forward(const Context& ctx, const Pool2dShape& shape, const float* x, float* y,
                        const AvgPoolOptions& opts = {});
// dx: each dy spread evenly (1 / divisor) over its window.
void avg_pool2d_backward(const Context& ctx, const Pool2dShape& shape, const float* dy, float* dx,
                         const AvgPoolOptions& opts = {});

// ---- the residual block (4.4) ----------------------------------------------------------------

struct ResidualBlockOptions {
  std::int64_t channels = 64;  // C: x and y are [N x C x H x W]
  // F = conv1 (3x3, stride 1, padding 1, no bias: BN's beta is the bias) -> bn1 -> ReLU ->
  // conv2 (likewise) -> bn2; out = x + F(x), and with relu_after_sum out = ReLU(x + F(x)) (He
  // et al. 2016's original block).
  bool relu_after_sum = false;
  float momentum = 0.1f, eps = 1e-5f;  // both batch norms'
  ConvMath math = ConvMath::TF32;
};

// One parameter tensor: `param` and `grad` point into the block's flat buffers.
struct ConvParam {
  std::string name;  // PyTorch's state_dict names: conv1.weight, bn1.weight, bn1.bias, ...
  float* param = nullptr;
  float* grad = nullptr;
  std::int64_t size = 0;
  std::vector<std::int64_t> shape;
};

// What ResidualBlock::forward keeps for backward (conv1's and conv2's outputs, the ReLU's
// output, the batch statistics) and backward's scratch, on the block's device. Sized on first
// use and grown only when a larger input comes. One workspace per forward/backward pair.
class ResidualBlockWorkspace {
 public:
  ResidualBlockWorkspace() = default;
  std::int64_t batch() const { return batch_; }  // of the forward it holds (0: none)

 private:
  friend class ResidualBlock;
  std::uint64_t owner_ = 0;
  std::int64_t batch_ = 0, height_ = 0, width_ = 0, capacity_ = 0;
  bool training_ = true;
  const float* x_ = nullptr;
  Buffer<float> z1_, a1_, z2_, g1_, g2_, stats_, conv_scratch_;
  Buffer<double> channel_scratch_;
};

class ResidualBlock {
 public:
  // Validates the options and allocates parameters, gradients and running statistics on ctx's
  // device: conv weights and gradients 0, gamma 1, beta 0, running mean 0, running var 1.
  ResidualBlock(const Context& ctx, ResidualBlockOptions opts);

  const Context& context() const { return ctx_; }
  const ResidualBlockOptions& options() const { return opts_; }
  std::int64_t channels() const { return opts_.channels; }

  // Flat buffers, in the order of parameter_list(): conv1.weight [C x C x 3 x 3], bn1.weight,
  // bn1.bias [C], conv2.weight, bn2.weight, bn2.bias.
  std::int64_t parameter_count() const { return static_cast<std::int64_t>(params_.size()); }
  float* parameters() { return params_.data(); }
  const float* parameters() const { return params_.data(); }
  float* gradients() { return grads_.data(); }
  const float* gradients() const { return grads_.data(); }
  std::vector<ConvParam> parameter_list();
  // bn1.running_mean, bn1.running_var, bn2.running_mean, bn2.running_var, [C] each.
  float* running_stats() { return running_.data(); }
  const float* running_stats() const { return running_.data(); }

  // Conv weights as PyTorch's default (kaiming_uniform_(a = sqrt(5)): U(-1/sqrt(9C), 1/sqrt(9C)),
  // genai::init_linear's PyTorchDefault with layers 0 and 1 of `seed`); gamma 1, beta 0,
  // running mean 0, running var 1.
  void init(std::uint64_t seed);
  void zero_grad();

  // Training mode (the default) normalises with batch statistics and updates the running
  // ones; evaluation mode uses the running ones.
  void train(bool on = true) { training_ = on; }
  bool training() const { return training_; }

  // y [N x C x H x W] from x (same shape). ws keeps a pointer to x: x must stay unchanged until
  // backward (as autograd saves its inputs). y must not overlap x.
  void forward(ResidualBlockWorkspace& ws, const float* x, std::int64_t batch, std::int64_t height,
               std::int64_t width, float* y);
  // From dy = dL/dy of the forward that filled ws: every parameter's gradient into gradients()
  // (= or, with accumulate, +=) and, when dx is not null, dL/dx (the identity's dy plus F's).
  void backward(ResidualBlockWorkspace& ws, const float* dy, float* dx, bool accumulate = false);

 private:
  Context ctx_;
  ResidualBlockOptions opts_;
  bool training_ = true;
  std::uint64_t id_ = 0;
  Buffer<float> params_, grads_, running_;
};

// ---- receptive fields (4.1) ------------------------------------------------------------------

// One layer of a stack, along one axis (square kernels: the same along both).
struct FieldLayer {
  enum class Kind { Conv, MaxPool, AvgPool } kind = Kind::Conv;
  std::int64_t kernel = 3, stride = 1, padding = 0, dilation = 1;
};

// After each layer: the receptive field of one output (input pixels along the axis), the jump
// (input pixels between neighbouring outputs), and where the first output's field starts in
// input coordinates (negative: it reaches into the padding). With r_0 = 1, j_0 = 1, s_0 = 0:
//   r_l = r_{l-1} + (d (k - 1)) j_{l-1},  j_l = j_{l-1} s,  s_l = s_{l-1} - p j_{l-1}
struct FieldStep {
  std::int64_t size, jump, start;
};
std::vector<FieldStep> receptive_field(const std::vector<FieldLayer>& layers);

// "conv3,conv3,maxpool2,conv3": conv<k>, maxpool<k>, avgpool<k>, each optionally followed by
// s<stride>, p<padding>, d<dilation> (conv3s2p1d2). A conv's stride defaults to 1, a pool's to
// its kernel; padding to 0, dilation to 1. Bad text is an ArgumentError naming the layer.
std::vector<FieldLayer> parse_field_layers(const std::string& spec);
// The inverse, one layer: "conv3", "maxpool2", "conv3s2p1d2" (defaults left out).
std::string to_string(const FieldLayer& layer);

}  // namespace genai
