// genai nn module: activations, time embedding, linear layers, initialisation -- argument
// checks, then the CPU backend (cpu_reference/nn.cpp) or the GPU one (kernels/nn.cu).
#include "genai/nn.hpp"

#include <climits>
#include <cmath>

#include "cpu_reference/nn.hpp"
#include "genai/nvtx.hpp"
#include "genai/rng.hpp"
#include "host/src/nn_internal.hpp"
#if GENAI_WITH_CUDA
#include "kernels/nn.cuh"
#endif

namespace genai {

namespace detail {

void run_embed_input(const Context& ctx, const EmbedInput& op) {
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::embed_input(ctx, op);
#endif
  (void)ctx;
  ref::embed_input(op);
}

void run_dense_forward(const Context& ctx, const DenseForward& op, const GemmEnv& env) {
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::dense_forward(ctx, op, env);
#endif
  (void)ctx, (void)env;
  ref::dense_forward(op);
}

void run_dense_backward_weight(const Context& ctx, const DenseBackwardWeight& op,
                               const GemmEnv& env) {
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::dense_backward_weight(ctx, op, env);
#endif
  (void)ctx, (void)env;
  ref::dense_backward_weight(op);
}

void run_dense_backward_input(const Context& ctx, const DenseBackwardInput& op,
                              const GemmEnv& env) {
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::dense_backward_input(ctx, op, env);
#endif
  (void)ctx, (void)env;
  ref::dense_backward_input(op);
}

void run_activation_backward(const Context& ctx, Activation act, const float* z, const float* dy,
                             std::int64_t n, float* dz) {
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::activation_backward(ctx, act, z, dy, n, dz);
#endif
  (void)ctx;
  ref::activation_backward(act, z, dy, n, dz);
}

void run_add_into(const Context& ctx, float* dst, const float* src, std::int64_t n) {
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::add_into(ctx, dst, src, n);
#endif
  (void)ctx;
  ref::add_into(dst, src, n);
}

void require_activation(const char* fn, const char* arg, Activation a) {
  const int v = static_cast<int>(a);
  if (v < static_cast<int>(Activation::None) || v > static_cast<int>(Activation::Tanh))
    throw_argument(fn, arg, "is not an Activation (value ", v, ")");
}

void require_time_embedding(const char* fn, std::int64_t dim, const TimeEmbeddingOptions& o) {
  if (!(std::isfinite(o.max_period) && o.max_period > 0.0f))
    throw_argument(fn, "opts.max_period", "must be finite and > 0 (got ", o.max_period, ")");
  if (!std::isfinite(o.scale)) throw_argument(fn, "opts.scale", "must be finite (got ", o.scale, ")");
  const std::int64_t half = dim / 2;
  if (!std::isfinite(o.downscale_freq_shift) ||
      (half > 0 && !(static_cast<double>(half) - o.downscale_freq_shift > 0.0)))
    throw_argument(fn, "opts.downscale_freq_shift", "must be finite and < dim / 2 = ", half,
                   " (got ", o.downscale_freq_shift, ")");
}

void require_dim(const char* fn, const char* arg, std::int64_t v, std::int64_t lo) {
  require_at_least(fn, arg, v, lo);
  if (v > INT_MAX) throw_argument(fn, arg, "must be <= ", INT_MAX, " (got ", v, ")");
}

}  // namespace detail

namespace {

constexpr const char* kActivationNames[] = {"none", "relu", "silu", "gelu_tanh",
                                            "gelu", "sigmoid", "tanh"};

// A GEMM environment for one call: on the GPU a workspace of its own, planned per call.
struct CallEnv {
  explicit CallEnv(const Context& ctx) {
#if GENAI_WITH_CUDA
    if (ctx.is_cuda()) {
      buffer = Buffer<std::byte>(ctx, cuda::kGemmWorkspaceBytes);
      env.workspace = buffer.data();
      env.workspace_bytes = buffer.size();
    }
#else
    (void)ctx;
#endif
  }
  Buffer<std::byte> buffer;
  detail::GemmEnv env;
};

void check_shape(const char* fn, const LinearShape& s) {
  detail::require_dim(fn, "shape.batch", s.batch, 0);
  detail::require_dim(fn, "shape.in", s.in, 1);
  detail::require_dim(fn, "shape.out", s.out, 1);
}

}  // namespace

std::string to_string(Activation a) {
  detail::require_activation("genai::to_string", "a", a);
  return kActivationNames[static_cast<int>(a)];
}

Activation activation_from_string(const std::string& name) {
  for (int i = 0; i <= static_cast<int>(Activation::Tanh); ++i)
    if (name == kActivationNames[i]) return static_cast<Activation>(i);
  detail::throw_argument("genai::activation_from_string", "name", "must be one of none, relu, "
                         "silu, gelu_tanh, gelu, sigmoid, tanh (got '", name, "')");
}

void activation_forward(const Context& ctx, Activation act, const float* z, std::int64_t n,
                        float* y) {
  constexpr const char* fn = "genai::activation_forward";
  GENAI_NVTX_RANGE(fn);
  detail::require_activation(fn, "act", act);
  detail::require_at_least(fn, "n", n, 0);
  if (n == 0) return;
  detail::require_not_null(fn, "z", z);
  detail::require_not_null(fn, "y", y);
#if GENAI_WITH_CUDA
  if (ctx.is_cuda()) return cuda::activation_forward(ctx, act, z, n, y);
#endif
  (void)ctx;
  ref::activation_forward(act, z, n, y);
}

void activation_backward(const Context& ctx, Activation act, const float* z, const float* dy,
                         std::int64_t n, float* dz) {
  constexpr const char* fn = "genai::activation_backward";
  GENAI_NVTX_RANGE(fn);
  detail::require_activation(fn, "act", act);
  detail::require_at_least(fn, "n", n, 0);
  if (n == 0) return;
  detail::require_not_null(fn, "z", z);
  detail::require_not_null(fn, "dy", dy);
  detail::require_not_null(fn, "dz", dz);
  detail::run_activation_backward(ctx, act, z, dy, n, dz);
}

void time_embedding(const Context& ctx, const float* t, std::int64_t batch, std::int64_t dim,
                    float* out, const TimeEmbeddingOptions& opts) {
  constexpr const char* fn = "genai::time_embedding";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "batch", batch, 0);
  detail::require_at_least(fn, "dim", dim, 1);
  detail::require_time_embedding(fn, dim, opts);
  if (batch == 0) return;
  detail::require_not_null(fn, "t", t);
  detail::require_not_null(fn, "out", out);
  detail::run_embed_input(ctx, {batch, 0, dim, nullptr, t, opts, out});
}

