// What the attention module's backends and tests share: the resolved scale, and the element
// strides of a broadcast mask or bias array.
#pragma once

#include <cmath>
#include <cstdint>

#include "genai/attention.hpp"

namespace genai::detail {

// opts.scale, or 1 / sqrt(head_dim) when it is 0 (the default).
inline float attention_scale(const AttentionShape& shape, const AttentionOptions& opts) {
  return opts.scale != 0.0f ? opts.scale : 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
}

// Element strides of a BroadcastShape array over [B, H, Lq, Lk]: 0 along a dim of size 1, so
// element (b, h, i, j) is at b * b_stride + h * h_stride + i * i_stride + j * j_stride.
struct BroadcastStrides {
  std::int64_t b = 0, h = 0, i = 0, j = 0;
};

inline BroadcastStrides broadcast_strides(const BroadcastShape& s) {
  BroadcastStrides st;
  std::int64_t stride = 1;
  st.j = s.k_len == 1 ? 0 : stride;
  stride *= s.k_len;
  st.i = s.q_len == 1 ? 0 : stride;
  stride *= s.q_len;
  st.h = s.heads == 1 ? 0 : stride;
  stride *= s.heads;
  st.b = s.batch == 1 ? 0 : stride;
  return st;
}

}  // namespace genai::detail
