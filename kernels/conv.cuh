// CUDA backend of the conv module (genai::cuda, internal): the implicit-GEMM convolution,
// batch normalisation and the pools. Arguments are checked by host/src/conv.cpp.
#pragma once

#include <cstddef>
#include <cstdint>

#include "genai/context.hpp"
#include "genai/detail/conv.hpp"

namespace genai::cuda {

// Scratch (floats) conv_backward_weight needs on ctx's device for this geometry: the split-K
// partial sums of dW (0 when one split covers the sum).
std::size_t conv_weight_scratch_floats(const Context& ctx, const detail::ConvGeometry& g);
// Scratch (doubles) bn_stats, bn_backward and a bias gradient need for C channels of N planes.
std::size_t channel_scratch_doubles(std::int64_t N, std::int64_t C);

// One overload per primitive of genai/detail/conv.hpp; the scratch as sized above.
void execute(const Context& ctx, const detail::ConvForward& op);
void execute(const Context& ctx, const detail::ConvBackwardData& op);
void execute(const Context& ctx, const detail::ConvBackwardWeight& op, float* scratch,
             double* channel_scratch);
void execute(const Context& ctx, const detail::BnStats& op, double* scratch);
void execute(const Context& ctx, const detail::BnApply& op);
void execute(const Context& ctx, const detail::BnBackward& op, double* scratch);
void execute(const Context& ctx, const detail::MaxPoolForward& op);
void execute(const Context& ctx, const detail::MaxPoolBackward& op);
void execute(const Context& ctx, const detail::AvgPool& op);

}  // namespace genai::cuda