void linear_forward(const Context& ctx, const LinearShape& shape, const float* x, const float* W,
                    const float* b, float* y, const LinearOptions& opts) {
  constexpr const char* fn = "genai::linear_forward";
  GENAI_NVTX_RANGE(fn);
  check_shape(fn, shape);
  detail::require_activation(fn, "opts.activation", opts.activation);
  detail::require_not_null(fn, "W", W);
  if (shape.batch == 0) return;
  detail::require_not_null(fn, "x", x);
  detail::require_not_null(fn, "y", y);
  if (opts.pre_activation == y)
    detail::throw_argument(fn, "opts.pre_activation", "must not be y");
  CallEnv call(ctx);
  detail::run_dense_forward(ctx,
                            {shape.batch, shape.in, shape.out, x, shape.in, W, b, opts.activation,
                             nullptr, y, opts.pre_activation, nullptr, nullptr},
                            call.env);
}

void linear_backward(const Context& ctx, const LinearShape& shape, const float* x, const float* W,
                     const float* dy, float* dx, float* dW, float* db,
                     const LinearBackwardOptions& opts) {
  constexpr const char* fn = "genai::linear_backward";
  GENAI_NVTX_RANGE(fn);
  check_shape(fn, shape);
  detail::require_activation(fn, "opts.activation", opts.activation);
  const bool act = opts.activation != Activation::None;
  if (act) detail::require_not_null(fn, "opts.pre_activation", opts.pre_activation);
  if (dx || dW) detail::require_not_null(fn, "W", W);
  if (shape.batch == 0) {  // the sums over no rows
    if (dW && !opts.accumulate) detail::fill_bytes(ctx, dW, ctx.device(), 0, shape.out * shape.in * sizeof(float));
    if (db && !opts.accumulate) detail::fill_bytes(ctx, db, ctx.device(), 0, shape.out * sizeof(float));
    return;
  }
  detail::require_not_null(fn, "dy", dy);
  if (dW) detail::require_not_null(fn, "x", x);
  CallEnv call(ctx);
  const float* dz = dy;
  Buffer<float> own;
  if (act) {
    float* scratch = opts.dz;
    if (!scratch) {
      own = Buffer<float>(ctx, static_cast<std::size_t>(shape.batch * shape.out));
      scratch = own.data();
    }
    detail::run_activation_backward(ctx, opts.activation, opts.pre_activation, dy,
                                    shape.batch * shape.out, scratch);
    dz = scratch;
  }
  if (dW || db)
    detail::run_dense_backward_weight(
        ctx, {shape.batch, shape.in, shape.out, dz, x, shape.in, dW, db, opts.accumulate},
        call.env);
  if (dx)
    detail::run_dense_backward_input(ctx,
                                     {shape.batch, shape.in, shape.out, shape.in, dz, W, nullptr,
                                      dx, Activation::None, nullptr, nullptr, nullptr},
                                     call.env);
}

