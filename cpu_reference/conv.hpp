// CPU backend of the conv module: the convolution as im2col + CBLAS sgemm per image (float
// accumulation), batch normalisation and the pools as loops with double sums. Arguments are
// checked by host/src/conv.cpp.
#pragma once

#include "genai/detail/conv.hpp"

namespace genai::ref {

// One overload per primitive of genai/detail/conv.hpp.
void execute(const detail::ConvForward& op);
void execute(const detail::ConvBackwardData& op);
void execute(const detail::ConvBackwardWeight& op);
void execute(const detail::BnStats& op);
void execute(const detail::BnApply& op);
void execute(const detail::BnBackward& op);
void execute(const detail::MaxPoolForward& op);
void execute(const detail::MaxPoolBackward& op);
void execute(const detail::AvgPool& op);

}  // namespace genai::ref
