// The per-element terms of the info module's row reductions, for both backends (the reference in
// double, the kernels in float).
#pragma once

#include <cmath>

#include "genai/detail/hd.hpp"

namespace genai::detail {

enum class InfoOp { L1, L2Squared, Entropy, KL, CrossEntropy };

GENAI_HD constexpr bool info_uses_q(InfoOp op) {
  return op == InfoOp::KL || op == InfoOp::CrossEntropy;
}
GENAI_HD constexpr bool info_is_logarithmic(InfoOp op) {
  return op == InfoOp::Entropy || info_uses_q(op);
}

// The term of entry (p, q) in the row's sum; 0 log 0 = 0, and q = 0 < p gives +inf (KL,
// cross-entropy). The sum is scaled by 1 / log 2 for bits.
template <class T>
GENAI_HD T info_term(InfoOp op, T p, T q) {
  switch (op) {
    case InfoOp::L1: return p < T(0) ? -p : p;
    case InfoOp::L2Squared: return p * p;
    case InfoOp::Entropy: return p > T(0) ? -p * log(p) : T(0);
    case InfoOp::KL: return p > T(0) ? p * (log(p) - log(q)) : T(0);
    case InfoOp::CrossEntropy: return p > T(0) ? -p * log(q) : T(0);
  }
  return T(0);
}

}  // namespace genai::detail
