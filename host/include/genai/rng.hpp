// Counter-based random numbers: Philox4x32-10 (Random123), identical on the host and the device.
//
// Counter layout -- the one place it is defined; every module draws through it:
//
//   key     = { seed & 0xffffffff, seed >> 32 }
//   counter = { block & 0xffffffff, block >> 32, step, stream }
//
// One Philox call turns (seed, stream, block, step) into four 32-bit words, i.e. four uniforms
// or four normals (two Box-Muller pairs: words 0,1 and words 2,3). Element i of a flat array
// draws lane i % 4 of block i / 4. `stream` separates independent uses of one seed (see
// rng::streams for the numbers the library itself takes); `step` is the iteration of an
// iterative sampler (Langevin step, diffusion timestep), so a chain's noise at step s is fixed
// by (seed, stream, chain's blocks, s) and a CPU loop and a GPU kernel draw the same numbers.
//
// The uniform and normal transforms below use only correctly rounded IEEE operations (+, *, /,
// sqrt, fma) and their own log / sin / cos polynomials, written so that no compiler may fuse or
// reorder them: the same key gives the same bits on the CPU and on the GPU.
#pragma once

#include <cstdint>
#include <cstring>

#include <Random123/philox.h>

#include "genai/context.hpp"
#include "genai/detail/hd.hpp"

namespace genai::rng {

// Stream numbers taken by the library. User code should use streams below 0x100.
namespace streams {
inline constexpr std::uint32_t user = 0;  // genai::fill_uniform / fill_normal default
inline constexpr std::uint32_t langevin = 0x100;  // Langevin and Brownian-motion normals
inline constexpr std::uint32_t langevin_accept = 0x101;  // MALA's acceptance uniforms
inline constexpr std::uint32_t diffusion_noise = 0x200;    // forward noising's epsilon
inline constexpr std::uint32_t diffusion_sampler = 0x201;  // reverse samplers' noise, step = t
inline constexpr std::uint32_t vae_reparameterize = 0x300;  // losses: the VAE's epsilon
inline constexpr std::uint32_t nn_init = 0x400;             // nn: Kaiming / Xavier weights
inline constexpr std::uint32_t ode = 0x500;                 // ode: Hutchinson probes
inline constexpr std::uint32_t train = 0x600;  // training loops: 0x600..0x6ff (batches, t, eps)
// The training module's (genai/train.hpp) part of that range, step = the optimizer step
// counted from 0 (datasets: the set's index):
inline constexpr std::uint32_t train_batch = train + 0x00;  // row r: block r, word 0 -> data row,
                                                           // word 1 -> timestep
inline constexpr std::uint32_t train_noise = train + 0x01;  // eps: the diffusion element layout
inline constexpr std::uint32_t train_data = train + 0x10;   // built-in data sets: row r, block r,
                                                           // steps 2 set and 2 set + 1
inline constexpr std::uint32_t autoencoder_batch = train + 0xe0;  // genai/autoencoder.hpp: epoch
                                                                 // e's shuffle, step = e
inline constexpr std::uint32_t metrics = 0x700;  // metrics: sliced-Wasserstein directions
}  // namespace streams

struct Words {
  std::uint32_t w[4];
};
struct Float4 {
  float v[4];
};

GENAI_HD Words philox(std::uint64_t seed, std::uint32_t stream, std::uint64_t block,
                      std::uint32_t step) {
  r123::Philox4x32_R<10> gen;
  const r123::Philox4x32_R<10>::ctr_type ctr = {{static_cast<std::uint32_t>(block),
                                                 static_cast<std::uint32_t>(block >> 32), step,
                                                 stream}};
  const r123::Philox4x32_R<10>::key_type key = {
      {static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)}};
  const auto r = gen(ctr, key);
  return {{r[0], r[1], r[2], r[3]}};
}

