// The formulas of the nn module, once for both backends (__host__ __device__): the activations
// and their derivatives, the sinusoidal time embedding's frequencies, and the ReLU bit-mask
// layout. Templates in T: float in the kernels and the CPU path, double in the tests' oracle
// and finite differences, so the derivative the kernels use is the one the tests check.
#pragma once

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

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

// ---- float elementary functions as plain arithmetic ------------------------------------------
// No library calls and no data-dependent branches, so the CPU's loops over them vectorise (the
// libm calls they replace do not); the GPU runs the same arithmetic. Accuracy against double
// (tests/nn_test.cpp sweeps the ranges): exp_f within 1 ulp on [-87, 88], tanh_f within 1.3 ulp,
// erf_f within 6.4e-7 absolute (Abramowitz & Stegun 7.1.26, 1.5e-7 in exact arithmetic, as
// PyTorch's vectorised erf). In double (the tests' oracle and finite differences) the C++
// library's functions.

GENAI_HD float float_from_bits(std::uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(b);
#else
  return std::bit_cast<float>(b);
#endif
}

// exp(x): x = n ln 2 + r, |r| <= ln 2 / 2 (Cody-Waite), Cephes' degree-6 polynomial for e^r;
// 0 below -87, inf above 88, NaN stays NaN.
GENAI_HD float exp_f(float x) {
  float xc = x < 88.0f ? x : 88.0f;  // NaN becomes 88 here, and NaN again at the end
  xc = xc > -87.0f ? xc : -87.0f;
  const float t = xc * 1.44269504088896341f;
  const int n = static_cast<int>(t + (t >= 0.0f ? 0.5f : -0.5f));
  const float fn = static_cast<float>(n);
  const float r = (xc - fn * 0.693359375f) - fn * -2.12194440e-4f;
  const float p =
      ((((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r +
          4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f) * r * r) + r + 1.0f;
  const float e = p * float_from_bits(static_cast<std::uint32_t>(n + 127) << 23);
  return x != x ? x : (x > 88.0f ? INFINITY : (x < -87.0f ? 0.0f : e));
}

// tanh(x): Cephes' odd polynomial below |x| = 0.625, 1 - 2 / (e^{2|x|} + 1) above.
GENAI_HD float tanh_f(float x) {
  const float a = x < 0.0f ? -x : x;
  const float z = x * x;
  const float small =
      ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
        1.33314422036e-1f) * z - 3.33332819422e-1f) * z * x + x;
  const float big = 1.0f - 2.0f / (exp_f(2.0f * a) + 1.0f);
  return a < 0.625f ? small : (x < 0.0f ? -big : big);
}

// erf(x) = 1 - (a1 t + ... + a5 t^5) e^{-x^2}, t = 1 / (1 + p |x|), odd; exp_neg_x2 = e^{-x^2}
// (GELU's derivative has it already).
GENAI_HD float erf_f(float x, float exp_neg_x2) {
  const float a = x < 0.0f ? -x : x;
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  const float poly =
      ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t +
       0.254829592f) * t;
  const float e = 1.0f - poly * exp_neg_x2;
  return x < 0.0f ? -e : e;
}
GENAI_HD float erf_f(float x) { return erf_f(x, exp_f(-x * x)); }

GENAI_HD float nn_exp(float x) { return exp_f(x); }
GENAI_HD float nn_tanh(float x) { return tanh_f(x); }
GENAI_HD float nn_erf(float x) { return erf_f(x); }
GENAI_HD float nn_erf(float x, float exp_neg_x2) { return erf_f(x, exp_neg_x2); }
GENAI_HD double nn_exp(double x) { return std::exp(x); }
GENAI_HD double nn_tanh(double x) { return std::tanh(x); }
GENAI_HD double nn_erf(double x) { return std::erf(x); }
GENAI_HD double nn_erf(double x, double) { return std::erf(x); }

template <class T>
GENAI_HD T sigmoid(T z) {
  return T(1) / (T(1) + nn_exp(-z));
}

// act(z) for an activation known at compile time (the CPU loops instantiate one loop per
// activation, which the compiler can vectorise), and d act / dz at z.
template <Activation A, class T>
GENAI_HD T activate(T z) {
  constexpr T kSqrt2OverPi = T(0.79788456080286535588);
  constexpr T kInvSqrt2 = T(0.70710678118654752440);
  if constexpr (A == Activation::ReLU) return z > T(0) ? z : T(0);
  if constexpr (A == Activation::SiLU) return z * sigmoid(z);
  if constexpr (A == Activation::GELUTanh)
    return T(0.5) * z * (T(1) + nn_tanh(kSqrt2OverPi * (z + T(0.044715) * z * z * z)));
  if constexpr (A == Activation::GELUErf) return T(0.5) * z * (T(1) + nn_erf(z * kInvSqrt2));
  if constexpr (A == Activation::Sigmoid) return sigmoid(z);
  if constexpr (A == Activation::Tanh) return nn_tanh(z);
  return z;  // None
}

template <Activation A, class T>
GENAI_HD T activate_grad(T z) {
  constexpr T kSqrt2OverPi = T(0.79788456080286535588);
  constexpr T kInvSqrt2 = T(0.70710678118654752440);
  constexpr T kInvSqrt2Pi = T(0.39894228040143267794);
  if constexpr (A == Activation::ReLU) return z > T(0) ? T(1) : T(0);
  if constexpr (A == Activation::SiLU) {
    const T s = sigmoid(z);
    return s * (T(1) + z * (T(1) - s));
  }
  if constexpr (A == Activation::GELUTanh) {
    const T u = kSqrt2OverPi * (z + T(0.044715) * z * z * z);
    const T th = nn_tanh(u);
    const T du = kSqrt2OverPi * (T(1) + T(3) * T(0.044715) * z * z);
    return T(0.5) * (T(1) + th) + T(0.5) * z * (T(1) - th * th) * du;
  }
  if constexpr (A == Activation::GELUErf) {
    const T density = nn_exp(T(-0.5) * z * z);  // e^{-(z / sqrt 2)^2}, erf's own factor too
    return T(0.5) * (T(1) + nn_erf(z * kInvSqrt2, density)) + z * kInvSqrt2Pi * density;
  }
  if constexpr (A == Activation::Sigmoid) {
    const T s = sigmoid(z);
    return s * (T(1) - s);
  }
  if constexpr (A == Activation::Tanh) {
    const T th = nn_tanh(z);
    return T(1) - th * th;
  }
  return T(1);  // None
}

// f(std::integral_constant<Activation, a>{}): one instantiation per activation.
template <class F>
GENAI_HD decltype(auto) with_activation(Activation a, F&& f) {
  using A = Activation;
  switch (a) {
    case A::ReLU: return f(std::integral_constant<A, A::ReLU>{});
    case A::SiLU: return f(std::integral_constant<A, A::SiLU>{});
    case A::GELUTanh: return f(std::integral_constant<A, A::GELUTanh>{});
    case A::GELUErf: return f(std::integral_constant<A, A::GELUErf>{});
    case A::Sigmoid: return f(std::integral_constant<A, A::Sigmoid>{});
    case A::Tanh: return f(std::integral_constant<A, A::Tanh>{});
    default: return f(std::integral_constant<A, A::None>{});
  }
}

// The same with the activation known at run time.
template <class T>
GENAI_HD T activate(Activation a, T z) {
  return with_activation(a, [z](auto A) { return activate<decltype(A)::value>(z); });
}
template <class T>
GENAI_HD T activate_grad(Activation a, T z) {
  return with_activation(a, [z](auto A) { return activate_grad<decltype(A)::value>(z); });
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
