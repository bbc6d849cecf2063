// The formulas of the nn module, once for both backends (__host__ __device__): the activations
// and their derivatives, the sinusoidal time embedding's frequencies, and the ReLU bit-mask
// layout. Templates in T: float in the kernels and the CPU path, double in the tests' oracle
// and finite differences, so the derivative the kernels use is the one the tests check.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "genai/detail/hd.hpp"

namespace genai {

// Elementwise activations (problem set 2.1: sigmoid; 4.2: the g of x + g(x)).
enum class Activation {
  None,      // identity
  ReLU,      // max(z, 0)
  SiLU,      // z sigmoid(z)
  GELUTanh,  // 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))  (PyTorch approximate="tanh")
  GELUErf,   // 0.5 z (1 + erf(z / sqrt(2)))                    (PyTorch nn.GELU(), exact)
  Sigmoid,   // 1 / (1 + exp(-z))
  Tanh,      // tanh(z)
};

// The sinusoidal embedding of a scalar t (a diffusion timestep), as diffusers'
// get_timestep_embedding and tiny-diffusion's SinusoidalEmbedding: with h = dim / 2,
//   f_i = exp(-ln(max_period) i / (h - downscale_freq_shift)),  i < h
//   e   = [sin(scale t f_0) .. sin(scale t f_{h-1}), cos(scale t f_0) .. cos(scale t f_{h-1})]
// (cos first with flip_sin_to_cos), a zero last column when dim is odd. The defaults are
// diffusers' (flip_sin_to_cos = false, downscale_freq_shift = 1, max_period = 10000, scale = 1),
// which are also tiny-diffusion's time embedding. f_i is rounded to float and scale t f_i is
// computed in float, as PyTorch does in float32.
struct TimeEmbeddingOptions {
  bool flip_sin_to_cos = false;
  float downscale_freq_shift = 1.0f;
  float max_period = 10000.0f;
  float scale = 1.0f;
};

namespace detail {

template <class T>
GENAI_HD T sigmoid(T z) {
  return T(1) / (T(1) + std::exp(-z));
}

// act(z).
template <class T>
GENAI_HD T activate(Activation a, T z) {
  constexpr T kSqrt2OverPi = T(0.79788456080286535588);
  constexpr T kInvSqrt2 = T(0.70710678118654752440);
  switch (a) {
    case Activation::None: return z;
    case Activation::ReLU: return z > T(0) ? z : T(0);
    case Activation::SiLU: return z * sigmoid(z);
    case Activation::GELUTanh:
      return T(0.5) * z * (T(1) + std::tanh(kSqrt2OverPi * (z + T(0.044715) * z * z * z)));
    case Activation::GELUErf: return T(0.5) * z * (T(1) + std::erf(z * kInvSqrt2));
    case Activation::Sigmoid: return sigmoid(z);
    case Activation::Tanh: return std::tanh(z);
  }
  return z;
}

// d act / dz at z.
template <class T>
GENAI_HD T activate_grad(Activation a, T z) {
  constexpr T kSqrt2OverPi = T(0.79788456080286535588);
  constexpr T kInvSqrt2 = T(0.70710678118654752440);
  constexpr T kInvSqrt2Pi = T(0.39894228040143267794);
  switch (a) {
    case Activation::None: return T(1);
    case Activation::ReLU: return z > T(0) ? T(1) : T(0);
    case Activation::SiLU: {
      const T s = sigmoid(z);
      return s * (T(1) + z * (T(1) - s));
    }
    case Activation::GELUTanh: {
      const T u = kSqrt2OverPi * (z + T(0.044715) * z * z * z);
      const T th = std::tanh(u);
      const T du = kSqrt2OverPi * (T(1) + T(3) * T(0.044715) * z * z);
      return T(0.5) * (T(1) + th) + T(0.5) * z * (T(1) - th * th) * du;
    }
    case Activation::GELUErf:
      return T(0.5) * (T(1) + std::erf(z * kInvSqrt2)) + z * kInvSqrt2Pi * std::exp(T(-0.5) * z * z);
    case Activation::Sigmoid: {
      const T s = sigmoid(z);
      return s * (T(1) - s);
    }
    case Activation::Tanh: {
      const T th = std::tanh(z);
      return T(1) - th * th;
    }
  }
  return T(1);
}

// f_i of the time embedding (see TimeEmbeddingOptions), computed in double and rounded to float
// on both backends.
GENAI_HD float time_frequency(std::int64_t i, std::int64_t half, float max_period,
                              float downscale_freq_shift) {
  const double d = static_cast<double>(half) - static_cast<double>(downscale_freq_shift);
  return static_cast<float>(std::exp(-std::log(static_cast<double>(max_period)) *
                                     static_cast<double>(i) / d));
}

// Column c < dim of the embedding of t: which of sin / cos and which frequency (index i), or
// a padding zero (odd dim's last column).
struct TimeColumn {
  std::int64_t i;  // frequency index, -1 for the padding zero
  bool cosine;
};
GENAI_HD TimeColumn time_column(std::int64_t c, std::int64_t dim, bool flip_sin_to_cos) {
  const std::int64_t half = dim / 2;
  if (c >= 2 * half) return {-1, false};
  const bool second = c >= half;
  return {second ? c - half : c, second != flip_sin_to_cos};
}

// The float argument scale * t * f_i: two correctly rounded products (nothing to contract),
// identical on both backends.
GENAI_HD float time_argument(float t, float scale, float f) { return (scale * t) * f; }


// ---- the backends' primitives (host/src/nn*.cpp builds them, ref:: and cuda:: run them) -------

// [x, embed(t)] rows: out[r * (x_dim + t_dim) + c] = x[r * x_dim + c] for c < x_dim, then the
// time embedding of t[r] (t_dim = 0: x alone; x_dim = 0: the embedding alone).
struct EmbedInput {
  std::int64_t batch, x_dim, t_dim;
  const float* x;
  const float* t;
  TimeEmbeddingOptions opts;
  float* out;
};

// y = act(x W^T + b) (+ residual), x with row stride ldx; z = x W^T + b written when not null.
// relu_mask (GPU only, act == ReLU, no residual): cuBLASLt's sign bits of z instead of z, for
// the backward's DRELU epilogue; *mask_written says whether they were written.
struct DenseForward {
  std::int64_t batch, in, out;
  const float* x;
  std::int64_t ldx;
  const float* W;
  const float* b;  // or null
  Activation act;
  const float* residual;  // [batch x out] or null
  float* y;
  float* z;
  std::uint32_t* relu_mask;
  bool* mask_written;
};

// dW (=, or += with accumulate) dz^T x and db (likewise) the column sums of dz [batch x out];
// either may be null.
struct DenseBackwardWeight {
  std::int64_t batch, in, out;
  const float* dz;
  const float* x;
  std::int64_t ldx;
  float* dW;
  float* db;
  bool accumulate;
};

// g [batch x cols] = dz W[:, :cols] (+ g_add, which may be g itself). Then, when act is not
// None (the activation of the layer whose output this input is): g = g * act'(z) and, when db is
// not null, db = its column sums (that layer's bias gradient). For ReLU, z may be the layer's
// output (relu'(z) = [relu(z) > 0]); relu_mask, when not null, holds the mask DenseForward wrote.
struct DenseBackwardInput {
  std::int64_t batch, in, out, cols;
  const float* dz;
  const float* W;
  const float* g_add;
  float* g;
  Activation act;
  const float* z;
  const std::uint32_t* relu_mask;
  float* db;
};

struct GemmCache;
// Where a GPU GEMM keeps its scratch and its plans: cuBLASLt's workspace (also the bias
// reduction's partial sums), and a cache of planned GEMMs reused while a call's shapes,
// epilogue and pointer alignments match (null: planned per call). Ignored on the CPU.
struct GemmEnv {
  void* workspace = nullptr;
  std::size_t workspace_bytes = 0;
  GemmCache* cache = nullptr;
};

// Bits per row of a ReLU mask over rows of `out` values (cuBLASLt: a multiple of 128).
GENAI_HD std::int64_t relu_mask_ld(std::int64_t out) { return (out + 127) / 128 * 128; }

}  // namespace detail
}  // namespace genai