namespace detail {
// Correctly rounded operations that no compiler contracts into FMAs or reorders.
#if defined(__CUDA_ARCH__)
GENAI_HD float add(float a, float b) { return __fadd_rn(a, b); }
GENAI_HD float mul(float a, float b) { return __fmul_rn(a, b); }
GENAI_HD float div(float a, float b) { return __fdiv_rn(a, b); }
GENAI_HD float fma(float a, float b, float c) { return __fmaf_rn(a, b, c); }
GENAI_HD float sqrt(float a) { return __fsqrt_rn(a); }
GENAI_HD float rint(float a) { return rintf(a); }
GENAI_HD std::uint32_t bits(float a) { return __float_as_uint(a); }
GENAI_HD float from_bits(std::uint32_t b) { return __uint_as_float(b); }
#else
// Host side: the library is compiled with -ffp-contract=off so a*b+c stays two roundings.
inline float add(float a, float b) { return a + b; }
inline float mul(float a, float b) { return a * b; }
inline float div(float a, float b) { return a / b; }
inline float fma(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
inline float sqrt(float a) { return __builtin_sqrtf(a); }
inline float rint(float a) { return __builtin_rintf(a); }
inline std::uint32_t bits(float a) {
  std::uint32_t b;
  std::memcpy(&b, &a, 4);
  return b;
}
inline float from_bits(std::uint32_t b) {
  float a;
  std::memcpy(&a, &b, 4);
  return a;
}
#endif

// ln(u) for normal u > 0: u = m * 2^e with m in [sqrt(1/2), sqrt(2)], ln m = 2 atanh(s),
// s = (m-1)/(m+1), |s| <= 0.172, series to s^9 (truncation < 1e-9).
GENAI_HD float log(float u) {
  const std::uint32_t b = bits(u);
  int e = static_cast<int>((b >> 23) & 0xffu) - 127;
  float m = from_bits((b & 0x7fffffu) | 0x3f800000u);  // [1, 2)
  if (m > 1.41421356f) {
    m = mul(m, 0.5f);
    e += 1;
  }
  const float s = div(add(m, -1.0f), add(m, 1.0f));
  const float z = mul(s, s);
  const float p = fma(z, fma(z, fma(z, 2.0f / 9.0f, 2.0f / 7.0f), 2.0f / 5.0f), 2.0f / 3.0f);
  const float ln_m = fma(mul(s, z), p, add(s, s));
  return fma(static_cast<float>(e), 0.693147180559945309f, ln_m);
}

// cos(2*pi*t) and sin(2*pi*t) for t in [0, 1]: quadrant k = rint(4t), a = 2*pi*(t - k/4) in
// [-pi/4, pi/4] (t - k/4 is exact), Cephes single-precision minimax polynomials.
GENAI_HD void sincos_2pi(float t, float& s, float& c) {
  const float k = rint(mul(t, 4.0f));
  const float a = mul(add(t, mul(k, -0.25f)), 6.28318530717958648f);
  const float a2 = mul(a, a);
  const float sa =
      fma(mul(a, a2), fma(a2, fma(a2, -1.9515295891e-4f, 8.3321608736e-3f), -1.6666654611e-1f), a);
  const float ca = fma(mul(a2, a2),
                       fma(a2, fma(a2, 2.443315711809948e-5f, -1.388731625493765e-3f),
                           4.166664568298827e-2f),
                       fma(-0.5f, a2, 1.0f));
  // Quadrant q: (s, c) = (sa, ca), (ca, -sa), (-sa, -ca), (-ca, sa), as selects (no branch, so
  // the CPU's loops over many blocks vectorise).
  const int q = static_cast<int>(k) & 3;
  const float s0 = (q & 1) ? ca : sa, c0 = (q & 1) ? sa : ca;
  s = (q & 2) ? -s0 : s0;
  c = (q == 1 || q == 2) ? -c0 : c0;
}
}  // namespace detail

// Uniform on (0, 1]: the top 24 bits, (k + 1) * 2^-24 -- exact in float, never 0.
GENAI_HD float uniform(std::uint32_t word) {
  return static_cast<float>((word >> 8) + 1u) * (1.0f / 16777216.0f);
}

// Box-Muller: two uniform words -> two independent standard normals (|z| <= 5.77).
GENAI_HD void box_muller(std::uint32_t w0, std::uint32_t w1, float& z0, float& z1) {
  const float r = detail::sqrt(detail::mul(-2.0f, detail::log(uniform(w0))));
  float s, c;
  detail::sincos_2pi(uniform(w1), s, c);
  z0 = detail::mul(r, c);
  z1 = detail::mul(r, s);
}

GENAI_HD Float4 uniform4(std::uint64_t seed, std::uint32_t stream, std::uint64_t block,
                         std::uint32_t step) {
  const Words r = philox(seed, stream, block, step);
  return {{uniform(r.w[0]), uniform(r.w[1]), uniform(r.w[2]), uniform(r.w[3])}};
}

GENAI_HD Float4 normal4(std::uint64_t seed, std::uint32_t stream, std::uint64_t block,
                        std::uint32_t step) {
  const Words r = philox(seed, stream, block, step);
  Float4 z;
  box_muller(r.w[0], r.w[1], z.v[0], z.v[1]);
  box_muller(r.w[2], r.w[3], z.v[2], z.v[3]);
  return z;
}

}  // namespace genai::rng

namespace genai {

// Which numbers a fill draws: element i of the output is lane i % 4 of block i / 4 of
// (seed, stream, step).
struct RngKey {
  std::uint64_t seed = 0;
  std::uint32_t stream = rng::streams::user;
  std::uint32_t step = 0;
};

// out[i] ~ U(low, high], i < n, on ctx's device.
void fill_uniform(const Context& ctx, float* out, std::int64_t n, RngKey key, float low = 0.0f,
                  float high = 1.0f);
// out[i] ~ N(mean, stddev^2), i < n, on ctx's device.
void fill_normal(const Context& ctx, float* out, std::int64_t n, RngKey key, float mean = 0.0f,
                 float stddev = 1.0f);

}  // namespace genai
