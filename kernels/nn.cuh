// CUDA backend of the nn module (genai::cuda, internal): cuBLASLt GEMMs with their epilogues,
// own kernels for the rest. Arguments are checked by host/src/nn*.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "genai/context.hpp"
#include "genai/detail/nn.hpp"

namespace genai::cuda {

// cuBLASLt's workspace (32 MiB, NVIDIA's advice for Hopper), also the bias reduction's scratch.
inline constexpr std::size_t kGemmWorkspaceBytes = std::size_t{32} << 20;

void activation_forward(const Context& ctx, Activation act, const float* z, std::int64_t n,
                        float* y);
void activation_backward(const Context& ctx, Activation act, const float* z, const float* dy,
                         std::int64_t n, float* dz);
void embed_input(const Context& ctx, const detail::EmbedInput& op);
void dense_forward(const Context& ctx, const detail::DenseForward& op, const detail::GemmEnv& env);
void dense_backward_weight(const Context& ctx, const detail::DenseBackwardWeight& op,
                           const detail::GemmEnv& env);
void dense_backward_input(const Context& ctx, const detail::DenseBackwardInput& op,
                          const detail::GemmEnv& env);
void add_into(const Context& ctx, float* dst, const float* src, std::int64_t n);
// An empty plan cache for GemmEnv::cache.
std::shared_ptr<detail::GemmCache> make_gemm_cache();

}  // namespace genai::cuda
