// genai conv module: convolution, batch norm, pools, the residual block and receptive fields --
// argument checks, then the CPU backend (cpu_reference/conv.cpp) or the GPU one
// (kernels/conv.cu).
#include "genai/conv.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <climits>
#include <cmath>

#include "cpu_reference/conv.hpp"
#include "genai/nn.hpp"
#include "genai/nvtx.hpp"
#if GENAI_WITH_CUDA
#include "kernels/conv.cuh"
#endif

namespace genai {
namespace {

constexpr std::int64_t kMaxElements = std::int64_t{1} << 31;  // exclusive, per tensor
constexpr std::int64_t kMaxExtent = std::int64_t{1} << 28;    // exclusive, per spatial size

std::atomic<std::uint64_t> next_block_id{1};

// ---- dispatch --------------------------------------------------------------------------------

// The scratch a GPU call needs (none on the CPU): split-K partial sums of a weight gradient
// (floats), per-channel partial sums (doubles).
std::size_t conv_scratch_floats(const Context& ctx, const detail::ConvGeometry& g) {
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::conv_weight_scratch_floats(ctx, g);
#endif
  (void)ctx, (void)g;
  return 0;
}
std::size_t channel_scratch_doubles(const Context& ctx, std::int64_t N, std::int64_t C) {
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::channel_scratch_doubles(N, C);
#endif
  (void)ctx, (void)N, (void)C;
  return 0;
}
template <class T>
void grow(const Context& ctx, Buffer<T>& b, std::size_t n) {
  if (b.size() < n) b = Buffer<T>(ctx, n);
}

// One call's scratch.
struct Scratch {
  Buffer<float> conv;
  Buffer<double> channel;
  Scratch(const Context& ctx, const detail::ConvGeometry* g, std::int64_t N, std::int64_t C) {
    if (g) grow(ctx, conv, conv_scratch_floats(ctx, *g));
    grow(ctx, channel, channel_scratch_doubles(ctx, N, C));
  }
};

// op on ctx's backend; the scratch goes to the GPU's.
template <class Op, class... GpuScratch>
void execute_on(const Context& ctx, const Op& op, GpuScratch... scratch) {
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::execute(ctx, op, scratch...);
#endif
  (void)ctx;
  ((void)scratch, ...);
  ref::execute(op);
}

// ---- checks ----------------------------------------------------------------------------------

void require_extent(const char* fn, const char* arg, std::int64_t v, std::int64_t lo) {
  detail::require_at_least(fn, arg, v, lo);
  if (v >= kMaxExtent) detail::throw_argument(fn, arg, "must be < 2^28 (got ", v, ")");
}

void require_elements(const char* fn, const char* what, std::int64_t a, std::int64_t b,
                      std::int64_t c, std::int64_t d) {
  // a b c d < 2^31, each factor already < 2^28 and >= 0
  const double n = static_cast<double>(a) * b * c * d;
  if (n >= static_cast<double>(kMaxElements))
    detail::throw_argument(fn, what, "has ", n, " elements (", a, " x ", b, " x ", c, " x ", d,
                           "), more than 2^31 - 1");
}

detail::ConvMathKind math_kind(const char* fn, const char* arg, ConvMath m) {
  switch (m) {
    case ConvMath::TF32: return detail::ConvMathKind::TF32;
    case ConvMath::FP32: return detail::ConvMathKind::FP32;
  }
  detail::throw_argument(fn, arg, "is not a ConvMath (value ", static_cast<int>(m), ")");
}

// Checks a convolution shape and returns its geometry.
detail::ConvGeometry conv_geometry(const char* fn, const Conv2dShape& s) {
  require_extent(fn, "shape.batch", s.batch, 0);
  require_extent(fn, "shape.in_channels", s.in_channels, 1);
  require_extent(fn, "shape.height", s.height, 1);
  require_extent(fn, "shape.width", s.width, 1);
  require_extent(fn, "shape.out_channels", s.out_channels, 1);
  require_extent(fn, "shape.kernel_h", s.kernel_h, 1);
  require_extent(fn, "shape.kernel_w", s.kernel_w, 1);
  require_extent(fn, "shape.stride_h", s.stride_h, 1);
  require_extent(fn, "shape.stride_w", s.stride_w, 1);
  require_extent(fn, "shape.pad_h", s.pad_h, 0);
  require_extent(fn, "shape.pad_w", s.pad_w, 0);
  require_extent(fn, "shape.dilation_h", s.dilation_h, 1);
  require_extent(fn, "shape.dilation_w", s.dilation_w, 1);
  if (s.dilation_h * (s.kernel_h - 1) >= kMaxExtent || s.dilation_w * (s.kernel_w - 1) >= kMaxExtent)
    detail::throw_argument(fn, "shape", "has a dilated kernel of 2^28 or more");
  const std::int64_t P = s.out_height(), Q = s.out_width();
  if (P < 1 || Q < 1)
    detail::throw_argument(fn, "shape", "has no output: the dilated ", s.kernel_h, " x ",
                           s.kernel_w, " kernel does not fit the padded ", s.height, " x ", s.width,
                           " input");
  require_elements(fn, "x", s.batch, s.in_channels, s.height, s.width);
  require_elements(fn, "y", s.batch, s.out_channels, P, Q);
  require_elements(fn, "W", s.out_channels, s.in_channels, s.kernel_h, s.kernel_w);
  auto i = [](std::int64_t v) { return static_cast<int>(v); };
  return {i(s.batch),  i(s.in_channels), i(s.height),   i(s.width),    i(s.out_channels),
          i(s.kernel_h), i(s.kernel_w),  i(P),          i(Q),          i(s.stride_h),
          i(s.stride_w), i(s.pad_h),     i(s.pad_w),    i(s.dilation_h), i(s.dilation_w)};
}

void check_bn(const char* fn, const BatchNormShape& s) {
  detail::require_at_least(fn, "shape.batch", s.batch, 0);
  detail::require_at_least(fn, "shape.channels", s.channels, 1);
  detail::require_at_least(fn, "shape.spatial", s.spatial, 1);
}

void zero_unless(const Context& ctx, float* p, std::int64_t n, bool accumulate) {
  if (p && !accumulate) detail::fill_bytes(ctx, p, ctx.device(), 0, n * sizeof(float));
}

detail::PoolGeometry pool_geometry(const char* fn, const Pool2dShape& s) {
  require_extent(fn, "shape.batch", s.batch, 0);
  require_extent(fn, "shape.channels", s.channels, 1);
  require_extent(fn, "shape.height", s.height, 1);
  require_extent(fn, "shape.width", s.width, 1);
  require_extent(fn, "shape.kernel_h", s.kernel_h, 1);
  require_extent(fn, "shape.kernel_w", s.kernel_w, 1);
  require_extent(fn, "shape.stride_h", s.stride_h, 0);
  require_extent(fn, "shape.stride_w", s.stride_w, 0);
  require_extent(fn, "shape.pad_h", s.pad_h, 0);
  require_extent(fn, "shape.pad_w", s.pad_w, 0);
  if (s.pad_h > s.kernel_h / 2)
    detail::throw_argument(fn, "shape.pad_h", "must be <= kernel_h / 2 = ", s.kernel_h / 2,
                           " (got ", s.pad_h, ")");
  if (s.pad_w > s.kernel_w / 2)
    detail::throw_argument(fn, "shape.pad_w", "must be <= kernel_w / 2 = ", s.kernel_w / 2,
                           " (got ", s.pad_w, ")");
  const std::int64_t P = s.out_height(), Q = s.out_width();
  if (P < 1 || Q < 1)
    detail::throw_argument(fn, "shape", "has no output: the ", s.kernel_h, " x ", s.kernel_w,
                           " window does not fit the padded ", s.height, " x ", s.width, " input");
  require_elements(fn, "x plane", 1, 1, s.height, s.width);
  auto i = [](std::int64_t v) { return static_cast<int>(v); };
  return {s.batch, s.channels, s.height, s.width, P, Q, i(s.kernel_h), i(s.kernel_w),
          i(s.stride_h > 0 ? s.stride_h : s.kernel_h), i(s.stride_w > 0 ? s.stride_w : s.kernel_w),
          i(s.pad_h), i(s.pad_w)};
}

}  // namespace

// ---- convolution -----------------------------------------------------------------------------

void conv2d_forward(const Context& ctx, const Conv2dShape& shape, const float* x, const float* W,
                    const float* b, float* y, const Conv2dOptions& opts) {
  constexpr const char* fn = "genai::conv2d_forward";
  GENAI_NVTX_RANGE(fn);
  const detail::ConvGeometry g = conv_geometry(fn, shape);
  const detail::ConvMathKind math = math_kind(fn, "opts.math", opts.math);
  detail::require_not_null(fn, "W", W);
  if (g.N == 0) return;
  detail::require_not_null(fn, "x", x);
  detail::require_not_null(fn, "y", y);
  if (y == x) detail::throw_argument(fn, "y", "must not be x");
  execute_on(ctx, detail::ConvForward{g, x, W, b, y, math});
}

void conv2d_backward(const Context& ctx, const Conv2dShape& shape, const float* x, const float* W,
                     const float* dy, float* dx, float* dW, float* db,
                     const Conv2dBackwardOptions& opts) {
  constexpr const char* fn = "genai::conv2d_backward";
  GENAI_NVTX_RANGE(fn);
  const detail::ConvGeometry g = conv_geometry(fn, shape);
  const detail::ConvMathKind math = math_kind(fn, "opts.math", opts.math);
  if (dx) detail::require_not_null(fn, "W", W);
  if (g.N == 0) {  // the sums over no images
    zero_unless(ctx, dW, static_cast<std::int64_t>(g.K) * g.C * g.R * g.S, opts.accumulate);
    zero_unless(ctx, db, g.K, opts.accumulate);
    return;
  }
  detail::require_not_null(fn, "dy", dy);
  if (dW) detail::require_not_null(fn, "x", x);
  if (dW || db) {
    Scratch s(ctx, dW ? &g : nullptr, g.N, g.K);
    execute_on(ctx, detail::ConvBackwardWeight{g, x, dy, dW, db, opts.accumulate, math}, s.conv.data(),
        s.channel.data());
  }
  if (dx) execute_on(ctx, detail::ConvBackwardData{g, dy, W, dx, false, math});
}

// ---- batch normalisation ---------------------------------------------------------------------

void batch_norm_forward(const Context& ctx, const BatchNormShape& shape, const float* x,
                        const float* gamma, const float* beta, float* running_mean,
                        float* running_var, float* y, const BatchNormOptions& opts) {
  constexpr const char* fn = "genai::batch_norm_forward";
  GENAI_NVTX_RANGE(fn);
  check_bn(fn, shape);
  if (!(opts.momentum >= 0.0f && opts.momentum <= 1.0f))
    detail::throw_argument(fn, "opts.momentum", "must be in [0, 1] (got ", opts.momentum, ")");
  if (!(std::isfinite(opts.eps) && opts.eps > 0.0f))
    detail::throw_argument(fn, "opts.eps", "must be finite and > 0 (got ", opts.eps, ")");
  if (!opts.training) {
    detail::require_not_null(fn, "running_mean", running_mean);
    detail::require_not_null(fn, "running_var", running_var);
  } else if ((running_mean == nullptr) != (running_var == nullptr)) {
    detail::throw_argument(fn, running_mean ? "running_var" : "running_mean",
                           "must be given with the other running statistic");
  }
  const std::int64_t N = shape.batch, C = shape.channels, L = shape.spatial;
  if (opts.training && N * L < 2)
    detail::throw_argument(fn, "shape", "has ", N * L,
                           " value(s) per channel: training needs more than 1");
  if (N == 0) return;
  detail::require_not_null(fn, "x", x);
  detail::require_not_null(fn, "y", y);
  Buffer<float> own;
  float* mean = opts.save_mean;
  float* invstd = opts.save_invstd;
  if (!mean || !invstd) {
    own = Buffer<float>(ctx, 2 * C);
    if (!mean) mean = own.data();
    if (!invstd) invstd = own.data() + C;
  }
  Scratch s(ctx, nullptr, N, C);
  execute_on(ctx, detail::BnStats{N, C, L, x, opts.training, opts.momentum, opts.eps, running_mean,
                           running_var, mean, invstd},
      s.channel.data());
  execute_on(ctx, detail::BnApply{N, C, L, x, mean, invstd, gamma, beta, nullptr, false, y});
}

void batch_norm_backward(const Context& ctx, const BatchNormShape& shape, const float* x,
                         const float* gamma, const float* save_mean, const float* save_invstd,
                         const float* dy, float* dx, float* dgamma, float* dbeta,
                         const BatchNormBackwardOptions& opts) {
  constexpr const char* fn = "genai::batch_norm_backward";
  GENAI_NVTX_RANGE(fn);
  check_bn(fn, shape);
  const std::int64_t N = shape.batch, C = shape.channels, L = shape.spatial;
  if (N == 0) {
    zero_unless(ctx, dgamma, C, opts.accumulate);
    zero_unless(ctx, dbeta, C, opts.accumulate);
    return;
  }
  if (!dx && !dgamma && !dbeta) return;
  detail::require_not_null(fn, "x", x);
  detail::require_not_null(fn, "save_mean", save_mean);
  detail::require_not_null(fn, "save_invstd", save_invstd);
  detail::require_not_null(fn, "dy", dy);
  Scratch s(ctx, nullptr, N, C);
  execute_on(ctx,
      detail::BnBackward{N, C, L, dy, nullptr, nullptr, nullptr, x, save_mean, save_invstd, gamma,
                         opts.training, dx, nullptr, dgamma, dbeta, opts.accumulate},
      s.channel.data());
}

// ---- pools -----------------------------------------------------------------------------------

void max_pool2d_forward(const Context& ctx, const Pool2dShape& shape, const float* x, float* y,
                        std::int32_t* indices) {
  constexpr const char* fn = "genai::max_pool2d_forward";
  GENAI_NVTX_RANGE(fn);
  const detail::PoolGeometry g = pool_geometry(fn, shape);
  if (g.N == 0) return;
  detail::require_not_null(fn, "x", x);
  detail::require_not_null(fn, "y", y);
  execute_on(ctx, detail::MaxPoolForward{g, x, y, indices});
}

void max_pool2d_backward(const Context& ctx, const Pool2dShape& shape, const float* dy,
                         const std::int32_t* indices, float* dx) {
  constexpr const char* fn = "genai::max_pool2d_backward";
  GENAI_NVTX_RANGE(fn);
  const detail::PoolGeometry g = pool_geometry(fn, shape);
  if (g.N == 0) return;
  detail::require_not_null(fn, "dy", dy);
  detail::require_not_null(fn, "indices", indices);
  detail::require_not_null(fn, "dx", dx);
  execute_on(ctx, detail::MaxPoolBackward{g, dy, indices, dx});
}

void avg_pool2d_forward(const Context& ctx, const Pool2dShape& shape, const float* x, float* y,
                        const AvgPoolOptions& opts) {
  constexpr const char* fn = "genai::avg_pool2d_forward";
  GENAI_NVTX_RANGE(fn);
  const detail::PoolGeometry g = pool_geometry(fn, shape);
  if (g.N == 0) return;
  detail::require_not_null(fn, "x", x);
  detail::require_not_null(fn, "y", y);
  execute_on(ctx, detail::AvgPool{g, x, y, opts.count_include_pad, false});
}

void avg_pool2d_backward(const Context& ctx, const Pool2dShape& shape, const float* dy, float* dx,
                         const AvgPoolOptions& opts) {
  constexpr const char* fn = "genai::avg_pool2d_backward";
  GENAI_NVTX_RANGE(fn);
  const detail::PoolGeometry g = pool_geometry(fn, shape);
  if (g.N == 0) return;
  detail::require_not_null(fn, "dy", dy);
  detail::require_not_null(fn, "dx", dx);
  execute_on(ctx, detail::AvgPool{g, dy, dx, opts.count_include_pad, true});
}

// ---- the residual block ----------------------------------------------------------------------

namespace {

// Offsets in the flat parameter buffer: conv1.weight, bn1.weight, bn1.bias, conv2.weight,
// bn2.weight, bn2.bias.
struct BlockLayout {
  std::int64_t w1, g1, b1, w2, g2, b2, total;
  explicit BlockLayout(std::int64_t C)
      : w1(0), g1(9 * C * C), b1(g1 + C), w2(b1 + C), g2(w2 + 9 * C * C), b2(g2 + C),
        total(b2 + C) {}
};

detail::ConvGeometry block_geometry(std::int64_t N, std::int64_t C, std::int64_t H,
                                    std::int64_t W) {
  auto i = [](std::int64_t v) { return static_cast<int>(v); };
  return {i(N), i(C), i(H), i(W), i(C), 3, 3, i(H), i(W), 1, 1, 1, 1, 1, 1};
}

// gamma 1, beta 0 for both norms (conv weights untouched).
void reset_norms(const Context& ctx, float* params, std::int64_t C) {
  const BlockLayout l(C);
  const std::vector<float> ones(C, 1.0f);
  for (const std::int64_t at : {l.g1, l.g2}) {
    detail::copy_bytes(ctx, params + at, ctx.device(), ones.data(), Device::CPU, C * sizeof(float));
    detail::fill_bytes(ctx, params + at + C, ctx.device(), 0, C * sizeof(float));
  }
}

// Running statistics: mean 0, var 1.
void reset_running(const Context& ctx, float* running, std::int64_t C) {
  std::vector<float> r(4 * C, 0.0f);
  std::fill(r.begin() + C, r.begin() + 2 * C, 1.0f);
  std::fill(r.begin() + 3 * C, r.end(), 1.0f);
  detail::copy_bytes(ctx, running, ctx.device(), r.data(), Device::CPU, r.size() * sizeof(float));
}

}  // namespace

ResidualBlock::ResidualBlock(const Context& ctx, ResidualBlockOptions opts)
    : ctx_(ctx), opts_(opts), id_(next_block_id++) {
  constexpr const char* fn = "genai::ResidualBlock";
  require_extent(fn, "opts.channels", opts_.channels, 1);
  require_elements(fn, "conv weight", opts_.channels, opts_.channels, 3, 3);
  math_kind(fn, "opts.math", opts_.math);
  if (!(opts_.momentum >= 0.0f && opts_.momentum <= 1.0f))
    detail::throw_argument(fn, "opts.momentum", "must be in [0, 1] (got ", opts_.momentum, ")");
  if (!(std::isfinite(opts_.eps) && opts_.eps > 0.0f))
    detail::throw_argument(fn, "opts.eps", "must be finite and > 0 (got ", opts_.eps, ")");
  const std::int64_t C = opts_.channels;
  const BlockLayout l(C);
  params_ = Buffer<float>(ctx_, l.total);
  grads_ = Buffer<float>(ctx_, l.total);
  running_ = Buffer<float>(ctx_, 4 * C);
  params_.fill_bytes(0);
  grads_.fill_bytes(0);
  reset_norms(ctx_, params_.data(), C);
  reset_running(ctx_, running_.data(), C);
}

std::vector<ConvParam> ResidualBlock::parameter_list() {
  const std::int64_t C = opts_.channels;
  const BlockLayout l(C);
  std::vector<ConvParam> list;
  auto add = [&](const char* name, std::int64_t at, std::vector<std::int64_t> shape) {
    std::int64_t size = 1;
    for (const std::int64_t d : shape) size *= d;
    list.push_back({name, params_.data() + at, grads_.data() + at, size, std::move(shape)});
  };
  add("conv1.weight", l.w1, {C, C, 3, 3});
  add("bn1.weight", l.g1, {C});
  add("bn1.bias", l.b1, {C});
  add("conv2.weight", l.w2, {C, C, 3, 3});
  add("bn2.weight", l.g2, {C});
  add("bn2.bias", l.b2, {C});
  return list;
}

void ResidualBlock::init(std::uint64_t seed) {
  const std::int64_t C = opts_.channels;
  const BlockLayout l(C);
  init_linear(ctx_, C, 9 * C, params_.data() + l.w1, nullptr, Init::PyTorchDefault, seed, 0);
  init_linear(ctx_, C, 9 * C, params_.data() + l.w2, nullptr, Init::PyTorchDefault, seed, 1);
  reset_norms(ctx_, params_.data(), C);
  reset_running(ctx_, running_.data(), C);
}

void ResidualBlock::zero_grad() { grads_.fill_bytes(0); }

void ResidualBlock::forward(ResidualBlockWorkspace& ws, const float* x, std::int64_t batch,
                            std::int64_t height, std::int64_t width, float* y) {
  constexpr const char* fn = "genai::ResidualBlock::forward";
  GENAI_NVTX_RANGE(fn);
  const std::int64_t C = opts_.channels;
  require_extent(fn, "batch", batch, 1);
  require_extent(fn, "height", height, 1);
  require_extent(fn, "width", width, 1);
  require_elements(fn, "x", batch, C, height, width);
  if (training_ && batch * height * width < 2)
    detail::throw_argument(fn, "x", "has 1 value per channel: training needs more than 1");
  detail::require_not_null(fn, "x", x);
  detail::require_not_null(fn, "y", y);
  if (y == x) detail::throw_argument(fn, "y", "must not be x");

  const detail::ConvGeometry g = block_geometry(batch, C, height, width);
  const std::int64_t n = batch * C * height * width, L = height * width;
  if (ws.owner_ != id_ || ws.capacity_ < n) {
    ws = ResidualBlockWorkspace();
    for (Buffer<float>* b : {&ws.z1_, &ws.a1_, &ws.z2_, &ws.g1_, &ws.g2_})
      *b = Buffer<float>(ctx_, n);
    ws.stats_ = Buffer<float>(ctx_, 4 * C);
    ws.capacity_ = n;
    ws.owner_ = id_;
  }
  grow(ctx_, ws.conv_scratch_, conv_scratch_floats(ctx_, g));
  grow(ctx_, ws.channel_scratch_, channel_scratch_doubles(ctx_, batch, C));
  ws.batch_ = batch, ws.height_ = height, ws.width_ = width;
  ws.training_ = training_;
  ws.x_ = x;

  const BlockLayout l(C);
  const float* P = params_.data();
  float* R = running_.data();
  float* S = ws.stats_.data();  // mean1, invstd1, mean2, invstd2
  const detail::ConvMathKind math = math_kind(fn, "options().math", opts_.math);
  const float mom = opts_.momentum, eps = opts_.eps;
  double* cs = ws.channel_scratch_.data();
  execute_on(ctx_, detail::ConvForward{g, x, P + l.w1, nullptr, ws.z1_.data(), math});
  execute_on(ctx_, detail::BnStats{batch, C, L, ws.z1_.data(), training_, mom, eps, R, R + C, S, S + C}, cs);
  execute_on(ctx_, detail::BnApply{batch, C, L, ws.z1_.data(), S, S + C, P + l.g1, P + l.b1, nullptr, true,
                            ws.a1_.data()});
  execute_on(ctx_, detail::ConvForward{g, ws.a1_.data(), P + l.w2, nullptr, ws.z2_.data(), math});
  execute_on(ctx_, detail::BnStats{batch, C, L, ws.z2_.data(), training_, mom, eps, R + 2 * C, R + 3 * C,
                            S + 2 * C, S + 3 * C},
      cs);
  execute_on(ctx_, detail::BnApply{batch, C, L, ws.z2_.data(), S + 2 * C, S + 3 * C, P + l.g2, P + l.b2, x,
                            opts_.relu_after_sum, y});
}

void ResidualBlock::backward(ResidualBlockWorkspace& ws, const float* dy, float* dx,
                             bool accumulate) {
  constexpr const char* fn = "genai::ResidualBlock::backward";
  GENAI_NVTX_RANGE(fn);
  if (ws.owner_ != id_ || ws.batch_ == 0)
    detail::throw_argument(fn, "ws", "holds no forward of this block");
  detail::require_not_null(fn, "dy", dy);
  const std::int64_t C = opts_.channels, N = ws.batch_, L = ws.height_ * ws.width_;
  const detail::ConvGeometry g = block_geometry(N, C, ws.height_, ws.width_);
  const BlockLayout l(C);
  const float* P = params_.data();
  float* G = grads_.data();
  const float* S = ws.stats_.data();
  const detail::ConvMathKind math = math_kind(fn, "options().math", opts_.math);
  const bool t = ws.training_;
  float* dz2 = ws.g2_.data();
  float* dz1 = ws.g1_.data();  // first dL/da1, then dL/dz1 in place
  float* cv = ws.conv_scratch_.data();
  double* cs = ws.channel_scratch_.data();
  // out = x + bn2(z2) (then ReLU): dL/dx gets the (gated) dy itself; bn2 backward gives dz2.
  execute_on(ctx_,
      detail::BnBackward{N, C, L, dy, nullptr, opts_.relu_after_sum ? ws.x_ : nullptr, P + l.b2,
                         ws.z2_.data(), S + 2 * C, S + 3 * C, P + l.g2, t, dz2, dx, G + l.g2,
                         G + l.b2, accumulate},
      cs);
  execute_on(ctx_, detail::ConvBackwardWeight{g, ws.a1_.data(), dz2, G + l.w2, nullptr, accumulate, math},
      cv, cs);
  execute_on(ctx_, detail::ConvBackwardData{g, dz2, P + l.w2, dz1, false, math});
  // a1 = ReLU(bn1(z1)): the gate is a1 > 0.
  execute_on(ctx_,
      detail::BnBackward{N, C, L, dz1, ws.a1_.data(), nullptr, nullptr, ws.z1_.data(), S, S + C,
                         P + l.g1, t, dz1, nullptr, G + l.g1, G + l.b1, accumulate},
      cs);
  execute_on(ctx_, detail::ConvBackwardWeight{g, ws.x_, dz1, G + l.w1, nullptr, accumulate, math}, cv, cs);
  if (dx) execute_on(ctx_, detail::ConvBackwardData{g, dz1, P + l.w1, dx, true, math});
}

// ---- receptive fields ------------------------------------------------------------------------

std::vector<FieldStep> receptive_field(const std::vector<FieldLayer>& layers) {
  constexpr const char* fn = "genai::receptive_field";
  std::vector<FieldStep> steps;
  std::int64_t size = 1, jump = 1, start = 0;
  for (const FieldLayer& f : layers) {
    const std::string at = "layers[" + std::to_string(steps.size()) + "]";
    if (f.kind != FieldLayer::Kind::Conv && f.kind != FieldLayer::Kind::MaxPool &&
        f.kind != FieldLayer::Kind::AvgPool)
      detail::throw_argument(fn, at.c_str(), "has an unknown kind (value ",
                             static_cast<int>(f.kind), ")");
    require_extent(fn, (at + ".kernel").c_str(), f.kernel, 1);
    require_extent(fn, (at + ".stride").c_str(), f.stride, 1);
    require_extent(fn, (at + ".padding").c_str(), f.padding, 0);
    require_extent(fn, (at + ".dilation").c_str(), f.dilation, 1);
    const double next = static_cast<double>(size) + static_cast<double>(f.dilation) *
                                                        static_cast<double>(f.kernel - 1) * jump;
    if (next >= static_cast<double>(INT64_MAX / 4) ||
        static_cast<double>(jump) * f.stride >= static_cast<double>(INT64_MAX / 4))
      detail::throw_argument(fn, at.c_str(), "makes the field overflow");
    start -= f.padding * jump;
    size += f.dilation * (f.kernel - 1) * jump;
    jump *= f.stride;
    steps.push_back({size, jump, start});
  }
  return steps;
}

std::vector<FieldLayer> parse_field_layers(const std::string& spec) {
  constexpr const char* fn = "genai::parse_field_layers";
  std::vector<FieldLayer> layers;
  std::size_t pos = 0;
  while (pos <= spec.size()) {
    const std::size_t end = std::min(spec.find(',', pos), spec.size());
    std::string tok = spec.substr(pos, end - pos);
    tok.erase(std::remove_if(tok.begin(), tok.end(), [](unsigned char c) { return std::isspace(c); }),
              tok.end());
    std::transform(tok.begin(), tok.end(), tok.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    auto bad = [&](const std::string& why) {
      detail::throw_argument(fn, "spec", "layer ", layers.size() + 1, " '", tok, "': ", why,
                             " (layers: conv<k>, maxpool<k>, avgpool<k>, each with optional "
                             "s<stride> p<padding> d<dilation>, e.g. conv3,conv3,maxpool2,conv3)");
    };
    FieldLayer f;
    std::size_t i = 0;
    for (const auto& [name, kind] : {std::pair{"conv", FieldLayer::Kind::Conv},
                                     std::pair{"maxpool", FieldLayer::Kind::MaxPool},
                                     std::pair{"avgpool", FieldLayer::Kind::AvgPool}}) {
      const std::string n = name;
      if (tok.compare(0, n.size(), n) == 0) {
        f.kind = kind;
        i = n.size();
        break;
      }
    }
    if (i == 0) bad("unknown layer");
    auto number = [&](const char* what) {
      std::size_t j = i;
      while (j < tok.size() && std::isdigit(static_cast<unsigned char>(tok[j]))) ++j;
      if (j == i || j - i > 9) bad(std::string("expected a number for the ") + what);
      const std::int64_t v = std::stoll(tok.substr(i, j - i));
      i = j;
      return v;
    };
    f.kernel = number("kernel");
    f.stride = f.kind == FieldLayer::Kind::Conv ? 1 : f.kernel;
    bool seen[3] = {false, false, false};
    while (i < tok.size()) {
      const char key = tok[i++];
      const int slot = key == 's' ? 0 : key == 'p' ? 1 : key == 'd' ? 2 : -1;
      if (slot < 0) bad(std::string("unexpected '") + key + "'");
      if (seen[slot]) bad(std::string("'") + key + "' given twice");
      seen[slot] = true;
      const std::int64_t v = number(slot == 0 ? "stride" : slot == 1 ? "padding" : "dilation");
      (slot == 0 ? f.stride : slot == 1 ? f.padding : f.dilation) = v;
    }
    if (f.kernel < 1 || f.stride < 1 || f.dilation < 1) bad("kernel, stride and dilation must be >= 1");
    layers.push_back(f);
    pos = end + 1;
  }
  return layers;
}

std::string to_string(const FieldLayer& f) {
  const bool conv = f.kind == FieldLayer::Kind::Conv;
  std::string s = conv ? "conv" : f.kind == FieldLayer::Kind::MaxPool ? "maxpool" : "avgpool";
  s += std::to_string(f.kernel);
  auto add = [&s](char key, std::int64_t v) {
    s += key;
    s += std::to_string(v);
  };
  if (f.stride != (conv ? 1 : f.kernel)) add('s', f.stride);
  if (f.padding != 0) add('p', f.padding);
  if (f.dilation != 1) add('d', f.dilation);
  return s;
}

}  // namespace genai
