// The exponential of the CPU backend's softmaxes (attention, cross-entropy) in double and in
// float, as plain arithmetic so that loops over it vectorise (the libm exp does not), and the
// row loops around it.
#pragma once

#include <bit>
#include <cstdint>
#include <initializer_list>
#include <limits>

namespace genai::ref {

// e^x: x = n ln 2 + r with |r| <= ln 2 / 2 (Cody-Waite, n rounded with the 1.5 * 2^52 shift), e^r
// by its Taylor series to r^13 (truncation < 5e-18), times 2^n. Within 2 ulp of std::exp; 0
// below -708 (where e^x is subnormal: < 1e-307, nothing beside a softmax row's largest term,
// 1), +inf above 709.78, NaN for NaN.
inline double exp_d(double x) {
  constexpr double kShift = 6755399441055744.0;  // 1.5 * 2^52
  const double xc = x > -708.0 ? (x < 710.0 ? x : 710.0) : -708.0;  // NaN -> -708: no UB below
  const double fn = (xc * 1.4426950408889634 + kShift) - kShift;
  const double r = (xc - fn * 6.93147180369123816490e-01) - fn * 1.90821492927058770002e-10;
  double p = 1.0 / 6227020800.0;  // 1 / 13!
  for (const double c : {1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0,
                         1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0,
                         1.0 / 6.0, 0.5, 1.0, 1.0})
    p = p * r + c;
  const auto n = static_cast<std::int64_t>(fn);
  // p 2^(n-1) is exact (a normal power of 2 times p); the doubling overflows to inf above 709.78.
  const double e = p * std::bit_cast<double>(static_cast<std::uint64_t>(n + 1022) << 52) * 2.0;
  return x != x ? x : (x < -708.0 ? 0.0 : (x > 710.0 ? std::numeric_limits<double>::infinity() : e));
}

// e^x in float, for the float softmaxes (attention's blocked path, cross-entropy): x = n ln 2 + r
// (Cody-Waite in float, n rounded with the 1.5 * 2^23 shift, ln 2 in two parts whose first,
// 355/512, has 9 bits, so n ln2_hi is exact for |n| < 2^15), e^r by its Taylor series to r^7
// (truncation < 2^-27 for |r| <= ln 2 / 2), times 2^n. Within 2 ulp of the correctly rounded e^x
// (1 observed; Attention.FloatExponentialIsWithinTwoUlp); 0 below ln 2^-126 = -87.33654 (where
// e^x would be subnormal: nothing beside a softmax row's largest term, 1), +inf above 88.72, NaN
// for NaN.
inline float exp_f(float x) {
  constexpr float kShift = 12582912.0f;  // 1.5 * 2^23
  const float xc = x > -87.33654f ? (x < 88.8f ? x : 88.8f) : -87.33654f;  // NaN -> low: no UB
  const float fn = (xc * 1.44269504f + kShift) - kShift;
  const float r = (xc - fn * 0.693359375f) - fn * -2.12194440e-4f;
  float p = 1.0f / 5040.0f;
  for (const float c : {1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f, 1.0f / 6.0f, 0.5f, 1.0f, 1.0f})
    p = p * r + c;
  const auto n = static_cast<std::int32_t>(fn), n1 = n >> 1, n2 = n - n1;
  // p 2^n1 2^n2, both factors normal powers of 2 (n in [-126, 128]): exact while the result is
  // normal, +inf past the largest float.
  const float e = p * std::bit_cast<float>(static_cast<std::uint32_t>(n1 + 127) << 23) *
                  std::bit_cast<float>(static_cast<std::uint32_t>(n2 + 127) << 23);
  return x != x ? x : (x < -87.33654f ? 0.0f : (x > 88.8f ? std::numeric_limits<float>::infinity() : e));
}

// s[c] = exp_d(s[c] - m), c < n (one vectorised loop, cloned for AVX-512 / AVX2); returns their
// sum, added in four interleaved partial sums (a fixed order).
double exp_shifted(double* s, std::int64_t n, double m);

// The same in float: s[c] = exp_f(s[c] - m); their sum in double, in eight interleaved partial
// sums.
double exp_shifted(float* s, std::int64_t n, float m);

// The largest of s[0, n) (NaN ignored, as std::max), -inf when n = 0; 4 (double) or 16 (float)
// interleaved maxima.
double max_of(const double* s, std::int64_t n);
float max_of(const float* s, std::int64_t n);

}  // namespace genai::ref