void init_linear(const Context& ctx, std::int64_t out, std::int64_t in, float* W, float* b,
                 Init init, std::uint64_t seed, std::uint32_t layer) {
  constexpr const char* fn = "genai::init_linear";
  GENAI_NVTX_RANGE(fn);
  detail::require_at_least(fn, "out", out, 1);
  detail::require_at_least(fn, "in", in, 1);
  detail::require_not_null(fn, "W", W);
  if (layer > (UINT32_MAX - 1) / 2)
    detail::throw_argument(fn, "layer", "must be <= ", (UINT32_MAX - 1) / 2, " (got ", layer, ")");
  const RngKey wkey{seed, rng::streams::nn_init, 2 * layer};
  const RngKey bkey{seed, rng::streams::nn_init, 2 * layer + 1};
  const double fan_in = static_cast<double>(in), fan_sum = static_cast<double>(in + out);
  const std::int64_t nw = out * in;
  float bias_bound = 0.0f;  // 0: b = 0
  switch (init) {
    case Init::PyTorchDefault: {
      const auto bound = static_cast<float>(1.0 / std::sqrt(fan_in));
      fill_uniform(ctx, W, nw, wkey, -bound, bound);
      bias_bound = bound;
      break;
    }
    case Init::KaimingUniform: {
      const auto bound = static_cast<float>(std::sqrt(6.0 / fan_in));
      fill_uniform(ctx, W, nw, wkey, -bound, bound);
      break;
    }
    case Init::KaimingNormal:
      fill_normal(ctx, W, nw, wkey, 0.0f, static_cast<float>(std::sqrt(2.0 / fan_in)));
      break;
    case Init::XavierUniform: {
      const auto bound = static_cast<float>(std::sqrt(6.0 / fan_sum));
      fill_uniform(ctx, W, nw, wkey, -bound, bound);
      break;
    }
    case Init::XavierNormal:
      fill_normal(ctx, W, nw, wkey, 0.0f, static_cast<float>(std::sqrt(2.0 / fan_sum)));
      break;
    default:
      detail::throw_argument(fn, "init", "is not an Init (value ", static_cast<int>(init), ")");
  }
  if (!b) return;
  if (bias_bound > 0.0f)
    fill_uniform(ctx, b, out, bkey, -bias_bound, bias_bound);
  else
    detail::fill_bytes(ctx, b, ctx.device(), 0, out * sizeof(float));
}

}  // namespace genai
