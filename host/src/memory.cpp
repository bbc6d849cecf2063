// Byte-level memory primitives behind genai::Buffer<T>.
#include <cstdlib>
#include <cstring>
#include <new>

#include "genai/buffer.hpp"

#if GENAI_WITH_CUDA
#include <cuda_runtime.h>

#include "genai/cuda_check.hpp"
#endif

namespace genai::detail {

void* allocate(const Context& ctx, std::size_t bytes) {
  if (bytes == 0) return nullptr;
  if (!ctx.is_cuda()) {
    void* p = std::malloc(bytes);
    if (!p) throw Error(concat("genai::Buffer: cannot allocate ", bytes, " bytes on the host"));
    return p;
  }
#if GENAI_WITH_CUDA
  void* p = nullptr;
  ctx.make_current();
  const cudaError_t e = cudaMallocAsync(&p, bytes, ctx.stream());
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw Error(concat("genai::Buffer: cannot allocate ", bytes, " bytes on CUDA device ",
                       ctx.device_index(), ": ", cudaGetErrorString(e)));
  }
  return p;
#else
  throw Error("genai::Buffer: device memory in a CPU-only build");
#endif
}

void release(const Context& ctx, void* p) noexcept {
  if (!p) return;
  if (!ctx.is_cuda()) {
    std::free(p);
    return;
  }
#if GENAI_WITH_CUDA
  cudaFreeAsync(p, ctx.stream());  // a destructor must not throw; errors surface at next check
#endif
}

void copy_bytes(const Context& ctx, void* dst, Device dst_where, const void* src,
                Device src_where, std::size_t bytes) {
  if (bytes == 0) return;
  if (dst_where == Device::CPU && src_where == Device::CPU) {
    std::memcpy(dst, src, bytes);
    return;
  }
#if GENAI_WITH_CUDA
  GENAI_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, ctx.stream()));
  GENAI_CUDA_CHECK(cudaStreamSynchronize(ctx.stream()));
#else
  (void)ctx;
  throw Error("genai::Buffer: device copy in a CPU-only build");
#endif
}

void fill_bytes(const Context& ctx, void* dst, Device where, int value, std::size_t bytes) {
  if (bytes == 0) return;
  if (where == Device::CPU) {
    std::memset(dst, value, bytes);
    return;
  }
#if GENAI_WITH_CUDA
  GENAI_CUDA_CHECK(cudaMemsetAsync(dst, value, bytes, ctx.stream()));
#else
  (void)ctx;
  throw Error("genai::Buffer: device fill in a CPU-only build");
#endif
}

}  // namespace genai::detail
