// Low-precision storage types: genai::fp16 (IEEE 754 binary16: 1 sign, 5 exponent, 10 mantissa
// bits) and genai::bf16 (bfloat16: 1 sign, 8 exponent, 7 mantissa bits, float's upper half).
//
// Each is one std::uint16_t of bits, layout-compatible with CUDA's __half and __nv_bfloat16 (size
// and alignment 2), so a device array of either is passed to the library as these types; no CUDA
// header is needed. Conversion from float rounds to nearest, ties to even; values beyond the
// largest finite value round to +-inf (fp16: |x| >= 65520), NaN stays NaN (made quiet), signed
// zeros and subnormals are kept. Conversion to float is exact.
#pragma once

#include <bit>
#include <cstdint>

namespace genai {

namespace detail {

constexpr std::uint16_t fp16_bits_of(float f) {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  const auto sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  const std::uint32_t a = u & 0x7fffffffu;
  if (a >= 0x7f800000u)  // inf, or NaN with its top mantissa bits kept and the quiet bit set
    return sign | (a == 0x7f800000u ? 0x7c00u : (0x7e00u | ((a >> 13) & 0x3ffu)));
  if (a >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 = 65504 + half an ulp: inf
  if (a >= 0x38800000u) {                        // normal: rebias the exponent 127 -> 15
    std::uint32_t h = (a - 0x38000000u) >> 13;
    const std::uint32_t rest = a & 0x1fffu;
    h += rest > 0x1000u || (rest == 0x1000u && (h & 1u));  // a carry moves into the exponent
    return static_cast<std::uint16_t>(sign | h);
  }
  if (a <= 0x33000000u) return sign;  // <= 2^-25, half the smallest subnormal: ties to 0
  // Subnormal: round (1.m * 2^(e-127)) / 2^-24 = (1m) >> (126 - e) to nearest even.
  const std::uint32_t m = (a & 0x7fffffu) | 0x800000u;
  const std::uint32_t shift = 126u - (a >> 23);
  std::uint32_t h = m >> shift;
  const std::uint32_t rest = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
  h += rest > half || (rest == half && (h & 1u));
  return static_cast<std::uint16_t>(sign | h);
}

constexpr float float_of_fp16(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (m << 13));
  if (e == 0) {  // zero or subnormal: m * 2^-24, exact in float
    const float v = static_cast<float>(m) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  return std::bit_cast<float>(sign | ((e + 112u) << 23) | (m << 13));
}

constexpr std::uint16_t bf16_bits_of(float f) {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
  // Round the low 16 bits to nearest even; a carry into the exponent is the right result
  // (up to inf past bf16's largest finite value).
  return static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

}  // namespace detail

struct fp16 {
  std::uint16_t bits;

  fp16() = default;
  constexpr explicit fp16(float f) : bits(detail::fp16_bits_of(f)) {}
  constexpr explicit operator float() const { return detail::float_of_fp16(bits); }
  static constexpr fp16 from_bits(std::uint16_t b) {
    fp16 h{};
    h.bits = b;
    return h;
  }
};

struct bf16 {
  std::uint16_t bits;

  bf16() = default;
  constexpr explicit bf16(float f) : bits(detail::bf16_bits_of(f)) {}
  constexpr explicit operator float() const {
    return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16);
  }
  static constexpr bf16 from_bits(std::uint16_t b) {
    bf16 h{};
    h.bits = b;
    return h;
  }
};

static_assert(sizeof(fp16) == 2 && alignof(fp16) == 2, "fp16 must match __half's layout");
static_assert(sizeof(bf16) == 2 && alignof(bf16) == 2, "bf16 must match __nv_bfloat16's layout");

}  // namespace genai
