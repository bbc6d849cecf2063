// GENAI_NVTX_RANGE("name"): an NVTX range in the "genai" domain for the enclosing scope, seen
// by Nsight Systems / Nsight Compute (--nvtx). Compiles to nothing in a CPU-only build.
#pragma once

#include "genai/config.hpp"

#if GENAI_WITH_CUDA
#include <nvtx3/nvtx3.hpp>
namespace genai::detail {
struct nvtx_domain {
  static constexpr const char* name{"genai"};
};
}  // namespace genai::detail
#define GENAI_NVTX_CONCAT_(a, b) a##b
#define GENAI_NVTX_CONCAT(a, b) GENAI_NVTX_CONCAT_(a, b)
#define GENAI_NVTX_RANGE(name) \
  ::nvtx3::scoped_range_in<::genai::detail::nvtx_domain> GENAI_NVTX_CONCAT(genai_nvtx_, __LINE__){name}
#else
#define GENAI_NVTX_RANGE(name) static_cast<void>(0)
#endif
